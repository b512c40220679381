"""Texts of the self-management plan: its section and page, and the action an alert shows."""

from __future__ import annotations

NB: dict[str, str] = {
    "plan.title": "Egenbehandlingsplan",
    "plan.explain": (
        "Hva som skal gjøres i hver sone, slik det er avtalt med fastlegen. Et varsel viser tiltaket "
        "for sitt nivå slik planen var da varselet nådde nivået; senere endringer endrer ikke åpne varsler."
    ),
    "plan.none": "Pasienten har ingen egenbehandlingsplan. Varsler viser da ikke noe avtalt tiltak.",
    "plan.no_action": "Ikke avtalt",
    "plan.version": "Versjon",
    "plan.changed_at": "Endret",
    "plan.changed_by": "Endret av",
    "plan.reason": "Hvorfor planen endres",
    "plan.history": "Endringshistorikk for planen",
    "plan.no_history": "Planen er ikke endret ennå.",
    "plan.form_help": (
        "Skriv tiltaket for hvert nivå (høyst 500 tegn). Et tomt felt betyr at nivået ikke har noe "
        "avtalt tiltak. Lagring gir en ny versjon."
    ),
    "plan.save": "Lagre ny versjon",
    "plan.saved": "Versjon {version} av planen er lagret.",
    "plan.read_only": "Bare lege eller administrator kan endre planen.",
    "plan.errors_title": "Planen ble ikke lagret:",
    "plan.error.reason": "Skriv en begrunnelse (høyst 2000 tegn).",
    "plan.error.none": "Skriv et tiltak for minst ett nivå.",
    "plan.error.long.green": "Tiltaket for grønn er for langt (høyst 500 tegn).",
    "plan.error.long.yellow": "Tiltaket for gul er for langt (høyst 500 tegn).",
    "plan.error.long.red": "Tiltaket for rød er for langt (høyst 500 tegn).",
    "plan.error.conflict": "Planen ble endret av noen andre i samme øyeblikk. Se gjeldende plan og prøv igjen.",
    "plan.to_thresholds": "Til grenseverdiene",
    "plan.open": "Se eller endre planen",
    "alert.action_title": "Hva skal gjøres",
    "alert.action_agreed": "Avtalt i egenbehandlingsplanen, versjon {version}, da varselet nådde dette nivået.",
    "alert.action_none_for_level": "Egenbehandlingsplanen (versjon {version}) har ikke noe tiltak for dette nivået.",
    "alert.action_no_plan": "Pasienten hadde ingen egenbehandlingsplan da varselet nådde dette nivået.",
    "alert.action_plan_link": "Egenbehandlingsplanen",
    "worklist.action": "Tiltak",
}

EN: dict[str, str] = {
    "plan.title": "Self-management plan",
    "plan.explain": (
        "What to do in each zone, as agreed with the GP. An alert shows the action of its level as "
        "the plan was when the alert reached that level; later changes do not change open alerts."
    ),
    "plan.none": "The patient has no self-management plan. Alerts then show no agreed action.",
    "plan.no_action": "Not agreed",
    "plan.version": "Version",
    "plan.changed_at": "Changed",
    "plan.changed_by": "Changed by",
    "plan.reason": "Why the plan changes",
    "plan.history": "History of the plan",
    "plan.no_history": "The plan has not been changed yet.",
    "plan.form_help": (
        "Write the action for each level (at most 500 characters). An empty field means the level has "
        "no agreed action. Saving makes a new version."
    ),
    "plan.save": "Save a new version",
    "plan.saved": "Version {version} of the plan is saved.",
    "plan.read_only": "Only a physician or an administrator can change the plan.",
    "plan.errors_title": "The plan was not saved:",
    "plan.error.reason": "Write a reason (at most 2000 characters).",
    "plan.error.none": "Write an action for at least one level.",
    "plan.error.long.green": "The green action is too long (at most 500 characters).",
    "plan.error.long.yellow": "The yellow action is too long (at most 500 characters).",
    "plan.error.long.red": "The red action is too long (at most 500 characters).",
    "plan.error.conflict": "Someone else changed the plan at the same moment. See the plan in force and try again.",
    "plan.to_thresholds": "To the thresholds",
    "plan.open": "View or change the plan",
    "alert.action_title": "What to do",
    "alert.action_agreed": "Agreed in the self-management plan, version {version}, when the alert reached this level.",
    "alert.action_none_for_level": "The self-management plan (version {version}) has no action for this level.",
    "alert.action_no_plan": "The patient had no self-management plan when the alert reached this level.",
    "alert.action_plan_link": "The self-management plan",
    "worklist.action": "Action",
}
