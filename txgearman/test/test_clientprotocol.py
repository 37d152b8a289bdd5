"""
Unit tests for L{txgearman.client.clientprotocol.GearmanClientProtocol} on an
in-memory transport.

What the client must send is written with L{txgearman.test.fakes.request},
an encoder independent of the codec; the server's answers are encoded with
L{txgearman.codec.encode}.  Every comparison is byte-exact.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txgearman.client import clientprotocol
from txgearman.client.clientprotocol import (
    GearmanClientProtocol,
    JobCallbacks,
    JobStatus,
)
from txgearman.client.errors import (
    GearmanConnectionLost,
    GearmanError,
    JobException,
    JobFailed,
    ServerError,
)
from txgearman.codec import RES, PacketType, Priority, encode
from txgearman.test.fakes import request

_P = PacketType


def answer(ptype: PacketType, *args: bytes) -> bytes:
    """A server packet, as the server's codec encodes it."""
    return encode(RES, ptype, args)


def connect(
    maxPacketSize: int | None = None,
) -> tuple[GearmanClientProtocol, StringTransport]:
    """
    A protocol on a L{StringTransport} whose OPTION_REQ was answered, with
    the transport's buffer emptied.
    """
    protocol = (
        GearmanClientProtocol()
        if maxPacketSize is None
        else GearmanClientProtocol(maxPacketSize)
    )
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(answer(_P.OPTION_RES, b"exceptions"))
    transport.clear()
    return protocol, transport


class Recorder:
    """
    L{JobCallbacks} whose intermediate callbacks record what they get.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.callbacks = JobCallbacks(
            onData=lambda data: self.events.append(("data", data)),
            onWarning=lambda data: self.events.append(("warning", data)),
            onStatus=lambda n, d: self.events.append(("status", (n, d))),
        )


class ConnectionTests(SynchronousTestCase):
    """
    Connecting, disconnecting and requests without a connection.
    """

    def test_optionOnConnect(self) -> None:
        """
        On connecting the client asks for WORK_EXCEPTION packets with
        C{OPTION_REQ exceptions}, and that request takes the first answer,
        so the next answer goes to the next request.
        """
        protocol = GearmanClientProtocol()
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(protocol.connected)
        self.assertEqual(transport.value(), request(_P.OPTION_REQ, b"exceptions"))
        echoed = protocol.echo(b"ping")
        protocol.dataReceived(answer(_P.OPTION_RES, b"exceptions"))
        self.assertNoResult(echoed)
        protocol.dataReceived(answer(_P.ECHO_RES, b"ping"))
        self.assertEqual(self.successResultOf(echoed), b"ping")

    def test_optionRefused(self) -> None:
        """
        A server that refuses the option answers ERROR: the client keeps
        working (no unhandled error) and the next answer goes to the next
        request.
        """
        protocol = GearmanClientProtocol()
        transport = StringTransport()
        protocol.makeConnection(transport)
        echoed = protocol.echo(b"x")
        protocol.dataReceived(answer(_P.ERROR, b"UNKNOWN_OPTION", b"no such option"))
        protocol.dataReceived(answer(_P.ECHO_RES, b"x"))
        self.assertEqual(self.successResultOf(echoed), b"x")
        self.assertFalse(transport.disconnecting)

    def test_notConnected(self) -> None:
        """
        Requests made before the connection is up fail at once with
        L{GearmanConnectionLost} and send nothing.
        """
        protocol = GearmanClientProtocol()
        self.assertFalse(protocol.connected)
        self.failureResultOf(protocol.echo(b"x"), GearmanConnectionLost)
        self.failureResultOf(protocol.getStatus(b"H:1"), GearmanConnectionLost)
        self.failureResultOf(protocol.getStatusUnique(b"u"), GearmanConnectionLost)
        self.failureResultOf(
            protocol.submitBackground(b"f", b"x"), GearmanConnectionLost
        )
        self.failureResultOf(
            protocol.submitJob(b"f", b"x").result, GearmanConnectionLost
        )

    def test_connectionLost(self) -> None:
        """
        When the connection goes, every request still waiting for its
        answer and every foreground job already created fail with
        L{GearmanConnectionLost}; L{GearmanClientProtocol.whenLost} fires; later
        requests fail at once and write nothing.
        """
        protocol, transport = connect()
        running = protocol.submitJob(b"f", b"running")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:1"))
        self.assertNoResult(running.result)
        notCreated = protocol.submitJob(b"f", b"waiting")
        background = protocol.submitBackground(b"f", b"bg")
        status = protocol.getStatus(b"H:1")
        statusUnique = protocol.getStatusUnique(b"u")
        echoed = protocol.echo(b"e")
        option = protocol.setOption(b"exceptions")
        lost = protocol.whenLost()
        self.assertNoResult(lost)

        protocol.connectionLost(Failure(ConnectionDone("bye")))

        self.assertFalse(protocol.connected)
        failure = self.failureResultOf(running.result, GearmanConnectionLost)
        self.assertIn("H:1", failure.getErrorMessage())
        self.assertEqual(running.handle, b"H:1")
        self.failureResultOf(notCreated.result, GearmanConnectionLost)
        self.assertEqual(notCreated.handle, b"")
        for waiting in (background, status, statusUnique, echoed, option):
            self.failureResultOf(waiting, GearmanConnectionLost)
        self.assertIsNone(self.successResultOf(lost))
        self.assertIsNone(self.successResultOf(protocol.whenLost()))

        transport.clear()
        self.failureResultOf(protocol.echo(b"late"), GearmanConnectionLost)
        self.failureResultOf(
            protocol.submitJob(b"f", b"late").result, GearmanConnectionLost
        )
        self.assertEqual(transport.value(), b"")

    def test_setClientId(self) -> None:
        """
        C{setClientId} sends SET_CLIENT_ID, which has no answer: the next
        answer still goes to the next request.
        """
        protocol, transport = connect()
        protocol.setClientId(b"my-client")
        echoed = protocol.echo(b"x")
        self.assertEqual(
            transport.value(),
            request(_P.SET_CLIENT_ID, b"my-client") + request(_P.ECHO_REQ, b"x"),
        )
        protocol.dataReceived(answer(_P.ECHO_RES, b"x"))
        self.assertEqual(self.successResultOf(echoed), b"x")


class ForegroundTests(SynchronousTestCase):
    """
    Foreground jobs: submitting, following, ending.
    """

    def test_priorities(self) -> None:
        """
        Each priority sends its own SUBMIT_JOB packet, with the function,
        the unique id and the data in that order.
        """
        expected = {
            Priority.HIGH: _P.SUBMIT_JOB_HIGH,
            Priority.NORMAL: _P.SUBMIT_JOB,
            Priority.LOW: _P.SUBMIT_JOB_LOW,
        }
        for priority, ptype in expected.items():
            protocol, transport = connect()
            protocol.submitJob(b"func", b"da\0ta", b"uniq", priority)
            self.assertEqual(
                transport.value(), request(ptype, b"func", b"uniq", b"da\0ta"), priority
            )
        protocol, transport = connect()
        protocol.submitJob(b"func", b"data")
        self.assertEqual(
            transport.value(), request(_P.SUBMIT_JOB, b"func", b"", b"data")
        )

    def test_lifecycle(self) -> None:
        """
        After JOB_CREATED, WORK_DATA, WORK_WARNING and WORK_STATUS reach
        their callbacks in order, and WORK_COMPLETE fires the result.
        """
        protocol, _ = connect()
        recorder = Recorder()
        callbacks = protocol.submitJob(b"f", b"x", callbacks=recorder.callbacks)
        self.assertIs(callbacks, recorder.callbacks)
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:host:1"))
        self.assertEqual(callbacks.handle, b"H:host:1")
        protocol.dataReceived(
            answer(_P.WORK_DATA, b"H:host:1", b"part\0one")
            + answer(_P.WORK_WARNING, b"H:host:1", b"careful")
            + answer(_P.WORK_STATUS, b"H:host:1", b"1", b"3")
        )
        self.assertNoResult(callbacks.result)
        protocol.dataReceived(answer(_P.WORK_STATUS, b"H:host:1", b"3", b"3"))
        protocol.dataReceived(answer(_P.WORK_COMPLETE, b"H:host:1", b"the\0result"))
        self.assertEqual(self.successResultOf(callbacks.result), b"the\0result")
        self.assertEqual(
            recorder.events,
            [
                ("data", b"part\0one"),
                ("warning", b"careful"),
                ("status", (1, 3)),
                ("status", (3, 3)),
            ],
        )

    def test_noCallbacks(self) -> None:
        """
        Intermediate packets for a job submitted without callbacks are
        ignored.
        """
        protocol, _ = connect()
        callbacks = protocol.submitJob(b"f", b"x")
        protocol.dataReceived(
            answer(_P.JOB_CREATED, b"H:1")
            + answer(_P.WORK_DATA, b"H:1", b"d")
            + answer(_P.WORK_WARNING, b"H:1", b"w")
            + answer(_P.WORK_STATUS, b"H:1", b"1", b"2")
            + answer(_P.WORK_COMPLETE, b"H:1", b"r")
        )
        self.assertEqual(self.successResultOf(callbacks.result), b"r")

    def test_workFail(self) -> None:
        """
        WORK_FAIL fails the result with L{JobFailed}, naming the handle.
        """
        protocol, _ = connect()
        callbacks = protocol.submitJob(b"f", b"x")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:7"))
        protocol.dataReceived(answer(_P.WORK_FAIL, b"H:7"))
        failure = self.failureResultOf(callbacks.result, JobFailed)
        self.assertEqual(failure.value.handle, b"H:7")
        self.assertIsInstance(failure.value, GearmanError)

    def test_workException(self) -> None:
        """
        WORK_EXCEPTION fails the result with L{JobException}, carrying the
        handle and the worker's data.
        """
        protocol, _ = connect()
        callbacks = protocol.submitJob(b"f", b"x")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:8"))
        protocol.dataReceived(answer(_P.WORK_EXCEPTION, b"H:8", b"KeyError: 'k'"))
        failure = self.failureResultOf(callbacks.result, JobException)
        self.assertEqual(
            (failure.value.handle, failure.value.data), (b"H:8", b"KeyError: 'k'")
        )
        self.assertEqual(str(failure.value), "KeyError: 'k'")

    def test_coalesced(self) -> None:
        """
        Two submits the server coalesced onto one handle both get every
        intermediate packet and the one result.
        """
        protocol, _ = connect()
        first, second = Recorder(), Recorder()
        one = protocol.submitJob(b"f", b"x", b"same", callbacks=first.callbacks)
        two = protocol.submitJob(b"f", b"x", b"same", callbacks=second.callbacks)
        protocol.dataReceived(
            answer(_P.JOB_CREATED, b"H:1") + answer(_P.JOB_CREATED, b"H:1")
        )
        self.assertEqual((one.handle, two.handle), (b"H:1", b"H:1"))
        protocol.dataReceived(answer(_P.WORK_DATA, b"H:1", b"chunk"))
        protocol.dataReceived(answer(_P.WORK_COMPLETE, b"H:1", b"shared"))
        self.assertEqual(self.successResultOf(one.result), b"shared")
        self.assertEqual(self.successResultOf(two.result), b"shared")
        self.assertEqual(first.events, [("data", b"chunk")])
        self.assertEqual(second.events, [("data", b"chunk")])

    def test_jobsByHandle(self) -> None:
        """
        Packets of two running jobs are routed by handle, whatever their
        order; packets for an unknown handle are ignored.
        """
        protocol, _ = connect()
        a, b = Recorder(), Recorder()
        ja = protocol.submitJob(b"f", b"a", callbacks=a.callbacks)
        jb = protocol.submitJob(b"f", b"b", callbacks=b.callbacks)
        protocol.dataReceived(
            answer(_P.JOB_CREATED, b"H:a") + answer(_P.JOB_CREATED, b"H:b")
        )
        protocol.dataReceived(
            answer(_P.WORK_DATA, b"H:b", b"to b")
            + answer(_P.WORK_DATA, b"H:nobody", b"lost")
            + answer(_P.WORK_COMPLETE, b"H:nobody", b"lost")
            + answer(_P.WORK_COMPLETE, b"H:b", b"B")
            + answer(_P.WORK_DATA, b"H:a", b"to a")
        )
        self.assertEqual(self.successResultOf(jb.result), b"B")
        self.assertNoResult(ja.result)
        protocol.dataReceived(answer(_P.WORK_COMPLETE, b"H:a", b"A"))
        self.assertEqual(self.successResultOf(ja.result), b"A")
        self.assertEqual(
            (a.events, b.events), ([("data", b"to a")], [("data", b"to b")])
        )

    def test_failingCallback(self) -> None:
        """
        A callback that raises is logged; the other callbacks, the result
        and later requests are unaffected.
        """
        protocol, transport = connect()
        other = Recorder()

        def broken(data: bytes) -> None:
            raise ZeroDivisionError(data)

        statuses: list[tuple[int, int]] = []
        brokenJob = protocol.submitJob(
            b"f",
            b"x",
            b"u",
            callbacks=JobCallbacks(
                onData=broken, onStatus=lambda n, d: statuses.append((n, d))
            ),
        )
        otherJob = protocol.submitJob(b"f", b"x", b"u", callbacks=other.callbacks)
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:1") * 2)
        protocol.dataReceived(
            answer(_P.WORK_DATA, b"H:1", b"boom")
            + answer(_P.WORK_STATUS, b"H:1", b"1", b"2")
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(statuses, [(1, 2)])
        self.assertEqual(other.events, [("data", b"boom"), ("status", (1, 2))])
        echoed = protocol.echo(b"still here")
        protocol.dataReceived(
            answer(_P.WORK_COMPLETE, b"H:1", b"done")
            + answer(_P.ECHO_RES, b"still here")
        )
        self.assertEqual(self.successResultOf(brokenJob.result), b"done")
        self.assertEqual(self.successResultOf(otherJob.result), b"done")
        self.assertEqual(self.successResultOf(echoed), b"still here")
        self.assertFalse(transport.disconnecting)


class RequestTests(SynchronousTestCase):
    """
    Background submits, status queries, echo, and ERROR answers.
    """

    def test_background(self) -> None:
        """
        Each priority sends its own SUBMIT_JOB_*_BG packet; the Deferred
        fires with the handle of JOB_CREATED.
        """
        expected = {
            Priority.HIGH: _P.SUBMIT_JOB_HIGH_BG,
            Priority.NORMAL: _P.SUBMIT_JOB_BG,
            Priority.LOW: _P.SUBMIT_JOB_LOW_BG,
        }
        for priority, ptype in expected.items():
            protocol, transport = connect()
            created = protocol.submitBackground(b"func", b"da\0ta", b"uniq", priority)
            self.assertEqual(
                transport.value(), request(ptype, b"func", b"uniq", b"da\0ta"), priority
            )
            self.assertNoResult(created)
            protocol.dataReceived(answer(_P.JOB_CREATED, b"H:%d" % (priority,)))
            self.assertEqual(self.successResultOf(created), b"H:%d" % (priority,))

    def test_unencodableRequest(self) -> None:
        """
        A request whose arguments cannot be encoded raises, sends nothing
        and registers nothing: the next answer still goes to the request it
        belongs to.
        """
        protocol, transport = connect()
        first = protocol.submitBackground(b"f", b"one")
        sent = transport.value()
        self.assertRaises(TypeError, protocol.submitBackground, b"f", "two")
        self.assertEqual(transport.value(), sent)
        echoed = protocol.echo(b"three")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:1"))
        protocol.dataReceived(answer(_P.ECHO_RES, b"three"))
        self.assertEqual(self.successResultOf(first), b"H:1")
        self.assertEqual(self.successResultOf(echoed), b"three")
        self.assertTrue(protocol.connected)

    def test_epoch(self) -> None:
        """
        With C{when}, the job goes as SUBMIT_JOB_EPOCH with the time in
        decimal between the unique id and the data, whatever the priority.
        """
        for priority in Priority:
            protocol, transport = connect()
            created = protocol.submitBackground(
                b"f", b"data", b"u", priority, when=1700000000
            )
            self.assertEqual(
                transport.value(),
                request(_P.SUBMIT_JOB_EPOCH, b"f", b"u", b"1700000000", b"data"),
            )
            protocol.dataReceived(answer(_P.JOB_CREATED, b"H:e"))
            self.assertEqual(self.successResultOf(created), b"H:e")

    def test_getStatus(self) -> None:
        """
        GET_STATUS is answered by STATUS_RES, parsed into a L{JobStatus}.
        """
        protocol, transport = connect()
        running = protocol.getStatus(b"H:1")
        unknown = protocol.getStatus(b"H:2")
        self.assertEqual(
            transport.value(),
            request(_P.GET_STATUS, b"H:1") + request(_P.GET_STATUS, b"H:2"),
        )
        protocol.dataReceived(
            answer(_P.STATUS_RES, b"H:1", b"1", b"1", b"3", b"4")
            + answer(_P.STATUS_RES, b"H:2", b"0", b"0", b"0", b"0")
        )
        self.assertEqual(
            self.successResultOf(running), JobStatus(b"H:1", b"", True, True, 3, 4, 0)
        )
        self.assertEqual(
            self.successResultOf(unknown), JobStatus(b"H:2", b"", False, False, 0, 0, 0)
        )

    def test_getStatusQueued(self) -> None:
        """
        A known job that no worker runs yet is C{known} and not
        C{running}; a progress field that is not a number reads as 0.
        """
        protocol, _ = connect()
        status = protocol.getStatus(b"H:3")
        protocol.dataReceived(answer(_P.STATUS_RES, b"H:3", b"1", b"0", b"", b"x"))
        self.assertEqual(
            self.successResultOf(status), JobStatus(b"H:3", b"", True, False, 0, 0, 0)
        )

    def test_getStatusUnique(self) -> None:
        """
        GET_STATUS_UNIQUE is answered by STATUS_RES_UNIQUE, parsed into a
        L{JobStatus} that counts the waiting clients.
        """
        protocol, transport = connect()
        status = protocol.getStatusUnique(b"the-unique")
        self.assertEqual(
            transport.value(), request(_P.GET_STATUS_UNIQUE, b"the-unique")
        )
        protocol.dataReceived(
            answer(_P.STATUS_RES_UNIQUE, b"the-unique", b"1", b"1", b"2", b"5", b"3")
        )
        self.assertEqual(
            self.successResultOf(status),
            JobStatus(b"", b"the-unique", True, True, 2, 5, 3),
        )

    def test_echo(self) -> None:
        """
        ECHO_REQ carries the data as is, NULs included; ECHO_RES answers.
        """
        protocol, transport = connect()
        echoed = protocol.echo(b"a\0b")
        self.assertEqual(transport.value(), request(_P.ECHO_REQ, b"a\0b"))
        protocol.dataReceived(answer(_P.ECHO_RES, b"a\0b"))
        self.assertEqual(self.successResultOf(echoed), b"a\0b")

    def test_errorAnswersOldest(self) -> None:
        """
        ERROR answers the oldest waiting request, with a L{ServerError}
        carrying the code and text; the next answers go to the next
        requests.
        """
        protocol, _ = connect()
        refused = protocol.submitJob(b"f", b"x", b"u" * 100)
        background = protocol.submitBackground(b"f", b"x")
        echoed = protocol.echo(b"e")
        protocol.dataReceived(
            answer(_P.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
        )
        failure = self.failureResultOf(refused.result, ServerError)
        self.assertEqual(
            (failure.value.code, failure.value.text),
            (b"ARGUMENT_TOO_LARGE", b"Unique value too large"),
        )
        self.assertEqual(
            str(failure.value), "ARGUMENT_TOO_LARGE: Unique value too large"
        )
        self.assertNoResult(background)
        protocol.dataReceived(answer(_P.ERROR, b"QUEUE_ERROR", b"Job queue is full"))
        failure = self.failureResultOf(background, ServerError)
        self.assertEqual(failure.value.code, b"QUEUE_ERROR")
        protocol.dataReceived(answer(_P.ECHO_RES, b"e"))
        self.assertEqual(self.successResultOf(echoed), b"e")

    def test_oneByteChunks(self) -> None:
        """
        Answers and job packets split into one-byte chunks are put
        together: every request gets its answer and the job its news.
        """
        protocol, _ = connect()
        recorder = Recorder()
        job = protocol.submitJob(b"f", b"x", callbacks=recorder.callbacks)
        background = protocol.submitBackground(b"f", b"y")
        status = protocol.getStatus(b"H:bg")
        statusUnique = protocol.getStatusUnique(b"u")
        echoed = protocol.echo(b"\0echo\0")
        stream = (
            answer(_P.JOB_CREATED, b"H:fg")
            + answer(_P.WORK_STATUS, b"H:fg", b"1", b"2")
            + answer(_P.JOB_CREATED, b"H:bg")
            + answer(_P.STATUS_RES, b"H:bg", b"1", b"0", b"0", b"0")
            + answer(_P.WORK_DATA, b"H:fg", b"chunk")
            + answer(_P.STATUS_RES_UNIQUE, b"u", b"0", b"0", b"0", b"0", b"0")
            + answer(_P.ECHO_RES, b"\0echo\0")
            + answer(_P.WORK_COMPLETE, b"H:fg", b"done")
        )
        for i in range(len(stream)):
            protocol.dataReceived(stream[i : i + 1])
        self.assertEqual(self.successResultOf(job.result), b"done")
        self.assertEqual(recorder.events, [("status", (1, 2)), ("data", b"chunk")])
        self.assertEqual(self.successResultOf(background), b"H:bg")
        self.assertEqual(
            self.successResultOf(status), JobStatus(b"H:bg", b"", True, False, 0, 0, 0)
        )
        self.assertEqual(
            self.successResultOf(statusUnique),
            JobStatus(b"", b"u", False, False, 0, 0, 0),
        )
        self.assertEqual(self.successResultOf(echoed), b"\0echo\0")

    def test_unexpectedAnswerIgnored(self) -> None:
        """
        An answer when no request waits is ignored (and logged), and the
        connection stays up.
        """
        protocol, transport = connect()
        protocol.dataReceived(answer(_P.ECHO_RES, b"unasked"))
        echoed = protocol.echo(b"x")
        protocol.dataReceived(answer(_P.ECHO_RES, b"x"))
        self.assertEqual(self.successResultOf(echoed), b"x")
        self.assertFalse(transport.disconnecting)


class BrokenServerTests(SynchronousTestCase):
    """
    A server that breaks the protocol loses the connection.
    """

    def assertAborted(self, transport: StringTransport) -> None:
        """
        The protocol aborted the connection (not a graceful close, which
        would wait for a broken server).
        """
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.disconnected, "the connection was not aborted")

    def test_badMagic(self) -> None:
        """
        A packet with an unknown magic aborts the connection, and the
        requests waiting fail with L{GearmanConnectionLost} once it is lost.
        """
        protocol, transport = connect()
        echoed = protocol.echo(b"x")
        protocol.dataReceived(b"\0XYZ" + b"\0\0\0\x11\0\0\0\0")
        self.assertAborted(transport)
        self.assertNoResult(echoed)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(echoed, GearmanConnectionLost)

    def test_garbageInChunks(self) -> None:
        """
        Garbage that arrives a byte at a time is detected too, and the
        bytes that follow it do nothing.
        """
        protocol, transport = connect()
        echoed = protocol.echo(b"x")
        for byte in b"\0RES\0\0\0\xff\0\0\0\0" + answer(_P.ECHO_RES, b"x"):
            protocol.dataReceived(bytes([byte]))
        self.assertAborted(transport)
        self.assertNoResult(echoed)

    def test_requestMagic(self) -> None:
        """
        A packet with the REQ magic (a server must send RES) aborts the
        connection.
        """
        protocol, transport = connect()
        echoed = protocol.echo(b"x")
        protocol.dataReceived(request(_P.ECHO_RES, b"x"))
        self.assertAborted(transport)
        self.assertNoResult(echoed)

    def test_textLine(self) -> None:
        """
        A text line (an admin reply) is not a Gearman packet: the
        connection is aborted.
        """
        protocol, transport = connect()
        protocol.echo(b"x")
        protocol.dataReceived(b"OK\n")
        self.assertAborted(transport)

    def test_packetTooLarge(self) -> None:
        """
        A packet larger than C{maxPacketSize} aborts the connection
        before its body arrives.
        """
        protocol, transport = connect(maxPacketSize=16)
        echoed = protocol.echo(b"x")
        protocol.dataReceived(answer(_P.ECHO_RES, b"x" * 17)[:12])
        self.assertAborted(transport)
        self.assertNoResult(echoed)

    def test_wrongAnswer(self) -> None:
        """
        An answer of the wrong type for the oldest request fails that
        request with C{ServerError(b"PROTOCOL", ...)} and aborts the
        connection.
        """
        protocol, transport = connect()
        echoed = protocol.echo(b"x")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:1"))
        failure = self.failureResultOf(echoed, ServerError)
        self.assertEqual(failure.value.code, b"PROTOCOL")
        self.assertAborted(transport)

    def test_nothingAfterWrongAnswer(self) -> None:
        """
        Once an answer of the wrong type has shown that answers and
        requests no longer match, the answers that follow it in the same
        read are not handed to the later requests: those fail with
        L{GearmanConnectionLost} when the aborted connection goes.
        """
        protocol, transport = connect()
        created = protocol.submitBackground(b"f", b"x")
        first = protocol.echo(b"first")
        second = protocol.echo(b"second")
        # The server skipped the JOB_CREATED: each echo answer is off by one.
        protocol.dataReceived(
            answer(_P.ECHO_RES, b"first") + answer(_P.ECHO_RES, b"second")
        )
        self.failureResultOf(created, ServerError)
        self.assertAborted(transport)
        self.assertNoResult(first)
        self.assertNoResult(second)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(first, GearmanConnectionLost)
        self.failureResultOf(second, GearmanConnectionLost)


class DispatchTests(SynchronousTestCase):
    """
    Each packet goes to its type's C{packet_<NAME>} method, looked up on the
    protocol's own class; a handler that raises costs its connection only.
    """

    def test_subclassOverrides(self) -> None:
        """
        A subclass's handler overrides the base class's; the base class
        keeps its own.
        """

        class Shouting(GearmanClientProtocol):
            def packet_ECHO_RES(self, args: tuple[bytes, ...]) -> None:
                super().packet_ECHO_RES((args[0].upper(),))

        protocol = Shouting()
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(answer(_P.OPTION_RES, b"exceptions"))
        echoed = protocol.echo(b"hi")
        protocol.dataReceived(answer(_P.ECHO_RES, b"hi"))
        self.assertEqual(self.successResultOf(echoed), b"HI")
        plain, _ = connect()
        echoed = plain.echo(b"hi")
        plain.dataReceived(answer(_P.ECHO_RES, b"hi"))
        self.assertEqual(self.successResultOf(echoed), b"hi")

    def test_handlerFails(self) -> None:
        """
        A handler that raises is logged with its packet type and aborts
        the connection, reading nothing more; once it is lost, what waited
        on it fails with L{GearmanConnectionLost}, the request being
        answered included.  Another connection is served as before.
        """

        def broken(*args: object) -> JobStatus:
            raise ZeroDivisionError("bug")

        self.patch(clientprotocol, "JobStatus", broken)
        protocol, transport = connect()
        job = protocol.submitJob(b"f", b"x")
        protocol.dataReceived(answer(_P.JOB_CREATED, b"H:1"))
        status = protocol.getStatus(b"H:1")
        echoed = protocol.echo(b"x")
        with capturedLogs() as events:
            protocol.dataReceived(
                answer(_P.STATUS_RES, b"H:1", b"1", b"1", b"0", b"0")
                + answer(_P.ECHO_RES, b"x")
            )
        self.assertTrue(transport.disconnected, "the connection was not aborted")
        [event] = [e for e in events if "log_failure" in e]
        self.assertEqual(event["packetType"], "STATUS_RES")
        self.assertIsInstance(event["log_failure"].value, ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertNoResult(status)
        self.assertNoResult(echoed)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(status, GearmanConnectionLost)
        self.failureResultOf(echoed, GearmanConnectionLost)
        self.failureResultOf(job.result, GearmanConnectionLost)

        other, otherTransport = connect()
        echoed = other.echo(b"y")
        other.dataReceived(answer(_P.ECHO_RES, b"y"))
        self.assertEqual(self.successResultOf(echoed), b"y")
        self.assertFalse(otherTransport.disconnecting)


class ErrorTests(SynchronousTestCase):
    """
    The exceptions' fields and texts.
    """

    def test_hierarchy(self) -> None:
        """
        Every client error is a L{GearmanError}.
        """
        for error in (
            ServerError(b"C", b"t"),
            JobFailed(b"H:1"),
            JobException(b"H:1", b"d"),
            GearmanConnectionLost("x"),
        ):
            self.assertIsInstance(error, GearmanError)

    def test_jobFailedDefaults(self) -> None:
        """
        L{JobFailed} can be raised by a worker function with no argument.
        """
        error = JobFailed()
        self.assertEqual((error.handle, str(error)), (b"", "the job failed"))

    def test_undecodableText(self) -> None:
        """
        Error texts that are not UTF-8 still make a message.
        """
        self.assertEqual(str(ServerError(b"E", b"\xff")), "E: \ufffd")
        self.assertEqual(str(JobException(b"H", b"\xfe")), "\ufffd")
