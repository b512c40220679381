"""Every text of the staff page, in Norwegian (bokmål, the default) and English.

Each module of this package holds the texts of one part of the page as two tables, `NB` and
`EN`, with the same keys (a test checks); they are merged here. Templates call `t("key")`.
"""

from __future__ import annotations

import importlib
import pkgutil

DEFAULT_LANGUAGE = "nb"
TEXTS: dict[str, dict[str, str]] = {"nb": {}, "en": {}}

for _module in pkgutil.iter_modules(__path__):
    _part = importlib.import_module(f"{__name__}.{_module.name}")
    for _language, _table in (("nb", _part.NB), ("en", _part.EN)):
        _clash = set(TEXTS[_language]) & set(_table)
        assert not _clash, f"texts defined twice: {sorted(_clash)}"
        TEXTS[_language].update(_table)


def text(language: str, key: str) -> str:
    """The text for `key`; the key itself when it is missing (a test keeps that from happening)."""
    return TEXTS.get(language, TEXTS["nb"]).get(key) or TEXTS["nb"].get(key) or key
