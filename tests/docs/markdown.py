"""Reading the project's Markdown documents: tables, sections, code spans, links, headings.

Just enough Markdown for docs/*.md as they are written (GitHub-flavoured tables, ATX headings),
so that tests can compare what the documents say with what the code does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def prose_lines(text: str) -> list[tuple[int, str, bool]]:
    """(line number, line, inside a fenced code block) for every line."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            lines.append((number, line, True))
            continue
        lines.append((number, line, fenced))
    return lines


def code_spans(text: str) -> list[str]:
    """The inline code of the text, outside fenced blocks (a span never crosses a line here)."""
    return [span for _, line, fenced in prose_lines(text) if not fenced for span in CODE_SPAN.findall(line)]


def split_row(line: str) -> list[str]:
    """The cells of a table row. A `|` inside a code span (`http://loinc.org|59408-5`) is text."""
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") else text
    cells, current, in_code = [], [], False
    for char in text:
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return cells


@dataclass(frozen=True)
class Table:
    heading: str  # the nearest heading above it
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int:
        return self.header.index(name)

    def cells(self, name: str) -> list[str]:
        index = self.column(name)
        return [row[index] for row in self.rows]


def tables(text: str) -> list[Table]:
    found: list[Table] = []
    heading = ""
    block: list[str] = []

    def close() -> None:
        if len(block) >= 2 and re.fullmatch(r"\|?\s*:?-{3,}.*", block[1].strip()):
            header = split_row(block[0])
            rows = [split_row(line) for line in block[2:]]
            for row in rows:
                assert len(row) == len(header), f"a row of the table under {heading!r} has {len(row)} cells: {row}"
            found.append(Table(heading, header, rows))
        block.clear()

    for _, line, fenced in prose_lines(text):
        if not fenced and line.lstrip().startswith("|"):
            block.append(line)
            continue
        close()
        match = HEADING.match(line)
        if match and not fenced:
            heading = match.group(2)
    close()
    return found


def table_with(text: str, *columns: str, under: str | None = None) -> Table:
    """The one table whose header has these columns (and, if given, under a heading containing
    `under`)."""
    matching = [
        t for t in tables(text) if all(c in t.header for c in columns) and (under is None or under in t.heading)
    ]
    assert len(matching) == 1, f"expected one table with columns {columns} under {under!r}, found {len(matching)}"
    return matching[0]


@dataclass(frozen=True)
class Section:
    level: int
    title: str
    body: str  # up to the next heading of the same or a higher level


def sections(text: str) -> list[Section]:
    lines = prose_lines(text)
    starts = []
    for index, (_, line, fenced) in enumerate(lines):
        match = HEADING.match(line)
        if match and not fenced:
            starts.append((index, len(match.group(1)), match.group(2)))
    found = []
    for position, (index, level, title) in enumerate(starts):
        end = next((i for i, lvl, _ in starts[position + 1 :] if lvl <= level), len(lines))
        found.append(Section(level, title, "\n".join(line for _, line, _ in lines[index + 1 : end])))
    return found


def section(text: str, title: str) -> Section:
    matching = [s for s in sections(text) if s.title == title]
    assert len(matching) == 1, f"expected one section titled {title!r}, found {len(matching)}"
    return matching[0]


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", title).lower().replace("`", "")
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a document's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for s in sections(text):
        base = slug(s.title)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    found = []
    for number, line, fenced in prose_lines(text):
        if fenced:
            continue
        without_code = CODE_SPAN.sub("", line)
        found += [(number, target) for target in LINK.findall(without_code)]
    return found
