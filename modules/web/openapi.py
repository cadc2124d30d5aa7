"""GET /api/v1/openapi.yaml: the description of the JSON API, kept next to the code (openapi.yaml)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
SPEC = Path(__file__).with_name("openapi.yaml")


@bp.get("/openapi.yaml")
def openapi_yaml():
    return Response(SPEC.read_bytes(), mimetype="application/yaml")
