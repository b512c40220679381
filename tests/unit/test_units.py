"""rpm.units: every accepted unit of every canonical unit, as the contract (mqtt.md) lists them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpm.units import CONVERSIONS, DECIMALS, UnknownUnit, accepted_units, to_canonical

# The contract's table, written out independently of rpm.units.CONVERSIONS.
ACCEPTED = {
    "mm[Hg]": {"mm[Hg]", "kPa"},
    "/min": {"/min", "bpm"},
    "%": {"%", "1"},
    "Cel": {"Cel", "[degF]"},
    "kg": {"kg", "g", "[lb_av]"},
    "mmol/L": {"mmol/L", "mg/dL"},
    "L/min": {"L/min"},
}

# (value, unit, canonical, expected): hand-computed from the contract's factors.
KNOWN = [
    (16, "kPa", "mm[Hg]", 120.01),  # 16 x 7.50062 = 120.00992
    (1, "kPa", "mm[Hg]", 7.501),  # 7.50062
    (13.3, "kPa", "mm[Hg]", 99.758),  # 99.758246
    (0, "kPa", "mm[Hg]", 0.0),
    (72, "bpm", "/min", 72.0),
    (72.5, "bpm", "/min", 72.5),
    (0.93, "1", "%", 93.0),
    (0.95, "1", "%", 95.0),  # not 94.99999999999999
    (1, "1", "%", 100.0),
    (0.5, "1", "%", 50.0),
    (98.6, "[degF]", "Cel", 37.0),
    (32, "[degF]", "Cel", 0.0),
    (212, "[degF]", "Cel", 100.0),
    (-40, "[degF]", "Cel", -40.0),
    (100.4, "[degF]", "Cel", 38.0),
    (113, "[degF]", "Cel", 45.0),
    (86, "[degF]", "Cel", 30.0),
    (81400, "g", "kg", 81.4),
    (2000, "g", "kg", 2.0),
    (1, "g", "kg", 0.001),
    (180, "[lb_av]", "kg", 81.647),  # 81.6466266
    (1, "[lb_av]", "kg", 0.454),  # 0.45359237
    (100, "[lb_av]", "kg", 45.359),
    (90, "mg/dL", "mmol/L", 4.996),  # 4.99556...
    (180.16, "mg/dL", "mmol/L", 10.0),
    (18.016, "mg/dL", "mmol/L", 1.0),
    (126, "mg/dL", "mmol/L", 6.994),  # 6.99378...
]

IDENTITY = [(unit, unit) for unit in ACCEPTED]

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


def test_conversion_table_matches_contract():
    assert {canonical: set(units) for canonical, units in CONVERSIONS.items()} == ACCEPTED


@pytest.mark.parametrize("canonical", sorted(ACCEPTED))
def test_accepted_units_lists_the_canonical_unit_and_its_aliases(canonical):
    units = accepted_units(canonical)
    assert set(units) == ACCEPTED[canonical]
    assert canonical in units


@pytest.mark.parametrize(("value", "unit", "canonical", "expected"), KNOWN)
def test_known_conversions(value, unit, canonical, expected):
    result = to_canonical(value, unit, canonical)
    assert isinstance(result, float)
    assert result == expected


@pytest.mark.parametrize(("unit", "canonical"), IDENTITY)
@pytest.mark.parametrize("value", [0, 1, 81.4, 81.456789123, 1e-7, -3.14159265, 123456.987654])
def test_identity_conversion_is_exact(unit, canonical, value):
    result = to_canonical(value, unit, canonical)
    assert isinstance(result, float)
    assert result == float(value)


@pytest.mark.parametrize(("unit", "canonical"), IDENTITY)
@given(value=finite)
def test_identity_conversion_is_exact_for_any_value(unit, canonical, value):
    assert to_canonical(value, unit, canonical) == value


@pytest.mark.parametrize(
    ("unit", "canonical"),
    [
        ("mmHg", "mm[Hg]"),
        ("kpa", "mm[Hg]"),
        ("KPA", "mm[Hg]"),
        ("mm[hg]", "mm[Hg]"),
        ("beats/min", "/min"),
        ("BPM", "/min"),
        ("min-1", "/min"),
        ("percent", "%"),
        ("fraction", "%"),
        ("", "%"),
        ("°C", "Cel"),
        ("C", "Cel"),
        ("cel", "Cel"),
        ("degF", "Cel"),
        ("[degC]", "Cel"),
        ("lb", "kg"),
        ("lbs", "kg"),
        ("[lb_av] ", "kg"),
        ("KG", "kg"),
        ("mg", "kg"),
        ("mg/dl", "mmol/L"),
        ("mmol/l", "mmol/L"),
        ("l/min", "L/min"),
        ("L/s", "L/min"),
        # A unit accepted for another canonical unit is not accepted here.
        ("kg", "/min"),
        ("bpm", "mm[Hg]"),
        ("1", "kg"),
        ("%", "mmol/L"),
        ("/min", "L/min"),
        ("g", "mmol/L"),
    ],
)
def test_unknown_units_raise(unit, canonical):
    with pytest.raises(UnknownUnit):
        to_canonical(1.0, unit, canonical)


def test_unknown_unit_is_a_value_error_naming_the_unit_and_the_alternatives():
    with pytest.raises(ValueError) as info:
        to_canonical(1.0, "lb", "kg")
    assert isinstance(info.value, UnknownUnit)
    message = str(info.value)
    assert "'lb'" in message
    for unit in ("kg", "g", "[lb_av]"):
        assert unit in message


@pytest.mark.parametrize("unit", ["mmHg", "lb", "°C", "kPa"])
def test_accepted_units_raises_for_an_unknown_canonical_unit(unit):
    with pytest.raises(KeyError):
        accepted_units(unit)


# --- properties -------------------------------------------------------------------------------

CONVERTING = sorted(
    (unit, canonical)
    for canonical, units in ACCEPTED.items()
    for unit in units
    if unit != canonical
)
FACTORS = {  # canonical = factor x value (+ offset for [degF]), from the contract
    ("kPa", "mm[Hg]"): 7.50062,
    ("bpm", "/min"): 1.0,
    ("1", "%"): 100.0,
    ("g", "kg"): 0.001,
    ("[lb_av]", "kg"): 0.45359237,
    ("mg/dL", "mmol/L"): 1 / 18.016,
}


@pytest.mark.parametrize(("unit", "canonical"), CONVERTING)
@given(value=finite)
def test_converted_values_keep_three_decimals(unit, canonical, value):
    result = to_canonical(value, unit, canonical)
    assert result == round(result, DECIMALS)


@pytest.mark.parametrize(("unit", "canonical"), sorted(FACTORS))
@given(value=finite)
def test_linear_conversions_match_the_contract_factor(unit, canonical, value):
    expected = value * FACTORS[(unit, canonical)]
    result = to_canonical(value, unit, canonical)
    assert math.isclose(result, expected, rel_tol=1e-12, abs_tol=0.5 * 10**-DECIMALS + 1e-9)


@given(value=finite)
def test_fahrenheit_matches_the_contract_formula(value):
    result = to_canonical(value, "[degF]", "Cel")
    expected = (value - 32) * 5 / 9
    assert math.isclose(result, expected, rel_tol=1e-12, abs_tol=0.5 * 10**-DECIMALS + 1e-9)


@given(celsius=st.floats(min_value=-100, max_value=100, allow_nan=False))
def test_fahrenheit_round_trip(celsius):
    fahrenheit = celsius * 9 / 5 + 32
    assert abs(to_canonical(fahrenheit, "[degF]", "Cel") - celsius) <= 0.0005 + 1e-9


@given(kg=st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_a_weight_in_grams_or_pounds_matches_the_same_weight_in_kg(kg):
    in_kg = to_canonical(kg, "kg", "kg")
    assert abs(to_canonical(kg * 1000, "g", "kg") - in_kg) <= 0.0005 + 1e-9
    assert abs(to_canonical(kg / 0.45359237, "[lb_av]", "kg") - in_kg) <= 0.0005 + 1e-9


@given(mmol=st.floats(min_value=0, max_value=100, allow_nan=False))
def test_glucose_in_mg_per_dl_matches_the_same_value_in_mmol(mmol):
    assert abs(to_canonical(mmol * 18.016, "mg/dL", "mmol/L") - mmol) <= 0.0005 + 1e-9


@given(mmhg=st.floats(min_value=0, max_value=400, allow_nan=False))
def test_pressure_in_kpa_matches_the_same_value_in_mmhg(mmhg):
    assert abs(to_canonical(mmhg / 7.50062, "kPa", "mm[Hg]") - mmhg) <= 0.0005 + 1e-9


@given(percent=st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_fraction_matches_the_same_saturation_in_percent(percent):
    assert abs(to_canonical(percent / 100, "1", "%") - percent) <= 0.0005 + 1e-9


@pytest.mark.parametrize(("unit", "canonical"), CONVERTING + IDENTITY)
@given(a=finite, b=finite)
def test_conversions_are_monotonic(unit, canonical, a, b):
    low, high = min(a, b), max(a, b)
    assert to_canonical(low, unit, canonical) <= to_canonical(high, unit, canonical)


@pytest.mark.parametrize(("unit", "canonical"), CONVERTING + IDENTITY)
@given(value=st.integers(min_value=-10**6, max_value=10**6))
def test_ints_convert_like_floats(unit, canonical, value):
    assert to_canonical(value, unit, canonical) == to_canonical(float(value), unit, canonical)
