"""The API docs pages work offline: every script, stylesheet and other resource a page loads comes from the app
itself (a pinned copy, vendored in `controlplane/static/docs`), answers 200 with content, and needs no credentials.
"""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from httpx import AsyncClient
from litestar import Litestar

from controlplane.app import DOCS_ASSETS

DOCS_PAGES = ["/schema", "/schema/redoc", "/schema/swagger", "/schema/elements", "/schema/rapidoc"]
SCHEMA_ROUTES = {
    *DOCS_PAGES,
    "/schema/openapi.json",
    "/schema/openapi.yaml",
    "/schema/openapi.yml",
    "/schema/oauth2-redirect.html",
    "/schema/{path:str}",
    "/schema/assets/{file_path:path}",
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class _Resources(HTMLParser):
    """Every URL a page makes the browser fetch by itself: `src` of any element, `href` of `<link>`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (name == "src" or (tag == "link" and name == "href")):
                self.urls.append(value)


def _resources(html: str) -> list[str]:
    parser = _Resources()
    parser.feed(html)
    return parser.urls


def test_the_docs_pages_are_the_same_set(unstarted_app: Litestar) -> None:
    assert {route.path for route in unstarted_app.routes if route.path.startswith("/schema")} == SCHEMA_ROUTES


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_a_docs_page_loads_everything_from_the_app(unstarted_client: AsyncClient, page: str) -> None:
    response = await unstarted_client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    urls = _resources(response.text)
    assert any(urlsplit(url).path.endswith(".js") for url in urls), urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from elsewhere"
        asset = await unstarted_client.get(urljoin(f"http://testserver{page}", url))  # no credentials
        assert asset.status_code == 200, f"{page}: {url} -> {asset.status_code}"
        assert asset.content, f"{page}: {url} is empty"
        expected = CONTENT_TYPES.get(Path(parts.path).suffix)
        assert expected is None or asset.headers["content-type"].startswith(expected), asset.headers


def test_the_vendored_files_match_the_checksums_of_their_readme() -> None:
    listed = {
        name: digest
        for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+/\S+)$", (DOCS_ASSETS / "README.md").read_text(), re.M)
    }
    files = {
        path.relative_to(DOCS_ASSETS).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in DOCS_ASSETS.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    assert files == listed
