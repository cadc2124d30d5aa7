"""/api/v1/settings: every setting with where its value comes from, and the ones saved in the app.

Secrets are write-only: an answer says whether one is set (`is_set`), never its value.
"""
from __future__ import annotations

from flask import current_app
from marshmallow import RAISE, fields, validate

import config

from ..stored_settings import SettingRefused
from .api_errors import error
from .api_fields import N_, Body
from .api_schemas import Answer, Error
from .openapi import Blueprint

bp = Blueprint("settings", __name__, url_prefix="/api/v1/settings",
               description="Settings: read them all, change the ones saved in the app")
SOURCES = (config.ENVIRONMENT, config.SAVED, config.CONFIG_FILE, config.DEFAULT)


def live():
    return current_app.extensions["sillon"]["settings"]


class Setting(Answer):
    value = fields.Raw(allow_none=True, metadata={"description": "The value in use; absent for a secret"})
    is_set = fields.Boolean(required=True)
    secret = fields.Boolean(required=True)
    source = fields.String(required=True, validate=validate.OneOf(SOURCES), metadata={
        "description": "environment (wins; the page cannot change it), app (saved here), config.json, or default"})
    editable = fields.Boolean(required=True, metadata={"description": "Can be saved here (PATCH)"})
    locked = fields.Boolean(required=True, metadata={"description": "Set in the environment, which wins"})


class Settings(Answer):
    settings = fields.Dict(keys=fields.String(), values=fields.Nested(Setting), required=True)
    lost_secrets = fields.List(fields.String(), required=True, metadata={
        "description": "Secrets saved with an encryption key this Sillon no longer has: enter them again"})
    unknown_config_keys = fields.List(fields.String(), required=True, metadata={
        "description": "Keys of config.json that no setting reads"})


class Refused(Error):
    fields = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Each setting refused by a check of its value and why; nothing was saved"})


def _field(name):
    """The declared type of an app setting in a PATCH body; null or "" removes the saved value."""
    doc = {"description": config.SETTINGS[name][3] + ". Null or an empty text removes the value saved here."}
    if name == "TRACKER_INTERVAL_SECONDS":
        return fields.Integer(allow_none=True, validate=validate.Range(min=10, max=7 * 86400), metadata={
            **doc, "refusal": N_("TRACKER_INTERVAL_SECONDS must be a whole number from 10 to 604800 (a week)")})
    return fields.String(allow_none=True, validate=validate.Length(max=1000), metadata={
        **doc, "refusal": N_("%(field)s must be a text of 1,000 characters at most, or null")})


SettingsChange = type("SettingsChange", (Body,), {
    "Meta": type("Meta", (), {"unknown": RAISE}),
    "unknown_refusal": N_("only the settings saved in the app can be changed here, not %(names)s; these can: "
                          "%(known)s"),
    "__doc__": "The settings to save, by name; those not named are left as they are.",
    **{name: _field(name) for name in config.APP_SETTINGS},
})


def described():
    s = live()
    rows = {}
    for name in config.SETTINGS:
        secret = name in config.SECRET_SETTINGS
        value = s[name]
        row = {"is_set": value not in (None, ""), "secret": secret, "source": s.source(name),
               "editable": name in config.APP_SETTINGS, "locked": s.locked(name)}
        if not secret:
            row["value"] = value
        rows[name] = row
    return {"settings": rows, "lost_secrets": list(s.lost_secrets), "unknown_config_keys": s.layers.unknown_keys}


@bp.get("")
@bp.response(200, Settings)
def settings_get():
    """Every setting: its value (never a secret's), whether it is set, and where it comes from"""
    return described()


@bp.patch("")
@bp.arguments(SettingsChange(), location="json")
@bp.response(200, Settings, description="Saved; every process uses the new values from its next request or job")
@bp.alt_response(400, schema=Refused, description="Some values were refused: `fields` says why for each; nothing "
                                                  "was saved")
def settings_patch(changes):
    """Save settings in the app (environment values cannot be changed here: they win)"""
    try:
        live().save(changes)
    except SettingRefused as exc:
        return error(400, "; ".join(f"{name}: {why}" for name, why in exc.problems.items()), fields=exc.problems)
    return described()
