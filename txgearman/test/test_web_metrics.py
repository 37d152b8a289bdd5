"""
Tests for L{txgearman.web.metrics}: C{/metrics} read back with
prometheus_client's own parser, against what admin C{status} and
C{prioritystatus} say of the same server.
"""

from __future__ import annotations

import gzip
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from txgearman import __version__
from txgearman.codec import PacketType as P
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import MemoryConnection
from txgearman.test.scrape import scrapeSamples
from txgearman.web.metrics import SLICE, MetricsResource
from txgearman.web.site import webResource


class MetricsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.service = GearmanServerService("tcp:4730", reactor=self.reactor)
        # StubTreq's request methods are made at run time.
        self.treq: Any = StubTreq(webResource(self.service))

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """
        C{/metrics}, parsed: per metric name, each sample's value by its
        labels.
        """
        response = self.successResultOf(self.treq.get("http://server/metrics"))
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/plain; version=0.0.4; charset=utf-8"],
        )
        text = self.successResultOf(response.text("utf-8"))
        return scrapeSamples(text)

    def test_upOnceServing(self) -> None:
        """
        C{gearman_up} is 0 until the server serves, then 1; the version is a
        label of C{gearman_version_info}, as in the gearman-exporter.
        """
        self.assertEqual(self.scrape()["gearman_up"], {(): 0.0})
        self.service.startService()
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_up"], {(): 1.0})
        [(labels, value)] = metrics["gearman_version_info"].items()
        self.assertEqual(value, 1.0)
        self.assertEqual(dict(labels), {"version": __version__})

    def test_agreesWithStatus(self) -> None:
        """
        The per-function gauges carry the admin C{status} figures (waiting
        is jobs less running), and the per-priority queue depth the
        C{prioritystatus} ones, while jobs are queued and running.
        """
        self.service.startService()
        factory = self.service.factory
        client = MemoryConnection(factory)
        worker = MemoryConnection(factory, 40001)
        worker.send(P.CAN_DO, b"resize")
        client.send(P.SUBMIT_JOB_BG, b"resize", b"a", b"1")
        client.send(P.SUBMIT_JOB_HIGH_BG, b"resize", b"b", b"2")
        client.send(P.SUBMIT_JOB_LOW_BG, b"resize", b"c", b"3")
        client.send(P.SUBMIT_JOB_BG, b"mail", b"d", b"4")
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.replies()[0][0], P.JOB_ASSIGN)

        status = client.admin(b"status")
        self.assertEqual(status, b"resize\t3\t1\t1\nmail\t1\t0\t0\n.\n")
        metrics = self.scrape()
        fn = (("function", "resize"),)
        mail = (("function", "mail"),)
        self.assertEqual(metrics["gearman_jobs"], {fn: 3.0, mail: 1.0})
        self.assertEqual(metrics["gearman_jobs_running"], {fn: 1.0, mail: 0.0})
        self.assertEqual(metrics["gearman_jobs_waiting"], {fn: 2.0, mail: 1.0})
        self.assertEqual(metrics["gearman_workers"], {fn: 1.0, mail: 0.0})
        self.assertEqual(
            client.admin(b"prioritystatus"),
            b"resize\t0\t1\t1\t1\nmail\t0\t1\t0\t0\n.\n",
        )
        queued = metrics["gearman_jobs_queued"]
        self.assertEqual(queued[(("function", "resize"), ("priority", "high"))], 0.0)
        self.assertEqual(queued[(("function", "resize"), ("priority", "normal"))], 1.0)
        self.assertEqual(queued[(("function", "resize"), ("priority", "low"))], 1.0)
        self.assertEqual(queued[(("function", "mail"), ("priority", "normal"))], 1.0)

    def test_undecodableFunctionName(self) -> None:
        """
        A function name that is not UTF-8 is a label with its bytes escaped,
        rather than a scrape that fails.
        """
        self.service.startService()
        client = MemoryConnection(self.service.factory)
        client.send(P.SUBMIT_JOB_BG, b"f\xff\n", b"u", b"")
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_jobs"], {(("function", "f\\xff\n"),): 1.0})

    def test_gzip(self) -> None:
        """
        A scraper that takes gzip gets the body compressed, as from
        prometheus_client's own exporters, in the text format 0.0.4, which
        every Prometheus reads.
        """
        self.service.startService()
        request = DummyRequest([b"metrics"])
        request.requestHeaders.setRawHeaders(b"accept-encoding", [b"gzip"])
        resource = MetricsResource(self.service, self.reactor)
        self.assertEqual(resource.render(request), NOT_DONE_YET)
        self.assertTrue(request.finished)
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-encoding"), [b"gzip"])
        self.assertEqual(
            headers.getRawHeaders(b"content-type"),
            [b"text/plain; version=0.0.4; charset=utf-8"],
        )
        text = gzip.decompress(b"".join(request.written))
        self.assertIn(b"gearman_up 1.0\n", text)

    def test_slicedOverTurns(self) -> None:
        """
        With many functions, the per-function families are written a slice
        of functions per reactor turn, from the figures of the scrape's
        start; the result is one well-formed exposition, each family once.
        """
        self.service.startService()
        count = SLICE * 2 + 10
        for i in range(count):
            self.service.core.createFunction(b"f%04d" % i)
        request = DummyRequest([b"metrics"])
        MetricsResource(self.service, self.reactor).render(request)
        # The first slice is written, and the rest waits for the next turn.
        self.assertFalse(request.finished)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        # Created during the scrape: not in it.
        self.service.core.createFunction(b"late")
        self.reactor.advance(0)
        self.assertTrue(request.finished)
        text = b"".join(request.written).decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("gearman_jobs", "gearman_workers", "gearman_jobs_queued"):
            self.assertEqual(text.count(f"# TYPE {name} gauge"), 1)
        self.assertEqual(len(families["gearman_jobs"].samples), count)
        self.assertEqual(len(families["gearman_jobs_queued"].samples), count * 3)
        self.assertNotIn('function="late"', text)

    def test_scrapeAbandoned(self) -> None:
        """
        A scraper that goes away mid-scrape is not written to.
        """
        self.service.startService()
        for i in range(SLICE * 2):
            self.service.core.createFunction(b"f%04d" % i)
        request = DummyRequest([b"metrics"])
        MetricsResource(self.service, self.reactor).render(request)
        request.processingFailed(Exception("gone"))
        self.reactor.advance(0)
        self.reactor.advance(0)
        self.assertEqual(request.written, [])

    def test_readyAndStore(self) -> None:
        """
        C{gearman_ready} is what C{/readyz} says, and C{gearman_store_up}
        whether the store can store: always, in memory.
        """
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_ready"], {(): 0.0})
        self.assertEqual(metrics["gearman_store_up"], {(): 1.0})
        self.service.startService()
        self.assertEqual(self.scrape()["gearman_ready"], {(): 1.0})

    def test_counters(self) -> None:
        """
        The counters follow jobs as they are made and end, and ERROR
        answers by code; connections are told apart by role.
        """
        self.service.startService()
        factory = self.service.factory
        client = MemoryConnection(factory)
        worker = MemoryConnection(factory, 40001)
        worker.send(P.CAN_DO, b"f")
        client.send(P.SUBMIT_JOB, b"f", b"a", b"")
        client.send(P.SUBMIT_JOB, b"f", b"a", b"")  # joins the first
        client.send(P.SUBMIT_JOB_BG, b"f", b"b", b"")
        client.send(P.SUBMIT_JOB_EPOCH, b"f", b"c", b"9999999999", b"")
        client.send(P.SUBMIT_JOB_BG, b"f", b"d", b"")
        client.admin(b"maxqueue g 1")
        client.send(P.SUBMIT_JOB_BG, b"g", b"e", b"")
        client.send(P.SUBMIT_JOB_BG, b"g", b"f", b"")  # refused: full
        handles = []
        for _ in range(3):
            worker.output()
            worker.send(P.GRAB_JOB)
            [(_, body)] = worker.replies()
            handles.append(body.split(b"\0")[0])
        worker.send(P.WORK_COMPLETE, handles[0], b"")
        worker.send(P.WORK_FAIL, handles[1])
        worker.send(P.WORK_EXCEPTION, handles[2], b"boom")
        metrics = self.scrape()
        submitted = metrics["gearman_jobs_submitted_total"]
        self.assertEqual(submitted[(("kind", "foreground"),)], 1)
        self.assertEqual(submitted[(("kind", "background"),)], 3)
        self.assertEqual(submitted[(("kind", "epoch"),)], 1)
        self.assertEqual(metrics["gearman_jobs_completed_total"], {(): 1})
        self.assertEqual(metrics["gearman_jobs_failed_total"], {(): 1})
        self.assertEqual(metrics["gearman_jobs_exceptions_total"], {(): 1})
        self.assertEqual(
            metrics["gearman_errors_total"], {(("code", "QUEUE_ERROR"),): 1}
        )
        self.assertEqual(
            metrics["gearman_connections"],
            {(("role", "worker"),): 1, (("role", "other"),): 1},
        )
        worker.send(P.CAN_DO, b"g")
        worker.send(P.GRAB_JOB)
        worker.lose()
        metrics = self.scrape()
        # Its worker lost, the job of g waits for another.
        self.assertEqual(metrics["gearman_jobs_retried_total"], {(): 1})
        self.assertEqual(metrics["gearman_jobs_dropped_total"], {(): 0})
        self.assertEqual(metrics["gearman_connections"][(("role", "worker"),)], 0)

    def test_jobTimes(self) -> None:
        """
        The wait and run times are histograms of seconds by the server's
        clock; the oldest runnable job's age is a gauge per function, 0
        when none waits.
        """
        self.service.startService()
        factory = self.service.factory
        client = MemoryConnection(factory)
        worker = MemoryConnection(factory, 40001)
        client.send(P.SUBMIT_JOB_BG, b"f", b"a", b"")
        self.reactor.advance(3)
        client.send(P.SUBMIT_JOB_BG, b"f", b"b", b"")
        client.admin(b"create function idle")
        self.reactor.advance(2)
        metrics = self.scrape()
        self.assertEqual(
            metrics["gearman_oldest_job_age_seconds"],
            {(("function", "f"),): 5.0, (("function", "idle"),): 0.0},
        )
        worker.send(P.CAN_DO, b"f")
        worker.send(P.GRAB_JOB)
        [(_, body)] = worker.replies()
        self.reactor.advance(0.5)
        worker.send(P.WORK_COMPLETE, body.split(b"\0")[0], b"")
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_job_wait_seconds_count"], {(): 1})
        self.assertEqual(metrics["gearman_job_wait_seconds_sum"], {(): 5.0})
        self.assertEqual(
            metrics["gearman_job_wait_seconds_bucket"][(("le", "1.0"),)], 0
        )
        self.assertEqual(
            metrics["gearman_job_wait_seconds_bucket"][(("le", "5.0"),)], 1
        )
        self.assertEqual(metrics["gearman_job_run_seconds_sum"], {(): 0.5})
        self.assertEqual(metrics["gearman_job_run_seconds_bucket"][(("le", "0.5"),)], 1)
        self.assertEqual(
            metrics["gearman_oldest_job_age_seconds"][(("function", "f"),)], 2.5
        )

    def test_replay(self) -> None:
        """
        The replay's progress is a gauge of jobs replayed; its duration
        appears once it is done.
        """
        self.assertNotIn("gearman_replay_seconds", self.scrape())
        self.service.startService()
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_replayed_jobs"], {(): 0})
        self.assertEqual(metrics["gearman_replay_seconds"], {(): 0})

    def test_memoryStoreChecks(self) -> None:
        """
        The memory store has no backend: no checks, connection state or
        call timing, and it is up.
        """
        self.service.startService()
        metrics = self.scrape()
        self.assertEqual(metrics["gearman_store_up"], {(): 1})
        for name in (
            "gearman_store_check",
            "gearman_store_state",
            "gearman_store_call_seconds_count",
        ):
            self.assertNotIn(name, metrics)
