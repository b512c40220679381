"""NEWS2 against the Royal College of Physicians' 2017 chart, written out here as numbers.

The band tables below are typed from the chart (not read from rpm.rules.news2), so they
check the code against the chart: every edge on both sides, for every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpm.rules.bands import Level
from rpm.rules.news2 import (
    MINIMUM_PARAMETERS,
    NEWS2_TOTAL_CODE,
    PARAMETERS,
    SNOMED_CT,
    Consciousness,
    News2Score,
    OxygenSupport,
    Reading,
    Vitals,
    score,
    select_vitals,
    subscore_code,
)

AIR = OxygenSupport.air
OXYGEN = OxygenSupport.oxygen
ALERT = Consciousness.alert
CVPU = Consciousness.new_confusion_or_vpu

RR, SPO2, SBP, HR, TEMP = "9279-1", "59408-5", "8480-6", "8867-4", "8310-5"

# (value, sub-score): each edge of the chart and the value just past it.
RESPIRATORY_RATE = [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)]
SPO2_SCALE_1 = [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SPO2_SCALE_2_BELOW_93 = [(70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)]
SPO2_SCALE_2_ON_OXYGEN = [(93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3)]
SYSTOLIC = [(50, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (280, 3)]
PULSE = [
    (20, 3),
    (40, 3),
    (41, 1),
    (50, 1),
    (51, 0),
    (90, 0),
    (91, 1),
    (110, 1),
    (111, 2),
    (130, 2),
    (131, 3),
    (250, 3),
]
TEMPERATURE = [
    (30.0, 3),
    (35.0, 3),
    (35.1, 1),
    (36.0, 1),
    (36.1, 0),
    (38.0, 0),
    (38.1, 1),
    (39.0, 1),
    (39.1, 2),
    (42.0, 2),
]


def only(**values) -> News2Score:
    return score(Vitals(**values))


@pytest.mark.parametrize(("value", "points"), RESPIRATORY_RATE)
def test_respiration_rate_bands(value, points):
    assert only(respiratory_rate=float(value)).parameters == {"respiratory_rate": points}


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_1)
@pytest.mark.parametrize("oxygen", [None, AIR, OXYGEN])
def test_spo2_scale_1_bands_do_not_depend_on_oxygen(value, points, oxygen):
    assert only(spo2=float(value), oxygen=oxygen).parameters["spo2"] == points


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_2_BELOW_93)
@pytest.mark.parametrize("oxygen", [None, AIR, OXYGEN])
def test_spo2_scale_2_below_93_does_not_depend_on_oxygen(value, points, oxygen):
    assert only(spo2=float(value), oxygen=oxygen, spo2_scale=2).parameters["spo2"] == points


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_2_ON_OXYGEN)
def test_spo2_scale_2_from_93_on_oxygen(value, points):
    result = only(spo2=float(value), oxygen=OXYGEN, spo2_scale=2)
    assert result.parameters == {"spo2": points, "oxygen": 2}


@pytest.mark.parametrize("value", [93, 94, 95, 96, 97, 100])
def test_spo2_scale_2_from_93_on_air_scores_0(value):
    assert only(spo2=float(value), oxygen=AIR, spo2_scale=2).parameters == {"spo2": 0, "oxygen": 0}


@pytest.mark.parametrize("value", [93, 95, 97, 100])
def test_spo2_scale_2_from_93_with_oxygen_unknown_scores_as_on_air_and_says_oxygen_is_missing(value):
    result = only(spo2=float(value), spo2_scale=2)
    assert result.parameters == {"spo2": 0}
    assert "oxygen" in result.missing


def test_the_same_saturation_scores_differently_on_the_two_scales():
    # 90 % on oxygen: scale 1 says 3 (+2), scale 2 (inside the 88-92 target) says 0 (+2).
    assert only(spo2=90.0, oxygen=OXYGEN).parameters == {"spo2": 3, "oxygen": 2}
    assert only(spo2=90.0, oxygen=OXYGEN, spo2_scale=2).parameters == {"spo2": 0, "oxygen": 2}


@pytest.mark.parametrize(("support", "points"), [(AIR, 0), (OXYGEN, 2)])
def test_air_or_oxygen(support, points):
    assert only(oxygen=support).parameters == {"oxygen": points}


@pytest.mark.parametrize(("value", "points"), SYSTOLIC)
def test_systolic_bands(value, points):
    assert only(systolic=float(value)).parameters == {"systolic": points}


@pytest.mark.parametrize(("value", "points"), PULSE)
def test_pulse_bands(value, points):
    assert only(pulse=float(value)).parameters == {"pulse": points}


@pytest.mark.parametrize(("level", "points"), [(ALERT, 0), (CVPU, 3)])
def test_consciousness(level, points):
    assert only(consciousness=level).parameters == {"consciousness": points}


@pytest.mark.parametrize(("value", "points"), TEMPERATURE)
def test_temperature_bands(value, points):
    assert only(temperature=value).parameters == {"temperature": points}


# Between the chart's edges: rounded to the chart's precision, half up, before banding.
@pytest.mark.parametrize(
    ("field", "value", "points"),
    [
        ("pulse", 90.4, 0),
        ("pulse", 90.5, 1),
        ("pulse", 50.4, 1),
        ("pulse", 50.5, 0),
        ("pulse", 130.49, 2),
        ("pulse", 130.5, 3),
        ("respiratory_rate", 20.5, 2),
        ("respiratory_rate", 8.5, 1),
        ("systolic", 219.5, 3),
        ("systolic", 90.5, 2),
        ("spo2", 95.5, 0),
        ("spo2", 91.49, 3),
        ("spo2", 91.5, 2),
        # 38.05 is 38.0499999... as a float; rounded in binary it would be 38.0 and score 0.
        ("temperature", 38.05, 1),
        ("temperature", 38.04, 0),
        ("temperature", 35.05, 1),
        ("temperature", 35.049, 3),
        ("temperature", 36.05, 0),
        ("temperature", 39.05, 2),
        ("temperature", 39.049, 1),
    ],
)
def test_values_between_edges_are_rounded_half_up_to_the_charts_precision(field, value, points):
    assert only(**{field: value}).parameters == {field: points}


@dataclass(frozen=True)
class Example:
    name: str
    vitals: Vitals
    parameters: dict[str, int]
    total: int
    level: Level


EXAMPLES = [
    Example(
        "hand-computed: 7 without any single 3 is red",
        Vitals(24, 95, 105, 115, 38.5, ALERT, AIR),
        {
            "respiratory_rate": 2,
            "spo2": 1,
            "oxygen": 0,
            "systolic": 1,
            "pulse": 2,
            "consciousness": 0,
            "temperature": 1,
        },
        7,
        Level.red,
    ),
    # The vital signs of NHS Wales' emergency-department FHIR guide's "Carol Test" example
    # (SynaneticsLtd/emergency-department-ig). The guide scores 37.5 Cel as 1 and totals 6;
    # the chart puts 37.5 in 36.1-38.0, which scores 0: the total is 5.
    Example(
        "published vitals, scored by the chart",
        Vitals(21, 93, 120, 95, 37.5, ALERT, AIR),
        {
            "respiratory_rate": 2,
            "spo2": 2,
            "oxygen": 0,
            "systolic": 0,
            "pulse": 1,
            "consciousness": 0,
            "temperature": 0,
        },
        5,
        Level.yellow,
    ),
    Example(
        "all normal",
        Vitals(16, 97, 125, 72, 36.8, ALERT, AIR),
        dict.fromkeys(PARAMETERS, 0),
        0,
        Level.green,
    ),
    Example(
        "every parameter at its worst",
        Vitals(30, 85, 80, 140, 34.0, CVPU, OXYGEN),
        {
            "respiratory_rate": 3,
            "spo2": 3,
            "oxygen": 2,
            "systolic": 3,
            "pulse": 3,
            "consciousness": 3,
            "temperature": 3,
        },
        20,
        Level.red,
    ),
    Example(
        "COPD on scale 2, on oxygen, saturating 97 %",
        Vitals(22, 97, 112, 98, 37.2, ALERT, OXYGEN, spo2_scale=2),
        {
            "respiratory_rate": 2,
            "spo2": 3,
            "oxygen": 2,
            "systolic": 0,
            "pulse": 1,
            "consciousness": 0,
            "temperature": 0,
        },
        8,
        Level.red,
    ),
    Example(
        "the same COPD patient on air",
        Vitals(22, 97, 112, 98, 37.2, ALERT, AIR, spo2_scale=2),
        {
            "respiratory_rate": 2,
            "spo2": 0,
            "oxygen": 0,
            "systolic": 0,
            "pulse": 1,
            "consciousness": 0,
            "temperature": 0,
        },
        3,
        Level.green,
    ),
    Example(
        "kscarlett/news2 README's vitals",
        Vitals(22, 93, 98, 112, 38.4, ALERT, AIR),
        {
            "respiratory_rate": 2,
            "spo2": 2,
            "oxygen": 0,
            "systolic": 2,
            "pulse": 2,
            "consciousness": 0,
            "temperature": 1,
        },
        9,
        Level.red,
    ),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_examples(example):
    result = score(example.vitals)
    assert result.parameters == example.parameters
    assert (result.total, result.level) == (example.total, example.level)
    assert result.complete and result.missing == ()


@pytest.mark.parametrize(
    ("vitals", "total", "any_three", "level"),
    [
        (Vitals(respiratory_rate=22, pulse=95, temperature=38.5), 4, False, Level.green),  # 2+1+1
        (Vitals(respiratory_rate=22, pulse=115, temperature=38.5), 5, False, Level.yellow),  # 2+2+1
        (Vitals(respiratory_rate=22, pulse=115, systolic=95), 6, False, Level.yellow),  # 2+2+2
        (Vitals(respiratory_rate=16, pulse=72, consciousness=CVPU), 3, True, Level.yellow),  # a single 3
        (Vitals(respiratory_rate=22, pulse=115, systolic=95, temperature=38.5), 7, False, Level.red),  # 2+2+2+1
        (Vitals(respiratory_rate=26, pulse=135), 6, True, Level.yellow),  # 3+3
        (Vitals(respiratory_rate=26, pulse=135, temperature=38.5), 7, True, Level.red),
    ],
)
def test_levels(vitals, total, any_three, level):
    result = score(vitals)
    assert (result.total, result.any_three, result.level) == (total, any_three, level)


def test_what_was_not_reported_is_left_out_and_listed():
    result = score(Vitals(spo2=95, pulse=115, systolic=105))
    assert result.parameters == {"spo2": 1, "systolic": 1, "pulse": 2}
    assert result.missing == ("respiratory_rate", "oxygen", "consciousness", "temperature")
    assert not result.complete
    assert result.total == 4


def test_nothing_measured_is_green_incomplete_and_insufficient():
    result = score(Vitals())
    assert (result.total, result.level, result.complete, result.sufficient) == (0, Level.green, False, False)
    assert result.missing == PARAMETERS


def test_a_score_is_sufficient_from_the_minimum_number_of_parameters():
    assert MINIMUM_PARAMETERS == 3
    assert not score(Vitals(spo2=95, pulse=80)).sufficient
    assert score(Vitals(spo2=95, pulse=80, consciousness=ALERT)).sufficient


def test_the_code_is_the_uk_snomed_ct_news2_total():
    assert (SNOMED_CT, NEWS2_TOTAL_CODE) == ("http://snomed.info/sct", "1104051000000101")


def test_each_parameter_has_a_subscore_code_and_spo2_one_per_scale():
    codes = {name: subscore_code(name) for name in PARAMETERS}
    assert len(set(codes.values())) == len(PARAMETERS)
    assert codes["spo2"] == "1104311000000102"
    assert subscore_code("spo2", 2) == "1104321000000108"
    assert subscore_code("pulse", 2) == codes["pulse"] == "1104351000000103"


@pytest.mark.parametrize(
    "bad",
    [
        {"pulse": float("nan")},
        {"temperature": float("inf")},
        {"spo2": float("-inf")},
        {"spo2_scale": 3},
        {"spo2_scale": 0},
    ],
)
def test_vitals_refuse_what_cannot_be_scored(bad):
    with pytest.raises(ValueError):
        Vitals(**bad)


# --- properties -------------------------------------------------------------------------

# (field, normal band's low and high edges on the chart, values to draw), per parameter;
# scale 2 is checked on oxygen, where it rises on both sides of its 88-92 target.
NUMERIC = {
    "respiratory_rate": (12, 20, st.floats(0, 80)),
    "spo2": (96, 100, st.floats(50, 100)),
    "systolic": (111, 219, st.floats(40, 300)),
    "pulse": (51, 90, st.floats(20, 300)),
    "temperature": (36.1, 38.0, st.floats(30, 45)),
}


@given(data=st.data(), name=st.sampled_from(sorted(NUMERIC)))
def test_a_score_never_falls_as_a_value_moves_away_from_the_normal_band(data, name):
    low, high, values = NUMERIC[name]
    a, b = sorted((data.draw(values), data.draw(values)))

    def points(value: float) -> int:
        return only(**{name: value}).parameters[name]

    if b <= low:
        assert points(a) >= points(b)
    if a >= high:
        assert points(a) <= points(b)
    if low <= a <= b <= high:
        assert points(a) == points(b) == 0


@given(a=st.floats(50, 100), b=st.floats(50, 100))
def test_scale_2_on_oxygen_never_falls_away_from_the_target(a, b):
    a, b = sorted((a, b))

    def points(value: float) -> int:
        return only(spo2=value, oxygen=OXYGEN, spo2_scale=2).parameters["spo2"]

    if b <= 88:
        assert points(a) >= points(b)
    if a >= 92:
        assert points(a) <= points(b)
    if 88 <= a <= b <= 92:
        assert points(a) == points(b) == 0


full_vitals = st.builds(
    Vitals,
    respiratory_rate=st.floats(0, 80),
    spo2=st.floats(50, 100),
    systolic=st.floats(40, 300),
    pulse=st.floats(20, 300),
    temperature=st.floats(30, 45),
    consciousness=st.sampled_from(Consciousness),
    oxygen=st.sampled_from(OxygenSupport),
    spo2_scale=st.sampled_from([1, 2]),
)


@given(vitals=full_vitals, left_out=st.sets(st.sampled_from(PARAMETERS)))
def test_the_total_is_the_sum_in_range_and_a_partial_score_is_a_lower_bound(vitals, left_out):
    full = score(vitals)
    partial = score(Vitals(**{**vars(vitals), **dict.fromkeys(left_out)}))
    for result in (full, partial):
        assert result.total == sum(result.parameters.values())
        assert 0 <= result.total <= 20
        assert all(points in (0, 1, 2, 3) for points in result.parameters.values())
        assert set(result.parameters) | set(result.missing) == set(PARAMETERS)
        assert not set(result.parameters) & set(result.missing)
        assert result.complete == (not result.missing)
        assert result.any_three == (3 in result.parameters.values())
        expected = (
            Level.red if result.total >= 7 else Level.yellow if result.total >= 5 or result.any_three else Level.green
        )
        assert result.level == expected
    assert full.complete
    assert partial.missing == tuple(p for p in PARAMETERS if p in left_out)
    assert partial.total <= full.total
    assert partial.level.rank <= full.level.rank
    for name, points in partial.parameters.items():
        assert points <= full.parameters[name]


# --- choosing the vital signs of a window -------------------------------------------------

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return AT - timedelta(minutes=minutes)


def test_the_newest_value_of_each_vital_sign_in_the_window_counts():
    older_pulse = Reading(HR, 120.0, ago(50))
    newer_pulse = Reading(HR, 80.0, ago(10))
    spo2 = Reading(SPO2, 95.0, ago(30))
    selection = select_vitals([newer_pulse, spo2, older_pulse], at=AT)
    assert selection.vitals == Vitals(pulse=80.0, spo2=95.0)
    assert selection.used == (spo2, newer_pulse)  # in the chart's order


def test_each_code_the_project_stores_is_read_and_others_are_ignored():
    readings = [
        Reading(RR, 18.0, ago(1)),
        Reading(SPO2, 96.0, ago(2)),
        Reading(SBP, 130.0, ago(3)),
        Reading(HR, 70.0, ago(4)),
        Reading(TEMP, 36.9, ago(5)),
        Reading("8462-4", 80.0, ago(3)),  # diastolic: not on the chart
        Reading("29463-7", 82.0, ago(1)),  # body weight
    ]
    selection = select_vitals(readings, at=AT, consciousness=ALERT, oxygen=AIR)
    assert selection.vitals == Vitals(18.0, 96.0, 130.0, 70.0, 36.9, ALERT, AIR)
    assert selection.used == tuple(readings[:5])
    assert score(selection.vitals).complete


def test_the_fhir_vital_signs_spo2_code_counts_as_spo2():
    selection = select_vitals([Reading("2708-6", 91.0, ago(5)), Reading(SPO2, 97.0, ago(20))], at=AT)
    assert selection.vitals.spo2 == 91.0


def test_the_window_includes_both_ends_and_nothing_outside():
    start = Reading(HR, 100.0, ago(60))
    before = Reading(RR, 30.0, AT - timedelta(hours=1, microseconds=1))
    now = Reading(TEMP, 38.5, AT)
    after = Reading(SPO2, 85.0, AT + timedelta(microseconds=1))
    selection = select_vitals([start, before, now, after], at=AT)
    assert selection.vitals == Vitals(pulse=100.0, temperature=38.5)
    assert selection.used == (start, now)


def test_an_older_reading_outside_the_window_does_not_stand_in_for_a_missing_one():
    selection = select_vitals([Reading(HR, 120.0, ago(61))], at=AT)
    assert selection.vitals == Vitals()
    assert selection.used == ()
    assert score(selection.vitals).missing == PARAMETERS


def test_a_longer_window_reaches_further_back():
    old = Reading(HR, 120.0, ago(90))
    assert select_vitals([old], at=AT, window=timedelta(hours=2)).used == (old,)


def test_of_two_readings_at_the_same_instant_the_higher_scoring_counts_whichever_comes_first():
    normal, high = Reading(HR, 80.0, ago(5)), Reading(HR, 135.0, ago(5))
    assert select_vitals([normal, high], at=AT).used == (high,)
    assert select_vitals([high, normal], at=AT).used == (high,)


def test_of_two_equal_scoring_readings_at_the_same_instant_the_later_given_counts():
    first, second = Reading(HR, 80.0, ago(5)), Reading(HR, 85.0, ago(5))
    assert select_vitals([first, second], at=AT).used == (second,)
    assert select_vitals([second, first], at=AT).used == (first,)


def test_the_scale_and_oxygen_decide_which_spo2_scores_higher_at_the_same_instant():
    # On scale 2 with oxygen, 97 % scores 3 and 90 % scores 0; on scale 1 the other way round.
    a, b = Reading(SPO2, 90.0, ago(5)), Reading(SPO2, 97.0, ago(5))
    assert select_vitals([b, a], at=AT, spo2_scale=2, oxygen=OXYGEN).vitals.spo2 == 97.0
    assert select_vitals([b, a], at=AT).vitals.spo2 == 90.0


def test_the_selection_returns_the_callers_own_rows():
    @dataclass(frozen=True)
    class Row:
        id: int
        code: str
        value: float
        effective_at: datetime

    rows = [Row(1, HR, 72.0, ago(3)), Row(2, SBP, 118.0, ago(3))]
    assert [row.id for row in select_vitals(rows, at=AT).used] == [2, 1]


@pytest.mark.parametrize(
    ("kwargs", "readings"),
    [
        ({"at": datetime(2026, 12, 1, 12, 0)}, []),  # naive
        ({"at": AT, "window": timedelta(0)}, []),
        ({"at": AT, "window": timedelta(minutes=-5)}, []),
        ({"at": AT, "spo2_scale": 3}, []),
        ({"at": AT}, [Reading(HR, float("nan"), ago(1))]),
    ],
)
def test_select_vitals_refuses_what_it_cannot_choose_from(kwargs, readings):
    with pytest.raises(ValueError):
        select_vitals(readings, **kwargs)
