"""The web chat page's routes and files, without a browser: content types, the strict
Content-Security-Policy, caching, that the page needs nothing from another origin, that its
script never hands text to the HTML parser, that every id and label it relies on exists, and
that the wheel packs the files. Served over real HTTP on loopback by uvicorn.

The page in a real browser: ``test_page_browser.py``.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from recai_serve.page import CSP, PAGE_FILES, page_routes

PLUGIN = Path(__file__).resolve().parents[1]
STATIC = resources.files("recai_serve").joinpath("static")


def _text(name: str) -> str:
    return STATIC.joinpath(name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        Starlette(routes=page_routes()), log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
        assert thread.is_alive(), "the page's test server did not start"
    yield sock.getsockname()[:2]
    server.should_exit = True
    thread.join(10)
    sock.close()


def fetch(
    address: tuple[str, int], path: str, method: str = "GET", headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# -- what the routes answer ------------------------------------------------------------------------
@pytest.mark.parametrize("path", list(PAGE_FILES))
def test_each_file_is_served_with_its_content_type_and_security_headers(
    url: tuple[str, int], path: str
) -> None:
    name, content_type = PAGE_FILES[path]
    status, headers, body = fetch(url, path)
    assert status == 200
    assert headers["content-type"] == content_type
    assert body == STATIC.joinpath(name).read_bytes()
    assert headers["content-length"] == str(len(body))
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"
    # HEAD: the same headers, no body
    status, head, body = fetch(url, path, "HEAD")
    assert status == 200 and body == b"" and head["content-length"] == headers["content-length"]
    assert head["etag"] == headers["etag"]


def test_a_cached_copy_is_revalidated_with_its_etag(url: tuple[str, int]) -> None:
    _, headers, _ = fetch(url, "/static/app.js")
    status, again, body = fetch(url, "/static/app.js", headers={"If-None-Match": headers["etag"]})
    assert status == 304 and body == b"" and again["etag"] == headers["etag"]
    assert again["content-security-policy"] == CSP
    status, _, body = fetch(url, "/static/app.js", headers={"If-None-Match": '"stale"'})
    assert status == 200 and body


def test_only_the_pages_files_are_served(url: tuple[str, int]) -> None:
    for path in ("/static/", "/static/../page.py", "/static/index.html", "/static/app.js.map"):
        assert fetch(url, path)[0] == 404, path
    assert fetch(url, "/", "POST")[0] == 405


def test_the_policy_allows_nothing_from_elsewhere_and_no_inline_code() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert directives["trusted-types"] == "'none'"
    for bad in ("unsafe-inline", "unsafe-eval", "http:", "https:", "*", "blob:"):
        assert bad not in CSP, bad


# -- what the files say ----------------------------------------------------------------------------
class _Page(HTMLParser):
    """The page's elements: (tag, attributes) each, and the text inside <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(data)


def _page() -> _Page:
    page = _Page()
    page.feed(_text("index.html"))
    return page


def test_the_page_loads_only_its_own_assets_and_has_no_inline_code() -> None:
    page = _page()
    assert page.inline == []  # the policy would block inline script and style
    served = set(PAGE_FILES)
    loaded = []
    for tag, attrs in page.elements:
        assert "style" not in attrs, f"<{tag}> has a style attribute (blocked by the policy)"
        handlers = [a for a in attrs if a.startswith("on")]
        assert not handlers, f"<{tag}> has inline handlers {handlers} (blocked by the policy)"
        for key in ("src", "href", "action", "srcset", "poster"):
            value = attrs.get(key)
            if value is None or value.startswith("#") or value == "data:,":
                continue
            # relative to the page (a reverse proxy may serve it under a prefix)
            assert not value.startswith("/"), f"<{tag} {key}={value!r}> is not relative"
            assert "/" + value in served, f"<{tag} {key}={value!r}> is not one of the page's files"
            loaded.append(value)
    assert sorted(loaded) == ["static/app.js", "static/style.css"]
    # the script's API calls are relative too, each through api() (which drops the
    # credentials of a page opened as http://user:key@host/: fetch refuses a URL with them)
    script = "\n".join(
        line for line in _text("app.js").splitlines() if not line.lstrip().startswith("//")
    )
    calls = re.findall(r"""(?:api|postJSON)\(\s*["'`]([^"'`$]+)""", script)
    assert sorted(set(calls)) == ["v1/chat/completions", "v1/feedback", "v1/models", "v1/sessions/"]
    fetched = re.findall(r"fetch\(\s*([^\s,)]*)", script)
    assert len(fetched) == 3 and all(f.startswith("api(") for f in fetched), fetched
    for name in ("app.js", "style.css", "index.html"):
        text = _text(name)
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "@import" not in text and "url(" not in text.replace("url(data:", ""), name


def test_the_script_never_hands_text_to_the_html_parser() -> None:
    # the code, without its comments (which may name what it avoids)
    script = "\n".join(
        line for line in _text("app.js").splitlines() if not line.lstrip().startswith("//")
    )
    assert "textContent" in script and "createTextNode" in script
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "createContextualFragment",
        "DOMParser",
        "eval(",
        "new Function",
        "srcdoc",
    ):
        assert sink not in script, sink
    assert re.search(r"setTimeout\(\s*['\"`]", script) is None


def test_every_element_the_script_looks_up_is_on_the_page() -> None:
    ids = {attrs["id"] for _, attrs in _page().elements if attrs.get("id")}
    wanted = set(re.findall(r"""\$\(\s*["']([\w-]+)["']\s*\)""", _text("app.js")))
    assert len(wanted) > 15  # the lookup pattern still matches the script
    assert wanted <= ids, sorted(wanted - ids)


def test_every_control_has_a_label_and_the_live_regions_have_roles() -> None:
    elements = _page().elements
    labelled = {attrs["for"] for tag, attrs in elements if tag == "label" and attrs.get("for")}
    controls = [
        attrs for tag, attrs in elements if tag in ("input", "select", "textarea") and attrs
    ]
    assert len(controls) == 3  # agent, user, message (the browser asks for a key itself)
    for attrs in controls:
        assert attrs.get("id") in labelled, f"control {attrs} has no <label for=...>"
    roles = {attrs.get("id"): attrs.get("role") for _, attrs in elements}
    assert roles["log"] == "log" and roles["error"] == "alert" and roles["status"] == "status"
    html = next(attrs for tag, attrs in elements if tag == "html")
    assert html.get("lang") == "en"


def test_the_wheel_packs_the_static_files() -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())
    packed = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "src/recai_serve" in packed
    files = [PLUGIN / "src" / "recai_serve" / "static" / name for name, _ in PAGE_FILES.values()]
    for f in files:
        assert f.is_file(), f
    # hatch leaves out what git ignores: none of the page's files may be ignored
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *map(str, files)],
        cwd=PLUGIN,
        capture_output=True,
        text=True,
    )
    assert ignored.returncode == 1 and ignored.stdout == "", ignored.stdout
