"""Threshold templates (rules.md), as data a clinician can read and change.

`general` applies to every patient; the condition templates are applied after it, in
the order of CONDITION_ORDER, each side (low/high) of each band overriding what came
before. Per-patient overrides come last and replace a quantity's bands entirely.
All values are in the quantity's canonical unit; a value must be strictly outside a
band edge to leave the band.
"""

from __future__ import annotations

from rpm.rules.bands import Band, QuantityBands, WeightGain

SPO2 = "59408-5"
HEART_RATE = "8867-4"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
TEMPERATURE = "8310-5"
RESPIRATORY_RATE = "9279-1"
GLUCOSE = "14743-9"
BODY_WEIGHT = "29463-7"

# general: NEWS2 (Royal College of Physicians, 2017): red where a single parameter
# scores 3, yellow where it scores 2.
GENERAL: dict[str, QuantityBands] = {
    SPO2: QuantityBands(yellow=Band(low=94), red=Band(low=92)),
    HEART_RATE: QuantityBands(yellow=Band(high=110), red=Band(low=41, high=130)),
    SYSTOLIC: QuantityBands(yellow=Band(low=101), red=Band(low=91, high=219)),
    TEMPERATURE: QuantityBands(yellow=Band(high=39.0), red=Band(low=35.1)),
    RESPIRATORY_RATE: QuantityBands(yellow=Band(high=20), red=Band(low=9, high=24)),
}

CONDITION_TEMPLATES: dict[str, dict[str, QuantityBands]] = {
    # NEWS2 SpO2 scale 2, target 88-92 %.
    "copd": {SPO2: QuantityBands(yellow=Band(low=86), red=Band(low=84))},
    # Its rule is the weight-gain trend below.
    "heart-failure": {},
    # Hypoglycaemia levels 1 and 2 (ADA); above range level 2 (time-in-range consensus).
    "diabetes": {GLUCOSE: QuantityBands(yellow=Band(low=3.9, high=13.9), red=Band(low=3.0))},
    # Hypertensive crisis at 180/120.
    "hypertension": {
        SYSTOLIC: QuantityBands(yellow=Band(high=159), red=Band(high=179)),
        DIASTOLIC: QuantityBands(yellow=Band(high=99), red=Band(high=119)),
    },
}

# More than 2.0 kg in 3 days: the European Society of Cardiology's advice to patients.
WEIGHT_GAIN_TEMPLATES: dict[str, WeightGain] = {
    "heart-failure": WeightGain(yellow=2.0, red=None, window_hours=72),
}

CONDITION_ORDER: tuple[str, ...] = ("copd", "heart-failure", "diabetes", "hypertension")
