"""Blueprints: pages (HTML), api (JSON under /api/v1), streams (SSE)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import jsonify, render_template, request


def init_app(app):
    from . import access, api, pages, services, streams

    access.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(streams.bp)
    app.register_blueprint(services.bp)

    @app.template_filter("http_url")
    def http_url(value):
        """A URL from data (an image, a Spotify link) only if it is http(s): never javascript: or data:."""
        text = str(value or "").strip()
        return text if urlsplit(text).scheme.lower() in ("http", "https") and "//" in text[:8] else ""

    def wants_json():
        return request.path.startswith("/api/")

    @app.errorhandler(413)
    def too_large(_exc):
        limit = app.extensions["sillon"]["settings"]["MAX_UPLOAD_MB"]
        message = (f"The upload is larger than the {limit} MB limit (setting MAX_UPLOAD_MB). Nothing was "
                   "imported. Upload fewer files at a time, or raise the limit.")
        if wants_json():
            return jsonify({"error": message}), 413
        return render_template("error.html", title="Upload too large", message=message), 413

    @app.errorhandler(404)
    def not_found(_exc):
        if wants_json():
            return jsonify({"error": "not found"}), 404
        return render_template("error.html", title="Not found", message="There is nothing at this address."), 404
