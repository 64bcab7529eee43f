"""The layers import one way (docs/architecture.md): an import that runs back up fails here, and so
does a module over 400 lines."""

from __future__ import annotations

import ast
import pathlib

import largezero

SRC = pathlib.Path(largezero.__file__).parent
# Lower floors first; a module may import its own floor and those below.
FLOORS: dict[str, int] = {
    "_record": 0, "_version": 0, "errors": 0, "units": 0, "table": 0, "cancel": 0, "syscalls": 0, "inflight": 0,
    "sysfiles": 0, "kconfig": 0, "scratch": 0,
    "targets": 1, "mm": 2, "engine": 3,
    "model": 4, "iomap": 4, "stream": 4, "verify": 4,
    "job": 5,
    "cli": 6, "integrations": 6, "bench": 6, "demo": 6,
    "__init__": 7, "__main__": 7, "_start": 7,
}


def _part(module: str) -> str:
    """'largezero.engine.plan' -> 'engine'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: pathlib.Path) -> set[str]:
    """Every largezero module the file imports (TYPE_CHECKING imports included: types are arrows too)."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    if rel.name == "__init__":
        package = list(rel.parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            out.update(n for n in names if n.startswith("largezero"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("largezero"))
    return out


def test_no_import_runs_back_up() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        me = _part(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        for imported in _imports(path):
            other = _part(imported)
            if other in FLOORS and FLOORS[other] > FLOORS[me]:
                wrong.append(f"{path.relative_to(SRC)} imports {imported}")
    assert wrong == []


def test_the_engine_and_the_zero_command_stay_in_their_lane() -> None:
    for path in (SRC / "engine").glob("*.py"):
        assert not {_part(m) for m in _imports(path)} & {"model", "job", "verify", "cli", "integrations", "bench"}
    assert not {_part(m) for m in _imports(SRC / "cli" / "zero.py")} & {"model", "verify"}
    for path in SRC.rglob("*.py"):
        if _part(".".join(path.relative_to(SRC.parent).with_suffix("").parts)) not in ("cli", "bench"):
            assert not {_part(m) for m in _imports(path)} & {"bench"}, path
    assert not (SRC / "block").exists()


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
