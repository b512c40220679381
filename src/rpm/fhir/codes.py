"""The reading types of the gateway contract (mqtt.md) and the codes they become in FHIR.

One table: a new reading type is one entry here plus its unit conversions in `rpm.units`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
READING_IDENTIFIER_SYSTEM = "urn:rpm:reading"


@dataclass(frozen=True)
class Quantity:
    """One measured quantity: a single-valued type, or one component of a panel."""

    code: str
    display: str
    unit: str  # canonical UCUM unit
    plausible: tuple[float, float]  # inclusive, in the canonical unit


@dataclass(frozen=True)
class ReadingType:
    name: str
    code: str
    display: str
    unit: str
    vital_signs: bool
    # For a single-valued type: the quantity itself. For a panel: its components by payload key.
    components: dict[str, Quantity]
    extra_codings: tuple[tuple[str, str], ...] = ()

    @property
    def is_panel(self) -> bool:
        return len(self.components) > 1


def _single(
    name: str,
    code: str,
    display: str,
    unit: str,
    plausible: tuple[float, float],
    *,
    vital_signs: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
) -> ReadingType:
    return ReadingType(
        name=name,
        code=code,
        display=display,
        unit=unit,
        vital_signs=vital_signs,
        components={"value": Quantity(code, display, unit, plausible)},
        extra_codings=extra,
    )


HEART_RATE = _single("heart-rate", "8867-4", "Heart rate", "/min", (20, 300))
SYSTOLIC = Quantity("8480-6", "Systolic blood pressure", "mm[Hg]", (40, 300))
DIASTOLIC = Quantity("8462-4", "Diastolic blood pressure", "mm[Hg]", (20, 200))

READING_TYPES: dict[str, ReadingType] = {
    t.name: t
    for t in (
        ReadingType(
            name="blood-pressure",
            code="85354-9",
            display="Blood pressure panel with all children optional",
            unit="mm[Hg]",
            vital_signs=True,
            components={"systolic": SYSTOLIC, "diastolic": DIASTOLIC},
        ),
        HEART_RATE,
        # The FHIR R4 vital-signs profile codes oxygen saturation 2708-6; 59408-5 is the
        # pulse-oximetry code the contract and the rules use.
        _single(
            "spo2",
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            "%",
            (50, 100),
            extra=(("2708-6", "Oxygen saturation in Arterial blood"),),
        ),
        _single("respiratory-rate", "9279-1", "Respiratory rate", "/min", (3, 80)),
        _single("body-temperature", "8310-5", "Body temperature", "Cel", (30, 45)),
        _single("body-weight", "29463-7", "Body weight", "kg", (2, 400)),
        _single(
            "blood-glucose",
            "14743-9",
            "Glucose [Moles/volume] in Capillary blood by Glucometer",
            "mmol/L",
            (0.5, 50),
            vital_signs=False,
        ),
        _single(
            "peak-flow",
            "19935-6",
            "Maximum expiratory gas flow Respiratory system airway by Peak flow meter",
            "L/min",
            (30, 1000),
            vital_signs=False,
        ),
    )
}

# The optional pulse of a blood-pressure reading becomes its own heart-rate Observation.
BLOOD_PRESSURE_PULSE_KEY = "pulse"

CODES_BY_LOINC: dict[str, Quantity] = {q.code: q for t in READING_TYPES.values() for q in t.components.values()}
# A reading type is one LOINC code (a blood pressure's pulse is stored as a heart rate).
READING_TYPE_OF_CODE: dict[str, str] = {t.code: name for name, t in READING_TYPES.items()}


# The same names as a type, for query parameters that take a reading type.
ReadingTypeName = Literal[
    "blood-pressure",
    "heart-rate",
    "spo2",
    "respiratory-rate",
    "body-temperature",
    "body-weight",
    "blood-glucose",
    "peak-flow",
]
assert set(get_args(ReadingTypeName)) == set(READING_TYPES), "ReadingTypeName must list READING_TYPES"


def known_reading_type(value: str) -> str:
    """Validator for payload fields naming a reading type."""
    if value not in READING_TYPES:
        raise ValueError(f"unknown reading type; one of {sorted(READING_TYPES)}")
    return value
