"""/api/v1/playlists: list, generate or make by hand, read, rename or re-order, delete."""
from __future__ import annotations

from flask import Response, abort, url_for
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .. import playlists
from ..db import db
from ..playlists import store
from .api_errors import error
from .api_fields import N_, Body, Checked, Query, whole
from .api_schemas import Answer, Error
from .i18n import gettext as _
from .openapi import Blueprint
from .playlists import MAX_ID, detail, summary

bp = Blueprint("playlists_api", __name__, url_prefix="/api/v1/playlists", description="Playlists")
KINDS = (*playlists.GENERATORS, "manual")
WHOLE = N_("%(field)s must be a whole number from %(min)s to %(max)s")
TEXT = N_("%(field)s must be text of at most %(max)s characters")


def _text(**options):
    return fields.String(allow_none=True, validate=validate.Length(max=store.MAX_TEXT), metadata={"refusal": TEXT},
                         **options)


class ItemInput(Schema):
    """Either names a track (track_id; artist and title are filled in from it, and the album of its
    latest play unless album or album_id is given) or gives artist and title. Ids must exist.
    `position` is accepted and ignored (the order of the list counts)."""

    class Meta:
        unknown = RAISE

    track_id = whole(WHOLE, low=1, high=MAX_ID, strict=True, allow_none=True)
    artist = _text()
    title = _text()
    album = _text()
    album_id = whole(WHOLE, low=1, high=MAX_ID, strict=True, allow_none=True)
    duration = whole(WHOLE, low=0, high=7 * playlists.DAY, strict=True, allow_none=True,
                     metadata={"description": "Seconds"})
    position = fields.Integer(metadata={"description": "Ignored"})


def _items(**options):
    metadata = {"refusal": N_("items must be a list of at most %(max)s items"), **options.pop("metadata", {})}
    return fields.List(fields.Nested(ItemInput), validate=validate.Length(max=store.MAX_ITEMS), metadata=metadata,
                       **options)


def _name(**options):
    return Checked(store.clean_name, validate=validate.Length(min=1, max=store.MAX_NAME), **options)


class CreateBody(Body):
    body_required = True
    kind = fields.String(required=True, validate=validate.OneOf(KINDS), metadata={
        "refusal": N_("kind must be one of: %(choices)s"),
        "description": "A generator's kind (GET /api/v1/playlists/generators) or manual"})
    name = _name(null_is_absent=True, metadata={"description": "Required for manual; a generator names its playlist when it is left out"})
    params = fields.Dict(keys=fields.String(), metadata={
        "refusal": N_("params must be an object"),
        "description": "The generator's parameters (unknown names refused); not with manual"})
    items = _items(metadata={"description": "Only with manual"})

    @validates_schema
    def fits_the_kind(self, data, **_kwargs):
        if data["kind"] == "manual":
            if data.get("params"):
                raise ValidationError(_("params can only be given with a generator's kind"))
            if data.get("name") is None:
                raise ValidationError(_("name is required for a playlist made by hand"))
        elif "items" in data:
            raise ValidationError(_("items can only be given with kind manual"))


class PatchBody(Body):
    body_required = True
    unknown_refusal = N_("only name and items can be changed, not %(names)s")

    class Meta:
        unknown = RAISE

    name = _name()
    items = _items(metadata={"description": "The whole list, in its new order"})


class PlaylistItem(Answer):
    position = fields.Integer(required=True, metadata={"description": "0, 1, 2, ..."})
    track_id = fields.Integer(allow_none=True)
    artist = fields.String(required=True)
    title = fields.String(required=True)
    album = fields.String(allow_none=True)
    album_id = fields.Integer(allow_none=True)
    duration = fields.Integer(allow_none=True, metadata={"description": "Seconds"})


class Exports(Answer):
    m3u = fields.String(required=True)
    xspf = fields.String(required=True)
    csv = fields.String(required=True)


class PlaylistSummary(Answer):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "The generator that made it, or manual"})
    params = fields.Dict(required=True, metadata={"description": "The generator's parameters as used"})
    item_count = fields.Integer(required=True)
    created_at = fields.String(required=True, metadata={"description": "UTC, ISO 8601"})
    updated_at = fields.String(required=True, metadata={"description": "UTC, ISO 8601"})
    url = fields.String(required=True, metadata={"description": "Its page"})
    exports = fields.Nested(Exports, required=True)


class Playlist(PlaylistSummary):
    items = fields.List(fields.Nested(PlaylistItem), required=True)


class Playlists(Answer):
    items = fields.List(fields.Nested(PlaylistSummary), required=True)


class NothingToPlay(Error):
    link = fields.String(required=True, metadata={"description": "Where to go next"})


def _found(playlist_id, for_update=False):
    playlist = store.get(playlist_id, for_update=for_update) if playlist_id <= MAX_ID else None
    if playlist is None:
        abort(error(404, _("no playlist %(id)s", id=playlist_id)))
    return playlist


def _refused(exc):
    db.session.rollback()
    return error(400, str(exc))


ID_PAST_INTEGERS = {"name": "playlist_id", "in": "path", "required": True,
                    "description": "Ids past 2147483647 (the database's integers) answer 404",
                    "schema": {"type": "integer", "minimum": 0}}


@bp.get("")
@bp.response(200, Playlists, description="Playlists, without their items")
def list_playlists():
    """Every saved playlist, the latest changed first"""
    return {"items": [summary(p, n) for p, n in store.listing()]}


@bp.post("")
@bp.arguments(CreateBody())
@bp.response(201, Playlist, description="The playlist made, with its items")
@bp.alt_response(422, schema=NothingToPlay, description="The generator found nothing to put in a playlist; "
                                                        "`link` is where to go next")
def create_playlist(body):
    """Generate a playlist (kind = a generator) or make one by hand (kind manual, with items)"""
    kind, name = body["kind"], body.get("name")
    try:
        if kind == "manual":
            params, items = {}, store.clean_items(body.get("items", []))
        else:
            generated, items, params = playlists.generate(kind, body.get("params") or {})
            name = name or generated
    except playlists.PlaylistError as exc:
        return _refused(exc)
    except playlists.NothingFound as exc:
        return error(422, exc.message, link=url_for(exc.link_endpoint))
    return detail(store.create(name, kind, params, items)), 201


class GeneratorParam(Answer):
    name = fields.String(required=True)
    label = fields.String(required=True)
    default = fields.Raw(required=True, metadata={"description": "A whole number or a choice"})
    minimum = fields.Integer(allow_none=True)
    maximum = fields.Integer(allow_none=True)
    choices = fields.List(fields.String(), allow_none=True)


class GeneratorInfo(Answer):
    kind = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    params = fields.List(fields.Nested(GeneratorParam), required=True)


class Generators(Answer):
    items = fields.List(fields.Nested(GeneratorInfo), required=True)


@bp.get("/generators")
@bp.response(200, Generators)
def playlist_generators():
    """The generators, their parameters, defaults and bounds"""
    return {"items": [{"kind": g.kind, "title": _(g.title), "description": _(g.description),
                       "params": [{"name": p.name, "label": _(p.label), "default": p.default,
                                   "minimum": p.minimum, "maximum": p.maximum,
                                   "choices": [v for v, _label in p.choices] or None} for p in g.params]}
                      for g in playlists.GENERATORS.values()]}


class TracksQuery(Query):
    q = fields.String(load_default="", metadata={"description": "Part of the title or artist; none gives no tracks"})


class FoundTrack(Answer):
    track_id = fields.Integer(required=True)
    title = fields.String(required=True)
    artist = fields.String(required=True)
    plays = fields.Integer(required=True)


class FoundTracks(Answer):
    items = fields.List(fields.Nested(FoundTrack), required=True, validate=validate.Length(max=20))


@bp.get("/tracks")
@bp.arguments(TracksQuery(), location="query")
@bp.response(200, FoundTracks)
def search_playlist_tracks(args):
    """Tracks of the listens whose title or artist contains q (any case), most played first, 20 at most"""
    return {"items": store.search_tracks(args["q"])}


@bp.get("/<int:playlist_id>", parameters=[ID_PAST_INTEGERS])
@bp.response(200, Playlist)
@bp.alt_response(404, schema=Error, description="No such playlist")
def get_playlist(playlist_id):
    """A playlist with its items"""
    return detail(_found(playlist_id))


@bp.patch("/<int:playlist_id>", parameters=[ID_PAST_INTEGERS])
@bp.arguments(PatchBody())
@bp.response(200, Playlist, description="The playlist now")
@bp.alt_response(404, schema=Error, description="No such playlist")
def patch_playlist(body, playlist_id):
    """Rename it and/or replace its items (the whole list), in one transaction; nothing changes if
    anything is refused"""
    playlist = _found(playlist_id, for_update=True)
    try:
        items = store.clean_items(body["items"]) if "items" in body else None
    except playlists.PlaylistError as exc:
        return _refused(exc)
    store.save(playlist, name=body.get("name"), items=items)
    return detail(playlist)


@bp.delete("/<int:playlist_id>", parameters=[ID_PAST_INTEGERS])
@bp.response(204, description="Deleted")
@bp.alt_response(404, schema=Error, description="No such playlist")
def delete_playlist(playlist_id):
    """Delete a playlist and its items"""
    store.delete(_found(playlist_id, for_update=True))
    return Response(status=204)
