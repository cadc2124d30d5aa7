"""The Last.fm CSV upload job, end to end through the API on a real SQLite database."""
import sqlalchemy as sa

from modules.db import db
from modules.models import Album, Artist, Job, Listen
from tests.conftest import FIXTURES, make_app, upload, wait_for_job


def simple_csv(n, start_day=1, errors=0):
    lines = [f"Artist {i % 97},Album {i % 13},Track {i},{(i % 28) + 1:02d} Jan {2000 + i // 10000} "
             f"{(i // 60) % 24:02d}:{i % 60:02d}" for i in range(n)]
    lines += [f"Broken {i},Album,Track,not a date" for i in range(errors)]
    return ("\n".join(lines) + "\n").encode()


def count(app, model):
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar()


def test_upload_imports_rows_and_lands_on_journal(app, client):
    r = upload(client, ("scrobbles.csv", (FIXTURES / "lastfm_simple.csv").read_bytes()))
    assert r.status_code == 202
    body = r.get_json()
    assert set(body) == {"job_id", "progress_url", "events_url", "status_url"}
    snap = wait_for_job(app, body["job_id"])
    assert snap["status"] == "completed"
    assert snap["redirect_url"] == "/journal"
    assert snap["counters"] == {"imported": 5, "skipped": 0, "errors": 0}
    assert snap["overall_progress"] == 100.0
    assert [s["status"] for s in snap["steps"]] == ["completed"] * 3
    assert snap["result"]["albums_to_enrich"] == 3
    assert count(app, Listen) == 5
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).where(Album.needs_enrichment.is_(True))).scalar() == 3
        job = db.session.get(Job, body["job_id"])
        assert (job.status, job.active_kind) == ("completed", None)
    journal = client.get("/journal").get_data(as_text=True)
    assert "Paranoid Android" in journal and 'data-total="5"' in journal


def test_broken_rows_are_counted_and_sampled_with_line_numbers(app, client):
    r = upload(client, ("export.csv", (FIXTURES / "lastfm_uts.csv").read_bytes()))
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["status"] == "completed"
    assert snap["counters"] == {"imported": 4, "skipped": 0, "errors": 3}
    assert [(e["file"], e["line"]) for e in snap["errors_sample"]] == [("export.csv", 5), ("export.csv", 6),
                                                                      ("export.csv", 7)]
    assert count(app, Listen) == 4


def test_two_tracks_in_one_second_are_both_kept_and_names_are_matched_loosely(app, client):
    content = (b"Massive Attack,Mezzanine,Teardrop,14 Nov 2023 22:13\n"
               b"Massive Attack,Mezzanine,Angel,14 Nov 2023 22:13\n"
               b"massive  attack,MEZZANINE,teardrop,14 Nov 2023 22:13\n")
    snap = wait_for_job(app, upload(client, ("a.csv", content)).get_json()["job_id"])
    assert snap["counters"] == {"imported": 2, "skipped": 1, "errors": 0}
    assert count(app, Artist) == 1 and count(app, Album) == 1


def test_reimport_adds_nothing(app, client):
    content = simple_csv(1200)
    first = wait_for_job(app, upload(client, ("a.csv", content)).get_json()["job_id"])
    assert first["counters"]["imported"] == 1200
    second = wait_for_job(app, upload(client, ("a.csv", content)).get_json()["job_id"])
    assert second["status"] == "completed"
    assert second["counters"] == {"imported": 0, "skipped": 1200, "errors": 0}
    assert second["result"]["albums_to_enrich"] == 0
    assert count(app, Listen) == 1200


def test_a_file_in_no_known_format_alone_ends_with_clear_error_and_changes_nothing(app, client):
    wait_for_job(app, upload(client, ("ok.csv", (FIXTURES / "lastfm_simple.csv").read_bytes())).get_json()["job_id"])
    r = upload(client, ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00binary"))
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["status"] == "error"
    assert "photo.jpg" in snap["message"] and "Nothing was imported" in snap["message"]
    read = snap["steps"][0]
    assert read["status"] == "error" and read["substeps"][0]["status"] == "error"
    assert count(app, Listen) == 5
    with app.app_context():
        assert db.session.get(Job, r.get_json()["job_id"]).active_kind is None
    assert upload(client, ("ok.csv", simple_csv(3))).status_code == 202  # the kind is free again


def test_a_broken_file_fails_its_own_substep_and_the_others_go_on(app, client):
    r = upload(client, ("ok2.csv", simple_csv(10)), ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00binary"))
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["status"] == "completed"
    assert snap["result"]["outcome"] == "completed_with_errors"
    assert snap["message"].startswith("Completed with errors: 1 of 2 files")
    assert [f["status"] for f in snap["result"]["files"]] == ["completed", "error"]
    assert "photo.jpg" in snap["result"]["files"][1]["error"]
    assert count(app, Listen) == 10


def test_several_files_in_one_upload(app, client):
    r = upload(client, ("a.csv", simple_csv(300)), ("b.csv", (FIXTURES / "lastfm_uts.csv").read_bytes()))
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["counters"] == {"imported": 304, "skipped": 0, "errors": 3}
    assert [s["name"] for s in snap["steps"][1]["substeps"]] == ["a.csv", "b.csv"]
    assert [f["rows"] for f in snap["result"]["files"]] == [300, 7]


def test_upload_over_the_size_limit_is_refused_with_413(tmp_path, migrated_template):
    app = make_app(tmp_path / "small", migrated_template, environ={"MAX_UPLOAD_MB": 1})
    client = app.test_client()
    r = upload(client, ("big.csv", simple_csv(40000)))
    assert r.status_code == 413
    assert "1 MB limit" in r.get_json()["error"] and "MAX_UPLOAD_MB" in r.get_json()["error"]
    assert count(app, Listen) == 0 and count(app, Job) == 0
    page = client.post("/settings/upload", data={"files": [(__import__("io").BytesIO(simple_csv(40000)), "b.csv")]},
                       content_type="multipart/form-data")
    assert page.status_code == 413 and "1 MB limit" in page.get_data(as_text=True)


def test_no_file_is_a_clear_400(client):
    r = client.post("/api/v1/imports", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "No file received" in r.get_json()["error"]


def test_file_names_are_never_used_as_paths(app, client):
    r = upload(client, ("../../../etc/evil.csv", simple_csv(5)))
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["status"] == "completed"
    assert snap["result"]["files"][0]["name"] == "evil.csv"
    assert not (tmp := __import__("pathlib").Path(app.instance_path).parent / "etc").exists(), tmp


def test_settings_form_redirects_to_progress_page(app, client):
    import io
    r = client.post("/settings/upload", data={"files": [(io.BytesIO(simple_csv(20)), "s.csv")]},
                    content_type="multipart/form-data")
    assert r.status_code == 303 and r.headers["Location"].startswith("/progress/")
    job_id = r.headers["Location"].rsplit("/", 1)[1]
    wait_for_job(app, job_id)
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'role="progressbar"' in page and job_id in page


def test_a_job_that_failed_on_its_input_is_not_resumable(app, client):
    job_id = upload(client, ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00binary")).get_json()["job_id"]
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "error" and snap["result"] == {"resumable": False}
    r = client.post(f"/api/v1/jobs/{job_id}/resume")
    assert r.status_code == 409 and "fail the same way" in r.get_json()["error"]
