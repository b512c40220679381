"""Texts of the thresholds page: bands in force and their source, the form, preview, history."""

from __future__ import annotations

NB: dict[str, str] = {
    "thresholds.title": "Grenseverdier",
    "thresholds.back": "Tilbake til forløpet",
    "thresholds.explain": (
        "En måling utenfor gul grense gir gult varsel, utenfor rød grense rødt varsel. "
        "Malene kommer fra diagnosene; individuelle grenser erstatter malen for den målingen."
    ),
    "thresholds.in_force": "Gjeldende grenser",
    "thresholds.form_help": (
        "Endre grensene og forhåndsvis hvilke tidligere målinger som ville gitt varsel. "
        "Tomt felt betyr ingen grense. Bare målinger du endrer, får individuelle grenser."
    ),
    "thresholds.read_only": "Bare lege eller administrator kan endre grensene.",
    "thresholds.low": "nedre",
    "thresholds.high": "øvre",
    "thresholds.source": "Kilde",
    "thresholds.source.template": "Mal",
    "thresholds.source.override": "Individuell",
    "thresholds.template.general": "Generell (NEWS2)",
    "thresholds.template.copd": "KOLS",
    "thresholds.template.heart-failure": "Hjertesvikt",
    "thresholds.template.diabetes": "Diabetes",
    "thresholds.template.hypertension": "Høyt blodtrykk",
    "thresholds.template_was": "Malen",
    "thresholds.no_bands": "Ingen grenser",
    "thresholds.use_template": "Tilbake til mal",
    "thresholds.use_template_short": "Bruk malen",
    "thresholds.weight_gain": "Vektøkning",
    "thresholds.weight_gain_help": "økning fra laveste vekt de siste {hours} timene",
    "thresholds.more_than": "mer enn",
    "thresholds.days": "Forhåndsvis over siste",
    "thresholds.preview": "Forhåndsvis",
    "thresholds.reason": "Begrunnelse",
    "thresholds.reason_needed": "må fylles ut for å lagre",
    "thresholds.save": "Lagre nye grenser",
    "thresholds.working": "Beregner …",
    "thresholds.saved": "Grensene er lagret som versjon {version}. De gjelder for målinger som kommer fra nå.",
    "thresholds.errors_title": "Endringen kan ikke brukes ennå:",
    "thresholds.error.number": "ikke et tall",
    "thresholds.error.low_above_high": "nedre grense er over øvre",
    "thresholds.error.red_low_inside": "rød nedre grense kan ikke være over gul nedre grense",
    "thresholds.error.red_high_inside": "rød øvre grense kan ikke være under gul øvre grense",
    "thresholds.error.positive": "må være større enn 0",
    "thresholds.error.reason_required": "Skriv en begrunnelse for endringen.",
    "thresholds.error.reason_long": "Begrunnelsen er for lang (høyst 2000 tegn).",
    "thresholds.error.no_change": "Ingen grenser er endret.",
    "thresholds.preview_title": "Forhåndsvisning",
    "thresholds.readings_title": "Målinger siste {days} dager med gjeldende grenser",
    "thresholds.preview_hint": (
        "Forhåndsvis for å se hvilke tidligere målinger som ville gitt varsel med de nye grensene."
    ),
    "thresholds.with_proposed": "Med de nye grensene",
    "thresholds.with_current": "Med gjeldende grenser",
    "thresholds.judged": "{readings} målinger fra de siste {days} dagene vurdert",
    "thresholds.nothing_stored": "Ingenting er lagret.",
    "thresholds.preview_alerts": "Varsler de nye grensene ville gitt",
    "thresholds.first_reading": "Første måling",
    "thresholds.occurrences": "Målinger",
    "thresholds.last_value": "Siste verdi",
    "thresholds.more_alerts": "… og {n} til.",
    "thresholds.history": "Versjonshistorikk",
    "thresholds.version": "Versjon",
    "thresholds.changed_at": "Tidspunkt",
    "thresholds.changed_by": "Endret av",
    "thresholds.what_changed": "Endring",
    "thresholds.no_difference": "Ingen forskjell fra forrige versjon",
    "thresholds.no_history": "Ingen individuelle grenser er satt; malene gjelder.",
    "thresholds.template_applies": "malen",
    "thresholds.no_limit": "ingen",
    "proposal.start_period": (
        "Oppstartsperiode til {date}: målinger varsler bare ved røde grenser mens pasientens egne "
        "normalverdier læres."
    ),
    "proposal.title": "Forslag fra pasientens egne målinger",
    "proposal.explain": (
        "Gul grense er 5. og 95. persentil av målingene i oppstartsperioden, utvidet med en margin, "
        "aldri videre enn rød grense. Ingenting endres før en lege godtar forslaget."
    ),
    "proposal.period": "Oppstartsperiode",
    "proposal.quantity": "Måling",
    "proposal.in_force": "Gjeldende",
    "proposal.proposed": "Foreslått",
    "proposal.basis": "Grunnlag",
    "proposal.basis_text": "{readings} målinger, 5.–95. persentil {p5}–{p95}, margin {margin}",
    "proposal.nothing": "For få målinger i oppstartsperioden til å foreslå grenser.",
    "proposal.status.proposed": "Venter på beslutning",
    "proposal.status.accepted": "Godtatt",
    "proposal.status.edited": "Godtatt med endringer",
    "proposal.status.rejected": "Avvist",
    "proposal.decided": "{status} av {by}, {at}: «{reason}»",
    "proposal.preview": "Forhåndsvis forslaget i skjemaet",
    "proposal.preview_help": (
        "Forslaget fylles inn i skjemaet under med varslene det ville gitt; endre det der og lagre for å "
        "godta det med endringer."
    ),
    "proposal.reason": "Begrunnelse for beslutningen",
    "proposal.accept": "Godta forslaget",
    "proposal.reject": "Avvis forslaget",
    "proposal.from_proposal": (
        "Skjemaet viser forslaget fra oppstartsperioden: lagring godtar det (med endringene dine)."
    ),
    "proposal.error.reason_required": "Skriv en begrunnelse for beslutningen.",
}

EN: dict[str, str] = {
    "thresholds.title": "Thresholds",
    "thresholds.back": "Back to the course",
    "thresholds.explain": (
        "A reading outside the yellow limit raises a yellow alert, outside the red limit a red one. "
        "The templates come from the conditions; the patient's own limits replace the template for that reading."
    ),
    "thresholds.in_force": "Thresholds in force",
    "thresholds.form_help": (
        "Change the limits and preview which past readings would have alerted. "
        "An empty field means no limit. Only the readings you change get the patient's own limits."
    ),
    "thresholds.read_only": "Only a physician or an administrator can change the thresholds.",
    "thresholds.low": "low",
    "thresholds.high": "high",
    "thresholds.source": "Source",
    "thresholds.source.template": "Template",
    "thresholds.source.override": "Patient's own",
    "thresholds.template.general": "General (NEWS2)",
    "thresholds.template.copd": "COPD",
    "thresholds.template.heart-failure": "Heart failure",
    "thresholds.template.diabetes": "Diabetes",
    "thresholds.template.hypertension": "Hypertension",
    "thresholds.template_was": "Template",
    "thresholds.no_bands": "No limits",
    "thresholds.use_template": "Back to template",
    "thresholds.use_template_short": "Use the template",
    "thresholds.weight_gain": "Weight gain",
    "thresholds.weight_gain_help": "gain from the lowest weight of the last {hours} hours",
    "thresholds.more_than": "more than",
    "thresholds.days": "Preview over the last",
    "thresholds.preview": "Preview",
    "thresholds.reason": "Reason",
    "thresholds.reason_needed": "needed to save",
    "thresholds.save": "Save new thresholds",
    "thresholds.working": "Working …",
    "thresholds.saved": "The thresholds are saved as version {version}. They apply to readings arriving from now on.",
    "thresholds.errors_title": "The change cannot be used yet:",
    "thresholds.error.number": "not a number",
    "thresholds.error.low_above_high": "the low limit is above the high one",
    "thresholds.error.red_low_inside": "the red low limit cannot be above the yellow low limit",
    "thresholds.error.red_high_inside": "the red high limit cannot be below the yellow high limit",
    "thresholds.error.positive": "must be greater than 0",
    "thresholds.error.reason_required": "Write a reason for the change.",
    "thresholds.error.reason_long": "The reason is too long (at most 2000 characters).",
    "thresholds.error.no_change": "No limit has been changed.",
    "thresholds.preview_title": "Preview",
    "thresholds.readings_title": "Readings of the last {days} days with the thresholds in force",
    "thresholds.preview_hint": "Preview to see which past readings would have alerted with the new thresholds.",
    "thresholds.with_proposed": "With the new thresholds",
    "thresholds.with_current": "With the thresholds in force",
    "thresholds.judged": "{readings} readings of the last {days} days judged",
    "thresholds.nothing_stored": "Nothing is stored.",
    "thresholds.preview_alerts": "Alerts the new thresholds would have raised",
    "thresholds.first_reading": "First reading",
    "thresholds.occurrences": "Readings",
    "thresholds.last_value": "Last value",
    "thresholds.more_alerts": "… and {n} more.",
    "thresholds.history": "Version history",
    "thresholds.version": "Version",
    "thresholds.changed_at": "When",
    "thresholds.changed_by": "Changed by",
    "thresholds.what_changed": "Change",
    "thresholds.no_difference": "No difference from the version before",
    "thresholds.no_history": "No patient's own limits have been set; the templates apply.",
    "thresholds.template_applies": "the template",
    "thresholds.no_limit": "none",
    "proposal.start_period": (
        "Start period until {date}: readings alert only on the red limits while the patient's own normal "
        "values are learnt."
    ),
    "proposal.title": "Proposal from the patient's own readings",
    "proposal.explain": (
        "The yellow limit is the 5th and 95th percentile of the start period's readings, widened by a margin, "
        "never wider than the red limit. Nothing changes until a physician accepts the proposal."
    ),
    "proposal.period": "Start period",
    "proposal.quantity": "Quantity",
    "proposal.in_force": "In force",
    "proposal.proposed": "Proposed",
    "proposal.basis": "Basis",
    "proposal.basis_text": "{readings} readings, 5th–95th percentile {p5}–{p95}, margin {margin}",
    "proposal.nothing": "Too few readings in the start period to propose limits.",
    "proposal.status.proposed": "Waiting for a decision",
    "proposal.status.accepted": "Accepted",
    "proposal.status.edited": "Accepted with changes",
    "proposal.status.rejected": "Rejected",
    "proposal.decided": "{status} by {by}, {at}: «{reason}»",
    "proposal.preview": "Preview the proposal in the form",
    "proposal.preview_help": (
        "The proposal is filled into the form below with the alerts it would have raised; change it "
        "there and save to accept it with changes."
    ),
    "proposal.reason": "Reason for the decision",
    "proposal.accept": "Accept the proposal",
    "proposal.reject": "Reject the proposal",
    "proposal.from_proposal": "The form shows the start period's proposal: saving accepts it (with your changes).",
    "proposal.error.reason_required": "Write a reason for the decision.",
}
