"""Saying what the service's data means, in the caller's language. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Text = Callable[[str], str]
# UCUM codes as people read them; the others ("%", "kg", "/min", "mmol/L") read as they are.
UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "{score}": ""}


def readable_unit(ucum: str | None) -> str:
    """A unit as people read it: "mm[Hg]" is "mmHg", "Cel" is "°C"."""
    return UNITS.get(ucum or "", ucum or "")


def rule(key: str, t: Text) -> str:
    """An alert's rule key in words: "threshold:59408-5:low" is "SpO2 too low"."""
    kind, _, rest = key.partition(":")
    if kind == "threshold":
        code, _, side = rest.partition(":")
        return f"{t('code.' + code)} {t('rule.' + side)}"
    if kind == "trend" and rest == "weight-gain":
        return t("rule.weight_gain")
    if key == "news2":
        return t("rule.news2")
    if kind == "missing":
        return f"{t('rule.missing')}: {t('type.' + rest).lower()}"
    return key


def threshold(crossed: dict[str, Any] | None, unit: str | None, t: Text, num: Callable[..., str]) -> str:
    """The edge crossed: "< 92 %" or "> 2 kg in 72 h"."""
    if not crossed:
        return ""
    shown = readable_unit(unit)
    if "low" in crossed:
        return f"< {num(crossed['low'])} {shown}".strip()
    if "high" in crossed:
        return f"> {num(crossed['high'])} {shown}".strip()
    if "gain" in crossed:
        return f"> {num(crossed['gain'])} kg / {crossed.get('window_hours', 72)} h"
    if "every_hours" in crossed:
        return f"{crossed['every_hours']} h"
    if "total" in crossed:  # a NEWS2 score
        return f"≥ {num(crossed['total'])}"
    if "parameter" in crossed:
        return t("rule.news2_parameter")
    return ""
