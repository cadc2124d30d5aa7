"""The analytics page in a real browser (headless Debian chromium driven by Playwright) against a
real gunicorn: every chart is drawn with no console error, changing the period changes the top lists
and the URL, the empty state leads to the import, and a 360 px wide phone does not scroll sideways.
Screenshots of each state go to tests/artifacts/screenshots/analytics-*.png (gitignored)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browsing import needs_chromium
from tests.conftest import make_app
from tests.test_analytics import LISTENS, SHELF, seed

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
TIMEOUT_MS = 30_000
CHARTS = ("chart-top-artists", "chart-discoveries", "chart-over-time")

pytestmark = needs_chromium


def open_page(browser, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.route("**/*", lambda r: r.continue_() if re.match(r"^https?://127\.0\.0\.1[:/]", r.request.url)
                  else r.abort())  # hermetic: only the local server
    page = context.new_page()
    page.problems = []
    page.on("console", lambda msg: msg.type in ("error", "warning") and page.problems.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page.problems.append(f"pageerror: {exc}"))
    return context, page


@pytest.fixture
def page(browser):
    context, page = open_page(browser, 1100, 900)
    yield page
    context.close()


@pytest.fixture
def phone(browser):
    context, page = open_page(browser, 360, 740)
    yield page
    context.close()


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"analytics-{name}.png"), full_page=True)


@pytest.fixture
def loaded_server(server_factory, migrated_template):
    """A gunicorn on a database holding the hand-built listens and shelf of test_analytics.py."""
    seeder = make_app(server_factory.instance, migrated_template)
    seed(seeder, LISTENS, SHELF)
    with seeder.app_context():
        from modules.db import db
        db.engine.dispose()
    return server_factory(env={"TIMEZONE": "Europe/Paris"})


def top_names(page, table):
    return page.locator(f"#{table} tbody .name").all_inner_texts()


def charts_drawn(page):
    page.wait_for_function("(ids) => ids.every((id) => document.getElementById(id)?.dataset.drawn === 'true')",
                           arg=list(CHARTS))
    sizes = page.evaluate("(ids) => ids.map((id) => { const c = document.getElementById(id);"
                          " return [c.width, c.height]; })", list(CHARTS))
    assert all(w > 100 and h > 100 for w, h in sizes), sizes


def test_every_chart_is_drawn_and_the_period_changes_the_top_lists(loaded_server, page):
    page.goto(loaded_server.url + "/analytics?period=all")
    charts_drawn(page)
    assert page.locator("#heatmap td[data-count]").count() == 7 * 24
    assert page.locator("#heatmap").get_attribute("data-total") == str(len(LISTENS))
    assert top_names(page, "top-artists") == ["Alpha", "beta", "Delta", "Gamma", "Epsilon"]
    assert page.locator("#unplayed li").all_inner_texts()[0].startswith("Unheard")
    assert page.locator("#panel-streaks").is_visible()
    shot(page, "all-time")

    page.select_option("#period", "2023")  # submits itself: the period goes in the URL
    page.wait_for_url(re.compile(r"/analytics\?period=2023$"))
    charts_drawn(page)
    assert top_names(page, "top-artists") == ["Epsilon"]
    assert top_names(page, "top-albums") == ["Fifth"]
    assert page.locator("#period").input_value() == "2023"
    shot(page, "year-2023")

    page.select_option("#period", "2024")
    page.wait_for_url(re.compile(r"period=2024$"))
    assert top_names(page, "top-artists") == ["Alpha", "beta", "Gamma", "Delta"]
    assert page.locator("#top-artists tbody tr").first.locator("td").first.inner_text() == "1"
    assert top_names(page, "top-unowned") == ["Second", "Fourth"]
    page.go_back()
    page.wait_for_url(re.compile(r"period=2023$"))
    assert top_names(page, "top-artists") == ["Epsilon"]
    assert not page.problems, page.problems


def test_chart_numbers_are_in_tables_too(loaded_server, page):
    page.goto(loaded_server.url + "/analytics?period=all")
    page.locator("#panel-discoveries summary").click()
    rows = page.locator("#discoveries-table tbody tr").all_inner_texts()
    assert rows[-1].split() == ["2023-12", "1"] and len(rows) == 8
    for canvas in CHARTS:
        assert page.locator(f"#{canvas}").get_attribute("role") == "img"
        assert page.locator(f"#{canvas}").get_attribute("aria-label")
    assert not page.problems, page.problems


def test_empty_state_leads_to_the_import(server_factory, page):
    server = server_factory()
    page.goto(server.url + "/analytics")
    empty = page.locator("#analytics-empty")
    assert empty.is_visible() and "no" in empty.inner_text().lower()
    assert page.locator("canvas").count() == 0 and page.locator("#period").count() == 0
    shot(page, "empty")
    empty.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/settings#upload-form$"))
    assert page.locator("#upload-form").is_visible()
    assert not page.problems, page.problems


def test_phone_width(loaded_server, phone):
    phone.goto(loaded_server.url + "/analytics?period=all")
    charts_drawn(phone)
    sizes = phone.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    wide = phone.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                        && !el.closest('.table-wrap'))
        .slice(0, 8).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                         (el.className ? '.' + String(el.className).replace(/ /g, '.') : ''))""")
    assert sizes[0] <= sizes[1] + 1, f"the page scrolls sideways at 360 px: {sizes}, too wide: {wide}"
    shot(phone, "phone")
    assert not phone.problems, phone.problems
