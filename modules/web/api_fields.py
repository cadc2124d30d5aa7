"""What the API's request schemas are made of: a base schema per place (query, JSON body), the
kinds of values Sillon reads (moments, flags, whole numbers), and the one message a field gives when
its value is refused (`refusal`, in its metadata: see api_errors)."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from .listens_query import parse_time


def N_(text):  # noqa: N802 - the name pybabel extracts; translated when the refusal is sent (api_errors)
    return text


class Query(Schema):
    """Query parameters. Others are ignored, and a blank value (`?limit=`) is the same as none."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def blank_is_absent(self, data, **_kwargs):
        return {key: data[key] for key in data if data[key] != ""}


class Body(Schema):
    """A JSON object body; fields it does not declare are ignored unless the schema says RAISE."""

    body_refusal = N_("the body must be a JSON object")

    class Meta:
        unknown = EXCLUDE


def whole(refusal, low=None, high=None, strict=False, **options):
    """A whole number from `low` to `high`; `strict` (JSON) refuses 5.0 and "5"."""
    return fields.Integer(strict=strict, validate=validate.Range(min=low, max=high),
                          metadata={"refusal": refusal, **options.pop("metadata", {})}, **options)


def flag(name, description="", **options):
    return fields.Boolean(metadata={"refusal": f"{name} must be true or false",
                                    "description": f"{description}true/false, 1/0, yes/no, on/off"}, **options)


class Moment(fields.String):
    """Unix seconds, an ISO date or an ISO 8601 time, read as UTC seconds; a `to` date (end=True)
    includes its whole day."""

    def __init__(self, end=False, **options):
        self.end = end
        description = ("Unix seconds, YYYY-MM-DD (the whole day included) or an ISO 8601 time" if end
                       else "Unix seconds, YYYY-MM-DD or an ISO 8601 time")
        super().__init__(metadata={"description": description}, **options)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_time(super()._deserialize(value, attr, data, **kwargs), end=self.end)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Checked(fields.String):
    """Text that a domain function checks and cleans (`check(value)` returns it or raises
    ValueError with its message); it also says what is wrong with null, unless null means absent."""

    def __init__(self, check, null_is_absent=False, **options):
        self.check, self.null_is_absent = check, null_is_absent
        super().__init__(allow_none=True, **options)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None:
            return None if self.null_is_absent else self._checked(None)
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return self._checked(value)

    def _checked(self, value):
        try:
            return self.check(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
