# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
# What `make test` installs with apt (as root, where apt exists) for tests that need a tool (udev, hdparm: IPA; pdftotext: certificates).
DEBIAN_TEST_PACKAGES := xfsprogs btrfs-progs exfatprogs strace e2fsprogs util-linux util-linux-extra fdisk dosfstools erofs-utils cryptsetup-bin valgrind udev hdparm zsh bash-completion poppler-utils
# The commands those packages provide; one missing means: install the list.
DEBIAN_TEST_TOOLS := mkfs.xfs mkfs.btrfs mkfs.exfat strace mkfs.ext4 sfdisk mkfs.minix mkfs.vfat mkfs.erofs cryptsetup valgrind udevadm hdparm zsh pdftotext

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo needs the package and its one dependency, not the development toolchain.
DEMO_STAMP := $(VENV)/.installed-demo
# Generated, checked in, and installed by pip as data files (pyproject.toml): the paths below
# src/largezero/ are those below an installation prefix.
SHARE := src/largezero/share
MAN := $(SHARE)/man/man1/largezero.1
BASH_COMPLETION := $(SHARE)/bash-completion/completions/largezero
ZSH_COMPLETION := $(SHARE)/zsh/site-functions/_largezero
VERSION = $(shell $(BIN)/python -c 'import largezero; print(largezero.__version__)')

.PHONY: demo test test-packages bench bench-long man completion clean

# ensurepip: a venv the demo made has no pip yet.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo needs the package's one dependency (rich, for its table), not the toolchain:
# rich is installed and src/ is put on the venv's path with a .pth file (a few seconds).
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'rich>=13'
	$(BIN)/python -c 'import site, sys; open(site.getsitepackages()[0] + "/largezero-src.pth", "w").write(sys.argv[1] + "\n")' $(CURDIR)/src
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m largezero demo

# Never fails for want of apt or root: the tests that need a missing tool skip with the reason.
test-packages:
	@missing=""; for t in $(DEBIAN_TEST_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(DEBIAN_TEST_PACKAGES) (missing:$$missing)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PACKAGES)) \
			|| echo "apt-get failed: tests needing$$missing will skip"; \
	else \
		echo "not root or no apt-get: tests needing$$missing will skip"; \
	fi

test: $(STAMP) test-packages
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -m 'not long' tests

bench: $(STAMP)
	$(BIN)/largezero bench --quick

bench-long: $(STAMP)
	$(BIN)/pytest -m long tests

# The man page and the shell completions are generated from the one parser, with the man
# page's extra sections and TARGET's completion attached (largezero.cli.manual.documented_parser);
# tests/test_manpage.py checks the checked-in copies are current.
man: $(STAMP)
	$(BIN)/argparse-manpage --module largezero.cli.manual --function documented_parser --prog largezero \
		--project-name largezero --version $(VERSION) \
		--description "zero large ranges of files and block devices" \
		--manual-title "largezero manual" --output $(MAN)

completion: $(STAMP)
	$(BIN)/shtab --shell=bash --prog largezero largezero.cli.manual.documented_parser > $(BASH_COMPLETION)
	$(BIN)/shtab --shell=zsh --prog largezero largezero.cli.manual.documented_parser > $(ZSH_COMPLETION)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
