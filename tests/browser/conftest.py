"""Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright never downloads a browser here (the machines reach only package registries):
it launches /usr/bin/chromium, which ``make test`` installs when missing
(scripts/ensure_chromium.sh)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Browser, Page, sync_playwright

from tests.factories import StaffUserFactory

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: no background request may wait on it or slow a page down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
            "Run scripts/ensure_chromium.sh (as root) or `apt-get install chromium`.",
            pytrace=False,
        )
    # Playwright's sync API keeps an event loop running in this thread, and Django refuses
    # ORM calls under a running loop. The tests are plain synchronous code that waits on
    # each page call, so the ORM is safe here; the variable lives exactly as long as the
    # browser, so the flush after each test runs under it too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()


@pytest.fixture
def login(browser, live_server) -> Iterator[Callable[..., Page]]:
    """``login(user, language="en")``: a fresh browser (its own cookies) whose person signs
    in through the admin's real login form, and the page it lands on (the admin index)."""
    contexts = []

    def sign_in(user, *, language: str = "en") -> Page:
        context = browser.new_context(viewport=VIEWPORT, locale=language, base_url=live_server.url)
        context.set_default_timeout(5_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.fixture
def group_member(transactional_db) -> Callable[[str], object]:
    """``group_member("Supervisors")``: a new staff user (password "pw") in that role's group.

    The groups are the ones backoffice/roles.py keeps after every migrate; a flushed test
    database gets them back too (flush sends post_migrate again)."""

    def member(name: str):
        user = StaffUserFactory()
        user.groups.add(Group.objects.get(name=name))
        return user

    return member
