"""
Tests for L{txgearman.web.dashboard} and its place at C{/}.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txgearman.server.service import GearmanServerService
from txgearman.web.site import webResource


class DashboardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.service = GearmanServerService("tcp:4730", reactor=self.reactor)
        self.treq: Any = StubTreq(webResource(self.service))

    def get(self, path: str, accept: str = "*/*") -> tuple[Any, str]:
        response = self.successResultOf(
            self.treq.get("http://server" + path, headers={"accept": accept})
        )
        return response, self.successResultOf(response.text("utf-8"))

    def test_browserGetsThePage(self) -> None:
        """
        A browser (it accepts C{text/html}) gets the dashboard at C{/},
        which loads its script and style sheet from this server only.
        """
        response, body = self.get("/", "text/html,application/xhtml+xml,*/*;q=0.8")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )
        policy = response.headers.getRawHeaders("content-security-policy")[0]
        self.assertIn("script-src 'self'", policy)
        self.assertIn("default-src 'none'", policy)
        self.assertEqual(
            response.headers.getRawHeaders("x-content-type-options"), ["nosniff"]
        )
        self.assertIn('<script src="/dashboard/dashboard.js" defer></script>', body)
        self.assertIn('href="/dashboard/dashboard.css"', body)
        self.assertNotIn("<script>", body, "no inline script (the policy forbids it)")

    def test_othersGetTheIndex(self) -> None:
        """
        curl and scripts (C{Accept: */*}) get the plain list of paths at
        C{/}; C{/index.txt} serves it to anyone.
        """
        for path, accept in [("/", "*/*"), ("/index.txt", "text/html")]:
            response, body = self.get(path, accept)
            self.assertEqual(response.code, 200)
            self.assertEqual(
                response.headers.getRawHeaders("content-type"),
                ["text/plain; charset=utf-8"],
            )
            self.assertIn("/metrics", body)
            self.assertIn("the dashboard", body)

    def test_assets(self) -> None:
        """
        The script and the style sheet come from the installed package
        with their types; anything else under C{/dashboard/} is 404.
        """
        response, body = self.get("/dashboard/dashboard.js")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/javascript; charset=utf-8"],
        )
        self.assertIn('fetch(path, {cache: "no-store"})', body)
        self.assertNotIn("innerHTML", body, "names are set as text, never as markup")
        response, body = self.get("/dashboard/dashboard.css")
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/css; charset=utf-8"]
        )
        for path in ["/dashboard/index.html", "/dashboard/../setup.py", "/dashboard/x"]:
            response, _ = self.get(path)
            self.assertEqual(response.code, 404, path)
