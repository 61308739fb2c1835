"""The browser-test kit works without the console: Debian's chromium opens pages served over real HTTP with a
strict Content-Security-Policy, takes a screenshot, and axe-core tells an accessible page from one that is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar, MediaType, Response, get
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from tests.browser import ARTIFACTS_DIR, assert_accessible, screenshot, serve_asgi

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not

CSP = "default-src 'self'"

ACCESSIBLE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Smoke: accessible</title><link rel="stylesheet" href="/style.css"></head>
<body>
<main>
  <h1>Tenants</h1>
  <img src="/logo.svg" alt="Control plane" width="48" height="48">
  <form method="post" action="/tenants">
    <label for="name">Tenant name</label>
    <input id="name" name="name" type="text">
    <button type="submit">Create</button>
  </form>
</main>
</body>
</html>"""

# An image without alt text and a form control without a label: both "critical" for axe-core.
INACCESSIBLE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Smoke: inaccessible</title></head>
<body>
<main>
  <h1>Tenants</h1>
  <img src="/logo.svg" width="48" height="48">
  <form method="post" action="/tenants"><input name="name" type="text"><button type="submit">Create</button></form>
</main>
</body>
</html>"""

STYLE = "body { font-family: sans-serif; margin: 2rem; } h1 { color: #1a3d6e; }"
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48">'
    '<rect width="48" height="48" rx="8" fill="#1a3d6e"/><circle cx="24" cy="24" r="10" fill="#fff"/></svg>'
)


def _page(content: str, media_type: str) -> Response[str]:
    return Response(content, media_type=media_type, headers={"Content-Security-Policy": CSP})


@get("/accessible", sync_to_thread=False)
def accessible() -> Response[str]:
    return _page(ACCESSIBLE, MediaType.HTML)


@get("/inaccessible", sync_to_thread=False)
def inaccessible() -> Response[str]:
    return _page(INACCESSIBLE, MediaType.HTML)


@get("/style.css", sync_to_thread=False)
def style() -> Response[str]:
    return _page(STYLE, "text/css")


@get("/logo.svg", sync_to_thread=False)
def logo() -> Response[str]:
    return _page(LOGO, "image/svg+xml")


@pytest.fixture(scope="module")
async def base_url() -> AsyncIterator[str]:
    async with serve_asgi(Litestar([accessible, inaccessible, style, logo])) as url:
        yield url


async def test_a_page_is_served_under_its_csp_and_screenshotted(base_url: str, page: Page) -> None:
    response = await page.goto(f"{base_url}/accessible")
    assert response is not None and response.ok
    assert response.headers["content-security-policy"] == CSP
    assert await page.title() == "Smoke: accessible"
    # The policy is in force: an injected inline script is refused (which is why axe-core is evaluated instead).
    with pytest.raises(PlaywrightError, match="Content Security Policy"):
        await page.add_script_tag(content="window.injected = true")

    path = await screenshot(page, "smoke accessible")

    assert path == ARTIFACTS_DIR / "smoke_accessible.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


async def test_an_accessible_page_passes(base_url: str, page: Page) -> None:
    await page.goto(f"{base_url}/accessible")

    await assert_accessible(page)


async def test_critical_violations_are_listed(base_url: str, page: Page) -> None:
    await page.goto(f"{base_url}/inaccessible")

    with pytest.raises(AssertionError) as failure:
        await assert_accessible(page)

    message = str(failure.value)
    assert "2 accessibility violation(s) of impact critical" in message
    assert "- image-alt (critical): Images must have alternative text" in message
    assert "- label (critical): Form elements must have labels" in message
    assert "\n    img\n" in message
    assert message.endswith("\n    input")
