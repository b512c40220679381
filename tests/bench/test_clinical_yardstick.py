"""The clinical yardstick, bench/clinical.py: on a small cohort through the real worker and rules
it meets the targets (CI runs it), and its judge of episodes and false alerts says "not met" when
an alert comes late, never comes, or there are too many outside episodes.

Seed 1 with 24 patients over the 30 days before 2026-11-01 gives every clinical kind of episode:
copd-exacerbation 4, fluid-retention 3, hypoglycaemia 3, fever 1 (and 20 missed days, 4 gateway
offline windows); every condition has patients (copd 6, heart-failure 7, diabetes 7, hypertension 10)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rpm.norway import OSLO
from rpm.simulator.cohort import CONDITIONS, make_cohort
from rpm.simulator.physiology import (
    CLINICAL_KINDS,
    EXPECTED_RULES,
    FLUID_RETENTION,
    HYPOGLYCAEMIA,
    MISSED_DAY,
    Episode,
    Timeline,
)
from tests.fixtures.servers import postgres_server

PROJECT = Path(__file__).resolve().parents[2]
YARDSTICK = PROJECT / "bench" / "clinical.py"
SEED = 1


def load_yardstick() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_clinical", YARDSTICK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_clinical"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


clinical = load_yardstick()


def _run_yardstick(figures_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(YARDSTICK), "--patients", "24", "--days", "30", "--seed", str(SEED),
         "--json", str(figures_file)],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_a_small_cohort_meets_the_targets(tmp_path: Path, broker: tuple[str, int]) -> None:
    figures_file = tmp_path / "figures.json"
    host, port = broker
    with postgres_server() as maintenance:
        env = os.environ | {"BENCH_POSTGRES_URL": maintenance, "BENCH_MQTT_URL": f"mqtt://{host}:{port}"}
        done = _run_yardstick(figures_file, env)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    figures = json.loads(figures_file.read_text())
    counts = figures["run"]["episode_counts"]
    print(f"\nseed {SEED}, 24 patients, 30 days: episodes {counts}")
    assert all(counts[kind] >= 1 for kind in CLINICAL_KINDS), counts
    assert figures["targets"]["met"] is True
    total = figures["total"]
    assert total["episodes"] == sum(counts[kind] for kind in CLINICAL_KINDS)
    assert total["caught_within_one"] == total["episodes"]
    assert total["false_alerts_per_patient_week"] < 0.5
    assert set(figures["conditions"]) == set(CONDITIONS)
    assert all(row["patients"] > 0 and row["met"] for row in figures["conditions"].values())
    assert {kind for kind, row in figures["kinds"].items() if row["episodes"]} == set(CLINICAL_KINDS)
    assert figures["run"]["unexpected_answers"] == 0 and figures["run"]["exits"] == {"worker": 0, "API": 0}
    assert figures["missing"]["missed_days_caught"] == figures["missing"]["missed_days"] > 0
    for condition in CONDITIONS:
        assert condition in done.stdout
    assert "Baseline, same run" in done.stdout and "Assumption: Nurse" in done.stdout


def test_bad_arguments_are_refused_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        clinical.parse_args(["--patients", "0"])
    assert refused.value.code == 2
    assert "--patients: at least 1" in capsys.readouterr().err


# -- the judge, on readings and alerts made up here ----------------------------------------------

START = datetime(2026, 10, 1, tzinfo=OSLO)
PATIENT = "patient-1"


def hypoglycaemia() -> Episode:
    return Episode("p-0001", HYPOGLYCAEMIA, START, START + timedelta(days=1), EXPECTED_RULES[HYPOGLYCAEMIA])


def glucose(hours: float, interpretation: str, number: int) -> Any:
    return clinical.Stored(f"o{number}", "14743-9", START + timedelta(hours=hours), 3.0, interpretation)


def stored(readings: list[Any], alerts: list[Any]) -> Any:
    by_patient: dict[str, list[Any]] = {PATIENT: list(alerts)} if alerts else {}
    return clinical.Database({PATIENT: readings}, by_patient, clinical.weight_gains(readings), len(readings))


def alert(rule: str, *moments: datetime) -> Any:
    found = clinical.StoredAlert("a1", PATIENT, rule, moments[0])
    found.alerting = list(moments)
    return found


def test_an_alert_on_the_first_out_of_band_reading_is_within_one() -> None:
    readings = [glucose(1, "N", 1), glucose(3, "L", 2), glucose(5, "LL", 3)]
    result = clinical.judge_episode(
        hypoglycaemia(), PATIENT, stored(readings, [alert("threshold:14743-9:low", readings[1].at)])
    )
    assert result.caught and result.within_one
    assert (result.readings_to_first_out_of_band, result.readings_to_first_alert) == (2, 2)


def test_an_alert_two_readings_late_is_caught_but_not_within_one() -> None:
    readings = [glucose(1, "L", 1), glucose(3, "L", 2), glucose(5, "L", 3)]
    result = clinical.judge_episode(
        hypoglycaemia(), PATIENT, stored(readings, [alert("threshold:14743-9:low", readings[2].at)])
    )
    assert result.caught and not result.within_one
    assert (result.readings_to_first_out_of_band, result.readings_to_first_alert) == (1, 3)


def test_an_alert_of_another_rule_or_outside_the_episode_does_not_catch_it() -> None:
    readings = [glucose(1, "L", 1)]
    others = [
        alert("threshold:59408-5:low", readings[0].at),
        alert("threshold:14743-9:low", START + timedelta(days=2)),
    ]
    result = clinical.judge_episode(hypoglycaemia(), PATIENT, stored(readings, others))
    assert not result.caught and not result.within_one and result.readings_to_first_alert is None


def test_weight_gain_is_judged_against_the_lowest_weight_of_the_72_hours_before() -> None:
    def weight(hours: float, kg: float) -> Any:
        return clinical.Stored(f"w{hours}", clinical.WEIGHT, START + timedelta(hours=hours), kg, "N")

    readings = [weight(0, 70.0), weight(24, 71.0), weight(48, 72.0), weight(73, 72.1), weight(96, 73.1)]
    gains = clinical.weight_gains(readings)
    assert gains == {"w24": 1.0, "w48": 2.0, "w73": 1.1, "w96": 2.1}
    episode = Episode("p-0001", FLUID_RETENTION, START, START + timedelta(days=5), EXPECTED_RULES[FLUID_RETENTION])
    result = clinical.judge_episode(episode, PATIENT, stored(readings, [alert("trend:weight-gain", readings[4].at)]))
    assert result.readings_to_first_out_of_band == 5 and result.within_one  # 2.0 kg is not more than 2.0


def test_too_many_false_alerts_or_a_missed_episode_is_not_met() -> None:
    caught = clinical.EpisodeResult("p-0001", HYPOGLYCAEMIA, "", "", [], True, [], 1, 1, True)
    missed = clinical.EpisodeResult("p-0001", HYPOGLYCAEMIA, "", "", [], False, [], None, 1, False)
    assert clinical.Figures.of([caught], patients=10, weeks_outside=10.0, false_alerts=4).met
    noisy = clinical.Figures.of([caught], patients=10, weeks_outside=10.0, false_alerts=5)
    assert not noisy.met and not noisy.false_alerts_below_target and noisy.every_episode_caught_within_one
    late = clinical.Figures.of([caught, missed], patients=10, weeks_outside=10.0, false_alerts=0)
    assert not late.met and late.caught == 1 and late.caught_within_one == 1


def test_missed_days_are_caught_by_the_alert_that_stays_open_over_a_run_of_them() -> None:
    patient = make_cohort(1, seed=1)[0]
    day = timedelta(days=1)

    def missed(first: datetime) -> Episode:
        return Episode(patient.key, MISSED_DAY, first, first + day, EXPECTED_RULES[MISSED_DAY])

    run = [missed(START + 2 * day), missed(START + 3 * day), missed(START + 4 * day)]
    unseen = missed(START + 10 * day)
    timeline = Timeline(START, START + 20 * day, readings=[], episodes=[*run, unseen])

    def missing(at: datetime) -> Any:
        return clinical.StoredAlert(f"m{at:%d}", PATIENT, "missing:spo2", at)

    alerts = [missing(START + 3 * day), missing(START + 15 * day)]  # the run's first midnight; a stray one
    figures = clinical.measure_missing([patient], {patient.key: PATIENT}, timeline, stored([], alerts), 2.0)
    assert figures["missed_days"] == 4 and figures["missed_days_caught"] == 3
    assert figures["alerts_outside_missed_days_and_offline"] == 1 and figures["outside_per_patient_week"] == 0.5
