"""Texts of marking a reading entered in error (on the alert page, beside its readings)."""

from __future__ import annotations

NB: dict[str, str] = {
    "invalidation.column": "Feilmåling",
    "invalidation.mark": "Merk som feilmåling",
    "invalidation.reason": "Hvorfor er målingen feil?",
    "invalidation.reason_hint": (
        "For eksempel: pasienten glemte mansjetten, et barn sto på vekta. Målingen tas ut av "
        "kurver og regler, men blir stående i historikken."
    ),
    "invalidation.submit": "Merk som feilmåling",
    "invalidation.marked": "Feilmåling",
    "invalidation.reason_required": "Skriv hvorfor målingen er feil.",
    "invalidation.reason_too_long": "Begrunnelsen er for lang (høyst 500 tegn).",
    "invalidation.form_invalid": "Målingen ble ikke merket: se begrunnelsen.",
    "invalidation.done": "Målingen er merket som feilmåling.",
    "invalidation.done_resolved": (
        "Målingen er merket som feilmåling, og varselet er løst: ingen gyldig måling sto igjen."
    ),
    "invalidation.already": "Målingen er allerede merket som feilmåling, kanskje av en kollega.",
    "invalidation.by_system": "Systemet (målingen var feil)",
}

EN: dict[str, str] = {
    "invalidation.column": "Entered in error",
    "invalidation.mark": "Mark as entered in error",
    "invalidation.reason": "Why is the reading wrong?",
    "invalidation.reason_hint": (
        "For example: the patient forgot the cuff, a child stood on the scale. The reading leaves "
        "the charts and the rules, but stays in the history."
    ),
    "invalidation.submit": "Mark as entered in error",
    "invalidation.marked": "Entered in error",
    "invalidation.reason_required": "Write why the reading is wrong.",
    "invalidation.reason_too_long": "The reason is too long (at most 500 characters).",
    "invalidation.form_invalid": "The reading was not marked: see the reason.",
    "invalidation.done": "The reading is marked as entered in error.",
    "invalidation.done_resolved": (
        "The reading is marked as entered in error, and the alert is resolved: no valid reading was left."
    ),
    "invalidation.already": "The reading is already marked as entered in error, perhaps by a colleague.",
    "invalidation.by_system": "The system (the reading was wrong)",
}
