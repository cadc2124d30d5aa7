"""The API's error answers: `{"error": "<message for a person>", ...extra}`, and the one message a
request refused by its declared schema gets (which fields, and what each must be)."""
from __future__ import annotations

from flask import jsonify, request

from .i18n import gettext

MISSING_BODY = "Invalid input type."  # marshmallow's message for a body that is no object
UNKNOWN = "Unknown field."  # marshmallow's message for a field the schema does not declare


def error(status, message, **extra):
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def refusal(exc):
    """The 400 answer for a webargs validation error (`exc.data` holds its messages and schema)."""
    schema = exc.data["schema"]
    found = []
    for location, errors in exc.data["messages"].items():
        raw = _given(location)
        if isinstance(errors, list):  # the body itself: not JSON, or no object
            found.append(_body_message(schema))
        else:
            found += _messages(errors, schema, raw, "")
    return error(400, "; ".join(dict.fromkeys(found)))


def _given(location):
    if location == "query":
        return request.args
    if location == "files":
        return request.files
    body = request.get_json(silent=True) if request.is_json else None
    return body if body is not None else request.form


def _body_message(schema):
    return gettext(getattr(schema, "body_refusal", None) or "the body must be a JSON object")


def _messages(errors, schema, raw, prefix):
    """One message per refused field of `schema` (nested ones too), in declaration order."""
    fields = {(f.data_key or name): f for name, f in schema.fields.items()}
    order = list(fields)
    keyed = sorted(errors.items(), key=lambda kv: order.index(kv[0]) if kv[0] in fields else len(order))
    out, unknown = [], []
    for key, value in keyed:
        if key == "_schema":
            out += [_body_message(schema) if m == MISSING_BODY and not prefix else
                    gettext("%(field)s must be an object", field=prefix) if m == MISSING_BODY else str(m)
                    for m in value]
            continue
        field = fields.get(key)
        if field is None or value == [UNKNOWN]:
            unknown.append(str(key))
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        given = raw.get(key) if hasattr(raw, "get") else None
        out += _field_messages(field, value, given, path)
    if unknown:
        out.append(_unknown_message(schema, unknown, list(fields), prefix))
    return out


def _field_messages(field, value, given, path):
    if isinstance(value, dict):  # a nested object's fields, or a list's items by index
        inner = getattr(field, "inner", None)
        out = []
        for index, errors in value.items():
            if isinstance(index, int) and inner is not None:
                item = given[index] if isinstance(given, list) and index < len(given) else None
                out += _field_messages(inner, errors, item, f"{path}[{index}]")
            elif hasattr(field, "schema"):
                return _messages(value, field.schema, given if isinstance(given, dict) else {}, path)
        return out
    said = field.metadata.get("refusal")
    if said:
        return [gettext(said, field=path, value=_shown(given), **_bounds(field))]
    # A message that names its field (a domain check's) stands alone; marshmallow's get the field's name.
    return [str(m) if str(m).startswith(path) else f"{path}: {m}" for m in value]


def _unknown_message(schema, names, known, prefix):
    said = getattr(schema, "unknown_refusal", None)
    if said:
        return gettext(said, names=", ".join(names), known=", ".join(known))
    return gettext("%(field)s has unknown fields %(names)s; known: %(known)s", field=prefix or "the body",
                   names=", ".join(names), known=", ".join(known))


def _shown(given):
    return given[:40] if isinstance(given, str) else given


def _bounds(field):
    """The values a refusal text may name: %(min)s, %(max)s (Range, Length), %(choices)s (OneOf)."""
    values = {}
    for validator in field.validators:
        for name in ("min", "max"):
            if getattr(validator, name, None) is not None:
                values[name] = getattr(validator, name)
        if getattr(validator, "choices", None) is not None:
            values["choices"] = ", ".join(map(str, validator.choices))
    return values
