"""Enrichment (job kind `enrich`), end to end against the Spotify, Last.fm and OpenAI emulators.

The app's REAL spotipy, pylast and openai clients talk to local emulators (tests/emulators/) through
SPOTIFY_API_URL/SPOTIFY_TOKEN_URL, LASTFM_API_URL and AI_API_URL; nothing is mocked. Albums come from
every source: a Discogs sync (the Discogs emulator), a Last.fm CSV upload, and a Last.fm history import.
Jobs run in threads of this process; `wait_for_job` joins them.
"""
from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from markupsafe import escape

from tests.conftest import FIXTURES, make_app, upload, wait_for_job
from tests.emulators.discogs import DiscogsEmulator
from tests.emulators.lastfm import LastfmEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.spotify import SpotifyEmulator

ENRICH = "/api/v1/services/ai/enrich-all"
LANGUAGE = "/api/v1/services/ai/language"
SEARCH = "/v1/search"
CHAT = "/v1/chat/completions"
SP_IMG = "https://i.scdn.co/image/"
FM_IMG = "https://lastfm.freetls.fastly.net/i/u/300x300/"

# (artist, title): what each source holds. Discogs items first (owned), then the CSV upload's albums
# (tests/fixtures/lastfm_simple.csv), then the Last.fm history import's.
DISCOGS = [  # release id, artist, title, year, Discogs cover
    (9001, "Miles Davis", "Kind of Blue", 1959, None),
    (9002, "John Coltrane", "Blue Train", 1957, "blue-train.jpg"),
    (9003, "Obscure Band", "Private Press", 1971, None),
    (9004, "Nobody Knows", "Unknown Demo", 1999, None),
]
CSV_ALBUMS = [("Radiohead", "OK Computer"), ("Björk", "Homogenic"), ("Nick Cave & The Bad Seeds", "Murder Ballads")]
LASTFM_ALBUM = ("Massive Attack", "Mezzanine")
ALL_ALBUMS = [(a, t) for _, a, t, _, _ in DISCOGS] + CSV_ALBUMS + [LASTFM_ALBUM]
# On Spotify (album image, artist image); the others are not on Spotify.
ON_SPOTIFY = {
    ("Miles Davis", "Kind of Blue"): ("kind-of-blue", "miles"),
    ("John Coltrane", "Blue Train"): ("blue-train", "coltrane"),
    ("Radiohead", "OK Computer"): ("ok-computer", "radiohead"),
    ("Björk", "Homogenic"): ("homogenic", "bjork"),
    ("Massive Attack", "Mezzanine"): ("mezzanine", "massive"),
}
# Last.fm knows a cover for these (only they lack one once Spotify has run).
ON_LASTFM = {("Obscure Band", "Private Press"): "private-press", ("Nick Cave & The Bad Seeds", "Murder Ballads"): "murder"}
NOWHERE = ("Nobody Knows", "Unknown Demo")


@pytest.fixture
def emus():
    with DiscogsEmulator() as dc, SpotifyEmulator() as sp, OpenAIEmulator() as oa, LastfmEmulator() as fm:
        for release_id, artist, title, year, cover in DISCOGS:
            dc.add_item(release_id, title=title, artists=[artist], year=year,
                        cover_image=f"{dc.image_base}/{cover}" if cover else "")
        for (artist, title), (album_img, artist_img) in ON_SPOTIFY.items():
            sp.add_artist(artist, SP_IMG + artist_img)
            sp.add_album(artist, title, SP_IMG + album_img)
        for (artist, title), img in ON_LASTFM.items():
            fm.add_album(artist, title, FM_IMG + img + ".jpg")
        fm.add_listens("rj", [{"uts": 1_600_000_000, "artist": LASTFM_ALBUM[0], "title": "Teardrop",
                               "album": LASTFM_ALBUM[1], "image_url": FM_IMG + "mezzanine-listen.jpg"}])
        yield type("Emus", (), {"dc": dc, "sp": sp, "oa": oa, "fm": fm})


def full_environ(e, **extra):
    environ = {
        "DISCOGS_API_URL": e.dc.url, "DISCOGS_TOKEN": "test-token", "DISCOGS_RETRY_BASE_SECONDS": 0.01,
        "SPOTIFY_CLIENT_ID": "test-id", "SPOTIFY_CLIENT_SECRET": "test-secret",
        "SPOTIFY_API_URL": e.sp.api_prefix, "SPOTIFY_TOKEN_URL": e.sp.token_url,
        "AI_API_URL": e.oa.base_url, "AI_API_KEY": "test-ai-key", "AI_MODEL": "tiny",
        "LASTFM_API_URL": e.fm.url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s", "LASTFM_USERNAME": "rj",
        "LASTFM_RETRY_BASE_SECONDS": 0.01, "LASTFM_REQUESTS_PER_SECOND": 100,
        "ENRICH_RETRY_BASE_SECONDS": 0.01,
    }
    environ.update(extra)
    return {k: v for k, v in environ.items() if v is not None}


@pytest.fixture
def new_app(tmp_path, migrated_template, emus):
    """new_app(**environ): an app whose clients talk to the emulators (None removes a setting)."""
    apps = []

    def build(name="instance", **environ):
        application = make_app(tmp_path / name, migrated_template, environ=full_environ(emus, **environ))
        apps.append(application)
        return application

    yield build
    for application in apps:
        end_jobs(application)
        with application.app_context():
            from modules.db import db
            db.engine.dispose()


def end_jobs(app):
    from modules.db import db
    from modules.models import Job

    with app.app_context():
        active = db.session.execute(sa.select(Job.id).where(Job.active_kind.isnot(None))).scalars().all()
        db.session.remove()
    client = app.test_client()
    for job_id in active:
        client.post(f"/api/v1/jobs/{job_id}/cancel")
    for job_id in list(app.extensions["sillon"]["runner"].threads):
        app.extensions["sillon"]["runner"].join(job_id, 10)


def finished(app, resp):
    assert resp.status_code == 202, resp.get_json()
    snap = wait_for_job(app, resp.get_json()["job_id"], timeout=60)
    assert snap["status"] == "completed", snap
    return snap


def fill(app, lastfm_import=True):
    """Albums from a Discogs sync, a Last.fm CSV upload and (optionally) a Last.fm history import."""
    client = app.test_client()
    assert finished(app, client.post("/api/v1/services/discogs/sync"))["result"]["added"] == len(DISCOGS)
    finished(app, upload(client, ("scrobbles.csv", (FIXTURES / "lastfm_simple.csv").read_bytes())))
    if lastfm_import:
        finished(app, client.post("/api/v1/services/lastfm/import-history"))


def enrich(app, **query):
    return finished(app, app.test_client().post(ENRICH, query_string=query))


def albums(app):
    """{(artist, title): album fields}."""
    from modules.db import db
    from modules.models import Album, Artist

    with app.app_context():
        rows = db.session.execute(sa.select(Album, Artist).join(Artist, Artist.id == Album.artist_id)).all()
        out = {(artist.name, album.title): {
            "id": album.id, "image_url": album.image_url, "image_source": album.image_source,
            "spotify_id": album.spotify_id, "spotify_url": album.spotify_url, "description": album.description,
            "description_model": album.description_model, "description_language": album.description_language,
            "description_edited": album.description_edited, "artist_image": artist.image_url,
            "artist_spotify_url": artist.spotify_url} for album, artist in rows}
        db.session.remove()
    return out


def substeps(snap):
    step = next(s for s in snap["steps"] if s["id"] == "enrich")
    return {s["id"]: s for s in step["substeps"]}


def reset(e):
    for emu in (e.sp, e.oa, e.fm, e.dc):
        emu.reset_counters()


def searched_titles(e):
    return [r.query["q"] for r in e.sp.requests if r.path == SEARCH]


# ------------------------------------------------------------------------------------- every provider on
def test_every_provider_enriches_albums_from_every_source(new_app, emus):
    app = new_app()
    client = app.test_client()
    assert client.post(LANGUAGE, query_string={"language": "Français"}).get_json() == {"language": "Français"}
    fill(app)
    before = albums(app)
    assert set(before) == set(ALL_ALBUMS)
    reset(emus)
    from tests.test_lastfm_import import record_snapshots, step_of

    snaps = record_snapshots(app)
    snap = enrich(app)
    result = snap["result"]
    assert result["albums"] == len(ALL_ALBUMS) and result["errors"] == 0
    assert result["providers"] == {"spotify": "on", "lastfm": "on", "ai": "on"}
    for s in snaps:  # the enrich step's "i/N albums" is the current count (set just after it)
        if step_of(s, "enrich")["status"] == "in_progress":
            shown = int(re.fullmatch(rf"(\d+)/{len(ALL_ALBUMS)} albums", step_of(s, "enrich")["message"]).group(1))
            assert s["done"] - 1 <= shown <= s["done"], (step_of(s, "enrich")["message"], s["done"])
    assert {k: s["status"] for k, s in substeps(snap).items()} == {
        "spotify": "completed", "lastfm": "completed", "ai": "completed"}
    assert snap["redirect_url"] == "/collection"

    after = albums(app)
    for key, (album_img, artist_img) in ON_SPOTIFY.items():
        a = after[key]
        assert a["spotify_id"] and a["spotify_url"].startswith("https://open.spotify.com/album/"), key
        assert a["artist_image"] == SP_IMG + artist_img, key
        assert a["artist_spotify_url"].startswith("https://open.spotify.com/artist/"), key
        if before[key]["image_url"] is None:
            assert (a["image_url"], a["image_source"]) == (SP_IMG + album_img, "spotify"), key
        else:  # an image already there (Discogs cover, Last.fm listen) is kept
            assert a["image_url"] == before[key]["image_url"], key
    assert after[("John Coltrane", "Blue Train")]["image_source"] == "discogs"
    assert after[LASTFM_ALBUM]["image_url"] == FM_IMG + "mezzanine-listen.jpg"
    for key, img in ON_LASTFM.items():  # Spotify had none: Last.fm's album.getInfo cover
        assert after[key]["spotify_id"] == "", key
        assert after[key]["image_url"] == FM_IMG + img + ".jpg" and after[key]["image_source"] == "lastfm", key
    assert after[NOWHERE]["spotify_id"] == "" and after[NOWHERE]["image_url"] is None
    assert after[NOWHERE]["image_source"] == "none"

    # AI: one description per album, in the chosen language, stored with the model that wrote it.
    completions = emus.oa.completions
    assert len(completions) == len(ALL_ALBUMS)
    assert {c["language"] for c in completions} == {"French"}
    assert {c["album"] for c in completions} == {t for _, t in ALL_ALBUMS}
    assert {c["model"] for c in completions} == {"tiny"}
    for key, a in after.items():
        assert a["description"].startswith(f"Description of {key[1]} by"), key
        assert (a["description_model"], a["description_language"], a["description_edited"]) == (
            "tiny", "Français", False), key
    kob_prompt = next(c["prompt"] for c in completions if c["album"] == "Kind of Blue")
    assert "Miles Davis (1959)" in kob_prompt  # the Discogs year goes into the prompt

    # The album page: description, image, Spotify link and the person's listens.
    ok = after[("Radiohead", "OK Computer")]
    html = client.get(f"/albums/{ok['id']}").get_data(as_text=True)
    assert 'id="album-description"' in html and str(escape(ok["description"].split("\n\n")[0])) in html
    assert f'src="{SP_IMG}ok-computer"' in html
    assert f'id="spotify-link" href="{ok["spotify_url"]}"' in html
    assert 'data-count="2"' in html and "2008-06-09 17:16" in html  # the CSV's two listens
    assert "Written by tiny in Français" in html

    # The collection API carries what enrichment gave.
    items = client.get("/api/v1/collection/albums", query_string={"page": 1, "page_size": 20}).get_json()["items"]
    kob = next(i for i in items if i["title"] == "Kind of Blue")
    assert kob["image_url"] == SP_IMG + "kind-of-blue" and kob["spotify_url"] and kob["has_description"]


def test_lastfm_is_only_asked_for_albums_spotify_left_without_a_cover(new_app, emus):
    app = new_app()
    fill(app)
    reset(emus)
    enrich(app)
    asked = sorted((r.params.get("artist"), r.params.get("album")) for r in emus.fm.requests
                   if r.method.casefold() == "album.getinfo")
    assert asked == sorted([*ON_LASTFM, NOWHERE])


# ------------------------------------------------------------------------------------------ provider off
OFF = {
    "spotify": {"SPOTIFY_CLIENT_ID": None, "SPOTIFY_CLIENT_SECRET": None},
    "lastfm": {"LASTFM_API_KEY": None, "LASTFM_API_SECRET": None, "LASTFM_USERNAME": None},
    "ai": {"AI_API_URL": None, "AI_API_KEY": None, "AI_MODEL": None},
}


@pytest.mark.parametrize("provider", list(OFF))
def test_a_provider_that_is_not_configured_is_skipped_and_the_others_run(new_app, emus, provider):
    app = new_app(**OFF[provider])
    fill(app, lastfm_import=False)
    reset(emus)
    snap = enrich(app)
    subs = substeps(snap)
    assert subs[provider]["status"] == "skipped"
    for name in OFF[provider]:
        assert name in subs[provider]["message"], subs[provider]
    assert snap["result"]["providers"][provider].startswith("off:")
    assert "not configured" in snap["message"]
    others = [p for p in OFF if p != provider]
    assert all(subs[p]["status"] == "completed" for p in others), subs
    after = albums(app)
    spotify_calls, lastfm_calls, ai_calls = emus.sp.count(), emus.fm.count("album.getInfo"), emus.oa.count()
    if provider == "spotify":
        assert spotify_calls == 0
        assert after[("Radiohead", "OK Computer")]["spotify_id"] is None
    else:
        assert after[("Radiohead", "OK Computer")]["spotify_url"]
    if provider == "lastfm":
        assert lastfm_calls == 0
        assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_url"] is None
    else:
        assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_url"] == FM_IMG + "murder.jpg"
    if provider == "ai":
        assert ai_calls == 0 and all(a["description"] is None for a in after.values())
    else:
        assert all(a["description"] for a in after.values())


def test_with_no_provider_configured_nothing_is_asked(new_app, emus):
    app = new_app(**OFF["spotify"], **OFF["lastfm"], **OFF["ai"])
    fill(app, lastfm_import=False)
    snap = enrich(app)
    assert {s["status"] for s in substeps(snap).values()} == {"skipped"}
    assert snap["result"]["albums"] == 0
    assert emus.sp.count() == emus.oa.count() == 0


# ------------------------------------------------------------------------------------ provider failing
def test_spotify_failing_for_one_album_counts_an_error_and_goes_on(new_app, emus):
    app = new_app(ENRICH_MAX_ATTEMPTS=2)
    fill(app, lastfm_import=False)
    reset(emus)
    emus.sp.fail_next(2, status=500, path_prefix=SEARCH)  # the first album's search, both tries
    snap = enrich(app)
    assert snap["result"]["errors"] == 1 and snap["counters"]["errors"] == 1
    assert substeps(snap)["spotify"]["status"] == "completed"
    sample = snap["errors_sample"][0]
    assert "Spotify" in sample["message"] and "Kind of Blue" in str(sample), sample
    after = albums(app)
    assert after[("Miles Davis", "Kind of Blue")]["spotify_id"] is None  # not looked up: asked again next run
    assert after[("Miles Davis", "Kind of Blue")]["description"]  # the other providers still ran for it
    for key in [("John Coltrane", "Blue Train"), ("Radiohead", "OK Computer"), ("Björk", "Homogenic")]:
        assert after[key]["spotify_url"], key

    reset(emus)
    snap = enrich(app)
    assert snap["result"]["errors"] == 0
    assert searched_titles(emus) == ['album:"Kind of Blue" artist:"Miles Davis"']
    assert albums(app)[("Miles Davis", "Kind of Blue")]["spotify_url"]


def test_a_failed_artist_lookup_is_asked_again_next_run(new_app, emus):
    app = new_app(ENRICH_MAX_ATTEMPTS=2)
    fill(app, lastfm_import=False)
    reset(emus)
    emus.sp.fail_next(2, status=500, path_prefix="/v1/artists/")  # the first artist lookup, both tries
    snap = enrich(app)
    assert snap["result"]["errors"] == 1
    assert albums(app)[("Miles Davis", "Kind of Blue")]["artist_image"] is None
    enrich(app)
    assert albums(app)[("Miles Davis", "Kind of Blue")]["artist_image"] == SP_IMG + "miles"


def test_wrong_spotify_credentials_error_the_substep_and_the_others_continue(new_app, emus):
    app = new_app(SPOTIFY_CLIENT_SECRET="wrong-secret")
    fill(app, lastfm_import=False)
    reset(emus)
    snap = enrich(app)
    subs = substeps(snap)
    assert subs["spotify"]["status"] == "error"
    assert "SPOTIFY_CLIENT_ID" in subs["spotify"]["message"] and "SPOTIFY_CLIENT_SECRET" in subs["spotify"]["message"]
    assert subs["lastfm"]["status"] == subs["ai"]["status"] == "completed"
    assert snap["result"]["providers"]["spotify"].startswith("failed:")
    assert emus.sp.count("/api/token") == 1 and emus.sp.count("/v1/") == 0  # refused once, then not asked again
    after = albums(app)
    assert all(a["spotify_id"] is None for a in after.values())  # nothing marked as looked up
    assert all(a["description"] for a in after.values())
    assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_source"] == "lastfm"
    # Once the credentials are fixed, Spotify does everything it could not.
    fixed = new_app("instance")  # the same database, with the right secret
    reset(emus)
    snap = enrich(fixed)
    assert substeps(snap)["spotify"]["status"] == "completed"
    assert len(searched_titles(emus)) == len(after) and emus.oa.count() == 0
    assert albums(fixed)[("Radiohead", "OK Computer")]["spotify_url"]


def test_an_ai_key_refused_errors_the_substep_and_the_others_continue(new_app, emus):
    app = new_app(AI_API_KEY="wrong-key")
    fill(app, lastfm_import=False)
    reset(emus)
    snap = enrich(app)
    subs = substeps(snap)
    assert subs["ai"]["status"] == "error" and "AI_API_KEY" in subs["ai"]["message"]
    assert subs["spotify"]["status"] == subs["lastfm"]["status"] == "completed"
    assert emus.oa.count(CHAT) == 1  # refused once, then not asked again
    after = albums(app)
    assert all(a["description"] is None for a in after.values())
    assert after[("Radiohead", "OK Computer")]["spotify_url"]
    assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_source"] == "lastfm"


def test_a_lastfm_key_refused_errors_the_substep_and_the_others_continue(new_app, emus):
    app = new_app(LASTFM_API_KEY="wrong-key")
    fill(app, lastfm_import=False)
    reset(emus)
    snap = enrich(app)
    subs = substeps(snap)
    assert subs["lastfm"]["status"] == "error" and "LASTFM_API_KEY" in subs["lastfm"]["message"]
    assert subs["spotify"]["status"] == subs["ai"]["status"] == "completed"
    assert emus.fm.count("album.getInfo") == 1  # refused once, then not asked again
    after = albums(app)
    assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_url"] is None
    assert after[("Nick Cave & The Bad Seeds", "Murder Ballads")]["image_source"] is None  # asked again later
    assert all(a["description"] for a in after.values())


def test_an_album_the_ai_endpoint_keeps_failing_for_counts_an_error(new_app, emus):
    app = new_app(ENRICH_MAX_ATTEMPTS=2)
    fill(app, lastfm_import=False)
    reset(emus)
    emus.oa.fail_next(2, status=500)
    snap = enrich(app)
    assert snap["result"]["errors"] == 1 and substeps(snap)["ai"]["status"] == "completed"
    described = [a for a in albums(app).values() if a["description"]]
    assert len(described) == len(DISCOGS) + len(CSV_ALBUMS) - 1


# --------------------------------------------------------------------------------------- rate-limited
def test_429s_are_waited_out_from_retry_after(new_app, emus):
    app = new_app()
    client = app.test_client()
    fill(app, lastfm_import=False)
    reset(emus)
    emus.sp.fail_next(1, status=429, retry_after=1, path_prefix=SEARCH)
    emus.oa.fail_next(1, status=429, retry_after=1, path_prefix=CHAT)
    resp = client.post(ENRICH)
    assert resp.status_code == 202
    job_id = resp.get_json()["job_id"]
    messages, deadline = set(), time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
        messages.add(snap["message"])
        if snap["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    waiting = [m for m in messages if m and "waiting" in m.lower()]
    assert any("Spotify" in m for m in waiting) and any("AI" in m for m in waiting), messages
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "completed" and snap["result"]["errors"] == 0
    assert snap["counters"]["retries"] == 2
    searches = [r.time for r in emus.sp.requests if r.path == SEARCH]
    assert searches[1] - searches[0] >= 0.9  # Retry-After: 1 was honoured
    after = albums(app)
    assert all(a["description"] for a in after.values())
    assert all(a["spotify_id"] is not None for a in after.values())
    assert all(after[k]["spotify_url"] for k in ON_SPOTIFY if k in after)


def test_running_enrichment_answers_409(new_app, emus):
    app = new_app()
    fill(app, lastfm_import=False)
    emus.oa.latency = 0.2
    client = app.test_client()
    first = client.post(ENRICH)
    assert first.status_code == 202
    second = client.post(ENRICH)
    assert second.status_code == 409 and second.get_json()["job_id"] == first.get_json()["job_id"]
    emus.oa.latency = 0
    wait_for_job(app, first.get_json()["job_id"])


# ------------------------------------------------------------------------------- what was done stays done
def test_a_second_run_only_works_on_what_is_still_missing(new_app, emus):
    app = new_app()
    fill(app)
    enrich(app)
    done = albums(app)
    reset(emus)

    snap = enrich(app)
    assert snap["result"]["albums"] == 0
    assert emus.sp.count(SEARCH) == 0  # also for the albums Spotify did not find
    assert emus.sp.count("/v1/artists") == 0
    assert emus.oa.count() == 0
    assert emus.fm.count("album.getInfo") == 0  # nor the one Last.fm had no cover for
    assert albums(app) == done

    # A new album (a later upload) is the only one worked on.
    finished(app, upload(app.test_client(), ("more.csv", b"Portishead,Dummy,Roads,12 Jun 2008 00:03\n")))
    emus.sp.add_album("Portishead", "Dummy", SP_IMG + "dummy")
    reset(emus)
    snap = enrich(app)
    assert snap["result"]["albums"] == 1
    assert searched_titles(emus) == ['album:"Dummy" artist:"Portishead"']
    assert [c["album"] for c in emus.oa.completions] == ["Dummy"]
    assert emus.fm.count("album.getInfo") <= 1
    assert albums(app)[("Portishead", "Dummy")]["image_url"] == SP_IMG + "dummy"


def test_an_edited_description_is_never_overwritten(new_app, emus):
    app = new_app()
    client = app.test_client()
    fill(app, lastfm_import=False)
    kob = albums(app)[("Miles Davis", "Kind of Blue")]["id"]
    resp = client.put(f"/api/v1/albums/{kob}/description", json={"description": "Mine"})
    assert resp.status_code == 200 and resp.get_json()["description_edited"] is True

    enrich(app)
    after = albums(app)
    assert after[("Miles Davis", "Kind of Blue")]["description"] == "Mine"
    assert after[("Miles Davis", "Kind of Blue")]["description_model"] is None
    assert "Kind of Blue" not in {c["album"] for c in emus.oa.completions}  # not even asked
    html = client.get(f"/albums/{kob}").get_data(as_text=True)
    assert "Mine" in html and "Written by you" in html

    # An AI description edited later stays the person's too.
    ok = after[("Radiohead", "OK Computer")]["id"]
    assert after[("Radiohead", "OK Computer")]["description_model"] == "tiny"
    client.post(f"/api/v1/albums/{ok}/description", json={"description": "Also mine"})
    finished(app, upload(client, ("more.csv", b"Portishead,Dummy,Roads,12 Jun 2008 00:03\n")))
    reset(emus)
    enrich(app)
    after = albums(app)
    assert after[("Radiohead", "OK Computer")]["description"] == "Also mine"
    assert after[("Miles Davis", "Kind of Blue")]["description"] == "Mine"
    assert [c["album"] for c in emus.oa.completions] == ["Dummy"]
    assert "Written by you" in client.get(f"/albums/{ok}").get_data(as_text=True)


def test_a_description_written_while_the_model_writes_wins(new_app, emus):
    app = new_app()
    fill(app, lastfm_import=False)
    kob = albums(app)[("Miles Davis", "Kind of Blue")]["id"]
    writer = app.test_client()

    def reply(messages, parsed):  # the person saves a description while the model is still answering
        if parsed["album"] == "Kind of Blue":
            assert writer.put(f"/api/v1/albums/{kob}/description", json={"description": "Typed meanwhile"}
                              ).status_code == 200
        return f"Generated for {parsed['album']}"

    emus.oa.reply_with(reply)
    enrich(app)
    after = albums(app)
    assert after[("Miles Davis", "Kind of Blue")]["description"] == "Typed meanwhile"
    assert after[("Miles Davis", "Kind of Blue")]["description_edited"] is True
    assert after[("Radiohead", "OK Computer")]["description"] == "Generated for OK Computer"


def test_limit_works_on_that_many_albums(new_app, emus):
    app = new_app()
    fill(app)
    reset(emus)
    snap = enrich(app, limit=3)
    assert snap["result"]["albums"] == 3
    assert emus.sp.count(SEARCH) == 3 and emus.oa.count(CHAT) == 3
    assert sum(1 for a in albums(app).values() if a["description"]) == 3
    reset(emus)
    snap = enrich(app)
    assert snap["result"]["albums"] == len(ALL_ALBUMS) - 3
    assert emus.oa.count(CHAT) == len(ALL_ALBUMS) - 3


@pytest.mark.parametrize("value", ["0", "x"])
def test_a_bad_limit_is_refused(new_app, emus, value):
    resp = new_app().test_client().post(ENRICH, query_string={"limit": value})
    assert resp.status_code == 400 and "limit" in resp.get_json()["error"]


def test_the_description_language_is_checked(new_app, emus):
    client = new_app().test_client()
    assert client.post(LANGUAGE, query_string={"language": ""}).status_code == 400
    assert client.post(LANGUAGE, json={"language": "x" * 33}).status_code == 400
    assert client.post(LANGUAGE, json={"language": "Deutsch"}).get_json() == {"language": "Deutsch"}
