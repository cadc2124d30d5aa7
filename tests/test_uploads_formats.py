"""Upload-and-watch with every export format, zips, bombs, and one play from several sources."""
import io
import zipfile

import sqlalchemy as sa

from modules.db import db
from modules.models import CollectionItem, Listen
from tests.conftest import FIXTURES, make_app, upload, wait_for_job
from tests.test_uploads import simple_csv

EXPORTS = FIXTURES / "exports"


def listens(app):
    with app.app_context():
        return db.session.execute(sa.select(Listen.played_at, Listen.source).order_by(Listen.played_at)).all()


def zipped(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_mixed_upload_runs_in_parallel_into_one_tracker(app, client):
    files = [(p.name, p.read_bytes()) for p in (EXPORTS / "Streaming_History_Audio_2023.json",
                                                 EXPORTS / "StreamingHistory_music_0.json",
                                                 EXPORTS / "listenbrainz_export.json",
                                                 EXPORTS / "lastfm_uts.csv")]
    snap = wait_for_job(app, upload(client, *files).get_json()["job_id"])
    assert snap["status"] == "completed", snap["message"]
    outcome = {f["name"]: f for f in snap["result"]["files"]}
    assert {f["status"] for f in outcome.values()} == {"completed"}
    assert [s["name"] for s in snap["steps"][1]["substeps"]] == [name for name, _ in files]
    assert all(s["status"] == "completed" for s in snap["steps"][1]["substeps"])
    total = sum(f["imported"] for f in outcome.values())
    assert total == snap["counters"]["imported"] == len(listens(app)) > 0
    reasons = snap["result"]["skip_reasons"]
    assert reasons.get("short_play") and reasons.get("incognito") and reasons.get("podcast")
    assert {s for _, s in listens(app)} >= {"spotify", "listenbrainz"}
    for f in outcome.values():  # every row of every file is accounted for
        assert f["rows"] == f["imported"] + f["skipped"] + f["errors"], f
    # row errors of every file are downloadable in full
    if snap["counters"]["errors"]:
        csv_text = client.get(f"/api/v1/jobs/{snap['id']}/errors.csv").get_data(as_text=True)
        assert csv_text.splitlines()[0] == "file,line,error"
        assert len(csv_text.splitlines()) == snap["counters"]["errors"] + 1


def test_a_listenbrainz_zip_is_opened(app, client):
    root = EXPORTS / "listenbrainz_zip"
    data = zipped({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    snap = wait_for_job(app, upload(client, ("listenbrainz-export.zip", data)).get_json()["job_id"])
    assert snap["status"] == "completed", snap["message"]
    names = [f["name"] for f in snap["result"]["files"]]
    assert "listenbrainz-export.zip/listens/2023/3.jsonl" in names
    assert snap["counters"]["imported"] > 0


def test_a_zip_bomb_is_refused_before_extracting(app, client, tmp_path):
    bomb = zipped({"listens/2023/1.jsonl": b"\n" * (50 * 1024 * 1024)})  # 50 MB of newlines, ~50 KB zipped
    snap = wait_for_job(app, upload(client, ("bomb.zip", bomb), ("ok.csv", simple_csv(5))).get_json()["job_id"])
    assert snap["result"]["outcome"] == "completed_with_errors"
    bad = snap["result"]["files"][0]
    assert bad["name"] == "bomb.zip" and "zip bomb" in bad["error"]
    assert snap["counters"]["imported"] == 5
    extracted = [p for p in (tmp_path / "instance" / "uploads").rglob("*") if p.is_file() and p.stat().st_size > 10**6]
    assert extracted == []  # nothing big was ever written


def test_a_zip_over_the_unzipped_limit_is_refused(tmp_path, migrated_template):
    app = make_app(tmp_path / "z", migrated_template, environ={"MAX_UNZIPPED_MB": 1})
    data = zipped({f"f{i}.csv": simple_csv(20000) for i in range(3)})
    snap = wait_for_job(app, upload(app.test_client(), ("big.zip", data)).get_json()["job_id"])
    assert snap["status"] == "error" and "MAX_UNZIPPED_MB" in snap["message"]
    assert listens(app) == []


def test_the_same_play_from_spotify_and_lastfm_is_stored_once(app, client):
    # Last.fm scrobbled the play at its start; Spotify's extended history says when it ended.
    lastfm = b"Massive Attack,Mezzanine,Teardrop,25 Mar 2023 21:00\n"
    spotify = (b'[{"ts": "2023-03-25T21:05:32Z", "ms_played": 330000, "master_metadata_track_name": "Teardrop",'
               b' "master_metadata_album_artist_name": "Massive Attack", "master_metadata_album_album_name": '
               b'"Mezzanine", "spotify_track_uri": "spotify:track:x", "incognito_mode": false},'
               b' {"ts": "2023-03-25T21:11:02Z", "ms_played": 330000, "master_metadata_track_name": "Teardrop",'
               b' "master_metadata_album_artist_name": "Massive Attack", "master_metadata_album_album_name": '
               b'"Mezzanine", "spotify_track_uri": "spotify:track:x", "incognito_mode": false}]')
    wait_for_job(app, upload(client, ("scrobbles.csv", lastfm)).get_json()["job_id"])
    snap = wait_for_job(app, upload(client, ("Streaming_History_Audio_2023.json", spotify)).get_json()["job_id"])
    # the first Spotify play is the scrobbled one (2 s apart); the second is a real repeat play
    assert (snap["counters"]["imported"], snap["counters"]["skipped"]) == (1, 1)
    assert [s for _, s in listens(app)] == ["lastfm_csv", "spotify"]
    again = wait_for_job(app, upload(client, ("Streaming_History_Audio_2023.json", spotify)).get_json()["job_id"])
    assert again["counters"]["imported"] == 0  # a re-upload adds nothing


def test_discogs_csv_goes_to_the_collection_and_the_api_sync_takes_it_over(app, client):
    from tests.emulators.discogs import DiscogsEmulator

    data = (EXPORTS / "discogs_collection.csv").read_bytes()
    snap = wait_for_job(app, upload(client, ("collection.csv", data)).get_json()["job_id"])
    assert snap["status"] == "completed", snap["message"]
    added = snap["result"]["collection_added"]
    assert added > 0 and listens(app) == []
    again = wait_for_job(app, upload(client, ("collection.csv", data)).get_json()["job_id"])
    assert again["result"]["collection_added"] == 0  # re-upload adds nothing
    with app.app_context():
        items = db.session.execute(sa.select(CollectionItem.release_id, CollectionItem.instance_id)).all()
    mezzanine = [i for r, i in items if r == 1186911]
    assert len(mezzanine) == 2 and all(i < 0 for i in mezzanine)  # two copies, stand-in ids
    with DiscogsEmulator() as dc:
        dc.add_item(1186911, title="Mezzanine", artists=["Massive Attack"], year=1998)
        dc.add_item(1186911, title="Mezzanine", artists=["Massive Attack"], year=1998)
        sync_app = make_app(__import__("pathlib").Path(app.instance_path), None, environ={
            "DISCOGS_API_URL": dc.url, "DISCOGS_TOKEN": "test-token"})
        sync = wait_for_job(sync_app, sync_app.test_client().post("/api/v1/services/discogs/sync").get_json()["job_id"])
    assert sync["status"] == "completed", sync["message"]
    with app.app_context():
        db.session.remove()
        items = db.session.execute(sa.select(CollectionItem.release_id, CollectionItem.instance_id)).all()
    mezzanine = [i for r, i in items if r == 1186911]
    assert len(mezzanine) == 2 and all(i > 0 for i in mezzanine)  # taken over, not doubled
    assert len(items) == added


def test_an_unreadable_upload_names_the_formats_known(app, client):
    snap = wait_for_job(app, upload(client, ("notes.json", b'{"hello": "world"}')).get_json()["job_id"])
    assert snap["status"] == "error"
    assert "notes.json" in snap["message"] and "Spotify" in snap["message"] and "ListenBrainz" in snap["message"]
