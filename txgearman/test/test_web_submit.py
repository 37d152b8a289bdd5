"""
Tests for L{txgearman.web.submit}: jobs submitted over HTTP to a real
site in memory (treq's L{StubTreq}), run by a worker connection on the same
server, driven by a memory reactor.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from txgearman.codec import PacketType as P
from txgearman.codec import Priority
from txgearman.server.interfaces import IPeer
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import MemoryConnection
from txgearman.web.site import webResource
from txgearman.web.submit import _HTTPJob


class SubmitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.service = GearmanServerService(
            "tcp:4730", reactor=self.reactor, handlePrefix=b"H:t"
        )
        self.service.startService()
        # StubTreq's request methods are made at run time.
        self.treq: Any = StubTreq(
            webResource(self.service, submit=True, submitTimeout=30)
        )
        self.worker = MemoryConnection(self.service.factory)

    def post(self, path: str, body: bytes = b"", **headers: str) -> Deferred[Any]:
        return self.treq.post(
            "http://server" + path,
            data=body,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )

    def answer(self, d: Deferred[Any]) -> tuple[int, dict[str, str], bytes]:
        self.treq.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        headers = {
            name.decode().lower(): values[-1].decode()
            for name, values in response.headers.getAllRawHeaders()
        }
        return response.code, headers, body

    def grab(self, function: bytes) -> tuple[bytes, bytes]:
        """
        The worker takes the next job of C{function}: its handle and data.
        """
        self.worker.send(P.CAN_DO, function)
        self.worker.output()
        self.worker.send(P.GRAB_JOB)
        [(ptype, body)] = self.worker.replies()
        self.assertEqual(ptype, P.JOB_ASSIGN)
        handle, name, data = body.split(b"\0", 2)
        self.assertEqual(name, function)
        return handle, data

    def test_foreground(self) -> None:
        """
        A POST runs a foreground job with the body as its workload; the
        result is the answer's body, with the handle and WORK_COMPLETE.
        """
        d = self.post("/resize", b"image")
        self.treq.flush()
        self.assertNoResult(d)
        handle, data = self.grab(b"resize")
        self.assertEqual(data, b"image")
        self.worker.send(P.WORK_COMPLETE, handle, b"small image")
        code, headers, body = self.answer(d)
        self.assertEqual(code, 200)
        self.assertEqual(body, b"small image")
        self.assertEqual(headers["x-gearman-job-handle"], handle.decode())
        self.assertEqual(headers["x-gearman-command"], "WORK_COMPLETE")
        # The request's session is gone with its answer.
        self.assertEqual(self.worker.admin(b"status"), b"resize\t0\t0\t1\n.\n")

    def test_streamed(self) -> None:
        """
        WORK_DATA is streamed as it comes (chunked), followed by the
        WORK_COMPLETE data: nothing is lost or overwritten.
        """
        d = self.post("/words")
        handle, _ = self.grab(b"words")
        self.worker.send(P.WORK_DATA, handle, b"one\n")
        self.worker.send(P.WORK_WARNING, handle, b"ignored")
        self.worker.send(P.WORK_STATUS, handle, b"1", b"2")
        self.worker.send(P.WORK_DATA, handle, b"two\n")
        self.worker.send(P.WORK_COMPLETE, handle, b"three\n")
        code, headers, body = self.answer(d)
        self.assertEqual(code, 200)
        self.assertEqual(body, b"one\ntwo\nthree\n")
        self.assertEqual(headers["x-gearman-command"], "WORK_DATA")

    def test_background(self) -> None:
        """
        C{X-Gearman-Background: true}: 202 with the handle once the job is
        queued; the job stays after the request is answered.
        """
        code, headers, body = self.answer(
            self.post("/mail", b"hi", X_Gearman_Background="true")
        )
        self.assertEqual(code, 202)
        self.assertEqual(headers["x-gearman-command"], "JOB_CREATED")
        self.assertEqual(body, b"")
        self.assertEqual(self.worker.admin(b"status"), b"mail\t1\t0\t0\n.\n")
        self.assertEqual(
            self.grab(b"mail")[0].decode(), headers["x-gearman-job-handle"]
        )

    def test_priorityAndUnique(self) -> None:
        """
        C{X-Gearman-Priority} queues at that priority; the same
        C{X-Gearman-Unique} joins the live job, as a binary submit does.
        """
        headers = {"X_Gearman_Background": "true", "X_Gearman_Unique": "u1"}
        first = self.answer(self.post("/f", b"a", X_Gearman_Priority="high", **headers))
        second = self.answer(self.post("/f", b"b", **headers))
        self.assertEqual(
            first[1]["x-gearman-job-handle"], second[1]["x-gearman-job-handle"]
        )
        self.answer(
            self.post("/f", b"c", X_Gearman_Background="true", X_Gearman_Priority="LOW")
        )
        self.assertEqual(self.worker.admin(b"prioritystatus"), b"f\t1\t0\t1\t0\n.\n")

    def test_noUniqueCoalescesSameBody(self) -> None:
        """
        Without a unique id, as in gearmand's plugin, the unique is C{-}:
        identical workloads share one job.
        """
        a = self.answer(self.post("/f", b"same", X_Gearman_Background="true"))
        b = self.answer(self.post("/f", b"same", X_Gearman_Background="true"))
        c = self.answer(self.post("/f", b"other", X_Gearman_Background="true"))
        self.assertEqual(a[1]["x-gearman-job-handle"], b[1]["x-gearman-job-handle"])
        self.assertNotEqual(a[1]["x-gearman-job-handle"], c[1]["x-gearman-job-handle"])

    def test_failed(self) -> None:
        """
        WORK_FAIL is 502 with its whole handle; WORK_EXCEPTION 502 with the
        exception's data as the body.
        """
        d = self.post("/f", b"1")
        handle, _ = self.grab(b"f")
        self.worker.send(P.WORK_FAIL, handle)
        code, headers, body = self.answer(d)
        self.assertEqual(code, 502)
        self.assertEqual(headers["x-gearman-command"], "WORK_FAIL")
        self.assertEqual(headers["x-gearman-job-handle"], handle.decode())
        d = self.post("/f", b"2")
        self.worker.send(P.GRAB_JOB)
        [(_, assigned)] = self.worker.replies()
        handle = assigned.split(b"\0")[0]
        self.worker.send(P.WORK_EXCEPTION, handle, b"KeyError: 'size'")
        code, headers, body = self.answer(d)
        self.assertEqual(
            (code, headers["x-gearman-command"], body),
            (502, "WORK_EXCEPTION", b"KeyError: 'size'"),
        )

    def test_timeout(self) -> None:
        """
        No result within the timeout (the request's C{X-Gearman-Timeout},
        else the site's): 504, and the job, which nobody else waits for,
        is dropped.
        """
        d = self.post("/slow", b"", X_Gearman_Timeout="2.5")
        self.treq.flush()
        self.reactor.advance(2.4)
        self.assertNoResult(d)
        self.reactor.advance(0.2)
        code, headers, _ = self.answer(d)
        self.assertEqual(code, 504)
        self.assertEqual(headers["x-gearman-command"], "TIMEOUT")
        # Nothing needs the function any more: it is forgotten.
        self.assertEqual(self.worker.admin(b"status"), b".\n")
        d = self.post("/slow")
        self.treq.flush()
        self.reactor.advance(30)
        self.assertEqual(self.answer(d)[0], 504)

    def test_refused(self) -> None:
        """
        A queue at its C{maxqueue} limit, and a draining server, are 503
        with the server's reason: try later, or elsewhere.
        """
        self.worker.admin(b"maxqueue f 1")
        self.answer(self.post("/f", b"1", X_Gearman_Background="true"))
        code, headers, body = self.answer(
            self.post("/f", b"2", X_Gearman_Background="true")
        )
        self.assertEqual((code, headers["x-gearman-error"]), (503, "QUEUE_ERROR"))
        self.assertIn(b"Job queue is full", body)
        self.service.drain(timeout=1)
        code, headers, body = self.answer(self.post("/g", b"3"))
        self.assertEqual((code, headers["x-gearman-error"]), (503, "SERVER_DRAINING"))

    def test_functionName(self) -> None:
        """
        The path, percent-decoded, is the function name; none is a 404.
        """
        d = self.post("/image%20resize%2Fv2", b"x", X_Gearman_Background="true")
        self.assertEqual(self.answer(d)[0], 202)
        self.assertEqual(self.worker.admin(b"status"), b"image resize/v2\t1\t0\t0\n.\n")
        self.assertEqual(self.answer(self.post("/"))[0], 404)

    def test_badHeaders(self) -> None:
        """
        A header with a value the server does not take is a 400 naming it.
        """
        for headers, named in [
            ({"X_Gearman_Priority": "urgent"}, b"X-Gearman-Priority"),
            ({"X_Gearman_Background": "maybe"}, b"X-Gearman-Background"),
            ({"X_Gearman_Timeout": "0"}, b"X-Gearman-Timeout"),
            ({"X_Gearman_Timeout": "soon"}, b"X-Gearman-Timeout"),
        ]:
            code, _, body = self.answer(self.post("/f", b"", **headers))
            self.assertEqual(code, 400, headers)
            self.assertIn(named, body)

    def test_clientGone(self) -> None:
        """
        A client that goes away before its result leaves the job as a
        binary client that disconnects does: dropped, if nobody else
        waits for it and no worker has it.
        """
        d = self.post("/f", b"x")
        self.treq.flush()
        self.assertEqual(self.worker.admin(b"status"), b"f\t1\t0\t0\n.\n")
        d.cancel()
        self.treq.flush()
        self.failureResultOf(d)
        self.assertEqual(self.worker.admin(b"status"), b".\n")

    def test_putAlso(self) -> None:
        """
        PUT submits as POST does.
        """
        d = self.treq.put(
            "http://server/f", data=b"x", headers={"X-Gearman-Background": "true"}
        )
        self.assertEqual(self.answer(d)[0], 202)

    def test_offByDefault(self) -> None:
        """
        Without submission, POST and PUT are 405, naming GET and HEAD.
        """
        treq: Any = StubTreq(webResource(self.service))
        response = self.successResultOf(treq.post("http://server/f", data=b"x"))
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])
        self.assertEqual(self.worker.admin(b"status"), b".\n")


class PushRequest(DummyRequest):
    """
    A L{DummyRequest} that keeps a push producer, as a real request hands
    it to its channel (L{DummyRequest} pulls from any producer in a loop).
    """

    producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class StreamingFlowTests(SynchronousTestCase):
    """
    A client that does not read its streamed result holds back the worker
    streaming it, as a binary client does.
    """

    def test_interfaces(self) -> None:
        """
        An HTTP submission is an L{IPeer} to the core and an
        L{IPushProducer} to its request.
        """
        service = GearmanServerService("tcp:4730", reactor=MemoryReactorClock())
        request: Any = DummyRequest([b"f"])
        job = _HTTPJob(request, service.core, service.reactor, 30)
        self.assertTrue(verifyObject(IPeer, job))
        self.assertTrue(verifyObject(IPushProducer, job))

    def test_fullClientPausesWorker(self) -> None:
        """
        Once the result streams, the request's transport pausing the job
        pauses the worker's reading; resuming resumes it.
        """
        reactor = MemoryReactorClock()
        service = GearmanServerService("tcp:4730", reactor=reactor)
        service.startService()
        worker = MemoryConnection(service.factory)
        worker.send(P.CAN_DO, b"f")
        request: Any = PushRequest([b"f"])
        job = _HTTPJob(request, service.core, reactor, 30)
        job.start(b"f", b"", b"x", Priority.NORMAL, False)
        worker.output()
        worker.send(P.GRAB_JOB)
        [(_, assigned)] = worker.replies()
        handle = assigned.split(b"\0")[0]
        worker.send(P.WORK_DATA, handle, b"part")
        self.assertIs(request.producer, job)
        self.assertEqual(worker.transport.producerState, "producing")
        job.pauseProducing()
        self.assertEqual(worker.transport.producerState, "paused")
        job.resumeProducing()
        self.assertEqual(worker.transport.producerState, "producing")
        worker.send(P.WORK_COMPLETE, handle, b"")
        self.assertEqual(request.written, [b"part"])
        self.assertTrue(request.finished)
        self.assertIsNone(request.producer)
