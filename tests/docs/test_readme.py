"""The README: its table of settings names every setting once with the code's default, and its
links and pictures exist."""

from __future__ import annotations

import re
from pathlib import Path

from rpm.config import Settings
from tests.docs.markdown import ROOT, anchors, code_spans, links, tables

README = ROOT / "README.md"


def settings_table() -> list[list[str]]:
    (table,) = [t for t in tables(README.read_text(encoding="utf-8")) if t.header[:2] == ["variable", "default"]]
    return table.rows


def test_every_setting_has_one_row() -> None:
    named = [code_spans(row[0])[0] for row in settings_table()]
    assert sorted(named) == sorted(f"RPM_{name.upper()}" for name in Settings.model_fields)
    assert len(named) == len(set(named))


def test_each_row_gives_the_default_of_the_code() -> None:
    for row in settings_table():
        name = code_spans(row[0])[0].removeprefix("RPM_").lower()
        default = Settings.model_fields[name].default
        literal = code_spans(row[1])[0] if row[1].startswith("`") else None
        if default is None:
            # "unset", "from discovery", or where another setting decides it.
            assert literal is None or literal.startswith("RPM_"), (name, row[1])
            continue
        assert literal is not None, f"RPM_{name.upper()}: the default should be written as code: {row[1]}"
        if isinstance(default, bool):
            assert literal == str(default).lower(), name
        elif isinstance(default, int | float):
            assert float(literal) == float(default), name
        else:
            assert literal == str(default), name
        assert row[2].strip(), f"RPM_{name.upper()} says nothing of what it means"


def test_links_and_pictures_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = [target for _, target in links(text)]
    targets += re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    broken = []
    for target in targets:
        if target.startswith(("http:", "https:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (README.parent / path) if path else README
        if not Path(linked).exists():
            broken.append(target)
        elif anchor and anchor not in anchors(Path(linked).read_text(encoding="utf-8")):
            broken.append(target)
    assert targets and broken == []
