"""An independent judge of a simulated timeline by rules.md's templates: which readings the
rules would flag, inside and outside the injected episodes. Written from rules.md and
mqtt.md alone (not from the service's rules code), so it checks the simulator, not itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rpm.simulator.physiology import SimReading, Timeline

# rules.md: (yellow low, yellow high, red low, red high) by LOINC code; None = open side.
GENERAL: dict[str, tuple[float | None, float | None, float | None, float | None]] = {
    "59408-5": (94, None, 92, None),  # SpO2
    "8867-4": (None, 110, 41, 130),  # heart rate
    "8480-6": (101, None, 91, 219),  # systolic
    "8310-5": (None, 39.0, 35.1, None),  # temperature
    "9279-1": (None, 20, 9, 24),  # respiratory rate
}
CONDITION_TEMPLATES: dict[str, dict[str, tuple[float | None, float | None, float | None, float | None]]] = {
    "copd": {"59408-5": (86, None, 84, None)},
    "heart-failure": {},
    "diabetes": {"14743-9": (3.9, 13.9, 3.0, None)},
    "hypertension": {"8480-6": (None, 159, None, 179), "8462-4": (None, 99, None, 119)},
}
WEIGHT_GAIN_KG, WEIGHT_GAIN_WINDOW = 2.0, timedelta(hours=72)

# mqtt.md: the conversions into the canonical unit.
TO_CANONICAL = {
    "kPa": lambda v: v * 7.50062,
    "1": lambda v: v * 100,
    "[degF]": lambda v: (v - 32) * 5 / 9,
    "g": lambda v: v / 1000,
    "[lb_av]": lambda v: v * 0.45359237,
    "mg/dL": lambda v: v / 18.016,
}
CODES = {
    "spo2": "59408-5",
    "heart-rate": "8867-4",
    "body-temperature": "8310-5",
    "respiratory-rate": "9279-1",
    "body-weight": "29463-7",
    "blood-glucose": "14743-9",
}


def bands_for(conditions: tuple[str, ...]) -> dict[str, list[float | None]]:
    """general, then each condition's sides override (rules.md)."""
    bands = {code: list(edges) for code, edges in GENERAL.items()}
    for condition in conditions:
        for code, edges in CONDITION_TEMPLATES[condition].items():
            merged = bands.setdefault(code, [None, None, None, None])
            for i, edge in enumerate(edges):
                if edge is not None:
                    merged[i] = edge
    return bands


def canonical_values(body: dict[str, Any]) -> dict[str, float]:
    """What the backend stores for a contract reading, by LOINC code."""
    convert = TO_CANONICAL.get(body["unit"], lambda v: v)
    if body["type"] == "blood-pressure":
        values = body["values"]
        found = {"8480-6": convert(values["systolic"]), "8462-4": convert(values["diastolic"])}
        if "pulse" in values:
            found["8867-4"] = float(values["pulse"])
        return found
    return {CODES[body["type"]]: convert(body["value"])}


def outside(value: float, edges: list[float | None]) -> bool:
    yellow_low, yellow_high, red_low, red_high = edges
    return any(
        (low is not None and value < low) or (high is not None and value > high)
        for low, high in ((yellow_low, yellow_high), (red_low, red_high))
    )


@dataclass
class Flag:
    patient: str
    rule: str  # "threshold:<code>" or "trend:weight-gain"
    time: datetime
    value: float


@dataclass
class Judgement:
    flags: list[Flag] = field(default_factory=list)
    inside: list[Flag] = field(default_factory=list)  # during a clinical episode of the patient
    outside: list[Flag] = field(default_factory=list)
    caught: int = 0
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # (patient, kind, rule)
    episodes_by_kind: dict[str, int] = field(default_factory=dict)
    caught_by_kind: dict[str, int] = field(default_factory=dict)
    patient_weeks: float = 0.0

    @property
    def outside_per_patient_week(self) -> float:
        return len(self.outside) / self.patient_weeks


def judge(timeline: Timeline, conditions: dict[str, tuple[str, ...]]) -> Judgement:
    result = Judgement()
    weights: dict[str, list[tuple[datetime, float]]] = {}
    for reading in timeline.readings:
        result.flags += _flags(reading, conditions[reading.patient], weights)
    episodes: dict[str, list[Any]] = {}
    for episode in timeline.clinical_episodes():
        episodes.setdefault(episode.patient, []).append(episode)
    for flag in result.flags:
        during = any(e.start <= flag.time <= e.end for e in episodes.get(flag.patient, []))
        (result.inside if during else result.outside).append(flag)
    for episode in timeline.clinical_episodes():
        result.episodes_by_kind[episode.kind] = result.episodes_by_kind.get(episode.kind, 0) + 1
        untripped = [
            rule
            for rule in episode.expected_rules
            if not any(
                f.patient == episode.patient and f.rule.startswith(rule) and episode.covers(f.time)
                for f in result.inside
            )
        ]
        result.missed += [(episode.patient, episode.kind, rule) for rule in untripped]
        if not untripped:
            result.caught += 1
            result.caught_by_kind[episode.kind] = result.caught_by_kind.get(episode.kind, 0) + 1
    result.patient_weeks = len(conditions) * (timeline.end - timeline.start) / timedelta(days=7)
    return result


def _flags(
    reading: SimReading, conditions: tuple[str, ...], weights: dict[str, list[tuple[datetime, float]]]
) -> list[Flag]:
    bands = bands_for(conditions)
    flags = []
    for code, value in canonical_values(reading.to_contract()).items():
        if code in bands and outside(value, bands[code]):
            flags.append(Flag(reading.patient, f"threshold:{code}", reading.time, value))
    if reading.type == "body-weight" and "heart-failure" in conditions:
        value = canonical_values(reading.to_contract())["29463-7"]
        before = [
            w for t, w in weights.get(reading.patient, []) if reading.time - WEIGHT_GAIN_WINDOW <= t < reading.time
        ]
        if before and round(value - min(before), 3) > WEIGHT_GAIN_KG:
            flags.append(Flag(reading.patient, "trend:weight-gain", reading.time, value - min(before)))
        weights.setdefault(reading.patient, []).append((reading.time, value))
    return flags
