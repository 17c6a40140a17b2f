"""Web UI tests in a real browser: Debian's Chromium, headless, driven by Playwright.

Nothing downloads a browser: Playwright launches ``/usr/bin/chromium`` (``.ci/run`` installs
the Debian package when it is missing). Outside CI the tests skip with a message when
Chromium is absent; in CI (``CI`` set) they fail instead.

One server per module holds the runs the pages show, logged over HTTP by the real client.
Every page the browser loads is recorded, so the tests can check that no request ever left
the server's origin. Screenshots of each page kind go to ``build/ui-screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from comet_callbacks.server.embedded import ServerHandle, start_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _need_chromium() -> None:
    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return
    msg = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(msg + ": the web UI tests must run in CI")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Visits:
    """Every request a browser context made, and the console errors it printed."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []


@pytest.fixture
def visits() -> Visits:
    return Visits()


@pytest.fixture
def new_page(browser: Any, visits: Visits) -> Iterator[Any]:
    """Factory: a page in a fresh browser context (its own cookies), recording requests."""
    contexts = []

    def make() -> Any:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        page.on("request", lambda r: visits.urls.append(r.url))
        page.on("pageerror", lambda e: visits.errors.append(str(e)))
        page.on("console", lambda m: visits.errors.append(m.text) if m.type == "error" else None)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server for one test module, the client environment pointing at it."""
    tmp = tmp_path_factory.mktemp("ui")
    saved = {k: v for k, v in os.environ.items() if k.startswith("COMET_")}
    handle = start_server(db_path=tmp / "comet.sqlite", assets_dir=tmp / "assets")
    for k in saved:
        del os.environ[k]
    os.environ["COMET_URL_OVERRIDE"] = handle.url
    os.environ["COMET_API_KEY"] = handle.api_key
    os.environ["COMET_OFFLINE_DIRECTORY"] = str(tmp / "offline")
    try:
        yield handle
    finally:
        handle.close()
        for k in [k for k in os.environ if k.startswith("COMET_")]:
            del os.environ[k]
        os.environ.update(saved)
