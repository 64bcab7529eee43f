"""largezero.table: the one table renderer (rich), its JSON rows and its markdown."""

from __future__ import annotations

import io

import pytest

from largezero.table import Table


def _table() -> Table:
    t = Table(("name", "size", "note"), right=("size",), title="files [not markup]")
    t.add_row("a|b", "4 KiB", "[bold]x[/bold]")
    t.add_row("c", "1 GiB", "")
    return t


def test_cells_and_title_are_printed_as_they_are_never_as_markup() -> None:
    out = io.StringIO()
    _table().print(out, pipe_width=100)
    text = out.getvalue()
    assert "files [not markup]" in text and "[bold]x[/bold]" in text
    lines = text.splitlines()
    row = next(line for line in lines if "a|b" in line)
    other = next(line for line in lines if line.lstrip("│┃ ").startswith("c "))
    assert row.index("4 KiB") + 5 == other.index("1 GiB") + 5  # numbers right-aligned: same end


def test_json_rows_and_markdown_come_from_the_same_table() -> None:
    t = _table()
    assert t.to_json() == [{"name": "a|b", "size": "4 KiB", "note": "[bold]x[/bold]"},
                           {"name": "c", "size": "1 GiB", "note": ""}]
    assert t.markdown(("size", "name")) == ["| size | name |", "|---:|---|", "| 4 KiB | a\\|b |", "| 1 GiB | c |"]
    with pytest.raises(ValueError):
        t.add_row("too", "few")
