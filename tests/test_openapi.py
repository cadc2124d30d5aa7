"""The OpenAPI document generated from the routes' declarations (modules/web/openapi.py) describes
every /api/v1 route, is served at /api/v1/openapi.yaml and .json, and schemathesis, generating
requests from it against the app, never gets a 5xx.

The coverage test lists every registered route (method and path) the description lacks, and every
described one the app no longer has. schemathesis runs in-process against the WSGI app (a real
database; jobs it starts really run), a bounded number of examples per operation.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import pytest
import schemathesis
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation import GenerationMode

from tests.conftest import base_environ, create_app, make_app

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_document = []


def spec():
    """The generated document, of an app built once (at collection: the operations are parameters)."""
    if not _document:
        logging.getLogger("sillon").disabled = True  # its database is not migrated: it only describes
        try:
            with tempfile.TemporaryDirectory() as folder:
                application = create_app({"ENVIRON": base_environ(Path(folder))})
                _document.append(application.extensions["sillon"]["api"].document())
                with application.app_context():
                    from modules.db import db
                    db.engine.dispose()
        finally:
            logging.getLogger("sillon").disabled = False
    return _document[0]


def flask_routes(app):
    """{(METHOD, OpenAPI path)} of every /api/v1 rule: <int:album_id> becomes {album_id}."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(method, path) for method in rule.methods & METHODS}
    return routes


def described_routes(document):
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method.upper() in METHODS}


def test_every_api_route_is_described(app):
    registered, described = flask_routes(app), described_routes(spec())
    missing = sorted(registered - described)
    stale = sorted(described - registered)
    assert not missing, ("routes missing from the OpenAPI document (register their blueprint with the Api, "
                         "declare their parameters, body and responses; see docs/api.md):\n"
                         + "\n".join(f"  {m} {p}" for m, p in missing))
    assert not stale, "described but not registered:\n" + "\n".join(f"  {m} {p}" for m, p in stale)


def test_the_coverage_check_sees_a_route_left_out(app):
    """The check above is no formality: a route the document lacks is found."""
    app.add_url_rule("/api/v1/undescribed", "undescribed", lambda: "")
    assert ("GET", "/api/v1/undescribed") in flask_routes(app) - described_routes(spec())


def resolve(document, item):
    """`item`, or what its local $ref ("#/components/...") points to."""
    if "$ref" not in item:
        return item
    for part in item["$ref"].removeprefix("#/").split("/"):
        document = document[part]
    return document


def test_the_description_is_openapi_3_and_every_operation_documents_its_answers():
    document = spec()
    assert re.fullmatch(r"3\.[01]\.\d+", document["openapi"])
    ids = []
    for path, item in document["paths"].items():
        declared = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            if method.upper() not in METHODS:
                continue
            ids.append(op["operationId"])
            assert op.get("responses"), f"{method} {path}: no responses"
            params = item.get("parameters", []) + op.get("parameters", [])
            named = {resolve(document, p)["name"] for p in params}
            assert declared <= named, f"{method} {path}: path parameters {declared - named} not described"
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_the_description_is_served(client):
    r = client.get("/api/v1/openapi.yaml")
    assert r.status_code == 200 and r.mimetype == "application/yaml"
    assert yaml.safe_load(r.data) == spec()
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json" and r.get_json() == spec()


# --------------------------------------------------------------------------- schemathesis

KEPT_PLAYLIST = 1
CONFORMANCE = [checks.status_code_conformance, checks.content_type_conformance, checks.response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, migrated_template):
    application = make_app(tmp_path_factory.mktemp("openapi") / "instance", migrated_template,
                           environ={"JOB_HEARTBEAT_SECONDS": "0.5"})
    made = application.test_client().post("/api/v1/playlists", json={
        "kind": "manual", "name": "Fuzzed", "items": [{"artist": "A", "title": "T", "duration": 200}]})
    assert made.status_code == 201 and made.get_json()["id"] == KEPT_PLAYLIST
    yield application
    _end_jobs(application)
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


def _end_jobs(application):
    from modules.db import db
    from modules.models import Job

    with application.app_context():
        active = db.session.execute(sa.select(Job.id).where(Job.active_kind.isnot(None))).scalars().all()
        db.session.remove()
    client = application.test_client()
    for job_id in active:
        client.post(f"/api/v1/jobs/{job_id}/cancel")
    runner = application.extensions["sillon"]["runner"]
    for job_id in list(runner.threads):
        runner.join(job_id, 10)


@pytest.fixture(scope="module")
def api_schema(fuzzed_app):
    """Requests come from this machine (werkzeug's test client says so; schemathesis' WSGI calls give
    no address), where, with APP_PASSWORD unset (the default), the API is open."""
    def from_this_machine(environ, start_response):
        environ["REMOTE_ADDR"] = "127.0.0.1"
        return fuzzed_app(environ, start_response)

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.yaml", from_this_machine)


def operations():
    return [pytest.param(path, method.upper(), id=f"{method.upper()} {path}")
            for path, item in spec()["paths"].items() for method in item if method.upper() in METHODS]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("path, method", operations())
def test_no_generated_request_gets_a_5xx(api_schema, path, method, mode):
    """schemathesis builds requests from the description, valid ones (positive) and ones breaking it
    (negative: wrong types, out of bounds, bodies that are no object); none may answer 5xx, and every
    answer must be described (status code, content type, JSON shape)."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    operation = api_schema[path][method]
    failures, statuses = [], set()
    # Reading and changing a playlist that exists reaches the checks of names and items, not only
    # the 404 (random ids find none); DELETE keeps random ids so the playlist stays for the others.
    fixed = {"playlist_id": KEPT_PLAYLIST} if path == "/api/v1/playlists/{playlist_id}" and method != "DELETE" else None

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call()
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.200} -> "
                            f"{response.status_code}: {response.text[:300]}")
        try:  # the answer is one the description gives: its status, content type and JSON shape
            case.validate_response(response, checks=CONFORMANCE)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis raises its failures as a group
            failures.append(f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.200} -> "
                            f"{response.status_code} not as described: {str(exc)[:500]}")

    try:
        run()
    except Unsatisfiable:  # nothing to break: no parameters, or only ones every value fits
        assert mode is GenerationMode.NEGATIVE  # a valid request always exists
        return  # every value the description allows is valid: nothing invalid to send
    assert not failures, "\n".join(failures[:5])
    if fixed and mode is GenerationMode.POSITIVE:
        assert statuses & {200}, statuses  # the kept playlist was reached


BIG = "9" * 30


@pytest.mark.parametrize("method, url, status", [
    ("get", f"/api/v1/listens?from={BIG}", 400),
    ("get", f"/api/v1/listens?to=-{BIG}", 400),
    ("get", f"/api/v1/listens?page={BIG}", 400),
    ("put", f"/api/v1/albums/{BIG}/description", 404),
    ("get", f"/albums/{BIG}", 404),
    ("post", f"/api/v1/services/tracker/interval?seconds={BIG}", 400),
    ("post", f"/api/v1/services/ai/enrich-all?limit={BIG}", 400),
    ("post", "/api/v1/diagnostics/progress-check?duration=nan", 400),
    ("post", "/api/v1/diagnostics/progress-check?rate=0", 400),
    ("put", "/api/v1/albums/2147483648/description", 404),  # past PostgreSQL's integer ids
    ("get", "/api/v1/listens?artist=%00", 400),  # PostgreSQL refuses NUL in text
    ("get", "/api/v1/jobs/%00", 400),
    ("get", "/api/v1/jobs/%00/events", 400),
    ("get", "/api/v1/jobs?kind=%00", 400),
    ("get", "/journal?artist=%00", 400),
])
def test_values_that_used_to_answer_500_are_refused_clearly(client, method, url, status):
    """Found by fuzzing: numbers too large for the database's integers, NaN durations, NUL characters."""
    r = getattr(client, method)(url)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    if url.startswith("/api/"):
        assert r.get_json()["error"]


@pytest.mark.parametrize("method, url, body", [
    ("put", "/api/v1/albums/1/description", True),
    ("post", "/api/v1/albums/1/description", [1]),
    ("put", "/api/v1/albums/1/description", {"description": 5}),
    ("post", "/api/v1/services/ai/language", ["French"]),
    ("post", "/api/v1/services/ai/language", {"language": 5}),
    ("post", "/api/v1/services/tracker/interval", [60]),
])
def test_json_bodies_of_the_wrong_shape_are_refused_clearly(client, method, url, body):
    """Found by negative fuzzing: a JSON body that is no object, or a field of the wrong type, used to
    answer 500."""
    r = getattr(client, method)(url, json=body)
    assert r.status_code == 400 and r.get_json()["error"]


@pytest.mark.parametrize("url", ["/api/v1/playlists/2147483648", "/playlists/2147483648"])
def test_playlist_ids_past_the_database_integers_are_404(client, url):
    """PostgreSQL refused such ids in its query (500); no playlist can have one."""
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code in (404, 405)


def test_jobs_limit_below_one_is_refused(client):
    """A negative LIMIT made PostgreSQL fail; SQLite took it as no limit."""
    for value in ("0", "-5", "x", "²"):
        r = client.get(f"/api/v1/jobs?limit={value}")
        assert r.status_code == 400 and "limit" in r.get_json()["error"]
    assert client.get("/api/v1/jobs?limit=9999").status_code == 200


def test_a_json_body_with_a_nul_character_is_refused(client):
    r = client.put("/api/v1/albums/1/description", json={"description": "a\x00b"})
    assert r.status_code == 400 and "NUL" in r.get_json()["error"]


def test_a_job_of_a_kind_that_ends_while_another_starts_does_not_answer_500(app):
    """start_job used to answer 500 when the running job of its kind ended between the refused insert
    and the look-up of its id (schemathesis found it on enrich-all): now it just starts."""
    import threading

    client = app.test_client()
    statuses = []

    def start():
        statuses.append(client.post("/api/v1/diagnostics/progress-check?duration=0.05&rate=100").status_code)

    for _ in range(10):
        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert set(statuses) <= {202, 409}, statuses
    runner = app.extensions["sillon"]["runner"]
    for job_id in list(runner.threads):
        runner.join(job_id, 10)


def test_the_access_answers_are_the_described_ones(tmp_path, migrated_template):
    """401 (APP_PASSWORD set, no token; or a wrong token) and 403 (no APP_PASSWORD, not this machine),
    as the description's Unauthorized and Forbidden say, with the Error shape."""
    document = spec()
    assert {"401", "403"} <= set(document["paths"]["/api/v1/jobs"]["get"]["responses"])
    token = "fake-token-for-tests-" + "x" * 20
    locked = make_app(tmp_path / "locked", migrated_template,
                      environ={"APP_PASSWORD": "fake-password-for-tests", "API_TOKEN": token}).test_client()
    refused = locked.get("/api/v1/jobs")
    assert refused.status_code == 401 and refused.get_json()["error"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert locked.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert locked.post("/api/v1/playlists", json={"kind": "manual", "name": "n"}, csrf=False,
                       headers={"Authorization": f"Bearer {token}"}).status_code == 201
    open_app = make_app(tmp_path / "open", migrated_template).test_client()
    far = open_app.get("/api/v1/jobs", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert far.status_code == 403 and far.get_json()["error"]
    assert open_app.get("/api/v1/jobs").status_code == 200
