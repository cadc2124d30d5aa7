"""English and French. The locale is the `lang` cookie if set (the switcher in the footer sets it),
else the best match of the browser's Accept-Language, else English.

Templates use `{{ _("Text") }}` / `{{ _("%(n)s listens", n=count) }}` and `ngettext`; Python code
uses `gettext`/`lazy_gettext` from here. Catalogues: translations/<lang>/LC_MESSAGES/messages.po,
compiled to .mo (committed; `make translations` re-extracts and compiles, a test checks the .mo
files are current).
"""
from __future__ import annotations

from flask import request
from flask_babel import Babel, gettext, lazy_gettext, ngettext  # noqa: F401 - re-exported

LANGUAGES = {"en": "English", "fr": "Français"}
COOKIE = "lang"


def select_locale():
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def init_app(app, root):
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(root / "translations"))
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def languages():
        from flask_babel import get_locale

        return {"LANGUAGES": LANGUAGES, "current_lang": str(get_locale() or "en")}
