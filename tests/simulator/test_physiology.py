"""The simulated course of a cohort, judged without broker or database: the contract of every
reading, clinical realism (few alerts on good days, every episode crossing its bands),
daily rhythm, missed days, offline hubs, faults, and the same timeline for the same seed."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.norway import OSLO
from rpm.simulator.cohort import make_cohort
from rpm.simulator.gateway import MAX_PAYLOAD_BYTES, batches, resend_delay
from rpm.simulator.physiology import (
    CLINICAL_KINDS,
    GATEWAY_OFFLINE,
    MISSED_DAY,
    ONSET_AT_START,
    Timeline,
    simulate,
)
from tests.simulator import contract
from tests.simulator.clinical import judge

START = datetime(2026, 1, 5, tzinfo=OSLO)  # a winter: the clocks change at the end of March
ROOT = "rpm/v1"


def timeline(size: int, seed: int, days: int = 90, **options: object) -> tuple[list, Timeline]:
    cohort = make_cohort(size, seed)
    return cohort, simulate(cohort, START, START + timedelta(days=days), seed, **options)  # type: ignore[arg-type]


def test_clinical_realism_of_200_patients_over_90_days() -> None:
    """Outside episodes fewer than 0.5 threshold or trend flags per patient-week by rules.md's
    templates; inside, every episode crosses every band it is expected to."""
    cohort, course = timeline(200, seed=20260105, days=90)
    verdict = judge(course, {p.key: p.conditions for p in cohort})
    episodes = sum(verdict.episodes_by_kind.values())
    print(
        f"\n200 patients x 90 days: {len(course.readings)} readings, {episodes} clinical episodes; "
        f"caught {verdict.caught}/{episodes}; flags outside episodes {len(verdict.outside)} = "
        f"{verdict.outside_per_patient_week:.3f} per patient-week (target < 0.5); inside {len(verdict.inside)}"
    )
    for kind in CLINICAL_KINDS:
        print(f"  {kind}: {verdict.caught_by_kind.get(kind, 0)}/{verdict.episodes_by_kind.get(kind, 0)} caught")
    print("  outside episodes by rule:", dict(Counter(f.rule for f in verdict.outside)))
    assert set(verdict.episodes_by_kind) == set(CLINICAL_KINDS)
    assert verdict.missed == []
    assert verdict.caught == episodes
    assert verdict.outside_per_patient_week < 0.5


@given(seed=st.integers(0, 100_000), size=st.integers(4, 12), rate=st.sampled_from([4.0, 12.0]))
@settings(max_examples=25, deadline=None)
def test_every_episode_crosses_its_bands_whatever_the_seed(seed: int, size: int, rate: float) -> None:
    cohort, course = timeline(size, seed, days=60, episodes_per_patient_year=rate)
    verdict = judge(course, {p.key: p.conditions for p in cohort})
    assert verdict.missed == []
    for episode in course.episodes:
        assert course.start <= episode.start < episode.end <= course.end
    assert [r.time for r in course.readings] == sorted(r.time for r in course.readings)
    ids = Counter((r.gateway_id, r.id) for r in course.readings)
    assert max(ids.values()) == 1


def test_the_same_seed_gives_the_same_timeline() -> None:
    def fingerprint(course: Timeline) -> tuple:
        return (
            [json.dumps(r.to_contract(), sort_keys=True) for r in course.readings],
            course.episodes,
            [f.payload() for f in course.faults],
        )

    _, first = timeline(15, seed=7, days=30)
    _, again = timeline(15, seed=7, days=30)
    _, other = timeline(15, seed=8, days=30)
    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(other)


def test_every_reading_in_its_batches_keeps_the_contract() -> None:
    _, course = timeline(40, seed=3, days=30)
    by_gateway: dict[str, list] = defaultdict(list)
    for reading in course.readings:
        by_gateway[reading.gateway_id].append(reading.to_contract())
    now = course.end
    for gateway_id, bodies in by_gateway.items():
        for payload, _ in batches(bodies, "2026-02-04T08:00:00+01:00"):
            assert contract.problems(f"{ROOT}/gateways/{gateway_id}/measurements", payload, ROOT, now) == []
    units = {r.unit for r in course.readings}
    assert {"kPa", "[lb_av]", "[degF]", "mg/dL", "1", "bpm", "%", "kg"} <= units
    assert all(r.time.utcoffset() == r.time.astimezone(OSLO).utcoffset() for r in course.readings)


def test_daily_rhythm_missed_days_and_offline_hubs() -> None:
    cohort, course = timeline(60, seed=9, days=90)
    by_patient = {p.key: p for p in cohort}
    # On a good day nobody measures at night (a patient woken by a hypo, say, may).
    good_days = [r.time.astimezone(OSLO) for r in course.readings if r.episode is None]
    assert all(5.5 <= t.hour + t.minute / 60 <= 23.5 for t in good_days)
    for reading in course.readings[:2000]:  # at the habitual hour, give or take 45 minutes
        habitual = by_patient[reading.patient].hours_for(reading.type)
        local = reading.time.astimezone(OSLO)
        if reading.episode is None:
            offsets = [abs(local.hour + local.minute / 60 - h) for h in habitual]
            assert min(offsets) <= 0.8 or reading.type in ("spo2", "blood-pressure"), reading  # or a repeat
    missed = [e for e in course.episodes if e.kind == MISSED_DAY]
    assert missed, "some patients miss a day"
    for day in missed:
        assert not [r for r in course.readings if r.patient == day.patient and day.start <= r.time < day.end]
        assert day.expected_rules == ("missing:",)
    offline = [e for e in course.episodes if e.kind == GATEWAY_OFFLINE]
    assert offline and all(e.gateway_id == f"hub-{e.patient}" for e in offline)
    assert all(timedelta(hours=18) <= e.end - e.start <= timedelta(hours=30) for e in offline)
    # A morning blood pressure is higher than an evening one (the daily rhythm).
    systolic = defaultdict(list)
    for reading in course.readings:
        if reading.type == "blood-pressure" and reading.episode is None:
            systolic[reading.time.astimezone(OSLO).hour < 12].append(reading.values["systolic"])  # type: ignore[index]
    assert sum(systolic[True]) / len(systolic[True]) > sum(systolic[False]) / len(systolic[False])


def test_an_episode_at_the_start_shows_within_the_first_hour() -> None:
    cohort = make_cohort(12, seed=4)
    keys = [p.key for p in cohort if p.conditions != ("hypertension",)][:6]
    course = simulate(cohort, START, START + timedelta(days=20), 4, episode_at_start=keys)
    # Judged after a quiet week, as a live run follows its history (the weight-gain rule looks back).
    history = simulate(cohort, START - timedelta(days=7), START, 4, episodes_per_patient_year=0, faults=False)
    both = Timeline(history.start, course.end, history.readings + course.readings, course.episodes)
    verdict = judge(both, {p.key: p.conditions for p in cohort})
    for key in keys:
        first = next(e for e in course.clinical_episodes() if e.patient == key)
        assert first.start == START and first.height_from == START + ONSET_AT_START
        soon = [f for f in verdict.inside if f.patient == key and f.time <= START + timedelta(hours=1)]
        assert {rule for rule in first.expected_rules if any(f.rule.startswith(rule) for f in soon)} == set(
            first.expected_rules
        ), (key, first.kind)


def test_faults_break_the_contract_exactly_as_their_reason_says() -> None:
    _, course = timeline(60, seed=12, days=90)
    kinds = Counter(f.kind for f in course.faults)
    assert set(kinds) == {
        "duplicate", "bad_json", "unknown_type", "implausible_value", "time_without_offset", "bad_unit", "schema",
        "unknown_device",
    }  # fmt: skip
    readings = {(r.gateway_id, r.id): r for r in course.readings}
    topic = f"{ROOT}/gateways/x/measurements"
    expected_problem = {
        "bad_json": "not UTF-8 JSON",
        "unknown_type": "not a contract type",
        "implausible_value": "outside",
        "time_without_offset": "RFC 3339 with an offset",
        "bad_unit": "is not accepted",
        "schema": "required number",
    }
    for fault in course.faults:
        found = contract.problems(topic, fault.payload(), ROOT, course.end)
        if fault.kind in ("duplicate", "unknown_device"):  # well-formed: only the backend can tell
            assert found == []
        else:
            assert len(found) == 1 and expected_problem[fault.kind] in found[0], (fault.kind, found)
        if fault.kind == "duplicate":
            assert fault.original is not None and fault.time > fault.original.time
            assert readings[(fault.gateway_id, fault.reading_id)].to_contract() == fault.reading
        elif fault.kind == "bad_json":
            assert fault.reading_id is None
        else:
            assert json.loads(fault.payload())["readings"][0]["id"] == fault.reading_id
    stamped = next(f for f in course.faults if f.kind == "time_without_offset")
    live = datetime(2026, 6, 1, 12, 0, tzinfo=OSLO)
    assert json.loads(stamped.payload(live))["readings"][0]["time"] == "2026-06-01T12:00:00"


def test_simulate_refuses_times_without_zone_or_in_the_wrong_order() -> None:
    cohort = make_cohort(2, seed=1)
    for start, end in ((START.replace(tzinfo=None), START + timedelta(days=1)), (START, START)):
        try:
            simulate(cohort, start, end, 1)
        except ValueError as error:
            assert "start" in str(error) or "end" in str(error)
        else:
            raise AssertionError("accepted")


@given(
    sizes=st.lists(st.integers(10, 4000), min_size=1, max_size=2500),
    max_readings=st.integers(1, 1000),
)
@settings(max_examples=40, deadline=None)
def test_batches_keep_order_and_both_limits(sizes: list[int], max_readings: int) -> None:
    bodies = [{"id": f"r-{n}", "pad": "x" * size} for n, size in enumerate(sizes)]
    seen = []
    for payload, members in batches(bodies, "2026-01-01T00:00:00+01:00", max_readings=max_readings):
        document = json.loads(payload)
        assert len(payload) <= MAX_PAYLOAD_BYTES
        assert 1 <= len(document["readings"]) <= max_readings
        assert document["readings"] == members
        seen += members
    assert seen == bodies


def test_a_reading_too_large_for_any_message_is_refused() -> None:
    try:
        list(batches([{"id": "big", "pad": "x" * MAX_PAYLOAD_BYTES}], "2026-01-01T00:00:00+01:00"))
    except ValueError as error:
        assert "big" in str(error)
    else:
        raise AssertionError("accepted")


def test_resend_waits_double_up_to_fifteen_minutes() -> None:
    assert [resend_delay(n) for n in range(1, 7)] == [60, 120, 240, 480, 900, 900]
    assert [resend_delay(n, first=0.5, longest=3) for n in range(1, 5)] == [0.5, 1, 2, 3]
