"""English and French. The locale is the `lang` cookie if set (the switcher in the footer and the
settings page set it, through /language/<code>), else the language last chosen there (a preference, so
another browser of the same person follows it), else the best match of the browser's Accept-Language,
else English.

Templates use `{{ _("Text") }}` / `{{ _("%(n)s listens", n=count) }}` and `ngettext`; web code
uses `gettext`/`lazy_gettext` from here, code below web (playlists) Flask-Babel's own, since it must
not import web: outside a request no locale is chosen, so it reads in English. Catalogues: translations/<lang>/LC_MESSAGES/messages.po,
compiled to .mo (committed; `make translations` re-extracts and compiles, a test checks the .mo
files are current).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import has_request_context, request
from flask_babel import Babel, gettext, lazy_gettext, ngettext  # noqa: F401 - re-exported

LANGUAGES = {"en": "English", "fr": "Français"}
COOKIE = "lang"
PREFERENCE_KEY = "display_language"


def select_locale():
    if not has_request_context():  # a job, a command, a test's app context: the default, English
        return None
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    saved = _saved_language()
    if saved in LANGUAGES:
        return saved
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _saved_language():
    from sqlalchemy.exc import SQLAlchemyError

    from .. import preferences

    try:
        return preferences.get(PREFERENCE_KEY)
    except SQLAlchemyError:  # a database not migrated yet still renders its error page
        from ..db import db

        db.session.rollback()
        return None


def safe_next(target, host):
    """`target` as a path on this site (query kept), or None when it points anywhere else."""
    parts = urlsplit(target or "")
    if parts.scheme not in ("", "http", "https") or (parts.netloc and parts.netloc != host):
        return None
    path = parts.path
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def init_app(app, root):
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(root / "translations"))
    Babel(app, locale_selector=select_locale)

    @app.template_filter("num")
    def number(value):
        """A whole number grouped the locale's way (12,345 / 12 345)."""
        from flask_babel import format_decimal

        return format_decimal(value or 0)

    @app.context_processor
    def languages():
        from flask_babel import get_locale

        return {"LANGUAGES": LANGUAGES, "current_lang": str(get_locale() or "en")}
