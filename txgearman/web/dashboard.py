# -*- test-case-name: txgearman.test.test_web_dashboard -*-
"""
The dashboard: a page, its script and its style sheet, shipped inside the
package (no framework, nothing fetched from elsewhere, so that it works on
a server with no way out), which polls the JSON API of L{txgearman.web.api}.
"""

from __future__ import annotations

from importlib.resources import files

from twisted.web.resource import NoResource, Resource
from twisted.web.server import Request

__all__ = ["DashboardAssets", "dashboardPage", "SECURITY_HEADERS"]

#: The page runs only its own script and style sheet, and is never framed:
#: function names are shown as text, and this keeps it so even if a bug
#: let one through as markup.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; script-src 'self'; "
    b"style-src 'self'; connect-src 'self'; img-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}

_TYPES = {
    "index.html": b"text/html; charset=utf-8",
    "dashboard.js": b"text/javascript; charset=utf-8",
    "dashboard.css": b"text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return (files("txgearman.web") / "dashboard" / name).read_bytes()


class _Asset(Resource):
    isLeaf = True

    def __init__(self, body: bytes, contentType: bytes) -> None:
        super().__init__()
        self.body = body
        self.contentType = contentType

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self.contentType)
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        return self.body

    render_HEAD = render_GET


class DashboardAssets(Resource):
    """
    C{/dashboard/<asset>}: the script and the style sheet, read from the
    package once, when the site is made.
    """

    def __init__(self) -> None:
        super().__init__()
        for name in ("dashboard.js", "dashboard.css"):
            self.putChild(name.encode(), _Asset(_read(name), _TYPES[name]))

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NoResource("No such file in the dashboard.")


def dashboardPage() -> _Asset:
    """
    The page itself, served at C{/} to browsers.
    """
    return _Asset(_read("index.html"), _TYPES["index.html"])
