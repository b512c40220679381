"""Texts of service hours and the out-of-hours hand-over: the alert's flag and the worklist row."""

from __future__ import annotations

NB: dict[str, str] = {
    "alert.outside_service_hours": "Utenfor tjenestetid",
    "alert.outside_service_hours_note": "ble rødt da oppfølgingstjenesten var stengt",
    "alert.handed_over_to": "Overført til {partner}",
    "worklist.outside_service_hours": "Utenfor tjenestetid",
    "worklist.handed_over_to": "overført til {partner}",
}

EN: dict[str, str] = {
    "alert.outside_service_hours": "Outside service hours",
    "alert.outside_service_hours_note": "turned red while the follow-up service was closed",
    "alert.handed_over_to": "Handed over to {partner}",
    "worklist.outside_service_hours": "Outside service hours",
    "worklist.handed_over_to": "handed over to {partner}",
}
