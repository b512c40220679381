"""Texts of the NEWS2 scores on the course (their chart) and of one Observation's page (a NEWS2
score with its parts and readings, or a reading with what was derived from it)."""

from __future__ import annotations

NB: dict[str, str] = {
    "type.news2": "NEWS2",
    "code.1104051000000101": "NEWS2-skår",
    "score.chart_note": (
        "Skåren for vitale tegn målt innen en time. Sonene er NEWS2-skjemaets, like for alle: 0–4 grønn, "
        "5–6 gul, 7 eller mer rød. Én parameter som gir 3 poeng, gjør skåren gul også under 5."
    ),
    "score.chart_summary": (
        "{title}, siste {days} dager: {readings} skårer, {marks} markert med varsel. "
        "Samme skårer, med delene, står i tabellvisningen under."
    ),
    "score.parts": "Deler",
    "score.open": "Skåren og målingene",
    "score.short.respiratory_rate": "RF",
    "score.short.spo2": "SpO2",
    "score.short.oxygen": "O2",
    "score.short.systolic": "Sys",
    "score.short.pulse": "Puls",
    "score.short.consciousness": "Bev",
    "score.short.temperature": "Temp",
    "score.title": "NEWS2-skår",
    "score.facts": "Om målingen",
    "score.taken": "Målt",
    "score.scale": "SpO2-skala",
    "score.status": "Status",
    "score.valid": "Gyldig",
    "score.parts_caption": "Poeng per parameter",
    "score.parameter": "Parameter",
    "score.points": "Poeng",
    "score.total": "Samlet skår",
    "score.inputs": "Målingene bak skåren",
    "score.inputs_explained": (
        "Skåren er regnet ut av målingene under. Er skåren feil, er det nesten alltid fordi én av dem er "
        "feil: merk den målingen som feilmåling. Da merkes skåren med den (den regnes ikke ut på nytt uten "
        "målingen), og varselet skåren ga vurderes på nytt: det løses av systemet når ingen gyldig skår "
        "står igjen bak det."
    ),
    "score.inputs_none": "Målingene skåren ble regnet ut av, finnes ikke her.",
    "score.reading": "Måling",
    "score.value": "Verdi",
    "score.reading_page": "Se målingen",
    "score.self": "Merk skåren selv",
    "score.self_explained": (
        "Sjelden riktig: skåren følger målingene over. Merk skåren alene bare når målingene er riktige, "
        "men skåren likevel ikke skal gjelde. Målingene blir stående."
    ),
    "score.derived": "Merkes sammen med denne målingen",
    "score.derived_explained": (
        "Det som er regnet ut av målingen, merkes med den: pulsen fra samme blodtrykksmåling og "
        "NEWS2-skårer som brukte den. En skår regnes ikke ut på nytt."
    ),
    "score.input_in_error": "en av målingene bak skåren var feil",
    "score.done_with_derived": "Målingen er merket som feilmåling, og det som var regnet ut av den, med den.",
    "score.done_resolved": (
        "Målingen er merket som feilmåling, med det som var regnet ut av den. Varsel uten gyldig måling igjen er løst."
    ),
    "score.back": "Tilbake til forløpet",
}

EN: dict[str, str] = {
    "type.news2": "NEWS2",
    "code.1104051000000101": "NEWS2 score",
    "score.chart_note": (
        "The score of the vital signs measured within an hour. The zones are the NEWS2 chart's, the same for "
        "everyone: 0–4 green, 5–6 yellow, 7 or more red. One parameter scoring 3 makes the score yellow "
        "below 5 too."
    ),
    "score.chart_summary": (
        "{title}, last {days} days: {readings} scores, {marks} marked with an alert. "
        "The table view below has the same scores, with their parts."
    ),
    "score.parts": "Parts",
    "score.open": "The score and its readings",
    "score.short.respiratory_rate": "RR",
    "score.short.spo2": "SpO2",
    "score.short.oxygen": "O2",
    "score.short.systolic": "Sys",
    "score.short.pulse": "Pulse",
    "score.short.consciousness": "ACVPU",
    "score.short.temperature": "Temp",
    "score.title": "NEWS2 score",
    "score.facts": "About the reading",
    "score.taken": "Taken",
    "score.scale": "SpO2 scale",
    "score.status": "Status",
    "score.valid": "Valid",
    "score.parts_caption": "Points per parameter",
    "score.parameter": "Parameter",
    "score.points": "Points",
    "score.total": "Total",
    "score.inputs": "The readings behind the score",
    "score.inputs_explained": (
        "The score was worked out from the readings below. When the score is wrong, it is nearly always "
        "because one of them is: mark that reading as entered in error. The score is then marked with it "
        "(it is not worked out again without the reading), and the alert the score raised is judged "
        "again: the system resolves it when no valid score is left behind it."
    ),
    "score.inputs_none": "The readings the score was worked out from are not here.",
    "score.reading": "Reading",
    "score.value": "Value",
    "score.reading_page": "Open the reading",
    "score.self": "Mark the score itself",
    "score.self_explained": (
        "Rarely right: the score follows the readings above. Mark the score alone only when the readings "
        "are right but the score should still not count. The readings stay."
    ),
    "score.derived": "Marked together with this reading",
    "score.derived_explained": (
        "What was worked out from the reading is marked with it: the pulse of the same blood pressure "
        "reading and the NEWS2 scores that used it. A score is not worked out again."
    ),
    "score.input_in_error": "one of the readings behind the score was wrong",
    "score.done_with_derived": "The reading is marked as entered in error, and what was worked out from it with it.",
    "score.done_resolved": (
        "The reading is marked as entered in error, with what was worked out from it. Alerts left without a "
        "valid reading are resolved."
    ),
    "score.back": "Back to the course",
}
