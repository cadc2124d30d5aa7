"""Schemas of the answers several API routes share: errors, job links, jobs, listens, the tracker.

Each serialises what its routes send (flask-smorest dumps the view's result through it) and
describes it in the OpenAPI document: loosely typed parts (a job's params, a snapshot's steps) are
Dict or Raw, so nothing a route sends is dropped.
"""
from __future__ import annotations

from collections.abc import Mapping

from marshmallow import EXCLUDE, Schema, fields, validate

JOB_STATUSES = ("queued", "running", "completed", "error", "cancelled", "interrupted")


class Answer(Schema):
    """A schema of an answer. A dict's keys only are read: a dict without "items" has no items,
    whatever marshmallow would find as an attribute (dict.items). Answers may carry more fields
    than their schema names (additionalProperties is left open)."""

    class Meta:
        unknown = EXCLUDE

    def get_attribute(self, obj, attr, default):
        if isinstance(obj, Mapping):
            return obj.get(attr, default)
        return super().get_attribute(obj, attr, default)


def text(description=None, **options):
    return fields.String(metadata={"description": description} if description else {}, **options)


def maybe(field_class, description=None, **options):
    """A field that may be null."""
    return field_class(allow_none=True, metadata={"description": description} if description else {}, **options)


class Error(Answer):
    error = text("What went wrong, for a person", required=True)


class JobLinks(Answer):
    job_id = fields.String(required=True)
    progress_url = text("The job's page", required=True)
    events_url = text("Server-Sent Events of its progress", required=True)
    status_url = text("Its progress snapshot as JSON", required=True)


class AlreadyRunning(Error, JobLinks):
    """409: a job of this kind is already running; its links are given."""


class Job(JobLinks):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    params = maybe(fields.Dict)
    result = maybe(fields.Raw)
    message = maybe(fields.String)
    created_at = maybe(fields.String, "UTC, ISO 8601")
    started_at = maybe(fields.String, "UTC, ISO 8601")
    finished_at = maybe(fields.String, "UTC, ISO 8601")
    duration_seconds = maybe(fields.Float)


class CancelState(Answer):
    job_id = fields.String(required=True)
    status = text("cancelling, or the state it had already ended in", required=True)


class Snapshot(Answer):
    """A job's progress: the same data every event of its stream carries."""

    id = fields.String(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    version = fields.Integer(required=True)
    overall_progress = fields.Float(required=True)
    current_step = maybe(fields.String)
    steps = fields.List(fields.Dict(), required=True)
    done = fields.Float()
    total = maybe(fields.Float)
    counters = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)
    rate = fields.Float()
    eta_seconds = maybe(fields.Float)
    elapsed_time = fields.Float()
    errors_sample = fields.List(fields.Dict())
    errors_total = fields.Integer()
    message = maybe(fields.String)
    result = maybe(fields.Raw)
    redirect_url = maybe(fields.String)
    cancel_requested = fields.Boolean()


class Listen(Answer):
    played_at = text("UTC, ISO 8601")
    artist = fields.String()
    album = maybe(fields.String)
    title = fields.String()
    source = fields.String()
    album_image_url = maybe(fields.String)


class TrackerStatus(Answer):
    running = fields.Boolean(required=True)
    enabled = fields.Boolean(required=True)
    job_id = maybe(fields.String)
    interval_seconds = fields.Integer(required=True)
    last_track = maybe(fields.Dict)
    now_playing = maybe(fields.Dict)
    last_poll_at = maybe(fields.String, "UTC, ISO 8601")
    next_poll_at = maybe(fields.String, "UTC, ISO 8601")
    last_error = maybe(fields.String)
    imported = fields.Integer()


class TrackerStarted(TrackerStatus):
    """The tracker's state and the links of its job."""

    job_id = fields.String(required=True)
    progress_url = fields.String(required=True)
    events_url = fields.String(required=True)
    status_url = fields.String(required=True)
