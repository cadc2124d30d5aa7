"""Sillon's ListenBrainz API (/1/...): what a player, a scrobbler or a script gets from it.

The real client library (liblistenbrainz) talks to a real gunicorn server; every refusal is a raw
request, checked for its status, its ListenBrainz-shaped body naming the listen and the field, and
for leaving the database exactly as it was.
"""
import json
import time
from datetime import UTC, datetime

import liblistenbrainz
import pytest
import sqlalchemy as sa
from liblistenbrainz.errors import InvalidAuthTokenException, ListenBrainzAPIException

from modules.db import db
from modules.importers import listen_feed
from modules.models import Job, Listen
from tests.conftest import make_app, upload

TOKEN = "lb-test-token-0123456789"
AUTH = {"Authorization": f"Token {TOKEN}"}
NOW = int(time.time())


@pytest.fixture
def app(tmp_path, migrated_template):
    return make_app(tmp_path / "instance", migrated_template, environ={"API_TOKEN": TOKEN})


def listen(t, artist="Massive Attack", title="Teardrop", **meta):
    return {"listened_at": t, "track_metadata": {"artist_name": artist, "track_name": title, **meta}}


def submit(client, listen_type, payload, headers=AUTH, **kwargs):
    return client.post("/1/submit-listens", data=json.dumps({"listen_type": listen_type, "payload": payload}),
                       headers=headers, **kwargs)


def count(app):
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar()


def rows(app):
    with app.app_context():
        return db.session.execute(sa.select(Listen.played_at, Listen.source, Listen.additional_info)
                                  .order_by(Listen.played_at, Listen.id)).all()


# --- the real client library against a real server --------------------------------------------
def test_liblistenbrainz_against_a_real_server(server_factory):
    server = server_factory(env={"API_TOKEN": TOKEN, "SCROBBLE_USERNAME": "rj"})
    lb = liblistenbrainz.ListenBrainz(api_base_url=server.url)
    with pytest.raises(InvalidAuthTokenException):
        lb.set_auth_token("not-the-token")
    lb.set_auth_token(TOKEN)  # validates it against /1/validate-token

    lb.submit_single_listen(liblistenbrainz.Listen(
        "Teardrop", "Massive Attack", listened_at=NOW - 600, release_name="Mezzanine",
        recording_mbid="00000000-0000-4000-8000-000000000001", tracknumber=3,
        additional_info={"duration_ms": 330_000, "media_player": "Navidrome", "submission_client": "Navidrome"}))
    lb.submit_playing_now(liblistenbrainz.Listen("Angel", "Massive Attack", release_name="Mezzanine",
                                                 additional_info={"duration_ms": 380_000}))
    backlog = [liblistenbrainz.Listen(f"Track {i}", "Portishead", listened_at=NOW - 5000 + i * 240,
                                      additional_info={"submission_client": "Pano Scrobbler"}) for i in range(10)]
    lb.submit_multiple_listens(backlog)

    listens = lb.get_listens("rj", count=5)
    assert [x.track_name for x in listens] == ["Teardrop", "Track 9", "Track 8", "Track 7", "Track 6"]
    first = listens[0]
    assert (first.artist_name, first.release_name, first.listened_at) == ("Massive Attack", "Mezzanine", NOW - 600)
    assert first.recording_mbid == "00000000-0000-4000-8000-000000000001" and first.tracknumber == 3
    assert first.additional_info["media_player"] == "Navidrome"
    older = lb.get_listens("rj", max_ts=NOW - 5000 + 3 * 240, count=100)
    assert [x.track_name for x in older] == ["Track 2", "Track 1", "Track 0"]
    after = lb.get_listens("rj", min_ts=NOW - 5000 + 5 * 240, count=2)  # the two just after, newest first
    assert [x.track_name for x in after] == ["Track 7", "Track 6"]

    playing = lb.get_playing_now("rj")
    assert (playing.track_name, playing.artist_name, playing.listened_at) == ("Angel", "Massive Attack", None)
    assert lb.get_user_listen_count("rj") == 11  # the track playing now is not a listen
    with pytest.raises(ListenBrainzAPIException) as missing:
        lb.get_listens("someone-else")
    assert missing.value.status_code == 404

    # The import is in the jobs history with its count and client; the single listen is not.
    import requests

    jobs = requests.get(server.url + "/api/v1/jobs", timeout=10).json()["items"]
    assert [(j["kind"], j["result"]["received"], j["result"]["imported"], j["result"]["client"]) for j in jobs] == [
        ("listenbrainz_import", 10, 10, "Pano Scrobbler")]


def test_validate_token_answers_like_listenbrainz(client):
    assert client.get("/1/validate-token", headers=AUTH).get_json() == {
        "code": 200, "message": "Token valid.", "valid": True, "user_name": "sillon"}
    assert client.get(f"/1/validate-token?token={TOKEN}").get_json()["valid"] is True
    assert client.get("/1/validate-token?token=nope").get_json() == {
        "code": 200, "message": "Token invalid.", "valid": False}
    missing = client.get("/1/validate-token")
    assert missing.status_code == 400 and missing.get_json()["code"] == 400


def test_user_name_follows_the_lastfm_user(tmp_path, migrated_template):
    app = make_app(tmp_path / "i", migrated_template, environ={"API_TOKEN": TOKEN, "LASTFM_USERNAME": "RJ"})
    client = app.test_client()
    assert client.get("/1/validate-token", headers=AUTH).get_json()["user_name"] == "RJ"
    assert client.get("/1/user/rj/listen-count", headers=AUTH).get_json() == {"payload": {"count": 0}}


def test_a_stored_token_works_and_a_session_does_not(tmp_path, migrated_template):
    app = make_app(tmp_path / "i", migrated_template, environ={"APP_PASSWORD": "pw"})
    with app.app_context():
        from modules.web.access import api_token
        stored = api_token.create()
    client = app.test_client()
    assert client.post("/login", data={"password": "pw"}).status_code == 303
    # Signed in, but the API takes only the token: no cookie, so no CSRF either.
    refused = submit(client, "single", [listen(NOW - 60)], headers={})
    assert refused.status_code == 401 and refused.get_json()["code"] == 401
    ok = submit(app.test_client(), "single", [listen(NOW - 60)], headers={"Authorization": f"Token {stored}"},
                environ_base={"REMOTE_ADDR": "192.0.2.7"})  # from another machine: APP_PASSWORD is set
    assert ok.status_code == 200 and count(app) == 1


def test_other_machines_are_refused_without_app_password(client, app):
    response = submit(client, "single", [listen(NOW - 60)], environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 403 and "APP_PASSWORD" in response.get_json()["error"]
    assert count(app) == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": "Token"},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_no_or_wrong_token_is_401(client, app, headers):
    response = submit(client, "single", [listen(NOW - 60)], headers=headers)
    body = response.get_json()
    assert response.status_code == 401 and body["code"] == 401 and "token" in body["error"].lower()
    assert client.get("/1/user/sillon/listens", headers=headers).status_code == 401
    assert count(app) == 0


# --- every refusal: 400, the listen and the field named, nothing stored ------------------------
GOOD = [listen(NOW - 3000 + i * 200, title=f"Song {i}") for i in range(3)]
REFUSALS = [
    ("not json", b"{nope", None, None, "Cannot parse JSON"),
    ("not an object", json.dumps([GOOD[0]]).encode(), None, None, "json object"),
    ("no listen_type", json.dumps({"payload": GOOD}).encode(), None, "listen_type", "listen_type"),
    ("unknown listen_type", {"listen_type": "many", "payload": GOOD}, None, "listen_type", "listen_type"),
    ("payload not a list", {"listen_type": "import", "payload": GOOD[0]}, None, "payload", "list of listens"),
    ("empty payload", {"listen_type": "import", "payload": []}, None, "payload", "does not contain any"),
    ("too many listens", {"listen_type": "import", "payload": [listen(NOW - 100_000 + i) for i in range(1001)]},
     None, "payload", "more than 1000"),
    ("two in a single", {"listen_type": "single", "payload": GOOD[:2]}, None, "payload", "only one"),
    ("listen not an object", {"listen_type": "import", "payload": [*GOOD, "x"]}, 3, None, "not a JSON object"),
    ("listen over 10,240 bytes", {"listen_type": "import", "payload": [
        *GOOD, listen(NOW - 10, additional_info={"comment": "x" * 10_300})]}, 3, None, "10,240 bytes"),
    ("no artist", {"listen_type": "import", "payload": [
        *GOOD, {"listened_at": NOW - 10, "track_metadata": {"track_name": "T"}}]}, 3,
     "track_metadata.artist_name", "missing"),
    ("empty title", {"listen_type": "import", "payload": [GOOD[0], listen(NOW - 10, title="  "), GOOD[1]]}, 1,
     "track_metadata.track_name", "empty"),
    ("artist not a string", {"listen_type": "import", "payload": [listen(NOW - 10, artist=["A", "B"]), *GOOD]}, 0,
     "track_metadata.artist_name", "single string"),
    ("release not a string", {"listen_type": "single", "payload": [listen(NOW - 10, release_name=5)]}, 0,
     "track_metadata.release_name", "single string"),
    ("no track_metadata", {"listen_type": "single", "payload": [{"listened_at": NOW - 10}]}, 0,
     "track_metadata", "missing"),
    ("no listened_at", {"listen_type": "import", "payload": [*GOOD, {"track_metadata": GOOD[0]["track_metadata"]}]},
     3, "listened_at", "missing"),
    ("listened_at a word", {"listen_type": "single", "payload": [listen("yesterday")]}, 0, "listened_at",
     "integer"),
    ("listened_at a boolean", {"listen_type": "single", "payload": [listen(True)]}, 0, "listened_at", "integer"),
    ("listened_at before 2002", {"listen_type": "single", "payload": [listen(1_000_000_000)]}, 0, "listened_at",
     "too low"),
    ("listened_at tomorrow", {"listen_type": "single", "payload": [listen(NOW + 86_400)]}, 0, "listened_at",
     "too high"),
    ("listened_at in playing_now", {"listen_type": "playing_now", "payload": [listen(NOW)]}, 0, "listened_at",
     "not allowed"),
    ("unknown top-level key", {"listen_type": "single", "payload": [{**listen(NOW - 10), "rating": 5}]}, 0,
     "rating", "not allowed"),
    ("additional_info not an object", {"listen_type": "single", "payload": [listen(NOW - 10, additional_info=[])]},
     0, "track_metadata.additional_info", "JSON object"),
    ("negative duration", {"listen_type": "import", "payload": [
        *GOOD, listen(NOW - 10, additional_info={"duration_ms": -5})]}, 3,
     "track_metadata.additional_info.duration_ms", "positive integer"),
    ("duration a word", {"listen_type": "single", "payload": [listen(NOW - 10, additional_info={"duration": "long"})]},
     0, "track_metadata.additional_info.duration", "positive integer"),
    ("both durations", {"listen_type": "single", "payload": [
        listen(NOW - 10, additional_info={"duration": 200, "duration_ms": 200_000})]}, 0,
     "track_metadata.additional_info.duration", "both"),
    ("bad recording mbid", {"listen_type": "single", "payload": [
        listen(NOW - 10, additional_info={"recording_mbid": "not-a-uuid"})]}, 0,
     "track_metadata.additional_info.recording_mbid", "MBID"),
    ("bad artist mbids", {"listen_type": "single", "payload": [
        listen(NOW - 10, additional_info={"artist_mbids": ["00000000-0000-4000-8000-000000000001", "zz"]})]}, 0,
     "track_metadata.additional_info.artist_mbids", "MBID"),
    ("too many tags", {"listen_type": "single", "payload": [
        listen(NOW - 10, additional_info={"tags": [str(i) for i in range(51)]})]}, 0,
     "track_metadata.additional_info.tags", "50"),
    ("NUL in a name", {"listen_type": "import", "payload": [*GOOD, listen(NOW - 10, title="a\x00b")]}, 3,
     "track_metadata.track_name", "NUL"),
    ("NUL deep in additional_info", {"listen_type": "single", "payload": [
        listen(NOW - 10, additional_info={"x": {"y": ["ok", "\x00"]}})]}, 0,
     "track_metadata.additional_info.x.y[1]", "NUL"),
    ("name longer than the database keeps", {"listen_type": "single", "payload": [listen(NOW - 10, title="t" * 513)]},
     0, "track_metadata.track_name", "512"),
]


@pytest.mark.parametrize("body, index, field, words", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_refuse_the_whole_request(client, app, body, index, field, words):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/1/submit-listens", data=data, headers=AUTH)
    answer = response.get_json()
    assert response.status_code == 400, answer
    assert answer["code"] == 400 and words.lower() in answer["error"].lower(), answer
    assert answer.get("listen_index") == index and answer.get("field") == field, answer
    if index is not None:
        assert f"payload[{index}]" in answer["error"]
    assert count(app) == 0  # the good listens before and after the bad one are not kept either
    with app.app_context():
        assert db.session.execute(sa.select(Job.id)).first() is None
        assert listen_feed.now_playing(db.session.connection()) is None


def test_a_payload_too_large_is_refused(client, app):
    response = client.post("/1/submit-listens", data=b" " * (10240 * 1000 + 1), headers=AUTH)
    assert response.status_code == 400 and "Payload too large" in response.get_json()["error"]
    assert count(app) == 0


def test_get_listens_refusals(client):
    assert client.get("/1/user/sillon/listens?count=x", headers=AUTH).status_code == 400
    assert client.get("/1/user/sillon/listens?count=-1", headers=AUTH).status_code == 400
    assert client.get("/1/user/sillon/listens?min_ts=10&max_ts=5", headers=AUTH).status_code == 400
    assert client.get(f"/1/user/sillon/listens?max_ts={10 ** 30}", headers=AUTH).status_code == 400
    assert client.get("/1/user/nobody/playing-now", headers=AUTH).get_json() == {
        "code": 404, "error": "Cannot find user: nobody"}
    assert client.get("/1/nothing-here", headers=AUTH).status_code == 404


# --- storage -------------------------------------------------------------------------------------
def test_a_thousand_listens_sent_twice_add_a_thousand(client, app):
    backlog = [listen(NOW - 400_000 + i * 300, artist=f"Artist {i % 37}", title=f"Song {i}") for i in range(1000)]
    assert submit(client, "import", backlog).status_code == 200
    assert submit(client, "import", backlog).status_code == 200
    assert count(app) == 1000
    with app.app_context():
        jobs = db.session.execute(sa.select(Job).order_by(Job.created_at)).scalars().all()
        assert [(j.kind, j.status, j.result["imported"], j.result["skipped"]) for j in jobs] == [
            ("listenbrainz_import", "completed", 1000, 0), ("listenbrainz_import", "completed", 0, 1000)]
        assert "Received 1,000 listens" in jobs[1].message and "1,000 already stored" in jobs[1].message


def test_single_listens_sent_again_add_nothing_and_same_second_tracks_are_kept(client, app):
    assert submit(client, "single", [listen(NOW - 60, title="A")]).status_code == 200
    assert submit(client, "single", [listen(NOW - 60, title="A")]).status_code == 200
    assert submit(client, "single", [listen(NOW - 60, title="B")]).status_code == 200  # same second, another track
    assert count(app) == 2
    with app.app_context():
        assert db.session.execute(sa.select(Job.id)).first() is None  # singles leave the jobs history alone


def test_additional_info_is_kept(client, app):
    info = {"duration_ms": 215_000, "recording_mbid": "00000000-0000-4000-8000-0000000000aa",
            "release_mbid": "00000000-0000-4000-8000-0000000000bb",
            "artist_mbids": ["00000000-0000-4000-8000-0000000000cc", ""], "tracknumber": 4,
            "media_player": "Jellyfin", "submission_client": "Jellyfin ListenBrainz Plugin",
            "submission_client_version": "5.2", "release_mbid_empty": None, "track_mbid": ""}
    assert submit(client, "single", [listen(NOW - 60, release_name="Mezzanine", additional_info=info)]).status_code == 200
    [(played_at, source, kept)] = rows(app)
    assert (played_at, source) == (NOW - 60, "listenbrainz_api")
    expected = {**info, "artist_mbids": ["00000000-0000-4000-8000-0000000000cc"]}
    del expected["track_mbid"]  # an empty MBID is dropped, as ListenBrainz does
    assert kept == expected
    # A numeric string is a number to ListenBrainz too.
    assert submit(client, "single", [listen("1700000000", additional_info={"duration": "240"})]).status_code == 200
    assert rows(app)[0][:2] == (1_700_000_000, "listenbrainz_api") and rows(app)[0][2] == {"duration": 240}


def test_the_same_play_from_a_scrobble_and_a_spotify_export_is_stored_once(client, app):
    start = NOW - 7200
    assert submit(client, "single", [listen(start, additional_info={"duration_ms": 330_000})]).status_code == 200
    end = datetime.fromtimestamp(start + 6 + 330, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Spotify's start: 6 s later
    spotify = json.dumps([{"ts": end, "ms_played": 330_000, "master_metadata_track_name": "Teardrop",
                           "master_metadata_album_artist_name": "Massive Attack",
                           "master_metadata_album_album_name": "Mezzanine", "incognito_mode": False},
                          {"ts": end, "ms_played": 200_000, "master_metadata_track_name": "Glory Box",
                           "master_metadata_album_artist_name": "Portishead",
                           "master_metadata_album_album_name": "Dummy", "incognito_mode": False}]).encode()
    job_id = upload(client, ("Streaming_History_Audio_2024.json", spotify)).get_json()["job_id"]
    from tests.conftest import wait_for_job
    assert wait_for_job(app, job_id)["status"] == "completed"
    assert [(t, s) for t, s, _ in rows(app)] == [(start, "listenbrainz_api"), (start + 336 - 200, "spotify")]
    # ... and the other way round: a scrobble of a play the export already brought is not stored again.
    assert submit(client, "single", [listen(start + 336 - 200 - 4, artist="portishead", title="GLORY BOX")]).status_code == 200
    assert count(app) == 2


def test_playing_now_is_shown_never_stored_and_expires(client, app):
    assert submit(client, "playing_now", [{"track_metadata": {
        "artist_name": "Portishead", "track_name": "Roads", "additional_info": {"duration_ms": 305_000}}}]).status_code == 200
    assert count(app) == 0
    answer = client.get("/1/user/sillon/playing-now", headers=AUTH).get_json()["payload"]
    assert answer["count"] == 1 and answer["listens"][0]["track_metadata"]["track_name"] == "Roads"
    with app.app_context():
        conn = db.session.connection()
        until = listen_feed.now_playing(conn)["until"]
        assert listen_feed.now_playing(conn, now=until - 1)["title"] == "Roads"
        assert listen_feed.now_playing(conn, now=until) is None  # its duration is over
    # Without a duration it is shown for ten minutes.
    assert submit(client, "playing_now", [{"track_metadata": {"artist_name": "A", "track_name": "B"}}]).status_code == 200
    with app.app_context():
        conn = db.session.connection()
        playing = listen_feed.now_playing(conn)
        assert playing["title"] == "B" and playing["until"] == playing["since"] + 600
        assert listen_feed.now_playing(conn, now=playing["since"] + 601) is None
