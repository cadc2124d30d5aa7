"""Blueprints: pages (HTML), api (JSON under /api/v1), streams (SSE)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import g, jsonify, render_template, request
from sqlalchemy.exc import OperationalError

from ..db import db, transient_reason
from ..jobs import pacing


def init_app(app):
    from . import (
        access,
        analytics,
        analytics_api,
        api,
        health,
        journal_live,
        js_strings,
        listenbrainz,
        openapi,
        pages,
        playlists,
        playlists_api,
        services,
        settings_api,
        streams,
    )
    from .i18n import gettext as _

    @app.before_request
    def count_request():
        """Jobs of this process rest while it answers (jobs/pacing.py); first, so every request counts."""
        pacing.request_started()
        g.pacing_counted = True

    def uncount_request(response=None):
        if g.pop("pacing_counted", False):
            pacing.request_ended()
        return response

    app.after_request(uncount_request)  # the response is ready: a stream's long body is not counted
    app.teardown_request(lambda _exc: uncount_request())  # the request failed before any response

    @app.before_request
    def follow_saved_settings():
        """A setting saved in another process applies from this request on (one cheap read)."""
        if request.endpoint != "static":
            app.extensions["sillon"]["settings"].refresh()

    access.init_app(app)
    app.register_blueprint(pages.bp)
    streams.init_app(app)
    app.register_blueprint(playlists.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(listenbrainz.bp)
    app.register_blueprint(journal_live.bp)
    # /api/v1: each route's declaration checks its requests and describes it in the OpenAPI document.
    api_doc = app.extensions["sillon"]["api"] = openapi.make_api(app)
    for blueprint in (api.bp, services.bp, settings_api.bp, playlists_api.bp, analytics_api.bp, health.bp, openapi.bp):
        api_doc.register_blueprint(blueprint)
    openapi.describe_by_hand(app, api_doc)

    @app.context_processor
    def script_strings():
        return {"js_strings": js_strings.translated}

    @app.template_filter("http_url")
    def http_url(value):
        """A URL from data (an image, a Spotify link) only if it is http(s): never javascript: or data:."""
        text = str(value or "").strip()
        return text if urlsplit(text).scheme.lower() in ("http", "https") and "//" in text[:8] else ""

    def wants_json():
        return request.path.startswith(("/api/", "/1/"))

    @app.before_request
    def refuse_nul_characters():
        """No text the app stores or looks up may hold a NUL character (PostgreSQL refuses them in
        text; no name or date has one): refused here, once, with a clear 400."""
        if request.blueprint == "listenbrainz" or not _has_nul(request):
            return None  # the ListenBrainz API names the listen and field that hold one
        message = "The request contains a NUL character (\\x00), which no name, date or text may hold."
        if wants_json():
            return jsonify({"error": message}), 400
        return render_template("error.html", title="Bad request", message=message), 400

    @app.errorhandler(413)
    def too_large(_exc):
        limit = app.extensions["sillon"]["settings"]["MAX_UPLOAD_MB"]
        message = _("The upload is larger than the %(limit)s MB limit (setting MAX_UPLOAD_MB). Nothing was "
                    "imported. Upload fewer files at a time, or raise the limit.", limit=limit)
        if wants_json():
            return jsonify({"error": message}), 413
        return render_template("error.html", title=_("Upload too large"), message=message), 413

    @app.errorhandler(OperationalError)
    def database_busy(exc):
        """A write that met a lock past SQLITE_BUSY_TIMEOUT_SECONDS (or a busy PostgreSQL): 503, said plainly."""
        if transient_reason(exc) is None:
            raise exc
        db.session.rollback()
        # Not in the translation catalogue yet (kept out of this change so the catalogue merges cleanly).
        message = f"The database is busy ({transient_reason(exc)}). Nothing was changed; try again in a moment."
        if wants_json():
            return jsonify({"error": message}), 503, {"Retry-After": "5"}
        return render_template("error.html", title="Database busy", message=message), 503, {"Retry-After": "5"}

    @app.errorhandler(404)
    def not_found(_exc):
        if wants_json():
            return jsonify({"error": "not found"}), 404
        return render_template("error.html", title=_("Not found"), message=_("There is nothing at this address.")), 404


def _has_nul(req):
    def text_has_nul(value):
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(text_has_nul(k) or text_has_nul(v) for k, v in value.items())
        if isinstance(value, list):
            return any(text_has_nul(v) for v in value)
        return False

    if "\x00" in req.path or any(text_has_nul(k) or text_has_nul(v) for k, v in req.args.items(multi=True)):
        return True
    if req.mimetype == "application/json":
        return text_has_nul(req.get_json(silent=True))
    if req.mimetype == "application/x-www-form-urlencoded":
        return any(text_has_nul(k) or text_has_nul(v) for k, v in req.form.items(multi=True))
    return False
