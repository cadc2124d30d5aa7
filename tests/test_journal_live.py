"""The journal that moves: listens from any source reach open journals through the progress store.

In-process, the journal's stream is read as the generator the endpoint serves; on real gunicorn
servers, as a browser's EventSource would read it (one worker with the database store, two with the
Redis store). Each event must come after its commit: the first page fetched on it shows the listen.
"""
import json
import socket
import threading
import time

import pytest
import requests

from modules.db import db
from modules.importers import listen_feed, scrobbles
from modules.web.journal_live import feed_stream
from tests.conftest import make_app, upload, wait_for_job
from tests.test_lastfm_import import Emulator, app_factory

TOKEN = "journal-live-token-42"
AUTH = {"Authorization": f"Token {TOKEN}"}
NOW = int(time.time())
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def fm():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def new_app(tmp_path, migrated_template, fm):
    yield from app_factory(tmp_path, migrated_template, fm)


def single(t, artist, title, **info):
    return json.dumps({"listen_type": "single", "payload": [
        {"listened_at": t, "track_metadata": {"artist_name": artist, "track_name": title,
                                              **({"additional_info": info} if info else {})}}]})


def open_feed(app):
    """The journal's event stream of `app`, subscribed: (generator, version shown so far)."""
    with app.app_context():
        stamp = listen_feed.current(db.session.connection())
        db.session.commit()
    stream = feed_stream(app.extensions["sillon"]["progress_store"], stamp.topic, stamp.version, heartbeat=0.2)
    assert next(stream).startswith("retry:")  # subscribed from here on
    return stream, stamp.version


def next_event(stream, timeout=30):
    """The next `listens` event's data (heartbeats every 0.2 s keep this loop turning)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = next(stream)
        if text.startswith("id:"):
            lines = dict(line.split(": ", 1) for line in text.strip().splitlines())
            assert lines["event"] == "listens"
            data = json.loads(lines["data"])
            assert int(lines["id"]) == data["version"]
            return data
    raise AssertionError("no event")


def latest(client):
    response = client.get("/journal/latest")
    assert response.status_code == 200
    return int(response.headers["X-Listen-Feed-Version"]), response.get_data(as_text=True)


def test_listens_from_every_source_move_the_journal(new_app, fm):
    app = new_app(API_TOKEN=TOKEN)
    client = app.test_client()
    stream, shown = open_feed(app)

    # A scrobble.
    assert client.post("/1/submit-listens", data=single(NOW - 900, "Massive Attack", "Teardrop"),
                       headers=AUTH).status_code == 200
    event = next_event(stream)
    assert event["version"] > shown and (event["imported"], event["source"]) == (1, "listenbrainz_api")
    version, html = latest(client)
    assert version >= event["version"] and "Teardrop" in html  # the event came after the commit
    shown = event["version"]

    # Playing now: shown in the banner, and an event too.
    assert client.post("/1/submit-listens", headers=AUTH, data=json.dumps({"listen_type": "playing_now", "payload": [
        {"track_metadata": {"artist_name": "Portishead", "track_name": "Roads"}}]})).status_code == 200
    event = next_event(stream)
    assert event["version"] > shown and event["now_playing"] is True
    version, html = latest(client)
    assert 'id="now-playing"' in html and "Roads" in html and version >= event["version"]
    shown = event["version"]

    # An upload.
    csv = "Björk,Homogenic,Jóga,09 Jun 2008 17:16\n".encode()
    job_id = upload(client, ("scrobbles.csv", csv)).get_json()["job_id"]
    assert wait_for_job(app, job_id)["status"] == "completed"
    event = next_event(stream)
    assert event["version"] > shown and event["imported"] == 1 and event["source"] == "lastfm_csv"
    assert "Jóga" in latest(client)[1]
    shown = event["version"]

    # The live tracker.
    fm.add_listens("rj", [{"uts": NOW - 300, "artist": "Tracked Artist", "title": "Tracked Song", "album": "A"}])
    started = client.post("/api/v1/services/tracker/start")
    assert started.status_code == 202
    try:
        event = next_event(stream)
        assert event["version"] > shown and event["source"] == "lastfm" and event["imported"] == 1
        assert "Tracked Song" in latest(client)[1]
    finally:
        client.post("/api/v1/services/tracker/stop")
        app.extensions["sillon"]["runner"].join(started.get_json()["job_id"], 10)
    stream.close()


def test_nothing_new_sends_nothing(tmp_path, migrated_template):
    app = make_app(tmp_path / "quiet", migrated_template, environ={"API_TOKEN": TOKEN})
    client = app.test_client()
    assert client.post("/1/submit-listens", data=single(NOW - 60, "A", "B"), headers=AUTH).status_code == 200
    stream, shown = open_feed(app)
    assert client.post("/1/submit-listens", data=single(NOW - 60, "A", "B"), headers=AUTH).status_code == 200  # again
    assert client.post("/1/submit-listens", data=single(NOW - 30, "A", "C"), headers=AUTH).status_code == 200
    event = next_event(stream)  # the first event is the new listen's, not the repeat's
    assert event["imported"] == 1
    assert "C" in latest(client)[1]
    stream.close()


def test_only_the_first_page_without_filters_follows(tmp_path, migrated_template):
    app = make_app(tmp_path / "pages", migrated_template, environ={"API_TOKEN": TOKEN})
    client = app.test_client()
    backlog = [{"listened_at": NOW - 100_000 + i * 300, "track_metadata": {"artist_name": f"Artist {i % 3}",
                                                                           "track_name": f"Song {i}"}} for i in range(150)]
    assert client.post("/1/submit-listens", headers=AUTH,
                       data=json.dumps({"listen_type": "import", "payload": backlog})).status_code == 200
    first = client.get("/journal").get_data(as_text=True)
    assert 'id="journal-live"' in first and "js/journal.js" in first
    for path in ("/journal?page=2", "/journal?artist=artist%201", "/journal?from=2020-01-01"):
        page = client.get(path).get_data(as_text=True)
        assert 'id="journal-live"' not in page and "js/journal.js" not in page, path


class StreamReader:
    """One journal event stream read from a real server in a thread, on a plain socket (so closing
    it from the test's thread is immediate). Each event is one chunk, so its lines arrive whole."""

    def __init__(self, url, after=0):
        host, port = url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.sock.sendall(f"GET /journal/events?after={after} HTTP/1.1\r\nHost: {host}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.version = after
        self.head = b""
        self.connected = threading.Event()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buffer = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    line = line.strip()
                    if line.startswith(b"HTTP/1.1 "):
                        self.head = line
                    elif line.startswith(b"retry:"):
                        self.connected.set()
                    elif line.startswith(b"id: "):
                        with self.changed:
                            self.version = max(self.version, int(line[4:]))
                            self.changed.notify_all()
        except OSError:
            pass

    def wait_for(self, version, timeout=30):
        with self.changed:
            return self.changed.wait_for(lambda: self.version >= version, timeout)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def feed_version(app):
    with app.app_context():
        try:
            return listen_feed.current(db.session.connection()).version
        finally:
            db.session.commit()
            db.session.remove()


def test_streams_on_a_real_server_hold_no_database_connection(server_factory, migrated_template):
    server = server_factory(env={"API_TOKEN": TOKEN})
    readers = [StreamReader(server.url) for _ in range(20)]
    try:
        assert all(r.connected.wait(20) for r in readers)
        assert all(r.head == b"HTTP/1.1 200 OK" for r in readers)
        process = requests.get(server.url + "/api/v1/health", timeout=60).json()["process"]
        assert process["db_connections_checked_out"] == 0  # 20 journals waiting, none holding one
        assert process["store_subscriptions"] == 20  # fanned out from the process's one watcher
        assert requests.post(server.url + "/1/submit-listens", data=single(NOW - 60, "Air", "La femme d'argent"),
                             headers=AUTH, timeout=60).status_code == 200
        app = make_app(server_factory.instance, migrated_template)
        target = feed_version(app)
        assert all(r.wait_for(target) for r in readers), [r.version for r in readers]
    finally:
        for r in readers:
            r.close()


def test_redis_store_across_two_workers(server_factory, migrated_template):
    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()  # under CI Redis runs: never a skip
    env = {"API_TOKEN": TOKEN, "PROGRESS_STORE": "redis", "REDIS_URL": REDIS_URL}
    server = server_factory(workers=2, env=env)
    pids = set()
    for _ in range(400):  # which worker accepts is the kernel's choice: ask until both have answered
        pids.add(requests.get(server.url + "/api/v1/health", timeout=60).json()["process"]["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2  # both workers answer
    readers = [StreamReader(server.url) for _ in range(10)]
    try:
        assert all(r.connected.wait(20) for r in readers)
        # Written by a process that serves none of the streams: they can only hear of it through Redis.
        outside = make_app(server_factory.instance, migrated_template, environ=env)
        with outside.app_context():
            try:
                outcome, _ = scrobbles.save_listens(
                    [scrobbles.Scrobble(NOW - 500, "Outside Artist", "Outside Song")],
                    store=outside.extensions["sillon"]["progress_store"])
            finally:
                db.session.remove()
        assert outcome.imported == 1
        assert all(r.wait_for(outcome.feed.version) for r in readers)
        # Submissions answered by either worker reach every stream.
        for i in range(6):
            assert requests.post(server.url + "/1/submit-listens", data=single(NOW - 400 + i, "W", f"S{i}"),
                                 headers=AUTH, timeout=60).status_code == 200
        target = feed_version(outside)
        assert all(r.wait_for(target) for r in readers)
        page = requests.get(server.url + "/journal/latest", timeout=60)
        assert int(page.headers["X-Listen-Feed-Version"]) == target and "S5" in page.text
    finally:
        for r in readers:
            r.close()


def test_an_import_of_many_listens_is_in_the_jobs_history(tmp_path, migrated_template):
    app = make_app(tmp_path / "jobs", migrated_template, environ={"API_TOKEN": TOKEN})
    client = app.test_client()
    payload = [{"listened_at": NOW - 5000 + i * 200, "track_metadata": {
        "artist_name": "A", "track_name": f"T{i}", "additional_info": {"submission_client": "multi-scrobbler",
                                                                       "submission_client_version": "0.9"}}}
               for i in range(12)]
    assert client.post("/1/submit-listens", headers=AUTH,
                       data=json.dumps({"listen_type": "import", "payload": payload})).status_code == 200
    page = client.get("/jobs").get_data(as_text=True)
    assert "Listens received (ListenBrainz API)" in page
    job = client.get("/api/v1/jobs").get_json()["items"][0]
    assert job["message"] == "Received 12 listens from multi-scrobbler 0.9: 12 new."
    progress = client.get(f"/progress/{job['id']}").get_data(as_text=True)
    assert "Received 12 listens from multi-scrobbler 0.9" in progress and "Rebuilt" not in progress
    assert client.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "completed"
