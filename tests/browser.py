"""Browser tests: Debian's chromium driven by Playwright (async API), screenshots kept, axe-core checks.

Everything comes from `make install`: the `chromium` target installs Debian's chromium (/usr/bin/chromium),
the `axe-core` target fetches axe.min.js from the pinned npm package into .tools/axe-core/, and uv.lock pins
playwright. Playwright's own browser download (`playwright install`) is never used and cannot work here.

tests/conftest.py registers this module as a plugin, so the fixtures `browser` (one chromium for the session)
and `page` (a fresh context and page for one test) are there for every test; the functions are imported:

    from tests.browser import assert_accessible, screenshot, serve_asgi

    async def test_console_home(app, client, page):
        async with serve_asgi(app, lifespan="off") as base_url:  # `client` has already run the lifespan
            await page.goto(f"{base_url}/console/")
            screenshot_path = await screenshot(page, "console-home")
            await assert_accessible(page)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (tests run as root), and nothing that would reach out of this machine on its own.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
AXE_JS = REPO_ROOT / ".tools" / "axe-core" / "axe.min.js"
# Screenshots stay here after the run (gitignored), named by the caller: a later run overwrites them.
ARTIFACTS_DIR = REPO_ROOT / ".artifacts" / "console"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _installed(path: Path, target: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make install` (its `{target}` target) installs it")
    return path


@functools.cache
def _axe_source() -> str:
    return _installed(AXE_JS, "axe-core").read_text(encoding="utf-8")


def _artifact_path(name: str, directory: Path | None) -> Path:
    folder = directory or ARTIFACTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._') or 'page'}.png"


@contextlib.asynccontextmanager
async def launch_browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, through Playwright's async API; closed on exit."""
    _installed(CHROMIUM, "chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One chromium for the whole session (it starts in under a second), on the session's event loop."""
    async with launch_browser() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a context of its own (no cookies or storage shared with another test), closed after the test."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def screenshot(page: Page, name: str, *, full_page: bool = True, directory: Path | None = None) -> Path:
    """Save a PNG of the page as `<directory>/<name>.png` (default .artifacts/console/) and return its path."""
    path = _artifact_path(name, directory)
    await page.screenshot(path=path, full_page=full_page)
    return path


async def axe_violations(page: Page, *, exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now (id, impact, help, helpUrl, nodes' targets and html).

    axe.min.js is evaluated with `page.evaluate`, not injected as a <script> tag: the console sends a
    Content-Security-Policy without 'unsafe-inline', which blocks an injected inline script, while code that
    Playwright evaluates through the DevTools protocol is not subject to the page's CSP. So the page keeps its
    real policy (no bypass_csp context) and axe still runs in it.
    """
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    violations: list[dict[str, Any]] = await page.evaluate(
        """async (exclude) => {
            const context = exclude.length ? { exclude: exclude.map((selector) => [selector]) } : document;
            const results = await window.axe.run(context, { resultTypes: ['violations'] });
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map((n) => ({ target: n.target, html: n.html })),
            }));
        }""",
        list(exclude),
    )
    return violations


def _target(target: Any) -> str:
    # A node's target is a list of selectors, one per frame; a selector within a shadow tree is a list itself.
    if isinstance(target, list):
        return " >> ".join(_target(part) for part in target)
    return str(target)


async def assert_accessible(
    page: Page, *, impacts: Collection[str] = ("critical",), exclude: Sequence[str] = ()
) -> None:
    """Run axe-core on the page (but the elements `exclude` selects: markup that is not ours); fail listing every
    violation of these impacts (by default "critical" only): its id, help text and the targets of all its nodes."""
    failing = [violation for violation in await axe_violations(page, exclude=exclude) if violation["impact"] in impacts]
    if failing:
        lines = [f"{len(failing)} accessibility violation(s) of impact {'/'.join(impacts)} on {page.url}:"]
        for violation in failing:
            lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]")
            lines.extend(f"    {_target(node['target'])}" for node in violation["nodes"])
        raise AssertionError("\n".join(lines))


class _Server(uvicorn.Server):
    # The server runs as a task on the test's event loop: the test run keeps its own signal handlers.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, lifespan: Literal["auto", "on", "off"] = "auto") -> AsyncIterator[str]:
    """Serve an ASGI app over real HTTP on 127.0.0.1 (a free port) for the browser; yield its base URL.

    uvicorn runs as a task on the current event loop, so the app shares the loop (and connection pools) of the
    test's fixtures: for the session's `app`, whose lifespan the `client` fixture has run, pass lifespan="off".
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
