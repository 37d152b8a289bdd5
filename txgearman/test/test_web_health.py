"""
Tests for L{txgearman.web.health}: C{/livez} and C{/readyz} over a real
site in memory (treq's L{StubTreq}), on a service driven by a memory reactor.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txgearman.server.service import GearmanServerService
from txgearman.store.interfaces import HealthCheck, IStoreHealth
from txgearman.store.memory import MemoryQueueStore
from txgearman.web.site import webResource


@implementer(IStoreHealth)
class CheckedStore(MemoryQueueStore):
    """
    A memory store that starts when the test says so, and whose health the
    test sets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: Deferred[None] = Deferred()
        self.checks = [HealthCheck("backend", True, "answers")]

    def start(self) -> Deferred[None]:
        return self.started

    def health(self) -> list[HealthCheck]:
        return self.checks


class HealthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.store = CheckedStore()
        self.service = GearmanServerService(
            "tcp:4730", reactor=self.reactor, store=self.store
        )
        # StubTreq's request methods are made at run time.
        self.treq: Any = StubTreq(webResource(self.service))

    def get(self, path: str) -> tuple[int, str, Any]:
        response = self.successResultOf(self.treq.get("http://server" + path))
        body = self.successResultOf(response.text("utf-8"))
        return response.code, body, response.headers

    def start(self) -> None:
        self.service.startService()
        self.store.started.callback(None)

    def test_storeHealthInterface(self) -> None:
        """
        The test's store provides L{IStoreHealth} as a real one must.
        """
        self.assertTrue(verifyObject(IStoreHealth, self.store))

    def test_live(self) -> None:
        """
        C{/livez} answers C{ok} whenever it answers at all, while starting too.
        """
        self.assertEqual(self.get("/livez")[:2], (200, "ok\n"))
        code, body, _ = self.get("/livez?verbose")
        self.assertEqual(code, 200)
        self.assertEqual(
            body, "[+]reactor ok: the event loop turns\nlivez check passed\n"
        )

    def test_notReadyWhileReplaying(self) -> None:
        """
        Until the store has replayed and the port is bound, C{/readyz} is
        503 with the reasons in plain text.
        """
        self.service.startService()
        code, body, headers = self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertEqual(
            body,
            "replay: replaying the stored jobs\nlistening: not listening on tcp:4730\n",
        )
        self.assertEqual(
            headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
        )
        self.assertEqual(headers.getRawHeaders("cache-control"), ["no-store"])

    def test_ready(self) -> None:
        """
        Once replayed and listening, C{/readyz} is 200 C{ok}; C{?verbose}
        lists every check, the store's own among them.
        """
        self.start()
        self.assertEqual(self.get("/readyz")[:2], (200, "ok\n"))
        code, body, _ = self.get("/readyz?verbose")
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            "[+]replay ok: the stored jobs are queued\n"
            "[+]listening ok: listening on tcp:4730\n"
            "[+]backend ok: answers\n"
            "readyz check passed\n",
        )

    def test_storeUnhealthy(self) -> None:
        """
        A store that fails one of its checks makes the server not ready,
        saying the store's reason; ready again once it passes.
        """
        self.start()
        self.store.checks = [HealthCheck("backend", False, "connection lost")]
        self.assertEqual(self.get("/readyz")[:2], (503, "backend: connection lost\n"))
        code, body, _ = self.get("/readyz?verbose")
        self.assertEqual(code, 503)
        self.assertIn("[-]backend failed: connection lost\n", body)
        self.assertTrue(body.endswith("readyz check failed\n"))
        self.store.checks = [HealthCheck("backend", True, "answers")]
        self.assertEqual(self.get("/readyz")[0], 200)

    def test_draining(self) -> None:
        """
        A draining server is not ready: a load balancer should send new
        work elsewhere.
        """
        self.start()
        self.service.drain(timeout=1)
        code, body, _ = self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertIn("draining: draining: new jobs are refused\n", body)

    def test_unknownPath(self) -> None:
        """
        A path the server does not serve is a 404.
        """
        self.assertEqual(self.get("/nothing")[0], 404)

    def test_otherMethod(self) -> None:
        """
        The health endpoints take GET (and HEAD) only.
        """
        response = self.successResultOf(
            self.treq.post("http://server/readyz", data=b"")
        )
        self.assertEqual(response.code, 405)
