"""The simulator's deterioration episodes raise the alerts they are meant to, through the real
ingest worker and rules; and enrolment through the staff API is idempotent and says clearly
when it cannot go on."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from rpm.alerts.models import Alert, AlertObservation
from rpm.norway import OSLO
from rpm.simulator.cohort import make_cohort
from rpm.simulator.physiology import CLINICAL_KINDS, simulate
from rpm.simulator.run import EnrolmentError, backfill, enrol
from tests.simulator.conftest import running_worker
from tests.simulator.test_gateway import fleet_for

pytestmark = pytest.mark.slow

ENROLLED_ON = date(2025, 1, 1)
HISTORY_START = datetime(2025, 3, 3, tzinfo=OSLO)


async def test_every_kind_of_episode_raises_its_alerts(
    settings, live_api, admin_token, organisation, committed, unique
):
    cohort = make_cohort(10, seed=31, serial_prefix=unique)
    ids = await enrol(str(live_api.base_url), admin_token, cohort, [organisation], ENROLLED_ON)
    # A fixed stretch of the past: the same episodes in every run (the rules judge late readings too).
    course = simulate(cohort, HISTORY_START, HISTORY_START + timedelta(days=45), 31, episodes_per_patient_year=12)
    episodes = course.clinical_episodes()
    assert {e.kind for e in episodes} == set(CLINICAL_KINDS)
    fleet = fleet_for(settings, cohort, unique)
    async with running_worker(settings):
        await asyncio.to_thread(fleet.connect)
        result = await asyncio.to_thread(backfill, fleet, course, settle_timeout=60)
        await asyncio.to_thread(fleet.close)
    assert result.complete and fleet.stats().unexpected == []

    async with committed() as session:
        evidence = (
            await session.execute(
                select(Alert.patient_id, Alert.rule, AlertObservation.effective_at)
                .join(AlertObservation, AlertObservation.alert_id == Alert.id)
                .where(Alert.patient_id.in_(list(ids.values())))
            )
        ).all()
    caught: Counter[str] = Counter()
    for episode in episodes:
        patient = ids[episode.patient]
        found = {
            rule
            for rule in episode.expected_rules
            for p, key, at in evidence
            if str(p) == patient and key.startswith(rule) and episode.start <= at <= episode.end
        }
        assert found == set(episode.expected_rules), (episode.patient, episode.kind, found)
        caught[episode.kind] += 1
    print(f"\nepisodes caught through the worker: {dict(caught)} of {dict(Counter(e.kind for e in episodes))}")


async def test_enrolment_is_idempotent(live_api, admin_token, organisation, unique):
    cohort = make_cohort(4, seed=32, serial_prefix=unique)
    enrolled_on = (datetime.now(UTC) - timedelta(days=10)).date()
    first = await enrol(str(live_api.base_url), admin_token, cohort, [organisation], enrolled_on)
    again = await enrol(f"{live_api.base_url}/api/v1/", admin_token, cohort, [organisation], enrolled_on)
    assert first == again and len(set(first.values())) == 4
    patients = (await live_api.get("/api/v1/patients", headers=_bearer(admin_token))).json()["items"]
    assert {p["identifier"] for p in patients} == {p.identifier for p in cohort}
    assert all(p["measurement_plan"] for p in patients)


async def test_enrolment_says_when_another_organisation_has_the_patient(
    settings, live_api, admin_token, organisation, committed, unique
):
    from rpm.access.tokens import mint_dev_token
    from rpm.organisations.models import Organisation

    cohort = make_cohort(2, seed=33, serial_prefix=unique)
    enrolled_on = (datetime.now(UTC) - timedelta(days=10)).date()
    await enrol(str(live_api.base_url), admin_token, cohort, [organisation], enrolled_on)
    other = f"{int(organisation) % 900_000_000 + 100_000_001}"
    async with committed() as session, session.begin():
        session.add(Organisation(orgnr=other, name="Annen kommune", kind="municipality"))
    stranger = mint_dev_token(settings, sub="other-admin", orgnr=other, roles=["admin"])
    with pytest.raises(EnrolmentError, match="not followed by this organisation"):
        await enrol(str(live_api.base_url), stranger, cohort, [other], enrolled_on)


async def test_enrolment_says_when_a_device_serves_another_patient(live_api, admin_token, organisation, unique):
    enrolled_on = (datetime.now(UTC) - timedelta(days=10)).date()
    first, second = make_cohort(1, 34, serial_prefix=unique), make_cohort(1, 35, serial_prefix=unique)
    # Another cohort with the same serials: its patient would take the first one's device.
    assert {d.serial for d in first[0].devices} & {d.serial for d in second[0].devices}
    await enrol(str(live_api.base_url), admin_token, first, [organisation], enrolled_on)
    with pytest.raises(EnrolmentError, match="assigned to another patient"):
        await enrol(str(live_api.base_url), admin_token, second, [organisation], enrolled_on)


async def test_enrolment_reports_a_refusal_of_the_api(live_api, unique):
    with pytest.raises(EnrolmentError, match="401"):
        await enrol(str(live_api.base_url), "not-a-token", make_cohort(1, 36, serial_prefix=unique), ["974600951"],
                    datetime.now(UTC).date())  # fmt: skip


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
