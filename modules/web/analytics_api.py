"""GET /api/v1/analytics/<panel>: one panel of the analytics page as JSON (analytics.py computes it)."""
from __future__ import annotations

from marshmallow import fields, validate

from . import analytics
from .api_errors import error
from .api_fields import N_, Query, whole
from .api_schemas import Answer, Error
from .i18n import gettext
from .openapi import Blueprint

bp = Blueprint("analytics_api", __name__, url_prefix="/api/v1/analytics", description="Analytics")

PANEL = {"name": "panel", "in": "path", "required": True, "description": "Any other name answers 404 with the list "
         "of panels", "schema": {"type": "string", "enum": list(analytics.PANELS)}}


class PanelQuery(Query):
    period = fields.String(load_default=analytics.DEFAULT_PERIOD, validate=validate.Regexp(
        r"^\s*(7[dD]|30[dD]|12[mM]|[aA][lL][lL]|19[7-9][0-9]|2[0-9]{3})\s*$"), metadata={
        "refusal": N_("Unknown period %(value)r: use 7d, 30d, 12m, all or a year such as 2024."),
        "description": "7d, 30d (the last 7 or 30 times 24 hours), 12m (since this moment a year ago), all, or a "
                       "year from 1970 to 2999 (1 January to 1 January in TIMEZONE); any case. Used by the top "
                       "lists, heatmap and shelf-unowned; the other panels cover all time."})
    limit = whole(N_("limit must be a whole number from 1 to %(max)s, not %(value)r."), low=1,
                  high=analytics.MAX_LIMIT, load_default=analytics.DEFAULT_LIMIT,
                  metadata={"description": "Items of the lists (top-*, shelf-unplayed, shelf-unowned)"})


class Period(Answer):
    key = fields.String(required=True)
    label = fields.String(required=True)
    start = fields.String(allow_none=True, metadata={"description": "UTC, ISO 8601; inclusive"})
    end = fields.String(allow_none=True, metadata={"description": "UTC, ISO 8601; exclusive"})


class Streak(Answer):
    days = fields.Integer(required=True)
    start = fields.String(required=True, allow_none=True, metadata={"description": "Local date, YYYY-MM-DD"})
    end = fields.String(required=True, allow_none=True, metadata={"description": "Local date, YYYY-MM-DD"})


class PanelItem(Answer):
    rank = fields.Integer()
    id = fields.Integer(required=True)
    name = fields.String()
    title = fields.String()
    artist = fields.String()
    plays = fields.Integer()
    copies = fields.Integer()
    year = fields.Integer(allow_none=True)


class Month(Answer):
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})
    artists = fields.Integer(metadata={"description": "discoveries: artists first played that month"})
    plays = fields.Integer()
    owned_plays = fields.Integer(metadata={"description": "Listens of albums on the shelf"})


class Panel(Answer):
    """Always `panel` and `timezone`; `period` for the panels that take one; then `items` (top-*,
    shelf-unowned), `cells`/`max`/`total` (heatmap), `longest`/`current`/`days_with_listens`
    (streaks), `months`/`total` (discoveries), `owned_albums`/`total`/`items` (shelf-unplayed) or
    `months`/`plays`/`owned_plays` (shelf-over-time)."""

    panel = fields.String(required=True)
    timezone = fields.String(required=True, metadata={"description": "IANA zone name, e.g. Europe/Paris"})
    period = fields.Nested(Period)
    items = fields.List(fields.Nested(PanelItem), metadata={
        "description": "top-artists: {rank, id, name, plays}; top-albums, top-tracks, shelf-unowned: {rank, id, "
                       "title, artist, plays} (equal plays share a rank); shelf-unplayed: {id, title, artist, "
                       "copies, year}"})
    cells = fields.List(fields.List(fields.Integer(), validate=validate.Length(equal=24)),
                        validate=validate.Length(equal=7),
                        metadata={"description": "Listens per weekday (0 = Monday) and local hour: cells[weekday][hour]"})
    max = fields.Integer()
    total = fields.Integer()
    longest = fields.Nested(Streak)
    current = fields.Nested(Streak)
    days_with_listens = fields.Integer()
    months = fields.List(fields.Nested(Month), metadata={
        "description": "Every local month from the first to the last, gaps filled with zeros"})
    owned_albums = fields.Integer()
    plays = fields.Integer()
    owned_plays = fields.Integer()


@bp.get("/<panel>", parameters=[PANEL])
@bp.arguments(PanelQuery(), location="query")
@bp.response(200, Panel)
@bp.alt_response(404, schema=Error, description="No such panel; the message lists them")
def analytics_panel(args, panel):
    """One panel of the analytics page; hours, days and months are local to TIMEZONE"""
    if panel not in analytics.PANELS:
        return error(404, gettext("No analytics panel %(panel)r. Panels: %(panels)s.",
                                  panel=panel[:40], panels=", ".join(analytics.PANELS)))
    tz = analytics.timezone()
    period = analytics.parse_period(args["period"], tz)
    scope = {"period": period.as_dict()} if panel in analytics.PERIOD_PANELS else {}
    return {"panel": panel, "timezone": tz.key, **scope, **analytics.compute(panel, period, args["limit"], tz)}
