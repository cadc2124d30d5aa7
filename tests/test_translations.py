"""The French catalogue: every text the pages and modules mark for translation has a French
translation, the compiled .mo matches the .po, and pages render French when asked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
PYBABEL = Path(sys.executable).with_name("pybabel")


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def messages(catalog):
    return {_key(m.id): _key(m.string) for m in catalog if m.id}


def test_every_marked_text_has_a_french_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    # The same command as `make translations`.
    subprocess.run([str(PYBABEL), "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location",
                    "--sort-output", "-o", str(pot), "."], cwd=ROOT, check=True, capture_output=True)
    extracted = set(messages(read_po(pot.open("rb"))))
    assert len(extracted) > 150, "extraction found too few texts: is babel.cfg still read?"
    french = messages(read_po(PO.open("rb"), locale="fr"))
    missing = sorted(map(str, extracted - set(french)))
    assert not missing, f"not in messages.po (run `make translations`, then translate): {missing}"
    empty = sorted(str(k) for k in extracted
                   if not (french[k] if isinstance(french[k], str) else all(french[k])))
    assert not empty, f"no French yet for: {empty}"


def test_the_compiled_catalogue_is_current():
    po = messages(read_po(PO.open("rb"), locale="fr"))
    mo = messages(read_mo(MO.open("rb")))
    po = {k: v for k, v in po.items() if (v if isinstance(v, str) else all(v))}
    assert mo == po, "messages.mo differs from messages.po: run `pybabel compile -d translations`"


def test_french_pages_speak_french(client):
    client.set_cookie("lang", "fr")
    settings = client.get("/settings").get_data(as_text=True)
    assert '<html lang="fr">' in settings
    for text in ("Réglages", "Connexions", "Tester la connexion", "Langue d’affichage", "Importer des fichiers d’export"):
        assert text in settings, text
    assert "Test connection" not in settings and "Import export files" not in settings
    journal = client.get("/journal").get_data(as_text=True)
    assert "Aucune écoute pour l’instant" in journal and "Pour commencer" in journal
    import json

    strings = json.loads(client.get("/jobs").get_data(as_text=True).split('id="i18n">', 1)[1].split("</script>", 1)[0])
    assert strings["status.completed"] == "terminée" and strings["progress.cancelling"] == "Annulation…"


def test_french_numbers_and_dates(client, app):
    from tests.conftest import upload, wait_for_job

    rows = "".join(f"Artist {i},Album,Track {i},03 Jan 2020 10:{i % 60:02d}\n" for i in range(1200))
    job_id = upload(client, ("a.csv", rows.encode())).get_json()["job_id"]
    wait_for_job(app, job_id)
    client.set_cookie("lang", "fr")
    journal = client.get("/journal").get_data(as_text=True)
    assert "vendredi 3 janvier 2020" in journal
    assert "1\u202f200 écoutes" in journal or "1\xa0200 écoutes" in journal


def test_every_step_the_jobs_declare_has_a_translatable_name():
    from modules.importers.enrichment import PROVIDERS
    from modules.jobs import KINDS
    from modules.web.js_strings import STEP_NAMES

    declared = {name for kind in KINDS.values() for _id, name, _weight in kind.steps} | {n for _id, n in PROVIDERS}
    assert declared - set(STEP_NAMES) == set(), "add these step names to modules/web/job_history.py STEP_NAMES"


def test_french_step_names_reach_the_scripts(client):
    import json

    client.set_cookie("lang", "fr")
    page = client.get("/settings").get_data(as_text=True)
    strings = json.loads(page.split('id="i18n">', 1)[1].split("</script>", 1)[0])
    assert strings["stepname.Read files"] == "Lecture des fichiers"
    assert strings["counter.skipped_short_play"] == "écoutes trop courtes"
