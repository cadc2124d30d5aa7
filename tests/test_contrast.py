"""The colours of static/css/app.css keep text readable: WCAG contrast of 4.5:1 or more for every
text colour on the backgrounds it is used on."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parent.parent / "static" / "css" / "app.css").read_text(encoding="utf-8")
VARS = {name: value if len(value) == 7 else "#" + "".join(c * 2 for c in value[1:])
        for name, value in re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", CSS.split("}", 1)[0])}


def luminance(hex_colour):
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a, b):
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def colour(name):
    return VARS[name] if not name.startswith("#") else name


@pytest.mark.parametrize("text, background", [
    ("fg", "bg"), ("fg", "card"), ("muted", "bg"), ("muted", "card"), ("ok", "card"), ("err", "card"),
    ("err", "bg"), ("accent", "card"),  # the brand, secondary buttons
    ("#ffffff", "accent"),  # primary buttons
    ("#0b57d0", "bg"), ("#0b57d0", "card"),  # the focus ring (3:1 is enough for it; it has more)
])
def test_text_colours_contrast_with_their_backgrounds(text, background):
    ratio = contrast(colour(text), colour(background))
    assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f}:1"


def test_the_focus_ring_is_declared_for_every_focusable_thing():
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid #0b57d0", CSS)
    assert "outline: none" not in CSS.replace("main:focus { outline: none; }", "")
