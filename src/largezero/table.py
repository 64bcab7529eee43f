"""The one table renderer of the command line and the benchmark, as libsmartcols is util-linux's:
columns and rows of text, printed with rich on a terminal or into a file, as JSON (one object
per row) or as GitHub markdown.

Cells are data, never markup: a "[" in a path or a label is printed as it is. rich is imported
only when a table is printed (it costs ~50 ms of start-up), never by ``info``, ``zero`` or
``verify``. It sits beside ``units`` so that both ``cli`` and ``bench`` use it, neither
importing the other.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import IO


class Table:
    """``headers`` name the columns; those in ``right`` are right-aligned (numbers)."""

    def __init__(self, headers: Sequence[str], *, right: Iterable[str] = (), title: str | None = None) -> None:
        self.headers = list(headers)
        self.right = set(right)
        self.title = title
        self.rows: list[list[str]] = []

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"{len(cells)} cells for {len(self.headers)} columns")
        self.rows.append(list(cells))

    def print(self, file: IO[str] | None = None, *, compact: bool = False, wrap: bool = True,
              pipe_width: int | None = None) -> None:
        """Print with rich. ``compact``: a rule under the header and no outer frame (a listing, not
        a report); ``wrap=False``: no cell wraps (a wide benchmark table); ``pipe_width``: the
        width when the output is not a terminal (a log or a file), instead of 80 columns."""
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        console = Console(file=file, highlight=False)
        if pipe_width and not console.is_terminal:
            console = Console(file=file, highlight=False, width=pipe_width)
        table = RichTable(title=Text(self.title) if self.title else None, title_justify="left",
                          box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, pad_edge=not compact,
                          collapse_padding=compact)
        for i, header in enumerate(self.headers):
            # The first column names the row: it never wraps, whatever the terminal's width.
            table.add_column(Text(header), justify="right" if header in self.right else "left",
                             no_wrap=i == 0 or not wrap, overflow="fold")
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)

    def to_json(self) -> list[dict[str, str]]:
        """One object per row, keyed by the column headers."""
        return [dict(zip(self.headers, row, strict=True)) for row in self.rows]

    def markdown(self, headers: Sequence[str] | None = None) -> list[str]:
        """GitHub markdown lines of the table, of ``headers`` only when given (in that order)."""
        keep = [self.headers.index(h) for h in headers] if headers else list(range(len(self.headers)))
        names = [self.headers[i] for i in keep]
        lines = ["| " + " | ".join(names) + " |",
                 "|" + "|".join("---:" if h in self.right else "---" for h in names) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(row[i].replace("|", "\\|") for i in keep) + " |")
        return lines
