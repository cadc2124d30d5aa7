"""The OpenAPI document of /api/v1, generated from the routes' own declarations (flask-smorest:
marshmallow schemas that both check requests and describe them), served at /api/v1/openapi.yaml
and /api/v1/openapi.json. docs/api.md says how to add a route."""
from __future__ import annotations

import threading

import flask_smorest
from apispec import BasePlugin
from flask import Response, current_app, request
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest

from . import api_errors
from .api_schemas import Error, Snapshot

DESCRIPTION = """\
The JSON API of Sillon under /api/v1: jobs and their live progress (Server-Sent Events), uploads,
listens, the collection, playlists, analytics, and the outside services (Last.fm, Discogs,
enrichment). Every error answers JSON `{"error": "<message for a person>"}`; a 409 about a job
already running adds that job's links (`job_id`, `progress_url`, `events_url`, `status_url`).
A request refused by a route's parameters names each refused field and what it must be. A blank
query value (`?limit=`) is the same as none. Any request whose path, query or form/JSON body holds
a NUL character answers 400.

Access: without APP_PASSWORD (the default) the API answers only on this machine (127.0.0.1), open;
with it, send `Authorization: Bearer <API token>` (or be signed in at /login, and send `X-CSRFToken`
on POST, PUT, PATCH and DELETE). 401 and 403 answer `{"error": ...}` too.

This document is generated from the code (modules/web/openapi.py); tests/test_openapi.py checks that
every registered /api/v1 route is in it, and fuzzes every operation with schemathesis.
"""

SECURITY_SCHEMES = {
    "apiToken": {"type": "http", "scheme": "bearer",
                 "description": "The API token (setting API_TOKEN, or `flask token create`); needs no CSRF token"},
    "session": {"type": "apiKey", "in": "cookie", "name": "sillon_session",
                "description": "A browser signed in at /login; its requests that change something send X-CSRFToken"},
}

# The gate's answers (modules/web/access.py), which any operation can give; and a refused parameter.
ACCESS_RESPONSES = {
    "Unauthorized": ("401", "APP_PASSWORD is set and the request is neither signed in nor sends the API token; or "
                            "the API token sent is not valid (even without APP_PASSWORD). Answers WWW-Authenticate Bearer."),
    "Forbidden": ("403", "APP_PASSWORD is not set and the request does not come from this machine (127.0.0.1)"),
    "BadRequest": ("400", "A parameter or the body was refused: the message names each refused field and what it "
                          "must be; or the outside service the route needs is not configured (the message names "
                          "the missing settings). Or, as for Refused, a NUL character or a missing CSRF token"),
    "Refused": ("400", "The path or a parameter holds a NUL character; or a request that changes something came "
                       "with a browser's session cookie (or from a browser, or with APP_PASSWORD set) without a valid "
                       "CSRF token in X-CSRFToken and without the API token"),
}


class Parser(FlaskParser):
    """Refused parameters answer 400, as they always have here (webargs' default is 422)."""

    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req, schema):
        # A body the schema requires (Body.body_required) that is not JSON is refused like one that
        # is no object, instead of being read as {}.
        if getattr(schema, "body_required", False) and not req.is_json:
            return None
        try:
            return super().load_json(req, schema)
        except BadRequest:  # broken JSON: refused with the schema's own message, as a body that is no object
            return None


class Blueprint(flask_smorest.Blueprint):
    """A blueprint of /api/v1 routes; a JSON body may also come as a form (location json_or_form)."""

    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {**flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
                                             "json_or_form": "application/json"}

    def register_views_in_doc(self, api, app, spec, *, name, parameters):
        # Described when the document is first asked for, not with every app: describing costs
        # more than building the rest of the app, and the tests build hundreds of apps.
        api.later.append(lambda: super(Blueprint, self).register_views_in_doc(
            api, app, spec, name=name, parameters=parameters))


class Api(flask_smorest.Api):
    """flask-smorest's Api with Sillon's error shape, and the document kept once built."""

    ERROR_SCHEMA = Error
    DEFAULT_ERROR_RESPONSE_NAME = None  # each route lists the errors it gives

    def handle_http_exception(self, error):
        """Parameters refused by a schema answer {"error": ...}; every other HTTP error answers as
        it did before flask-smorest (the app's own 404 and 413 handlers, werkzeug's pages)."""
        data = getattr(error, "data", None)
        if isinstance(data, dict) and "messages" in data and request.path.startswith("/api/"):
            return api_errors.refusal(error)
        return error

    def __init__(self, *args, **kwargs):
        self.later = []  # descriptions to add to the spec before it is first given out
        self.built = None
        self.lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def document(self):
        """The OpenAPI document as a dict, built on first use."""
        with self.lock:
            if self.built is None:
                for describe in self.later:
                    describe()
                spec = self.spec.to_dict()
                self.built = {"openapi": spec.pop("openapi"), "info": spec.pop("info"), **spec}
        return self.built


class AccessAnswers(BasePlugin):
    """Every operation gets the gate's answers (401, 403, and 400 for NUL characters or a missing
    CSRF token) and an operationId from its view's name (listJobs, putAlbumDescription)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.get(400) == "BAD_REQUEST":  # flask-smorest's name for a refused parameter
                responses[400] = "BadRequest"
            for name in ("Unauthorized", "Forbidden", "Refused"):
                status = ACCESS_RESPONSES[name][0]
                if status not in responses and int(status) not in responses:
                    responses[status] = name
            if rule is not None and "operationId" not in operation:
                words = rule.endpoint.rsplit(".", 1)[-1].split("_")
                if len(operations) > 1:
                    words.insert(0, method)
                operation["operationId"] = words[0] + "".join(w.capitalize() for w in words[1:])


def _describe_progress_routes(app, spec):
    """GET /api/v1/jobs/{job_id} and its event stream: the progress system's own routes, described
    here by hand so they stay described wherever (by whichever blueprint) they are served."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    not_found = {"description": "No such job", "content": {"application/json": {"schema": "Error"}}}
    spec.path(rule=rules["/api/v1/jobs/<job_id>"], operations={"get": {
        "operationId": "jobStatus", "tags": ["progress"],
        "summary": "A job's progress snapshot (the same data the event stream sends)",
        "responses": {"200": {"description": "Snapshot", "content": {"application/json": {"schema": "Snapshot"}}},
                      "404": not_found}}}, parameters=[])
    spec.path(rule=rules["/api/v1/jobs/<job_id>/events"], parameters=[
        {"name": "last_event_id", "in": "query", "description": "Like the Last-Event-ID header",
         "schema": {"type": "integer"}},
        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}], operations={"get": {
            "operationId": "jobEvents", "tags": ["progress"], "summary": "Server-Sent Events of a job until it ends",
            "description": "`retry:` first, then a `progress` event with the snapshot (id = version), one per "
                           "change, `: heartbeat` comments while idle, and a final `done` event {status, "
                           "redirect_url, message, version} before the stream closes.",
            "responses": {"200": {"description": "text/event-stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          "404": not_found}}})


def make_api(app):
    """The Api of this app, before any API blueprint is registered with it."""
    app.config.update(API_TITLE="Sillon API", API_VERSION="1", OPENAPI_VERSION="3.0.3", API_SPEC_OPTIONS={
        "info": {"description": DESCRIPTION}, "servers": [{"url": "/"}],
        "security": [{}, {"apiToken": []}, {"session": []}]})
    api = Api(app, spec_kwargs={"extra_plugins": [AccessAnswers()]})
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    for name, (_status, description) in ACCESS_RESPONSES.items():
        api.spec.components.response(name, {"description": description,
                                             "content": {"application/json": {"schema": "Error"}}})
    api.spec.components.schema("Snapshot", schema=Snapshot)
    return api


def describe_by_hand(app, api):
    """Paths described outside a smorest blueprint; after the blueprints, so these descriptions win."""
    api.later.append(lambda: _describe_progress_routes(app, api.spec))


bp = Blueprint("openapi", __name__, url_prefix="/api/v1", description="This description")


def _yaml(document):
    import yaml

    class Dumper(yaml.SafeDumper):
        """Texts of several lines as YAML blocks (|), readable as written."""

    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def _api():
    return current_app.extensions["sillon"]["api"]


@bp.get("/openapi.yaml")
@bp.response(200, {"type": "object", "description": "This OpenAPI 3.0 document"}, content_type="application/yaml")
def openapi_yaml():
    """This description, as YAML"""
    return Response(_yaml(_api().document()), mimetype="application/yaml")


@bp.get("/openapi.json")
@bp.response(200, {"type": "object", "description": "This OpenAPI 3.0 document"})
def openapi_json():
    """This description, as JSON"""
    return current_app.response_class(current_app.json.dumps(_api().document()), mimetype="application/json")

