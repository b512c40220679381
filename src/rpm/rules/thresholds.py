"""A patient's effective thresholds: templates for their conditions, then their overrides. Pure."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rpm.rules.bands import Band, QuantityBands, WeightGain
from rpm.rules.templates import CONDITION_ORDER, CONDITION_TEMPLATES, GENERAL, WEIGHT_GAIN_TEMPLATES


@dataclass(frozen=True)
class EffectiveThresholds:
    bands: dict[str, QuantityBands]
    sources: dict[str, list[str]]  # code -> templates it came from, or ["override"]
    weight_gain: WeightGain | None
    weight_gain_source: str | None
    version: int = 0  # of the patient's overrides; 0 = templates only
    overridden: frozenset[str] = field(default_factory=frozenset)
    # The start period: until `start_period_ends_at`, readings are judged by `start_period`
    # (the red edges alone) instead; `in_start_period` marks those thresholds.
    start_period_ends_at: datetime | None = None
    start_period: EffectiveThresholds | None = field(default=None, compare=False, repr=False)
    in_start_period: bool = False
    yellow: dict[str, Band] = field(init=False)  # what each Observation's referenceRange shows

    def __post_init__(self) -> None:
        # Computed once per patient and batch, not once per reading.
        object.__setattr__(self, "yellow", {code: bands.yellow for code, bands in self.bands.items()})

    def at(self, moment: datetime) -> EffectiveThresholds:
        """The thresholds a reading taken at `moment` is judged by."""
        if self.start_period is not None and self.start_period_ends_at is not None:
            if moment < self.start_period_ends_at:
                return self.start_period
        return self

    def as_dict(self) -> dict[str, Any]:
        """The shape of GET /patients/{id}/thresholds (api.md)."""
        result: dict[str, Any] = {}
        for code, bands in sorted(self.bands.items()):
            entry: dict[str, Any] = bands.as_dict()
            if code in self.overridden:
                entry["source"] = "override"
            else:
                entry["source"] = "template"
                entry["templates"] = self.sources[code]
            result[code] = entry
        if self.weight_gain is not None:
            result["weight_gain"] = {**self.weight_gain.as_dict(), "source": self.weight_gain_source}
        return result


def start_period_thresholds(thresholds: EffectiveThresholds) -> EffectiveThresholds:
    """What a reading in the start period is judged by: the red edges in force alone (the
    templates', or a physician's override), with no yellow band and no weight-gain trend, so
    only what is dangerous for anyone alerts while the patient's own normal values are learnt."""
    red_only = {code: QuantityBands(yellow=bands.red, red=bands.red) for code, bands in thresholds.bands.items()}
    return EffectiveThresholds(
        red_only, thresholds.sources, None, None, thresholds.version, thresholds.overridden, in_start_period=True
    )


def with_start_period(thresholds: EffectiveThresholds, ends_at: datetime | None) -> EffectiveThresholds:
    """The patient's thresholds, knowing when their start period ends (None: no start period)."""
    if ends_at is None:
        return thresholds
    return replace(thresholds, start_period_ends_at=ends_at, start_period=start_period_thresholds(thresholds))


def bands_from_dict(data: Mapping[str, Any]) -> QuantityBands:
    return QuantityBands(yellow=Band.from_dict(data.get("yellow")), red=Band.from_dict(data.get("red")))


def effective_thresholds(
    conditions: Iterable[str],
    override_bands: Mapping[str, Mapping[str, Any]] | None = None,
    override_weight_gain: Mapping[str, Any] | None = None,
    version: int = 0,
) -> EffectiveThresholds:
    if not override_bands and override_weight_gain is None:
        return _from_templates(frozenset(conditions), version)
    return _effective(frozenset(conditions), override_bands, override_weight_gain, version)


@functools.lru_cache(maxsize=256)
def _from_templates(conditions: frozenset[str], version: int) -> EffectiveThresholds:
    """Most patients have no override: their thresholds depend on their conditions alone, so
    they are built once per set of conditions, not once per patient and batch. The result is
    shared and never mutated."""
    return _effective(conditions, None, None, version)


def _effective(
    conditions: frozenset[str],
    override_bands: Mapping[str, Mapping[str, Any]] | None,
    override_weight_gain: Mapping[str, Any] | None,
    version: int,
) -> EffectiveThresholds:
    bands: dict[str, QuantityBands] = dict(GENERAL)
    sources: dict[str, list[str]] = {code: ["general"] for code in GENERAL}
    weight_gain: WeightGain | None = None
    weight_gain_source: str | None = None
    for condition in CONDITION_ORDER:
        if condition not in conditions:
            continue
        for code, template in CONDITION_TEMPLATES[condition].items():
            bands[code] = bands[code].merged_with(template) if code in bands else template
            sources.setdefault(code, []).append(condition)
        if condition in WEIGHT_GAIN_TEMPLATES:
            weight_gain, weight_gain_source = WEIGHT_GAIN_TEMPLATES[condition], "template"
    overridden = set()
    for code, data in (override_bands or {}).items():
        bands[code] = bands_from_dict(data)
        sources[code] = ["override"]
        overridden.add(code)
    if override_weight_gain is not None:
        weight_gain = WeightGain(
            yellow=override_weight_gain.get("yellow"),
            red=override_weight_gain.get("red"),
            window_hours=int(override_weight_gain.get("window_hours", 72)),
        )
        weight_gain_source = "override"
    return EffectiveThresholds(bands, sources, weight_gain, weight_gain_source, version, frozenset(overridden))


def changed_overrides(
    bands: Mapping[str, Any] | None,
    weight_gain: Mapping[str, Any] | None,
    band_changes: Mapping[str, Mapping[str, Any] | None],
    weight_gain_change: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A patient's overrides after a change: each code in `band_changes` replaces that code's
    bands (None removes the override), a weight-gain change replaces the rule's levels."""
    merged: dict[str, Any] = dict(bands or {})
    for code, proposed in band_changes.items():
        if proposed is None:
            merged.pop(code, None)
        else:
            merged[code] = dict(proposed)
    kept = weight_gain_change if weight_gain_change is not None else weight_gain
    return merged, dict(kept) if kept is not None else None


WEIGHT_GAIN_KEY = "weight_gain"


def override_changes(
    before_bands: Mapping[str, Any] | None,
    before_weight_gain: Mapping[str, Any] | None,
    after_bands: Mapping[str, Any] | None,
    after_weight_gain: Mapping[str, Any] | None,
) -> list[tuple[str, Any, Any]]:
    """What one version of a patient's overrides changed from the one before: (LOINC code, or
    "weight_gain"; before; after) for each that differs, codes in order, None where there was
    (or is) no override and the templates apply."""
    before, after = dict(before_bands or {}), dict(after_bands or {})
    changes: list[tuple[str, Any, Any]] = [
        (code, before.get(code), after.get(code))
        for code in sorted(set(before) | set(after))
        if before.get(code) != after.get(code)
    ]
    if (before_weight_gain or None) != (after_weight_gain or None):
        changes.append((WEIGHT_GAIN_KEY, before_weight_gain, after_weight_gain))
    return changes
