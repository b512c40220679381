"""rpm.patients.plan: adherence to the measurement plan over the last 7 days.

Proves, against hand-computed cases and an independent brute-force model (hypothesis):
received never exceeds expected, and expected never exceeds the intervals of the window;
several readings in one interval count once; readings before enrolment or outside the
window never count; a reading up to 10 minutes ahead of the clock counts for the newest
interval; intervals are half-open, (now - (k+1) x every, now - k x every].
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.patients.plan import WEEK, interval_count, plan_adherence, ratio, window

NOW = datetime(2026, 12, 1, 10, 35, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


# -- interval_count and window -----------------------------------------------------------


@pytest.mark.parametrize(
    ("every_hours", "intervals"),
    [
        (1, 168),
        (6, 28),
        (8, 21),
        (10, 16),  # 160 h: the last 8 h of the week are no whole interval
        (12, 14),
        (24, 7),
        (48, 3),  # 144 h
        (72, 2),
        (84, 2),
        (100, 1),
        (168, 1),
        (169, 1),  # less often than weekly: one interval
        (24 * 31, 1),
    ],
)
def test_interval_count_hand_computed(every_hours: int, intervals: int) -> None:
    assert interval_count(every_hours) == intervals
    assert window(every_hours) == intervals * timedelta(hours=every_hours)


@given(st.integers(min_value=1, max_value=24 * 31))
def test_window_is_whole_intervals_within_a_week_or_one_interval(every_hours: int) -> None:
    interval = timedelta(hours=every_hours)
    count, span = interval_count(every_hours), window(every_hours)
    assert count >= 1
    assert span == count * interval
    if every_hours <= 168:
        # As many whole intervals as fit in a week, and no more.
        assert span <= WEEK < span + interval
    else:
        assert count == 1 and span == interval


# -- ratio ---------------------------------------------------------------------------------


def test_ratio() -> None:
    assert ratio(5, 7) == 0.714
    assert ratio(7, 7) == 1.0
    assert ratio(0, 7) == 0.0
    assert ratio(2, 3) == 0.667
    assert ratio(1, 14) == 0.071
    assert ratio(0, 0) is None  # nothing expected yet, not 0 %


@given(st.integers(min_value=1, max_value=1000), st.data())
def test_ratio_is_between_0_and_1_with_three_decimals(expected: int, data: st.DataObject) -> None:
    received = data.draw(st.integers(min_value=0, max_value=expected))
    value = ratio(received, expected)
    assert value is not None and 0.0 <= value <= 1.0
    assert value == round(value, 3)
    assert abs(value - received / expected) <= 0.0005 + 1e-12  # rounding to three decimals, in floating point


# -- hand-computed cases ---------------------------------------------------------------------


def test_five_of_seven_days_with_two_readings_on_one_day() -> None:
    enrolled = NOW - 10 * DAY
    taken = [ago(2), ago(24 + 2), ago(24 + 7), ago(48 + 2), ago(96 + 2), ago(144 + 2)]
    assert plan_adherence(24, taken, enrolled, NOW) == (5, 7)
    assert ratio(5, 7) == 0.714


def test_enrolled_three_days_ago_expects_three() -> None:
    enrolled = NOW - 3 * DAY - HOUR
    assert plan_adherence(24, [], enrolled, NOW) == (0, 3)
    assert plan_adherence(24, [ago(1), ago(30), ago(50)], enrolled, NOW) == (3, 3)


def test_enrolled_today_expects_nothing() -> None:
    enrolled = NOW - 5 * HOUR
    assert plan_adherence(24, [ago(1)], enrolled, NOW) == (0, 0)
    assert ratio(0, 0) is None


def test_enrolment_in_the_future_expects_nothing() -> None:
    assert plan_adherence(24, [ago(1)], NOW + DAY, NOW) == (0, 0)


def test_every_twelve_hours_expects_fourteen() -> None:
    enrolled = NOW - 10 * DAY
    assert plan_adherence(12, [], enrolled, NOW) == (0, 14)
    # Morning and evening of the last two days, and one in the oldest interval.
    taken = [ago(1), ago(13), ago(25), ago(37), ago(12 * 13 + 6)]
    assert plan_adherence(12, taken, enrolled, NOW) == (5, 14)


def test_every_hour_expects_a_week_of_hours() -> None:
    taken = [ago(h + 0.5) for h in range(0, 168, 2)]  # every other hour
    assert plan_adherence(1, taken, NOW - 30 * DAY, NOW) == (84, 168)


def test_less_often_than_weekly_is_one_interval() -> None:
    enrolled = NOW - 30 * DAY
    assert plan_adherence(240, [], enrolled, NOW) == (0, 1)
    assert plan_adherence(240, [ago(200)], enrolled, NOW) == (1, 1)  # within the last 240 h
    assert plan_adherence(240, [ago(241)], enrolled, NOW) == (0, 1)


def test_three_weighings_on_one_day_do_not_make_up_for_the_rest_of_the_week() -> None:
    taken = [ago(1), ago(2), ago(3)]
    assert plan_adherence(24, taken, NOW - 10 * DAY, NOW) == (1, 7)


def test_readings_before_enrolment_do_not_count() -> None:
    enrolled = NOW - 3 * DAY - HOUR
    # Taken before the patient was enrolled (e.g. a device assigned from earlier).
    before = [enrolled - HOUR, enrolled - 2 * DAY]
    assert plan_adherence(24, before, enrolled, NOW) == (0, 3)
    # After enrolment but in the partial interval before the first expected one: not expected, not counted.
    assert plan_adherence(24, [enrolled + timedelta(minutes=30)], enrolled, NOW) == (0, 3)


def test_readings_older_than_the_window_do_not_count() -> None:
    enrolled = NOW - 60 * DAY
    old = [ago(168), ago(169), ago(24 * 20)]
    assert plan_adherence(24, old, enrolled, NOW) == (0, 7)
    # 10 h plan: the window is 160 h, so a reading 165 h ago is outside it.
    assert plan_adherence(10, [ago(165)], enrolled, NOW) == (0, 16)
    assert plan_adherence(10, [ago(155)], enrolled, NOW) == (1, 16)


def test_interval_edges_are_half_open() -> None:
    enrolled = NOW - 60 * DAY
    # Exactly one interval ago belongs to interval 1, not 0: one reading cannot fill both.
    assert plan_adherence(24, [ago(24)], enrolled, NOW) == (1, 7)
    assert plan_adherence(24, [ago(24), ago(23.99)], enrolled, NOW) == (2, 7)
    # Exactly a week ago is the start of interval 7: outside the window.
    assert plan_adherence(24, [ago(168)], enrolled, NOW) == (0, 7)
    assert plan_adherence(24, [ago(167.99)], enrolled, NOW) == (1, 7)
    # A reading right now is interval 0.
    assert plan_adherence(24, [NOW], enrolled, NOW) == (1, 7)


@pytest.mark.parametrize("ahead", [timedelta(seconds=1), timedelta(minutes=5), timedelta(minutes=10)])
def test_reading_up_to_ten_minutes_ahead_counts_for_the_newest_interval(ahead: timedelta) -> None:
    enrolled = NOW - 60 * DAY
    assert plan_adherence(24, [NOW + ahead], enrolled, NOW) == (1, 7)
    # Together with a reading in interval 0 it is still one interval.
    assert plan_adherence(24, [NOW + ahead, ago(3)], enrolled, NOW) == (1, 7)
    # And it does not fill interval 1.
    assert plan_adherence(24, [NOW + ahead, ago(25)], enrolled, NOW) == (2, 7)


def test_times_in_other_offsets_are_the_same_instants() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    taken = [ago(2).astimezone(oslo), ago(26).astimezone(oslo)]
    assert plan_adherence(24, taken, (NOW - 10 * DAY).astimezone(oslo), NOW) == (2, 7)


# -- properties against a brute-force model ------------------------------------------------


def model(every_hours: int, taken: list[datetime], enrolled_at: datetime, now: datetime) -> tuple[int, int]:
    """Adherence by walking the intervals one by one: interval k is (now - (k+1) I, now - k I],
    interval 0 also takes readings up to 10 minutes ahead; it is expected when it began at or
    after enrolment and lies in the window."""
    interval = timedelta(hours=every_hours)
    expected = 0
    received = 0
    for k in range(interval_count(every_hours)):
        start, end = now - (k + 1) * interval, now - k * interval
        if start < enrolled_at:
            break
        expected += 1
        upper = end + timedelta(minutes=10) if k == 0 else end
        if any(start < at <= upper for at in taken):
            received += 1
    return received, expected


every_hours_st = st.sampled_from([1, 2, 3, 5, 6, 8, 10, 12, 24, 48, 72, 100, 168, 200, 24 * 31])
# Offsets from now in minutes: from 10 minutes ahead to 40 days back.
offsets_st = st.lists(st.integers(min_value=-10, max_value=40 * 24 * 60), max_size=40)
enrolled_st = st.integers(min_value=-24 * 60, max_value=40 * 24 * 60)


@settings(max_examples=300, deadline=None)
@given(every_hours_st, offsets_st, enrolled_st)
def test_matches_the_interval_by_interval_model(every_hours: int, offsets: list[int], enrolled_ago: int) -> None:
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    assert plan_adherence(every_hours, taken, enrolled, NOW) == model(every_hours, taken, enrolled, NOW)


@settings(max_examples=300, deadline=None)
@given(every_hours_st, offsets_st, enrolled_st)
def test_received_never_exceeds_expected(every_hours: int, offsets: list[int], enrolled_ago: int) -> None:
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    received, expected = plan_adherence(every_hours, taken, enrolled, NOW)
    assert 0 <= received <= expected <= interval_count(every_hours)
    since = max(0, (NOW - enrolled) // timedelta(hours=every_hours))
    assert expected == min(interval_count(every_hours), since)
    assert received <= len(set(taken))


@settings(max_examples=200, deadline=None)
@given(every_hours_st, offsets_st, st.data())
def test_duplicates_in_one_interval_count_once(every_hours: int, offsets: list[int], data: st.DataObject) -> None:
    enrolled = NOW - 60 * DAY
    interval = timedelta(hours=every_hours)
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    before = plan_adherence(every_hours, taken, enrolled, NOW)
    # Each reading gets a twin elsewhere in the same interval (or the same instant again).
    twins = []
    for at in taken:
        k = max(0, (NOW - at) // interval)
        start = NOW - (k + 1) * interval
        fraction = data.draw(st.floats(min_value=0.001, max_value=1.0))
        twins.append(start + interval * fraction)
    assert plan_adherence(every_hours, taken + twins + taken, enrolled, NOW) == before


@settings(max_examples=200, deadline=None)
@given(every_hours_st, offsets_st, enrolled_st, st.lists(st.integers(min_value=0, max_value=10**6), max_size=10))
def test_readings_before_enrolment_never_count(
    every_hours: int, offsets: list[int], enrolled_ago: int, earlier: list[int]
) -> None:
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    before_enrolment = [enrolled - timedelta(minutes=1 + m) for m in earlier]
    assert plan_adherence(every_hours, taken + before_enrolment, enrolled, NOW) == plan_adherence(
        every_hours, taken, enrolled, NOW
    )


@settings(max_examples=200, deadline=None)
@given(every_hours_st, offsets_st, enrolled_st, st.lists(st.integers(min_value=0, max_value=10**6), max_size=10))
def test_readings_outside_the_window_never_count(
    every_hours: int, offsets: list[int], enrolled_ago: int, older: list[int]
) -> None:
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    outside = [NOW - window(every_hours) - timedelta(minutes=m) for m in older]
    assert plan_adherence(every_hours, taken + outside, enrolled, NOW) == plan_adherence(
        every_hours, taken, enrolled, NOW
    )


@settings(max_examples=200, deadline=None)
@given(every_hours_st, offsets_st, offsets_st, enrolled_st)
def test_more_readings_never_lower_adherence(
    every_hours: int, offsets: list[int], more: list[int], enrolled_ago: int
) -> None:
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    taken = [NOW - timedelta(minutes=m) for m in offsets]
    extra = [NOW - timedelta(minutes=m) for m in more]
    received, expected = plan_adherence(every_hours, taken, enrolled, NOW)
    received_more, expected_more = plan_adherence(every_hours, taken + extra, enrolled, NOW)
    assert expected_more == expected
    assert received <= received_more <= min(expected, received + len(set(extra)))


@settings(max_examples=100, deadline=None)
@given(every_hours_st, st.integers(min_value=0, max_value=40 * 24 * 60))
def test_a_reading_in_every_interval_is_full_adherence(every_hours: int, enrolled_ago: int) -> None:
    interval = timedelta(hours=every_hours)
    enrolled = NOW - timedelta(minutes=enrolled_ago)
    taken = [NOW - k * interval - interval / 2 for k in range(interval_count(every_hours))]
    received, expected = plan_adherence(every_hours, taken, enrolled, NOW)
    assert received == expected
    assert ratio(received, expected) in (None, 1.0)
