"""What the browser tests share: Debian's chromium driven by Playwright, and a recorder of the
states an inline progress box goes through (so fast changes are not missed between checks)."""
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Without a browser these tests skip on a developer's machine, but never under CI.
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                    reason=f"no chromium at {CHROMIUM} (apt-get install chromium)")

_RECORDER = """
(() => {{
  let last = null;
  function report() {{
    const box = document.getElementById("{box}");
    if (!box || !window.__inlineState) return;
    const bar = box.querySelector('[data-part="bar"]');
    const counters = {{}};
    box.querySelectorAll("dd[data-counter]").forEach((dd) => {{
      counters[dd.dataset.counter] = Number(dd.textContent.replace(/[^0-9]/g, "") || "0");
    }});
    const text = box.querySelector('[data-part="status-text"]');
    const state = {{
      hidden: box.hidden,
      value: bar ? Number(bar.getAttribute("aria-valuenow")) : null,
      status: box.dataset.status || null,
      transport: box.dataset.transport || null,
      counters: counters,
      text: text ? text.textContent : "",
      url: location.pathname,
    }};
    const key = JSON.stringify(state);
    if (key !== last) {{ last = key; window.__inlineState(state); }}
  }}
  document.addEventListener("DOMContentLoaded", () => {{
    const box = document.getElementById("{box}");
    if (!box) return;
    report();
    new MutationObserver(report).observe(box, {{
      subtree: true, childList: true, attributes: true, characterData: true }});
  }});
}})();
"""


def inline_recorder(box_id):
    """A script reporting every distinct rendered state of the inline progress box `box_id` to
    window.__inlineState (a Playwright binding)."""
    return _RECORDER.format(box=box_id)


def launch(pw):
    """Debian's chromium, headless, with no network of its own."""
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def only_local(context):
    """Abort every request of a browser context to anything but 127.0.0.1; returns the list of the
    addresses it aborted (hermetic pages: a cover or a font from outside would be a bug)."""
    import re

    outside = []

    def route(r):
        if re.match(r"^https?://127\.0\.0\.1[:/]", r.request.url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    return outside
