"""Conversion of the units a gateway may send into each type's canonical UCUM unit. Pure."""

from __future__ import annotations

from collections.abc import Callable

# For each canonical unit: the units accepted for it and how to convert their values.
# Identity conversions are listed too, so the table alone says what a gateway may send.
CONVERSIONS: dict[str, dict[str, Callable[[float], float]]] = {
    "mm[Hg]": {"mm[Hg]": lambda v: v, "kPa": lambda v: v * 7.50062},
    "/min": {"/min": lambda v: v, "bpm": lambda v: v},
    "%": {"%": lambda v: v, "1": lambda v: v * 100.0},
    "Cel": {"Cel": lambda v: v, "[degF]": lambda v: (v - 32.0) * 5.0 / 9.0},
    "kg": {"kg": lambda v: v, "g": lambda v: v / 1000.0, "[lb_av]": lambda v: v * 0.45359237},
    "mmol/L": {"mmol/L": lambda v: v, "mg/dL": lambda v: v / 18.016},
    "L/min": {"L/min": lambda v: v},
}

# Converted values keep this many decimals: enough for every quantity here, and it keeps
# 0.95 in unit "1" from becoming 94.99999999999999 %.
DECIMALS = 3


class UnknownUnit(ValueError):
    pass


def accepted_units(canonical: str) -> list[str]:
    return list(CONVERSIONS[canonical])


def to_canonical(value: float, unit: str, canonical: str) -> float:
    """`value` in `unit`, expressed in `canonical`; UnknownUnit if the pair is not accepted."""
    try:
        convert = CONVERSIONS[canonical][unit]
    except KeyError:
        raise UnknownUnit(f"unit {unit!r} is not accepted here; use one of {accepted_units(canonical)}") from None
    if unit == canonical:
        return float(value)
    return round(convert(float(value)), DECIMALS)
