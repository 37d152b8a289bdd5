"""
Tests for L{txgearman.web.api}: the JSON API over a real site in memory,
against the admin protocol's answers on the same server.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txgearman import __version__
from txgearman.codec import PacketType as P
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import MemoryConnection
from txgearman.web.site import webResource


class APITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.service = GearmanServerService(
            "tcp:4730", reactor=self.reactor, jobRetries=3, handlePrefix=b"H:test"
        )
        self.service.startService()
        # StubTreq's request methods are made at run time.
        self.treq: Any = StubTreq(webResource(self.service))

    def get(self, path: str) -> tuple[int, Any]:
        response = self.successResultOf(self.treq.get("http://server" + path))
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["application/json"]
        )
        return response.code, json.loads(self.successResultOf(response.text("utf-8")))

    def test_status(self) -> None:
        """
        C{/api/status}: each function with the admin C{status} and
        C{prioritystatus} figures, and how long its oldest runnable job has
        waited.
        """
        factory = self.service.factory
        worker = MemoryConnection(factory)
        worker.send(P.CAN_DO, b"resize")
        client = MemoryConnection(factory, 40001)
        client.send(P.SUBMIT_JOB_HIGH_BG, b"resize", b"a", b"")
        client.send(P.SUBMIT_JOB_BG, b"resize", b"b", b"")
        worker.send(P.GRAB_JOB)
        self.reactor.advance(1.5)
        client.send(P.SUBMIT_JOB_LOW_BG, b"caf\xc3\xa9\xff", b"c", b"")
        self.reactor.advance(2)
        code, document = self.get("/api/status")
        self.assertEqual(code, 200)
        self.assertEqual(
            document,
            {
                "functions": [
                    {
                        "name": "resize",
                        "jobs": 2,
                        "running": 1,
                        "waiting": 1,
                        "workers": 1,
                        "queued": {"high": 0, "normal": 1, "low": 0},
                        "oldestAge": 3.5,
                    },
                    {
                        "name": "caf\u00e9\\xff",
                        "jobs": 1,
                        "running": 0,
                        "waiting": 1,
                        "workers": 0,
                        "queued": {"high": 0, "normal": 0, "low": 1},
                        "oldestAge": 2.0,
                    },
                ]
            },
        )

    def test_workers(self) -> None:
        """
        C{/api/workers}: every connection, as admin C{workers} lists them.
        """
        worker = MemoryConnection(self.service.factory)
        worker.send(P.SET_CLIENT_ID, b"w1")
        worker.send(P.CAN_DO, b"a")
        worker.send(P.CAN_DO, b"b")
        code, document = self.get("/api/workers")
        self.assertEqual(code, 200)
        [line] = [
            line
            for line in worker.admin(b"workers").splitlines()
            if line.endswith(b": a b")
        ]
        self.assertEqual(
            document["workers"][0],
            {
                "id": int(line.split()[0]),
                "host": "127.0.0.1",
                "clientId": "w1",
                "functions": ["a", "b"],
            },
        )

    def test_job(self) -> None:
        """
        C{/api/jobs/<handle>}: GET_STATUS's figures for a known job; 404
        for an unknown one.
        """
        factory = self.service.factory
        client = MemoryConnection(factory)
        client.send(P.SUBMIT_JOB_BG, b"f", b"u", b"")
        [(_, handle)] = client.replies()
        worker = MemoryConnection(factory, 40001)
        worker.send(P.CAN_DO, b"f")
        worker.send(P.GRAB_JOB)
        worker.send(P.WORK_STATUS, handle, b"3", b"10")
        code, document = self.get("/api/jobs/" + handle.decode())
        self.assertEqual(code, 200)
        self.assertEqual(
            document,
            {
                "handle": handle.decode(),
                "known": True,
                "running": True,
                "numerator": 3,
                "denominator": 10,
            },
        )
        code, document = self.get("/api/jobs/H%3Atest%3A99")
        self.assertEqual(code, 404)
        self.assertEqual(document["handle"], "H:test:99")
        self.assertFalse(document["known"])
        self.assertEqual(self.get("/api/jobs/")[0], 404)

    def test_server(self) -> None:
        """
        C{/api/server}: version, uptime by the reactor's clock, readiness
        and the settings in force, as admin C{settings} shows them.
        """
        self.service.factory.admin.handle(b"maxqueue f 5")
        self.reactor.advance(12.5)
        code, document = self.get("/api/server")
        self.assertEqual(code, 200)
        self.assertEqual(document["version"], __version__)
        self.assertEqual(document["uptime"], 12.5)
        self.assertTrue(document["ready"])
        self.assertEqual(document["settings"]["job-retries"], "3")
        self.assertEqual(document["settings"]["job-handle-prefix"], "H:test")
        self.assertEqual(
            document["settings"]["max-buffered-bodies"], str(4 * 64 * 1024 * 1024)
        )
        self.assertEqual(document["settings"]["body-wait-timeout"], "30")
        self.assertEqual(
            document["maxqueue"], {"f": {"high": 5, "normal": 5, "low": 5}}
        )
        settings = self.service.factory.admin.handle(b"settings")
        for name, value in document["settings"].items():
            self.assertIn(f"{name}\t{value}\n".encode(), settings)
        self.assertTrue(settings.endswith(b"maxqueue\tf\t5\t5\t5\n.\n"))

    def test_serverCounters(self) -> None:
        """
        C{/api/server} carries the counters of C{/metrics} and the open
        connections by role.
        """
        factory = self.service.factory
        worker = MemoryConnection(factory)
        worker.send(P.CAN_DO, b"f")
        client = MemoryConnection(factory, 40001)
        client.send(P.SUBMIT_JOB_BG, b"f", b"", b"a")
        client.send(P.SUBMIT_JOB, b"f", b"", b"b")
        client.send(P.SUBMIT_JOB_EPOCH, b"f", b"", b"2000000000", b"c")
        worker.send(P.GRAB_JOB)
        worker.send(P.WORK_COMPLETE, b"H:test:1", b"")
        worker.send(P.GRAB_JOB)
        worker.send(P.WORK_FAIL, b"H:test:2")
        factory.admin.handle(b"maxqueue g 1")
        client.send(P.SUBMIT_JOB_BG, b"g", b"", b"d")
        client.send(P.SUBMIT_JOB_BG, b"g", b"", b"e")
        counters = self.get("/api/server")[1]["counters"]
        self.assertEqual(
            counters,
            {
                "submitted": {"foreground": 1, "background": 2, "epoch": 1},
                "completed": 1,
                "failed": 1,
                "exceptions": 0,
                "retried": 0,
                "dropped": 0,
                "errors": {"QUEUE_ERROR": 1},
                "connections": {"workers": 1, "others": 1},
            },
        )
