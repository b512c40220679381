"""rules.preview.simulate and counts, pure: what proposed thresholds would have done to past readings.

Every expected alert below is worked out by hand from rules.md: a value leaves a band only when
strictly outside it; an episode (one alert) lasts until the next reading of the same quantity
that does not breach the rule; within an episode the level only rises; readings before `start`
never alert, but weights before `start` are the weight-gain trend's history; a gain must be
more than the configured kilograms within the window (window start inclusive). The hypothesis
property checks simulate against the runs of breaching readings that `judge` itself defines.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.rules.bands import Band, Level, QuantityBands, judge
from rpm.rules.preview import PastReading, SimulatedAlert, counts, simulate
from rpm.rules.thresholds import EffectiveThresholds, effective_thresholds

PATIENT = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

SPO2, HEART_RATE, WEIGHT = "59408-5", "8867-4", "29463-7"
SYSTOLIC, DIASTOLIC, BP_PANEL = "8480-6", "8462-4", "85354-9"
SPO2_LOW = f"threshold:{SPO2}:low"
WEIGHT_GAIN = "trend:weight-gain"

_ids = itertools.count(1)


def past(code: str, at: datetime, value: float, unit: str) -> PastReading:
    return PastReading(id=uuid.UUID(int=next(_ids)), code=code, effective_at=at, values={code: value}, unit=unit)


def spo2(at: datetime, value: float) -> PastReading:
    return past(SPO2, at, value, "%")


def weight(at: datetime, value: float) -> PastReading:
    return past(WEIGHT, at, value, "kg")


def blood_pressure(at: datetime, systolic: float, diastolic: float) -> PastReading:
    return PastReading(
        id=uuid.UUID(int=next(_ids)),
        code=BP_PANEL,
        effective_at=at,
        values={SYSTOLIC: systolic, DIASTOLIC: diastolic},
        unit="mm[Hg]",
    )


def series(make: Any, values: list[float], first: datetime = START + HOUR, every: timedelta = HOUR) -> list[Any]:
    return [make(first + n * every, value) for n, value in enumerate(values)]


def proposed_spo2(yellow_low: float = 92, red_low: float = 90, conditions: tuple[str, ...] = ()) -> EffectiveThresholds:
    return effective_thresholds(conditions, {SPO2: {"yellow": {"low": yellow_low}, "red": {"low": red_low}}}, None, 1)


def heart_failure(**weight_gain: float) -> EffectiveThresholds:
    return effective_thresholds(["heart-failure"], None, weight_gain or None, 1 if weight_gain else 0)


def summary(alerts: list[SimulatedAlert]) -> list[tuple[str, Level, datetime, int]]:
    return [(a.rule, a.level, a.opened_at, a.occurrences) for a in alerts]


# -- threshold rules ------------------------------------------------------------------------


def test_spo2_series_of_the_brief_makes_one_yellow_and_one_red_alert() -> None:
    # Proposed SpO2 yellow low 92, red low 90:
    #   95 green; 91 < 92 but not < 90: yellow, opens alert 1; 90 is not < 90: still yellow,
    #   alert 1 occurrence 2; 95 green: alert 1's episode ends; 89 < 90: red, opens alert 2.
    readings = series(spo2, [95, 91, 90, 95, 89])
    alerts = simulate(PATIENT, readings, proposed_spo2(), START)
    t = [r.effective_at for r in readings]
    assert summary(alerts) == [(SPO2_LOW, Level.yellow, t[1], 2), (SPO2_LOW, Level.red, t[4], 1)]
    first, second = alerts
    assert (first.value, first.threshold, first.last_reading_at) == (90, {"low": 92}, t[2])
    assert first.observations == [readings[1].id, readings[2].id]
    assert (second.value, second.unit, second.threshold) == (89, "%", {"low": 90})
    assert second.observations == [readings[4].id]
    assert counts(alerts) == {"yellow": 1, "red": 1}


def test_the_same_readings_under_the_general_template_alert_differently() -> None:
    # general SpO2: yellow low 94, red low 92. 95 green; 91 red (opens); 90 red (occ 2);
    # 95 green (ends); 89 red (opens): two red alerts, no yellow.
    readings = series(spo2, [95, 91, 90, 95, 89])
    alerts = simulate(PATIENT, readings, effective_thresholds([]), START)
    assert [(a.level, a.occurrences) for a in alerts] == [(Level.red, 2), (Level.red, 1)]
    assert counts(alerts) == {"yellow": 0, "red": 2}


def test_a_band_edge_itself_is_inside_the_band() -> None:
    # 92 and 90 sit on the edges of yellow low 92 / red low 90: 92 is green, 90 only yellow.
    alerts = simulate(PATIENT, series(spo2, [92, 92.0, 90]), proposed_spo2(), START)
    assert [(a.level, a.occurrences, a.threshold) for a in alerts] == [(Level.yellow, 1, {"low": 92})]


def test_levels_only_rise_within_an_episode() -> None:
    # 91 yellow opens; 89 red raises it (threshold now the red edge); 91 yellow again keeps it red.
    readings = series(spo2, [91, 89, 91])
    [alert] = simulate(PATIENT, readings, proposed_spo2(), START)
    assert (alert.level, alert.occurrences, alert.threshold) == (Level.red, 3, {"low": 90})
    assert (alert.opened_at, alert.last_reading_at, alert.value) == (
        readings[0].effective_at,
        readings[2].effective_at,
        91,
    )
    assert alert.observations == [r.id for r in readings]


def test_another_quantity_does_not_end_an_episode() -> None:
    # A heart rate of 70 between two low SpO2 readings judges nothing about SpO2.
    readings = [spo2(START + HOUR, 91), past(HEART_RATE, START + 2 * HOUR, 70, "/min"), spo2(START + 3 * HOUR, 91)]
    [alert] = simulate(PATIENT, readings, proposed_spo2(), START)
    assert (alert.rule, alert.occurrences) == (SPO2_LOW, 2)


def test_readings_are_judged_in_the_order_they_were_taken() -> None:
    # Given out of order: taken 91 (1 h), 95 (2 h), 91 (3 h): two episodes, not one of two readings.
    readings = [spo2(START + 3 * HOUR, 91), spo2(START + HOUR, 91), spo2(START + 2 * HOUR, 95)]
    alerts = simulate(PATIENT, readings, proposed_spo2(), START)
    assert summary(alerts) == [
        (SPO2_LOW, Level.yellow, START + HOUR, 1),
        (SPO2_LOW, Level.yellow, START + 3 * HOUR, 1),
    ]


def test_readings_before_start_never_alert() -> None:
    # 85 is red, but taken before `start`: it neither alerts nor counts as an occurrence of the
    # episode that the red 85 just after `start` opens.
    readings = [spo2(START - 2 * HOUR, 85), spo2(START - HOUR, 85), spo2(START, 85), spo2(START + HOUR, 85)]
    [alert] = simulate(PATIENT, readings, proposed_spo2(), START)
    assert (alert.opened_at, alert.occurrences) == (START, 2)  # `start` itself is inside
    assert simulate(PATIENT, readings[:2], proposed_spo2(), START) == []


def test_low_and_high_are_separate_rules_of_one_quantity() -> None:
    # Heart rate, general: yellow high 110, red low 41 / high 130. 35 red low opens the low rule;
    # 135 does not breach "low", so that episode ends, and opens the high rule (red).
    readings = series(lambda at, v: past(HEART_RATE, at, v, "/min"), [35, 135, 120])
    alerts = simulate(PATIENT, readings, effective_thresholds([]), START)
    assert [(a.rule, a.level, a.occurrences) for a in alerts] == [
        (f"threshold:{HEART_RATE}:low", Level.red, 1),
        (f"threshold:{HEART_RATE}:high", Level.red, 2),  # 120 > 110: yellow, the level stays red
    ]


def test_blood_pressure_panels_are_judged_per_component() -> None:
    # hypertension: systolic yellow high 159 / red high 179 (and general's low 101 / 91);
    # diastolic yellow high 99 / red high 119.
    #   185/85:  systolic red high opens; diastolic green.
    #   150/125: systolic green ends its episode; diastolic red high opens.
    #   165/125: systolic yellow high opens a new episode; diastolic red again (occ 2).
    #   150/95:  both green: both end.
    readings = series(blood_pressure_pair, [(185, 85), (150, 125), (165, 125), (150, 95)])
    alerts = simulate(PATIENT, readings, effective_thresholds(["hypertension"]), START)
    t = [r.effective_at for r in readings]
    assert summary(alerts) == [
        (f"threshold:{SYSTOLIC}:high", Level.red, t[0], 1),
        (f"threshold:{DIASTOLIC}:high", Level.red, t[1], 2),
        (f"threshold:{SYSTOLIC}:high", Level.yellow, t[2], 1),
    ]
    assert [(a.value, a.unit, a.threshold) for a in alerts] == [
        (185, "mm[Hg]", {"high": 179}),
        (125, "mm[Hg]", {"high": 119}),
        (165, "mm[Hg]", {"high": 159}),
    ]
    # One panel breaching both components opens two alerts at once, each with that panel.
    both = blood_pressure(START + HOUR, 190, 130)
    alerts = simulate(PATIENT, [both], effective_thresholds(["hypertension"]), START)
    assert sorted((a.rule, a.observations[0]) for a in alerts) == [
        (f"threshold:{DIASTOLIC}:high", both.id),
        (f"threshold:{SYSTOLIC}:high", both.id),
    ]
    assert counts(alerts) == {"yellow": 0, "red": 2}


def blood_pressure_pair(at: datetime, pair: tuple[float, float]) -> PastReading:
    return blood_pressure(at, *pair)


# -- the weight-gain trend ------------------------------------------------------------------


def test_weights_before_start_are_the_trends_history() -> None:
    # 80.0 two days before `start`, 82.1 an hour after it: 2.1 kg > 2.0 within 72 h: yellow.
    low, high = weight(START - 48 * HOUR, 80.0), weight(START + HOUR, 82.1)
    [alert] = simulate(PATIENT, [low, high], heart_failure(), START)
    assert (alert.rule, alert.level, alert.opened_at, alert.occurrences) == (
        WEIGHT_GAIN,
        Level.yellow,
        high.effective_at,
        1,
    )
    assert (alert.value, alert.unit, alert.threshold) == (2.1, "kg", {"gain": 2.0, "window_hours": 72})
    assert alert.observations == [low.id, high.id]  # the low point and the reading that gained on it


def test_exactly_the_limit_is_not_a_gain() -> None:
    # 64.4 - 62.4 is 2.000000000000007 in floating point; it is 2.0 kg, not more than 2.0.
    assert simulate(PATIENT, series(weight, [62.4, 64.4]), heart_failure(), START) == []
    assert simulate(PATIENT, series(weight, [80.0, 82.0]), heart_failure(), START) == []
    [alert] = simulate(PATIENT, series(weight, [80.0, 82.01]), heart_failure(), START)
    assert alert.value == 2.01


def test_the_window_start_is_inside_and_a_moment_earlier_is_outside() -> None:
    low = weight(START + HOUR, 80.0)
    at_edge = weight(low.effective_at + 72 * HOUR, 82.5)
    [alert] = simulate(PATIENT, [low, at_edge], heart_failure(), START)
    assert (alert.opened_at, alert.value) == (at_edge.effective_at, 2.5)
    too_late = weight(low.effective_at + 72 * HOUR + timedelta(seconds=1), 82.5)
    assert simulate(PATIENT, [low, too_late], heart_failure(), START) == []


def test_the_gain_is_measured_from_the_lowest_weight_of_the_window() -> None:
    # 81.0, 80.0, 81.5, 82.2: the low point is 80.0, so 82.2 is a 2.2 kg gain (not 1.2 from 81.0).
    readings = series(weight, [81.0, 80.0, 81.5, 82.2], every=12 * HOUR)
    [alert] = simulate(PATIENT, readings, heart_failure(), START)
    assert (alert.value, alert.observations) == (2.2, [readings[1].id, readings[3].id])


def test_a_weight_that_is_no_gain_ends_the_trends_episode() -> None:
    # Every 12 h: 80.0; 82.5 (+2.5, opens); 82.6 (+2.6, occ 2); 81.0 (+1.0: not a gain, ends);
    # 83.5 (+3.5 from 80.0, still within 72 h: opens a second alert).
    readings = series(weight, [80.0, 82.5, 82.6, 81.0, 83.5], every=12 * HOUR)
    alerts = simulate(PATIENT, readings, heart_failure(), START)
    t = [r.effective_at for r in readings]
    assert summary(alerts) == [(WEIGHT_GAIN, Level.yellow, t[1], 2), (WEIGHT_GAIN, Level.yellow, t[4], 1)]
    assert [a.value for a in alerts] == [2.6, 3.5]


def test_proposed_weight_gain_levels_raise_red_within_an_episode() -> None:
    # Proposed yellow 2.0, red 3.0: 82.5 is +2.5 (yellow, opens); 83.5 is +3.5 (red, raises).
    readings = series(weight, [80.0, 82.5, 83.5], every=12 * HOUR)
    [alert] = simulate(PATIENT, readings, heart_failure(yellow=2.0, red=3.0), START)
    assert (alert.level, alert.occurrences, alert.threshold) == (Level.red, 2, {"gain": 3.0, "window_hours": 72})
    assert counts([alert]) == {"yellow": 0, "red": 1}


def test_no_trend_without_the_rule() -> None:
    # No heart failure, no proposed weight-gain levels: weights are never judged.
    assert simulate(PATIENT, series(weight, [70.0, 80.0]), effective_thresholds([]), START) == []


def test_counts_of_no_alerts() -> None:
    assert counts([]) == {"yellow": 0, "red": 0}


# -- property: simulate is the runs of breaching readings that judge defines ----------------

edges = st.none() | st.integers(min_value=85, max_value=100).map(float)
bands = st.builds(Band, low=edges, high=edges)
spo2_values = st.integers(min_value=80, max_value=100).map(float) | st.floats(min_value=80, max_value=100)
heart_rates = st.integers(min_value=30, max_value=150).map(float)
taken = st.lists(st.tuples(st.sampled_from([SPO2, HEART_RATE]), spo2_values, heart_rates), min_size=0, max_size=25)


def breached_rule(code: str, value: float, thresholds: EffectiveThresholds) -> tuple[str, Level] | None:
    judgement = judge(value, thresholds.bands.get(code, QuantityBands()))
    if judgement.level is Level.green:
        return None
    return f"threshold:{code}:{judgement.side}", judgement.level


def expected_episodes(readings: list[PastReading], thresholds: EffectiveThresholds, start: datetime) -> list[tuple]:
    """Maximal runs, per rule, of consecutive readings of the rule's quantity that breach it."""
    episodes: list[tuple[str, Level, datetime, int, list[uuid.UUID]]] = []
    open_runs: dict[str, int] = {}  # rule -> index in episodes
    for reading in sorted(readings, key=lambda r: (r.effective_at, r.id)):
        if reading.effective_at < start:
            continue
        [(code, value)] = reading.values.items()
        breach = breached_rule(code, value, thresholds)
        for rule in [r for r in open_runs if r.startswith(f"threshold:{code}:") and (breach is None or r != breach[0])]:
            del open_runs[rule]
        if breach is None:
            continue
        rule, level = breach
        if rule in open_runs:
            name, worst, opened, occurrences, ids = episodes[open_runs[rule]]
            worst = max(worst, level, key=lambda lv: lv.rank)
            episodes[open_runs[rule]] = (name, worst, opened, occurrences + 1, [*ids, reading.id])
        else:
            open_runs[rule] = len(episodes)
            episodes.append((rule, level, reading.effective_at, 1, [reading.id]))
    return episodes


@settings(max_examples=300, deadline=None)
@given(
    yellow=bands,
    red=bands,
    readings=taken,
    skipped=st.integers(min_value=0, max_value=5),
)
def test_alerts_are_the_runs_of_breaching_readings(yellow, red, readings, skipped):
    thresholds = effective_thresholds([], {SPO2: {"yellow": yellow.as_dict(), "red": red.as_dict()}}, None, 1)
    start = START + skipped * HOUR  # the first `skipped` readings fall before it
    made = [
        past(code, START + n * HOUR, value if code == SPO2 else rate, "%" if code == SPO2 else "/min")
        for n, (code, value, rate) in enumerate(readings)
    ]
    alerts = simulate(PATIENT, made, thresholds, start)

    by_id = {r.id: r for r in made}
    for alert in alerts:
        for observation in alert.observations:
            reading = by_id[observation]
            [(code, value)] = reading.values.items()
            assert reading.effective_at >= start
            # Never an alert for a reading that judge calls green, nor for another rule's breach.
            assert breached_rule(code, value, thresholds) is not None
            assert breached_rule(code, value, thresholds)[0] == alert.rule

    episodes = expected_episodes(made, thresholds, start)
    for rule in {a.rule for a in alerts} | {e[0] for e in episodes}:
        # As many alerts of a rule as maximal runs of readings breaching it.
        assert sum(1 for a in alerts if a.rule == rule) == sum(1 for e in episodes if e[0] == rule)
    assert [(a.rule, a.level, a.opened_at, a.occurrences, a.observations) for a in alerts] == episodes
    assert counts(alerts) == {
        "yellow": sum(1 for a in alerts if a.level is Level.yellow),
        "red": sum(1 for a in alerts if a.level is Level.red),
    }
