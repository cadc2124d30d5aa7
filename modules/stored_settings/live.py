"""The settings mapping every process reads, and the one way to change what is saved in the app."""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask_babel import gettext as _

import config

from . import store

log = logging.getLogger(__name__)
TRACKER_INTERVAL_RANGE = (10, 7 * 86400)
LANGUAGE_MAX = 32


class SettingRefused(ValueError):
    """Some values were not saved; `problems` maps each refused name to why (nothing was saved)."""

    def __init__(self, problems):
        super().__init__("; ".join(f"{name}: {why}" for name, why in problems.items()))
        self.problems = problems


class LiveSettings(Mapping):
    """Environment, saved values, config.json and defaults, combined; `refresh()` follows changes."""

    def __init__(self, layers, engine, cipher):
        self.layers = layers
        self._engine = engine
        self._cipher = cipher
        self._lock = threading.Lock()
        self._version = None
        self._values, self._sources = config.resolve(layers)
        self.lost_secrets = ()  # saved with an encryption key this Sillon does not have
        self.saved_names = frozenset()

    # --- reading ---------------------------------------------------------------------------
    def __getitem__(self, name):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def source(self, name):
        """Where the value of `name` comes from: config.ENVIRONMENT, SAVED, CONFIG_FILE or DEFAULT."""
        return self._sources[name]

    def locked(self, name):
        """True when the environment sets `name`: it wins, so the page cannot change it."""
        return name in self.layers.environment

    def refresh(self):
        """Reload when the settings version moved (one primary-key read otherwise); True if it did."""
        try:
            with self._engine.connect() as conn:
                if store.read_version(conn) == self._version:
                    return False
                version, rows = store.read_rows(conn)
        except sa.exc.DBAPIError as exc:  # not migrated yet, or the database is away: keep what is loaded
            log.debug("settings not reloaded: %s", exc.__class__.__name__)
            return False
        saved, lost = {}, []
        for name, (text, encrypted) in rows.items():
            if name not in config.SETTINGS:
                continue
            value = self._cipher.decrypt(text) if encrypted else store.decode(text)
            if value is None:
                lost.append(name)
                continue
            try:
                saved[name] = config.check_value(name, value)
            except ValueError:
                log.warning("saved setting %s no longer fits; ignored until saved again", name)
        values, sources = config.resolve(self.layers, saved)
        with self._lock:
            self._values, self._sources, self._version = values, sources, version
            self.lost_secrets = tuple(sorted(lost))
            self.saved_names = frozenset(rows)
        return True

    # --- changing --------------------------------------------------------------------------
    def save(self, changes):
        """Save {name: value} (None or "" removes the saved value) in one transaction, then reload.

        Raises SettingRefused naming every value that cannot be saved; then nothing is saved.
        """
        problems, rows = {}, {}
        for name, value in changes.items():
            try:
                rows[name] = self._row(name, value)
            except ValueError as exc:
                problems[name] = str(exc)
        if problems:
            raise SettingRefused(problems)
        if rows:
            with self._engine.begin() as conn:
                store.write(conn, rows)
            log.info("settings saved in the app: %s", ", ".join(sorted(rows)))  # names only, never values
        self.refresh()

    def check(self, changes):
        """Raise SettingRefused as `save` would, saving nothing."""
        problems = {}
        for name, value in changes.items():
            try:
                self._row(name, value, encrypt=False)
            except ValueError as exc:
                problems[name] = str(exc)
        if problems:
            raise SettingRefused(problems)

    def candidate(self, changes):
        """The settings as they would be with `changes` saved (for a connection test before saving)."""
        values = dict(self._values)
        for name, value in changes.items():
            if not self.locked(name):
                values[name] = self._checked(name, value) if value not in (None, "") else (
                    self.layers.file_values.get(name, _default(name)))
        return values

    def _row(self, name, value, encrypt=True):
        if name not in config.SETTINGS:
            raise ValueError(_("There is no setting %(name)s.", name=name))
        if name not in config.APP_SETTINGS:
            raise ValueError(_("%(name)s is set by whoever runs Sillon (environment or config.json), not "
                               "from the app.", name=name))
        if self.locked(name):
            raise ValueError(_("%(name)s is set in the environment, which wins: change it there.", name=name))
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            return None
        value = self._checked(name, value)
        if name in config.SECRET_SETTINGS:
            return (self._cipher.encrypt(str(value)) if encrypt else None), True
        return store.encode(value), False

    @staticmethod
    def _checked(name, value):
        if isinstance(value, str):
            value = value.strip()
        if isinstance(value, (dict, list)) or (isinstance(value, bool) and name != "TRACKER_AUTOSTART"):
            raise ValueError(_("%(name)s takes a single value.", name=name))
        try:
            value = config.check_value(name, value)
        except ValueError:
            if config.SETTINGS[name][2] is int:
                raise ValueError(_("%(name)s must be a whole number.", name=name)) from None
            if name == "TIMEZONE":
                raise ValueError(_("%(value)s is not a time zone name (IANA names such as Europe/Paris, "
                                   "America/New_York or UTC).", value=str(value)[:64])) from None
            raise ValueError(_("%(name)s has an invalid value.", name=name)) from None
        if name == "TRACKER_INTERVAL_SECONDS" and not TRACKER_INTERVAL_RANGE[0] <= value <= TRACKER_INTERVAL_RANGE[1]:
            raise ValueError(_("The tracker interval must be from %(low)s to %(high)s seconds (a week).",
                               low=TRACKER_INTERVAL_RANGE[0], high=TRACKER_INTERVAL_RANGE[1]))
        if name == "AI_LANGUAGE" and len(value) > LANGUAGE_MAX:
            raise ValueError(_("The language must be a name like English or Français (%(n)s characters at most).",
                               n=LANGUAGE_MAX))
        if name == "AI_API_URL":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(_("The AI endpoint must be an http(s) URL, e.g. https://api.openai.com/v1."))
        if isinstance(value, str) and len(value) > 1000:
            raise ValueError(_("%(name)s is too long (1,000 characters at most).", name=name))
        return value


def _default(name):
    default, convert = config.SETTINGS[name][1], config.SETTINGS[name][2]
    return convert(default) if default is not None else None
