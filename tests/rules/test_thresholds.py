"""effective_thresholds: `general`, then the condition templates in a fixed order merging per
side of each band, then per-patient overrides replacing a quantity's bands entirely; and the
as_dict shape of GET /patients/{id}/thresholds. Expected values are rules.md's, written out."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rpm.rules.bands import Band, Level, QuantityBands, WeightGain
from rpm.rules.threshold import interpret as judgements_for
from rpm.rules.thresholds import effective_thresholds

SPO2 = "59408-5"
HEART_RATE = "8867-4"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
TEMPERATURE = "8310-5"
RESPIRATORY_RATE = "9279-1"
GLUCOSE = "14743-9"
BODY_WEIGHT = "29463-7"
PEAK_FLOW = "19935-6"

CONDITIONS = ("copd", "heart-failure", "diabetes", "hypertension")


def template(bands: dict[str, Any], *templates: str) -> dict[str, Any]:
    return {**bands, "source": "template", "templates": list(templates)}


# rules.md, template `general`.
GENERAL = {
    SPO2: template({"yellow": {"low": 94}, "red": {"low": 92}}, "general"),
    HEART_RATE: template({"yellow": {"high": 110}, "red": {"low": 41, "high": 130}}, "general"),
    SYSTOLIC: template({"yellow": {"low": 101}, "red": {"low": 91, "high": 219}}, "general"),
    TEMPERATURE: template({"yellow": {"high": 39.0}, "red": {"low": 35.1}}, "general"),
    RESPIRATORY_RATE: template({"yellow": {"high": 20}, "red": {"low": 9, "high": 24}}, "general"),
}
# rules.md, condition templates: what each changes of `general` (or adds).
CHANGES: dict[str, dict[str, Any]] = {
    "copd": {SPO2: template({"yellow": {"low": 86}, "red": {"low": 84}}, "general", "copd")},
    "heart-failure": {},
    "diabetes": {GLUCOSE: template({"yellow": {"low": 3.9, "high": 13.9}, "red": {"low": 3.0}}, "diabetes")},
    "hypertension": {
        # merged per side: general's lows stay
        SYSTOLIC: template(
            {"yellow": {"low": 101, "high": 159}, "red": {"low": 91, "high": 179}}, "general", "hypertension"
        ),
        DIASTOLIC: template({"yellow": {"high": 99}, "red": {"high": 119}}, "hypertension"),
    },
}
HEART_FAILURE_WEIGHT_GAIN = {"yellow": 2.0, "red": None, "window_hours": 72, "source": "template"}


def expected(conditions: tuple[str, ...]) -> dict[str, Any]:
    result = dict(GENERAL)
    for condition in conditions:
        result |= CHANGES[condition]
    if "heart-failure" in conditions:
        result["weight_gain"] = HEART_FAILURE_WEIGHT_GAIN
    return result


def test_general_only() -> None:
    thresholds = effective_thresholds([])
    assert thresholds.as_dict() == GENERAL
    assert thresholds.bands[SPO2] == QuantityBands(yellow=Band(low=94), red=Band(low=92))
    assert thresholds.sources == {code: ["general"] for code in GENERAL}
    assert thresholds.weight_gain is None
    assert thresholds.weight_gain_source is None
    assert thresholds.version == 0
    assert thresholds.overridden == frozenset()


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_alone(condition: str) -> None:
    assert effective_thresholds([condition]).as_dict() == expected((condition,))


def test_hypertension_keeps_general_systolic_lows() -> None:
    bands = effective_thresholds(["hypertension"]).bands[SYSTOLIC]
    assert bands == QuantityBands(yellow=Band(low=101, high=159), red=Band(low=91, high=179))


def test_all_conditions_together() -> None:
    thresholds = effective_thresholds(["copd", "hypertension", "diabetes", "heart-failure"])
    assert thresholds.as_dict() == {
        SPO2: template({"yellow": {"low": 86}, "red": {"low": 84}}, "general", "copd"),
        HEART_RATE: template({"yellow": {"high": 110}, "red": {"low": 41, "high": 130}}, "general"),
        SYSTOLIC: template(
            {"yellow": {"low": 101, "high": 159}, "red": {"low": 91, "high": 179}}, "general", "hypertension"
        ),
        DIASTOLIC: template({"yellow": {"high": 99}, "red": {"high": 119}}, "hypertension"),
        TEMPERATURE: template({"yellow": {"high": 39.0}, "red": {"low": 35.1}}, "general"),
        RESPIRATORY_RATE: template({"yellow": {"high": 20}, "red": {"low": 9, "high": 24}}, "general"),
        GLUCOSE: template({"yellow": {"low": 3.9, "high": 13.9}, "red": {"low": 3.0}}, "diabetes"),
        "weight_gain": HEART_FAILURE_WEIGHT_GAIN,
    }


@pytest.mark.parametrize(
    "conditions",
    [pytest.param(combo, id="+".join(combo)) for size in (2, 3) for combo in itertools.combinations(CONDITIONS, size)],
)
def test_combinations(conditions: tuple[str, ...]) -> None:
    assert effective_thresholds(conditions).as_dict() == expected(conditions)


@pytest.mark.parametrize(
    "conditions",
    [pytest.param(p, id="+".join(p)) for p in itertools.permutations(CONDITIONS)],
)
def test_order_of_the_patients_conditions_does_not_matter(conditions: tuple[str, ...]) -> None:
    assert effective_thresholds(conditions).as_dict() == expected(CONDITIONS)


def test_a_condition_listed_twice_counts_once() -> None:
    assert effective_thresholds(["copd", "copd", "hypertension"]).as_dict() == expected(("copd", "hypertension"))


def test_api_md_override_example() -> None:
    """PUT /patients/{id}/thresholds in api.md: SpO2 yellow low 88, red low 85, source override."""
    thresholds = effective_thresholds(
        ["copd"], override_bands={SPO2: {"yellow": {"low": 88}, "red": {"low": 85}}}, version=3
    )
    result = thresholds.as_dict()
    assert result[SPO2] == {"yellow": {"low": 88}, "red": {"low": 85}, "source": "override"}
    assert {code: entry for code, entry in result.items() if code != SPO2} == {
        code: entry for code, entry in expected(("copd",)).items() if code != SPO2
    }
    assert thresholds.sources[SPO2] == ["override"]
    assert thresholds.overridden == {SPO2}
    assert thresholds.version == 3


@pytest.mark.parametrize(
    ("conditions", "code", "override", "value", "level"),
    [
        # The override has no red band: neither general's red low 92 nor copd's 84 survive.
        pytest.param(("copd",), SPO2, {"yellow": {"low": 90}}, 80, "yellow", id="spo2-no-red-left"),
        # No yellow band in the override: general's yellow high 110 is gone.
        pytest.param((), HEART_RATE, {"red": {"high": 140}}, 120, "green", id="heart-rate-no-yellow-left"),
        pytest.param((), HEART_RATE, {"red": {"high": 140}}, 35, "green", id="heart-rate-red-low-gone"),
        pytest.param((), HEART_RATE, {"red": {"high": 140}}, 141, "red", id="heart-rate-red-high-140"),
        # Hypertension's systolic is replaced, general's lows too: 95 is green now.
        pytest.param(("hypertension",), SYSTOLIC, {"yellow": {"high": 150}}, 95, "green", id="systolic-lows-gone"),
        pytest.param(("hypertension",), SYSTOLIC, {"yellow": {"high": 150}}, 200, "yellow", id="systolic-no-red"),
        pytest.param(("hypertension",), SYSTOLIC, {"yellow": {"high": 150}}, 151, "yellow", id="systolic-yellow-150"),
        pytest.param(("diabetes",), GLUCOSE, {}, 1.0, "green", id="glucose-empty-override-no-bands"),
    ],
)
def test_override_replaces_a_quantitys_bands_entirely(
    conditions: tuple[str, ...], code: str, override: dict[str, Any], value: float, level: str
) -> None:
    thresholds = effective_thresholds(conditions, override_bands={code: override})
    assert thresholds.as_dict()[code] == {
        "yellow": override.get("yellow", {}),
        "red": override.get("red", {}),
        "source": "override",
    }
    assert judgements_for({code: value}, thresholds)[code].level is Level(level)


def test_override_of_one_code_leaves_the_others_from_templates() -> None:
    conditions = ("copd", "hypertension", "diabetes")
    thresholds = effective_thresholds(
        conditions, override_bands={SYSTOLIC: {"yellow": {"high": 150}, "red": {"high": 170}}}
    )
    result = thresholds.as_dict()
    assert result[SYSTOLIC] == {"yellow": {"high": 150}, "red": {"high": 170}, "source": "override"}
    assert "templates" not in result[SYSTOLIC]
    assert result[DIASTOLIC] == template({"yellow": {"high": 99}, "red": {"high": 119}}, "hypertension")
    assert result[SPO2] == template({"yellow": {"low": 86}, "red": {"low": 84}}, "general", "copd")
    assert result[GLUCOSE]["templates"] == ["diabetes"]
    assert result[HEART_RATE]["templates"] == ["general"]
    assert {code for code, entry in result.items() if entry["source"] == "override"} == {SYSTOLIC}


@pytest.mark.parametrize(
    "code", [pytest.param(GLUCOSE, id="glucose-without-diabetes"), pytest.param(PEAK_FLOW, id="peak-flow")]
)
def test_override_can_add_a_quantity_no_template_has(code: str) -> None:
    thresholds = effective_thresholds([], override_bands={code: {"yellow": {"low": 5}}})
    assert thresholds.as_dict()[code] == {"yellow": {"low": 5}, "red": {}, "source": "override"}
    assert judgements_for({code: 4.9}, thresholds)[code].level is Level.yellow


def test_several_overrides() -> None:
    thresholds = effective_thresholds(
        ["copd"],
        override_bands={SPO2: {"red": {"low": 80}}, TEMPERATURE: {"yellow": {"high": 38.5}}},
    )
    assert thresholds.overridden == {SPO2, TEMPERATURE}
    result = thresholds.as_dict()
    assert result[SPO2] == {"yellow": {}, "red": {"low": 80}, "source": "override"}
    assert result[TEMPERATURE] == {"yellow": {"high": 38.5}, "red": {}, "source": "override"}
    assert result[HEART_RATE]["source"] == "template"


# Weight gain: only heart-failure's template, or an override.
@pytest.mark.parametrize(
    "conditions",
    [
        pytest.param(combo, id="+".join(combo) or "general")
        for size in range(4)
        for combo in itertools.combinations(("copd", "diabetes", "hypertension"), size)
    ],
)
def test_no_weight_gain_without_heart_failure(conditions: tuple[str, ...]) -> None:
    thresholds = effective_thresholds(conditions, override_bands={BODY_WEIGHT: {"yellow": {"high": 120}}})
    assert thresholds.weight_gain is None
    assert thresholds.weight_gain_source is None
    assert "weight_gain" not in thresholds.as_dict()


@pytest.mark.parametrize(
    "conditions",
    [
        pytest.param(("heart-failure",), id="heart-failure"),
        pytest.param(("copd", "heart-failure"), id="copd+heart-failure"),
        pytest.param(CONDITIONS, id="all-four"),
    ],
)
def test_heart_failure_weight_gain(conditions: tuple[str, ...]) -> None:
    thresholds = effective_thresholds(conditions)
    # rules.md: yellow at more than 2.0 kg in 3 days; no red level by default.
    assert thresholds.weight_gain == WeightGain(yellow=2.0, red=None, window_hours=72)
    assert thresholds.weight_gain_source == "template"
    assert thresholds.as_dict()["weight_gain"] == HEART_FAILURE_WEIGHT_GAIN


@pytest.mark.parametrize(
    ("conditions", "override", "rule"),
    [
        pytest.param(
            ("heart-failure",),
            {"yellow": 2.0, "red": 3.0},
            {"yellow": 2.0, "red": 3.0, "window_hours": 72},
            id="heart-failure-adds-red",
        ),
        pytest.param(
            ("heart-failure",),
            {"yellow": 1.5, "red": 2.5, "window_hours": 48},
            {"yellow": 1.5, "red": 2.5, "window_hours": 48},
            id="heart-failure-all-changed",
        ),
        pytest.param(
            (),
            {"yellow": 1.0},
            {"yellow": 1.0, "red": None, "window_hours": 72},
            id="general-override-turns-rule-on",
        ),
        pytest.param(
            ("copd",),
            {"red": 3.0, "window_hours": 24},
            {"yellow": None, "red": 3.0, "window_hours": 24},
            id="copd-red-only",
        ),
    ],
)
def test_weight_gain_override(conditions: tuple[str, ...], override: dict[str, Any], rule: dict[str, Any]) -> None:
    thresholds = effective_thresholds(conditions, override_weight_gain=override)
    assert thresholds.weight_gain == WeightGain(**rule)
    assert thresholds.weight_gain_source == "override"
    assert thresholds.as_dict()["weight_gain"] == {**rule, "source": "override"}
    # A weight-gain override is not a band override.
    assert thresholds.overridden == frozenset()
    assert all(entry["source"] == "template" for code, entry in thresholds.as_dict().items() if code != "weight_gain")


def test_band_override_leaves_weight_gain_from_template() -> None:
    thresholds = effective_thresholds(["heart-failure"], override_bands={SPO2: {"yellow": {"low": 90}}})
    assert thresholds.as_dict()["weight_gain"] == HEART_FAILURE_WEIGHT_GAIN


def test_as_dict_shape() -> None:
    result = effective_thresholds(
        CONDITIONS, override_bands={SPO2: {"yellow": {"low": 88}, "red": {"low": 85}}}
    ).as_dict()
    assert set(result) == {
        SPO2,
        HEART_RATE,
        SYSTOLIC,
        DIASTOLIC,
        TEMPERATURE,
        RESPIRATORY_RATE,
        GLUCOSE,
        "weight_gain",
    }
    for code, entry in result.items():
        if code == "weight_gain":
            assert set(entry) == {"yellow", "red", "window_hours", "source"}
            continue
        assert code.count("-") == 1 and code.replace("-", "").isdigit(), code  # a LOINC code
        if entry["source"] == "override":
            assert set(entry) == {"yellow", "red", "source"}
        else:
            assert entry["source"] == "template"
            assert set(entry) == {"yellow", "red", "source", "templates"}
            assert entry["templates"]
        for level in ("yellow", "red"):
            # Only the sides a band has: no "low": None.
            assert set(entry[level]) <= {"low", "high"}
            assert all(isinstance(v, int | float) for v in entry[level].values())
