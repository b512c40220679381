"""The simulated cohort: valid enrolment payloads, devices and plans that fit the conditions,
coverage of templates, gateways and units, and the same cohort for the same seed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.devices.schemas import AssignmentIn, DeviceCreate
from rpm.patients.identity import parse_identity_number
from rpm.patients.schemas import PatientCreate
from rpm.simulator.cohort import (
    CANONICAL_UNITS,
    VENDOR_CLOUD,
    assignment,
    device_registration,
    enrolment,
    identity_number,
    make_cohort,
)
from rpm.simulator.physiology import episode_kinds

# What each condition needs measured (rules.md's templates and the plan per condition).
NEEDS = {
    "copd": {"spo2", "heart-rate"},
    "heart-failure": {"body-weight", "blood-pressure"},
    "diabetes": {"blood-glucose"},
    "hypertension": {"blood-pressure"},
}


@given(seed=st.integers(0, 10_000), size=st.integers(1, 30))
@settings(max_examples=40, deadline=None)
def test_every_enrolment_payload_is_accepted_by_the_api_schemas(seed: int, size: int) -> None:
    for patient in make_cohort(size, seed):
        body = enrolment(patient, ["974600951", "999888777"], date(2026, 1, 1))
        enrolled = PatientCreate.model_validate(body)  # identifier, birth date, plan, care team
        assert parse_identity_number(enrolled.identifier).birth_date == patient.birth_date
        assert [c.organisation for c in enrolled.care_team] == ["974600951", "999888777"]
        for device in patient.devices:
            DeviceCreate.model_validate(device_registration(device))
        AssignmentIn.model_validate(
            assignment("6f1c1c9e-1111-4a4a-9b9b-123456789abc", datetime(2026, 1, 1, tzinfo=UTC))
        )


def test_assignment_refuses_a_time_without_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        assignment("6f1c1c9e-1111-4a4a-9b9b-123456789abc", datetime(2026, 1, 1))


def test_identity_numbers_follow_both_check_digits() -> None:
    # The example of api.md, rebuilt from its birth date and individual number.
    assert identity_number(date(1972, 9, 13), 480) == "13097248022"
    found = [identity_number(date(1950, 5, 17), n) for n in range(500)]
    assert all(parse_identity_number(n).birth_date == date(1950, 5, 17) for n in found if n)
    assert None in found  # some individual numbers have no valid check digit, and are skipped


@pytest.mark.parametrize("size", [10, 25, 200])
def test_cohort_covers_templates_gateways_and_unit_aliases(size: int) -> None:
    cohort = make_cohort(size, seed=3)
    conditions = Counter(c for p in cohort for c in p.conditions)
    assert set(conditions) == set(NEEDS)
    assert any(len(p.conditions) == 2 for p in cohort)
    gateways = {p.gateway_id for p in cohort}
    assert VENDOR_CLOUD in gateways and any(g.startswith("hub-") for g in gateways)
    assert len({p.identifier for p in cohort}) == size
    assert len({d.serial for p in cohort for d in p.devices}) == sum(len(p.devices) for p in cohort)
    units = {d.unit for p in cohort for d in p.devices}
    if size >= 25:
        assert {"kPa", "[lb_av]", "[degF]", "mg/dL", "1"} <= units
    kinds = {k for p in cohort for k in episode_kinds(p)}
    assert kinds == {"copd-exacerbation", "fluid-retention", "hypoglycaemia", "fever"}


def test_devices_and_plan_fit_each_patients_conditions() -> None:
    for patient in make_cohort(200, seed=11):
        measured = {t for d in patient.devices for t in d.reading_types}
        for condition in patient.conditions:
            assert NEEDS[condition] <= measured, (patient.key, condition)
        planned = dict(patient.plan)
        assert set(planned) == set(dict(patient.schedule)) <= measured
        for device in patient.devices:
            for reading_type in device.reading_types:
                unit = device.unit_for(reading_type)
                assert unit == CANONICAL_UNITS[reading_type] or unit in {
                    "kPa",
                    "bpm",
                    "1",
                    "[degF]",
                    "[lb_av]",
                    "mg/dL",
                }
        # The plan's interval covers the longest gap between habitual measuring times, with room
        # for 45 minutes' lateness either side, inside the missing rule's 2-hour grace.
        for reading_type, hours in patient.schedule:
            ordered = sorted(hours)
            gaps = [b - a for a, b in pairwise(ordered)] + [24 - ordered[-1] + ordered[0]]
            assert max(gaps) + 1.5 <= planned[reading_type] + 2, (patient.key, reading_type, hours)


def test_same_seed_same_cohort_and_a_smaller_cohort_is_its_start() -> None:
    assert make_cohort(30, seed=5) == make_cohort(30, seed=5)
    assert make_cohort(30, seed=5)[:12] == make_cohort(12, seed=5)
    assert make_cohort(30, seed=5) != make_cohort(30, seed=6)
    prefixed = make_cohort(3, seed=5, serial_prefix="X9")
    assert all(d.serial.startswith("X9-") for p in prefixed for d in p.devices)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        make_cohort(-1, seed=1)
