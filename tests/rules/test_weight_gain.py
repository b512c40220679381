"""weight_gain_breach: more than the configured kg above the lowest body weight of the
preceding window (default 72 h before the reading's time, window start inclusive); a late
reading that is the low point makes the later readings' gains count."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rpm.alerts.breaches import Breach, Evidence, fold_breaches
from rpm.rules.bands import Level, WeightGain
from rpm.rules.thresholds import effective_thresholds
from rpm.rules.weight_gain import weight_gain_breach

PATIENT = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
HOURS = timedelta(hours=1)
_ids = itertools.count(1)


def weight(value: float, at: datetime) -> Evidence:
    return Evidence(uuid.UUID(int=next(_ids)), value, at)


def heart_failure_rule(**override: Any) -> WeightGain:
    thresholds = effective_thresholds(["heart-failure"], override_weight_gain=override or None)
    assert thresholds.weight_gain is not None
    return thresholds.weight_gain


def breach(
    reading: Evidence,
    neighbours: list[Evidence],
    rule: WeightGain | None = None,
    received_at: datetime | None = None,
    version: int = 1,
) -> Breach | None:
    return weight_gain_breach(
        patient_id=PATIENT,
        reading=reading,
        neighbours=neighbours,
        rule=rule or heart_failure_rule(),
        received_at=received_at or reading.effective_at + timedelta(minutes=5),
        thresholds_version=version,
    )


def test_heart_failure_rule_is_rules_md_default() -> None:
    assert heart_failure_rule() == WeightGain(yellow=2.0, red=None, window_hours=72)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param(80.0, 82.0, id="80.0-to-82.0"),
        pytest.param(81.7, 83.7, id="81.7-to-83.7"),
        pytest.param(95.3, 97.3, id="95.3-to-97.3"),
        # Scales report 0.1 kg; these differences are 2.000000000000007 in binary floating point.
        pytest.param(62.4, 64.4, id="62.4-to-64.4"),
        pytest.param(126.3, 128.3, id="126.3-to-128.3"),
    ],
)
def test_gain_of_exactly_two_kg_is_no_breach(low: float, high: float) -> None:
    result = breach(weight(high, T0), [weight(low, T0 - 24 * HOURS)])
    assert result is None, f"{low} -> {high} kg is a gain of 2.0 kg, not more, yet: {result.level} {result.value}"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param(80.0, 83.0, id="80.0-to-83.0"),
        # 64.4 - 61.4 is 3.000000000000007 in binary floating point.
        pytest.param(61.4, 64.4, id="61.4-to-64.4"),
    ],
)
def test_gain_of_exactly_the_red_limit_is_yellow(low: float, high: float) -> None:
    result = breach(weight(high, T0), [weight(low, T0 - 24 * HOURS)], heart_failure_rule(yellow=2.0, red=3.0))
    assert result is not None
    assert result.level is Level.yellow, f"{low} -> {high} kg is a gain of 3.0 kg, not more than red 3.0"


@pytest.mark.parametrize(
    ("low", "high", "gain"),
    [
        pytest.param(80.0, 82.01, 2.01, id="80.0-to-82.01"),
        pytest.param(80.0, 82.1, 2.1, id="80.0-to-82.1"),
        pytest.param(62.4, 64.5, 2.1, id="62.4-to-64.5"),
    ],
)
def test_gain_just_over_two_kg_is_yellow(low: float, high: float, gain: float) -> None:
    low_point, reading = weight(low, T0 - 24 * HOURS), weight(high, T0)
    result = breach(reading, [low_point], version=4)
    assert result is not None
    assert result.rule == "trend:weight-gain"
    assert result.level is Level.yellow
    assert result.value == pytest.approx(gain)
    assert result.unit == "kg"
    assert result.threshold == {"gain": 2.0, "window_hours": 72}
    assert result.patient_id == PATIENT
    assert result.thresholds_version == 4
    assert result.reading_at == T0
    assert result.evidence == (low_point, reading)


@pytest.mark.parametrize(
    ("before", "counts"),
    [
        pytest.param(timedelta(hours=72), True, id="exactly-72h-before-counts"),
        pytest.param(timedelta(hours=72, seconds=1), False, id="72h-plus-1s-before-does-not"),
        pytest.param(timedelta(hours=71, minutes=59, seconds=59), True, id="72h-minus-1s-before-counts"),
        pytest.param(timedelta(seconds=1), True, id="1s-before-counts"),
    ],
)
def test_window_start_is_inclusive(before: timedelta, counts: bool) -> None:
    low_point = weight(78.0, T0 - before)
    neighbours = [low_point, weight(79.5, T0 - 12 * HOURS)]  # in the window, gain 1.5 from it
    result = breach(weight(81.0, T0), neighbours)
    if counts:
        assert result is not None and result.level is Level.yellow
        assert result.value == pytest.approx(3.0)
        assert result.evidence[0] == low_point
    else:
        assert result is None


def test_window_follows_an_override() -> None:
    rule = heart_failure_rule(yellow=2.0, window_hours=24)
    assert breach(weight(81.0, T0), [weight(78.0, T0 - 30 * HOURS)], rule) is None
    result = breach(weight(81.0, T0), [weight(78.0, T0 - 24 * HOURS)], rule)
    assert result is not None and result.threshold == {"gain": 2.0, "window_hours": 24}


def test_lowest_weight_in_the_window_not_the_first() -> None:
    first = weight(81.0, T0 - 70 * HOURS)
    lowest = weight(79.5, T0 - 40 * HOURS)
    latest = weight(80.5, T0 - 10 * HOURS)
    reading = weight(81.6, T0)
    result = breach(reading, [first, latest, lowest])  # order of the list does not matter
    assert result is not None
    assert result.value == pytest.approx(2.1)
    assert result.evidence == (lowest, reading)


def test_lowest_weight_outside_the_window_is_ignored() -> None:
    neighbours = [weight(70.0, T0 - 73 * HOURS), weight(80.0, T0 - 48 * HOURS)]
    assert breach(weight(81.0, T0), neighbours) is None


def test_a_lower_weight_after_the_reading_is_not_a_gain() -> None:
    assert breach(weight(82.0, T0), [weight(79.0, T0 + HOURS)]) is None


def test_late_low_reading_makes_a_later_gain_count() -> None:
    """The forward direction: a reading that arrives late and is the low point."""
    earlier = weight(80.0, T0 - 60 * HOURS)
    late_low = weight(79.0, T0 - 48 * HOURS)  # measured two days ago, arriving now
    highest_later = weight(81.5, T0 - 24 * HOURS)
    later = weight(81.2, T0)
    result = breach(late_low, [earlier, highest_later, later], received_at=T0 + HOURS)
    assert result is not None
    assert result.level is Level.yellow
    assert result.value == pytest.approx(2.5)
    assert result.evidence == (late_low, highest_later)
    assert result.reading_at == highest_later.effective_at
    assert result.late is True


@pytest.mark.parametrize(
    ("after", "counts"),
    [
        pytest.param(timedelta(hours=72), True, id="exactly-72h-after-counts"),
        pytest.param(timedelta(hours=72, seconds=1), False, id="72h-plus-1s-after-does-not"),
    ],
)
def test_forward_window_end(after: timedelta, counts: bool) -> None:
    late_low = weight(79.0, T0 - 100 * HOURS)
    result = breach(late_low, [weight(82.0, late_low.effective_at + after)], received_at=T0)
    assert (result is not None) is counts


def test_the_worst_of_both_directions() -> None:
    before = weight(78.0, T0 - 24 * HOURS)  # reading gained 2.5 from it
    reading = weight(80.5, T0)
    after = weight(83.6, T0 + 24 * HOURS)  # gained 3.1 from the reading
    rule = heart_failure_rule(yellow=2.0, red=3.0)
    result = breach(reading, [before, after], rule)
    assert result is not None
    assert (result.level, result.evidence) == (Level.red, (reading, after))
    assert result.value == pytest.approx(3.1)


@pytest.mark.parametrize(
    ("gain_to", "level", "limit"),
    [
        pytest.param(82.0, None, None, id="2.0-none"),
        pytest.param(82.5, Level.yellow, 2.0, id="2.5-yellow"),
        pytest.param(83.0, Level.yellow, 2.0, id="3.0-yellow-not-red"),
        pytest.param(83.1, Level.red, 3.0, id="3.1-red"),
        pytest.param(90.0, Level.red, 3.0, id="10.0-red"),
    ],
)
def test_override_with_red(gain_to: float, level: Level | None, limit: float | None) -> None:
    rule = heart_failure_rule(yellow=2.0, red=3.0)
    result = breach(weight(gain_to, T0), [weight(80.0, T0 - 48 * HOURS)], rule)
    if level is None:
        assert result is None
    else:
        assert result is not None
        assert (result.level, result.threshold) == (level, {"gain": limit, "window_hours": 72})


def test_heart_failure_default_has_no_red() -> None:
    result = breach(weight(90.0, T0), [weight(80.0, T0 - 48 * HOURS)])
    assert result is not None and result.level is Level.yellow


def test_red_only_override_ignores_gains_under_red() -> None:
    rule = heart_failure_rule(red=3.0)
    assert breach(weight(82.5, T0), [weight(80.0, T0 - HOURS)], rule) is None
    result = breach(weight(83.5, T0), [weight(80.0, T0 - HOURS)], rule)
    assert result is not None and result.level is Level.red


@pytest.mark.parametrize(
    "neighbours",
    [
        pytest.param([], id="no-neighbours"),
        pytest.param([weight(70.0, T0 - 80 * HOURS), weight(95.0, T0 + 80 * HOURS)], id="only-outside-the-window"),
        pytest.param([weight(70.0, T0)], id="same-time-is-neither-before-nor-after"),
    ],
)
def test_no_neighbours_no_breach(neighbours: list[Evidence]) -> None:
    assert breach(weight(80.0, T0), neighbours) is None


def test_a_loss_is_no_breach() -> None:
    assert breach(weight(76.0, T0), [weight(80.0, T0 - 24 * HOURS)]) is None


@pytest.mark.parametrize(
    ("delay", "late"),
    [
        pytest.param(timedelta(minutes=5), False, id="at-once"),
        pytest.param(timedelta(hours=24), False, id="exactly-24h"),
        pytest.param(timedelta(hours=24, seconds=1), True, id="24h-plus-1s"),
    ],
)
def test_late_flag(delay: timedelta, late: bool) -> None:
    result = breach(weight(82.5, T0), [weight(80.0, T0 - 48 * HOURS)], received_at=T0 + delay)
    assert result is not None
    assert result.late is late


def test_fold_breaches_gives_one_group_per_patient_and_rule_as_the_alert_sees_them():
    patient, other = uuid.UUID(int=1), uuid.UUID(int=2)
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

    def breach(who, rule, level, minutes, value, late=False):
        evidence = (Evidence(uuid.uuid4(), value, start + timedelta(minutes=minutes)),)
        return Breach(
            who,
            rule,
            level,
            value,
            "%",
            {"low": 84 if level is Level.red else 86},
            start + timedelta(minutes=minutes),
            late,
            0,
            evidence,
        )

    groups = fold_breaches(
        [
            breach(patient, "threshold:59408-5:low", Level.yellow, 30, 85),
            breach(patient, "threshold:59408-5:low", Level.red, 10, 83, late=True),
            breach(patient, "threshold:59408-5:low", Level.yellow, 20, 85.5),
            breach(other, "threshold:59408-5:low", Level.yellow, 5, 85),
        ]
    )
    assert [(g.patient_id, g.occurrences) for g in groups] == [(patient, 3), (other, 1)]
    mine = groups[0]
    assert (mine.level, mine.threshold) == (Level.red, {"low": 84})  # the worst level wins
    assert (mine.value, mine.reading_at) == (85, start + timedelta(minutes=30))  # the newest reading
    assert mine.late is True  # the earliest breach is the one that opens the alert
    assert len(mine.evidence) == 3
