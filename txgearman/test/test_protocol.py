"""
Tests for L{txgearman.server.protocol}: every packet type over an in-memory
transport, framing errors, flow control, dispatch and handler failures.
The real-TCP tests are in the system tree (C{tests/test_protocol_tcp.py}).
"""

from __future__ import annotations

import struct

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import SUBMITS
from txgearman.codec import PacketType as P
from txgearman.server.batching import WriteBatcher
from txgearman.server.core import JobServer
from txgearman.server.protocol import (
    HIGH_WATER,
    GearmanServerFactory,
    GearmanServerProtocol,
)
from txgearman.test.fakes import (
    FakeStore,
    MemoryConnection,
    request,
    response,
)

_HEADER = struct.Struct(">4sII")
REQ = b"\0REQ"
RES = b"\0RES"

#: Types only the server may send: a request of one of these is refused.
RESPONSE_ONLY = [
    P.NOOP,
    P.JOB_CREATED,
    P.NO_JOB,
    P.JOB_ASSIGN,
    P.ECHO_RES,
    P.ERROR,
    P.STATUS_RES,
    P.OPTION_RES,
    P.JOB_ASSIGN_UNIQ,
    P.JOB_ASSIGN_ALL,
    P.STATUS_RES_UNIQUE,
]

NOT_EXPECTED = (P.ERROR, b"INVALID_COMMAND\0Command not expected")


class Connection(MemoryConnection):
    """
    A L{MemoryConnection}: the name these tests use.
    """


class ProtocolTestsMixin:
    """
    A core on a L{task.Clock} and a factory to make connections with.
    """

    maxPacketSize = 64 * 1024 * 1024

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.core = JobServer(self.clock, handlePrefix=b"H:test")
        self.factory = GearmanServerFactory(self.core, maxPacketSize=self.maxPacketSize)
        self._ports = iter(range(40000, 50000))

    def connect(self) -> Connection:
        return Connection(self.factory, next(self._ports))

    def worker(self, *functions: bytes) -> Connection:
        conn = self.connect()
        for name in functions:
            conn.send(P.CAN_DO, name)
        return conn

    def submit(self, conn: Connection, ptype: int, *args: bytes) -> bytes:
        """Submit a job and return its handle."""
        conn.send(ptype, *args)
        [(kind, handle)] = conn.replies()
        assert kind is P.JOB_CREATED, (kind, handle)
        return handle


class PacketTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Each request type gets gearmand's answer, with txgearman's documented
    differences.
    """

    def test_echo(self) -> None:
        """
        ECHO_REQ is answered by ECHO_RES with the very same body, NULs,
        high bytes and emptiness included.
        """
        conn = self.connect()
        for body in [b"hello", b"\0a\0\0b\0", bytes(range(256)), b"", b"x" * 1_000_000]:
            conn.send(P.ECHO_REQ, body)
            self.assertEqual(conn.output(), response(P.ECHO_RES, body))

    def test_tooManyFunctions(self) -> None:
        """
        Past the limit of functions, a CAN_DO, CAN_DO_TIMEOUT or submit of
        a new function gets C{ERROR TOO_MANY_FUNCTIONS} naming the limit,
        and the connection goes on: known functions still work.
        """
        self.core.maxFunctions = 1
        text = b"Too many functions: the server holds its limit of 1 functions"
        worker = self.worker(b"known")
        self.assertEqual(worker.replies(), [])
        refused = (P.ERROR, b"TOO_MANY_FUNCTIONS\0" + text)
        worker.send(P.CAN_DO, b"new")
        worker.send(P.CAN_DO_TIMEOUT, b"new", b"1000")
        self.assertEqual(worker.replies(), [refused, refused])
        client = self.connect()
        for ptype, args in [
            (P.SUBMIT_JOB, (b"new", b"", b"x")),
            (P.SUBMIT_JOB_LOW_BG, (b"new", b"", b"x")),
            (P.SUBMIT_JOB_EPOCH, (b"new", b"", b"99999999999", b"x")),
            (P.SUBMIT_REDUCE_JOB, (b"new", b"", b"r", b"", b"x")),
            (P.SUBMIT_JOB_SCHED, (b"new", b"", b"", b"", b"", b"", b"", b"x")),
        ]:
            client.send(ptype, *args)
            self.assertEqual(client.replies(), [refused], ptype)
        self.assertEqual(client.admin(b"status"), b"known\t0\t0\t1\n.\n")
        handle = self.submit(client, P.SUBMIT_JOB, b"known", b"", b"x")
        worker.send(P.GRAB_JOB)
        [(kind, body)] = worker.replies()
        self.assertEqual((kind, body.split(b"\0")[0]), (P.JOB_ASSIGN, handle))

    def test_submitKinds(self) -> None:
        """
        Each plain submit gets JOB_CREATED with a handle C{PREFIX:N}, N
        counting from 1; the priority and background-ness follow the type.
        """
        client = self.connect()
        kinds = [
            (P.SUBMIT_JOB, b"fg-normal"),
            (P.SUBMIT_JOB_BG, b"bg-normal"),
            (P.SUBMIT_JOB_HIGH, b"fg-high"),
            (P.SUBMIT_JOB_HIGH_BG, b"bg-high"),
            (P.SUBMIT_JOB_LOW, b"fg-low"),
            (P.SUBMIT_JOB_LOW_BG, b"bg-low"),
        ]
        handles = [self.submit(client, kind, b"f", b"", data) for kind, data in kinds]
        self.assertEqual(handles, [b"H:test:%d" % n for n in range(1, 7)])
        self.assertEqual(client.admin(b"prioritystatus"), b"f\t2\t2\t2\t0\n.\n")
        # STORED column: background jobs only.
        self.assertEqual(
            client.admin(b"show jobs"),
            b"".join(b"H:test:%d\t0\t0\t%d\n" % (n, n % 2 == 0) for n in range(1, 7))
            + b".\n",
        )
        # High first, then normal, then low; FIFO inside a priority.
        worker = self.worker(b"f")
        order = []
        for _ in kinds:
            worker.send(P.GRAB_JOB)
            [(kind, body)] = worker.replies()
            self.assertEqual(kind, P.JOB_ASSIGN)
            order.append(body.split(b"\0", 2)[2])
        self.assertEqual(
            order,
            [b"fg-high", b"bg-high", b"fg-normal", b"bg-normal", b"fg-low", b"bg-low"],
        )

    def test_foregroundAndBackgroundResults(self) -> None:
        """
        A foreground client receives its job's WORK_* packets as the worker
        sent them (data with NULs intact); a background submitter receives
        nothing after JOB_CREATED.
        """
        client = self.connect()
        bgClient = self.connect()
        fg = self.submit(client, P.SUBMIT_JOB, b"f", b"", b"a")
        bg = self.submit(bgClient, P.SUBMIT_JOB_BG, b"f", b"", b"b")
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, fg, b"f", b"a"))
        worker.send(P.WORK_STATUS, fg, b"1", b"3")
        worker.send(P.WORK_DATA, fg, b"d\0ata")
        worker.send(P.WORK_WARNING, fg, b"w\0arn")
        worker.send(P.WORK_COMPLETE, fg, b"\0result\0")
        self.assertEqual(worker.output(), b"")
        self.assertEqual(
            client.output(),
            response(P.WORK_STATUS, fg, b"1", b"3")
            + response(P.WORK_DATA, fg, b"d\0ata")
            + response(P.WORK_WARNING, fg, b"w\0arn")
            + response(P.WORK_COMPLETE, fg, b"\0result\0"),
        )
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, bg, b"f", b"b"))
        worker.send(P.WORK_STATUS, bg, b"1", b"2")
        worker.send(P.WORK_COMPLETE, bg, b"done")
        self.assertEqual(bgClient.output(), b"")
        self.assertEqual(worker.output(), b"")
        self.assertEqual(client.admin(b"status"), b"f\t0\t0\t1\n.\n")

    def test_workFail(self) -> None:
        """
        WORK_FAIL reaches the client with the handle as its whole body and
        ends the job.
        """
        client = self.connect()
        handle = self.submit(client, P.SUBMIT_JOB, b"f", b"", b"")
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        worker.output()
        worker.send(P.WORK_FAIL, handle)
        self.assertEqual(client.output(), response(P.WORK_FAIL, handle))
        client.send(P.GET_STATUS, handle)
        self.assertEqual(
            client.output(), response(P.STATUS_RES, handle, b"0", b"0", b"0", b"0")
        )

    def test_workException(self) -> None:
        """
        WORK_EXCEPTION reaches a client that set the C{exceptions} option as
        is, and any other client as WORK_FAIL whose body is the handle.
        """
        plain = self.connect()
        wants = self.connect()
        wants.send(P.OPTION_REQ, b"exceptions")
        self.assertEqual(wants.output(), response(P.OPTION_RES, b"exceptions"))
        handle = self.submit(plain, P.SUBMIT_JOB, b"f", b"u", b"")
        self.assertEqual(self.submit(wants, P.SUBMIT_JOB, b"f", b"u", b""), handle)
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        worker.output()
        worker.send(P.WORK_EXCEPTION, handle, b"boom\0!")
        self.assertEqual(plain.output(), response(P.WORK_FAIL, handle))
        self.assertEqual(wants.output(), response(P.WORK_EXCEPTION, handle, b"boom\0!"))
        self.assertEqual(worker.output(), b"")

    def test_workForUnknownJob(self) -> None:
        """
        WORK_* packets for a handle the worker does not hold get
        C{ERROR JOB_NOT_FOUND} with gearmand's texts.
        """
        worker = self.worker(b"f")
        result = b"JOB_NOT_FOUND\0Job given in work result not found"
        data = b"JOB_NOT_FOUND\0Job does not exist on server"
        exception = (
            b"JOB_NOT_FOUND\0An exception was received for a job that does not exist"
        )
        for ptype, args, text in [
            (P.WORK_STATUS, (b"H:x", b"1", b"2"), result),
            (P.WORK_COMPLETE, (b"H:x", b"r"), result),
            (P.WORK_FAIL, (b"H:x",), result),
            (P.WORK_FAIL, (b"H:" + b"x" * 100,), result),
            (P.WORK_DATA, (b"H:x", b"d"), data),
            (P.WORK_WARNING, (b"H:x", b"d"), data),
            (P.WORK_EXCEPTION, (b"H:x", b"e"), exception),
        ]:
            worker.send(ptype, *args)
            self.assertEqual(worker.replies(), [(P.ERROR, text)])
        self.assertFalse(worker.transport.disconnecting)

    def test_grabJobWithNothing(self) -> None:
        """
        GRAB_JOB, GRAB_JOB_UNIQ and GRAB_JOB_ALL with nothing runnable get
        NO_JOB; a body on such a packet is ignored.
        """
        worker = self.worker(b"f")
        for ptype in (P.GRAB_JOB, P.GRAB_JOB_UNIQ, P.GRAB_JOB_ALL):
            worker.send(ptype)
            self.assertEqual(worker.output(), response(P.NO_JOB))
        worker.raw(_HEADER.pack(REQ, P.GRAB_JOB, 4) + b"junk")
        self.assertEqual(worker.output(), response(P.NO_JOB))

    def test_grabJobUniq(self) -> None:
        """
        GRAB_JOB_UNIQ gets JOB_ASSIGN_UNIQ with the unique id as submitted.
        """
        client = self.connect()
        h1 = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"u-1", b"d\0x")
        h2 = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"e")
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB_UNIQ)
        worker.send(P.GRAB_JOB_UNIQ)
        self.assertEqual(
            worker.output(),
            response(P.JOB_ASSIGN_UNIQ, h1, b"f", b"u-1", b"d\0x")
            + response(P.JOB_ASSIGN_UNIQ, h2, b"f", b"", b"e"),
        )

    def test_reduceJobs(self) -> None:
        """
        SUBMIT_REDUCE_JOB and _BACKGROUND take four NUL-terminated fields
        before the data; GRAB_JOB_ALL hands such a job out as JOB_ASSIGN_ALL
        with its reducer, and a plain job as JOB_ASSIGN_UNIQ.
        """
        client = self.connect()
        fg = self.submit(
            client, P.SUBMIT_REDUCE_JOB, b"map", b"u1", b"red", b"agg", b"x\0y"
        )
        bg = self.submit(
            client, P.SUBMIT_REDUCE_JOB_BACKGROUND, b"map", b"u2", b"red2", b"", b"z"
        )
        plain = self.submit(client, P.SUBMIT_JOB, b"map", b"u3", b"p")
        self.assertEqual(
            client.admin(b"show jobs"),
            b"%s\t0\t0\t0\n%s\t0\t0\t1\n%s\t0\t0\t0\n.\n" % (fg, bg, plain),
        )
        worker = self.worker(b"map")
        worker.send(P.GRAB_JOB_ALL)
        worker.send(P.GRAB_JOB_ALL)
        worker.send(P.GRAB_JOB_ALL)
        self.assertEqual(
            worker.output(),
            response(P.JOB_ASSIGN_ALL, fg, b"map", b"u1", b"red", b"x\0y")
            + response(P.JOB_ASSIGN_ALL, bg, b"map", b"u2", b"red2", b"z")
            + response(P.JOB_ASSIGN_UNIQ, plain, b"map", b"u3", b"p"),
        )

    def test_reducerTooLarge(self) -> None:
        """
        A reducer over 64 bytes is refused; the connection stays open.
        """
        client = self.connect()
        client.send(P.SUBMIT_REDUCE_JOB, b"map", b"u", b"r" * 65, b"", b"x")
        self.assertEqual(
            client.replies(),
            [(P.ERROR, b"ARGUMENT_TOO_LARGE\0Reducer value too large")],
        )
        self.assertFalse(client.transport.disconnecting)

    def test_uniqueSizes(self) -> None:
        """
        A 64-byte unique id works and coalesces; 65 bytes get
        C{ERROR ARGUMENT_TOO_LARGE "Unique value too large"}.
        """
        client = self.connect()
        unique = b"u" * 64
        h1 = self.submit(client, P.SUBMIT_JOB_BG, b"f", unique, b"1")
        self.assertEqual(self.submit(client, P.SUBMIT_JOB_BG, b"f", unique, b"2"), h1)
        client.send(P.SUBMIT_JOB, b"f", unique + b"u", b"3")
        self.assertEqual(
            client.replies(), [(P.ERROR, b"ARGUMENT_TOO_LARGE\0Unique value too large")]
        )
        self.assertFalse(client.transport.disconnecting)

    def test_submitEpoch(self) -> None:
        """
        SUBMIT_JOB_EPOCH makes a background job that becomes runnable at
        its time, waking sleeping workers then; a past time runs at once.
        """
        self.clock.advance(1_000_000)
        client = self.connect()
        worker = self.worker(b"f")
        worker.send(P.PRE_SLEEP)
        later = self.submit(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"1000010", b"later")
        self.assertEqual(worker.output(), b"")
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.NO_JOB))
        worker.send(P.PRE_SLEEP)
        self.clock.advance(9)
        self.assertEqual(worker.output(), b"")
        self.clock.advance(1)
        self.assertEqual(worker.output(), response(P.NOOP))
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, later, b"f", b"later"))
        past = self.submit(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"5", b"past")
        negative = self.submit(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"-5", b"neg")
        worker.send(P.GRAB_JOB)
        worker.send(P.GRAB_JOB)
        self.assertEqual(
            worker.output(),
            response(P.JOB_ASSIGN, past, b"f", b"past")
            + response(P.JOB_ASSIGN, negative, b"f", b"neg"),
        )

    def test_submitEpochInvalid(self) -> None:
        """
        An epoch that is not a signed 64-bit decimal gets
        C{ERROR INVALID_ARGUMENT} and creates nothing; the connection stays
        open.
        """
        client = self.connect()
        for bad in [b"soon", b"", b"12x", b"%d" % 2**63, b"-%d" % (2**63 + 1)]:
            client.send(P.SUBMIT_JOB_EPOCH, b"f", b"", bad, b"d")
            self.assertEqual(
                client.replies(),
                [(P.ERROR, b"INVALID_ARGUMENT\0Epoch is not a 64-bit integer")],
            )
        self.assertEqual(self.core.jobs, {})
        self.assertFalse(client.transport.disconnecting)

    def test_submitSched(self) -> None:
        """
        SUBMIT_JOB_SCHED makes a background job that runs at the next
        minute matching its cron fields (UTC).
        """
        # 2023-11-14 22:13:20 UTC.
        self.clock.advance(1_700_000_000)
        client = self.connect()
        handle = self.submit(
            client,
            P.SUBMIT_JOB_SCHED,
            b"f",
            b"s",
            b"30",
            b"22",
            b"",
            b"*",
            b"",
            b"d\0d",
        )
        self.assertEqual(client.admin(b"prioritystatus"), b"f\t0\t1\t0\t0\n.\n")
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.NO_JOB))
        self.clock.advance(999)
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.NO_JOB))
        self.clock.advance(1)
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, handle, b"f", b"d\0d"))

    def test_submitSchedInvalid(self) -> None:
        """
        A malformed or impossible schedule gets C{ERROR INVALID_ARGUMENT}
        naming the problem; no job is created and the connection stays
        open.
        """
        client = self.connect()
        for fields in [
            (b"61", b"", b"", b"", b""),
            (b"x", b"", b"", b"", b""),
            (b"0", b"0", b"31", b"2", b""),
        ]:
            client.send(P.SUBMIT_JOB_SCHED, b"f", b"", *fields, b"d")
            [(kind, body)] = client.replies()
            self.assertEqual(kind, P.ERROR)
            self.assertTrue(body.startswith(b"INVALID_ARGUMENT\0"), body)
            self.assertGreater(len(body), len(b"INVALID_ARGUMENT\0"))
        self.assertEqual(self.core.jobs, {})
        self.assertFalse(client.transport.disconnecting)

    def test_getStatus(self) -> None:
        """
        GET_STATUS: unknown, queued, running with the last WORK_STATUS
        numbers, and unknown again once the job ends; a handle of any
        length is answered.
        """
        client = self.connect()
        client.send(P.GET_STATUS, b"H:test:1")
        self.assertEqual(
            client.output(), response(P.STATUS_RES, b"H:test:1", b"0", b"0", b"0", b"0")
        )
        handle = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"")
        client.send(P.GET_STATUS, handle)
        self.assertEqual(
            client.output(), response(P.STATUS_RES, handle, b"1", b"0", b"0", b"0")
        )
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        worker.send(P.WORK_STATUS, handle, b"7", b"9")
        client.send(P.GET_STATUS, handle)
        self.assertEqual(
            client.output(), response(P.STATUS_RES, handle, b"1", b"1", b"7", b"9")
        )
        worker.send(P.WORK_COMPLETE, handle, b"")
        client.send(P.GET_STATUS, handle)
        self.assertEqual(
            client.output(), response(P.STATUS_RES, handle, b"0", b"0", b"0", b"0")
        )
        long = b"H:" + b"z" * 200
        client.send(P.GET_STATUS, long)
        self.assertEqual(
            client.output(), response(P.STATUS_RES, long, b"0", b"0", b"0", b"0")
        )

    def test_getStatusUnique(self) -> None:
        """
        GET_STATUS_UNIQUE answers with the unique id first and the number
        of attached foreground clients last; long ids are answered.
        """
        client = self.connect()
        other = self.connect()
        client.send(P.GET_STATUS_UNIQUE, b"U")
        self.assertEqual(
            client.output(),
            response(P.STATUS_RES_UNIQUE, b"U", b"0", b"0", b"0", b"0", b"0"),
        )
        handle = self.submit(client, P.SUBMIT_JOB, b"f", b"U", b"")
        self.submit(other, P.SUBMIT_JOB, b"f", b"U", b"")
        worker = self.worker(b"f")
        worker.send(P.GRAB_JOB)
        worker.send(P.WORK_STATUS, handle, b"1", b"3")
        client.output()
        client.send(P.GET_STATUS_UNIQUE, b"U")
        self.assertEqual(
            client.output(),
            response(P.STATUS_RES_UNIQUE, b"U", b"1", b"1", b"1", b"3", b"2"),
        )
        long = b"u" * 100
        client.send(P.GET_STATUS_UNIQUE, long)
        self.assertEqual(
            client.output(),
            response(P.STATUS_RES_UNIQUE, long, b"0", b"0", b"0", b"0", b"0"),
        )

    def test_optionReq(self) -> None:
        """
        OPTION_REQ C{exceptions}, in any case, is echoed in OPTION_RES;
        anything else gets C{ERROR UNKNOWN_OPTION}.
        """
        conn = self.connect()
        conn.send(P.OPTION_REQ, b"EXCEPTIONS")
        self.assertEqual(conn.output(), response(P.OPTION_RES, b"EXCEPTIONS"))
        for name in [b"foo", b"", b"exceptions2", b"x" * 100]:
            conn.send(P.OPTION_REQ, name)
            self.assertEqual(
                conn.replies(),
                [(P.ERROR, b"UNKNOWN_OPTION\0Server does not recognize given option")],
            )
        self.assertFalse(conn.transport.disconnecting)

    def test_setClientId(self) -> None:
        """
        SET_CLIENT_ID has no reply; the id, with whitespace runs replaced by
        C{_} and cut to 127 bytes, names the connection in C{workers}.
        """
        first = self.connect()
        first.send(P.SET_CLIENT_ID, b"wk A\t\tb")
        second = self.connect()
        second.send(P.SET_CLIENT_ID, b"y" * 200)
        self.assertEqual(first.output() + second.output(), b"")
        self.assertEqual(
            first.admin(b"workers"),
            b"1 127.0.0.1 wk_A_b :\n2 127.0.0.1 " + b"y" * 127 + b" :\n.\n",
        )

    def test_workersListsFunctions(self) -> None:
        """
        C{workers} lists each connection's functions after the colon, each
        preceded by a space; a duplicate CAN_DO is registered once.
        """
        worker = self.worker(b"resize", b"email", b"resize")
        self.assertEqual(worker.output(), b"")
        self.assertEqual(worker.admin(b"workers"), b"1 127.0.0.1 - : resize email\n.\n")
        self.assertEqual(
            worker.admin(b"status"), b"resize\t0\t0\t1\nemail\t0\t0\t1\n.\n"
        )

    def test_cantDoRequeues(self) -> None:
        """
        CANT_DO forgets the function and requeues the job the worker held;
        the worker's late result gets C{ERROR JOB_NOT_FOUND}.
        """
        client = self.connect()
        handle = self.submit(client, P.SUBMIT_JOB, b"f", b"", b"d")
        first = self.worker(b"f")
        first.send(P.GRAB_JOB)
        first.output()
        first.send(P.CANT_DO, b"f")
        self.assertEqual(first.output(), b"")
        first.send(P.GRAB_JOB)
        self.assertEqual(first.output(), response(P.NO_JOB))
        first.send(P.WORK_COMPLETE, handle, b"late")
        self.assertEqual(
            first.replies(),
            [(P.ERROR, b"JOB_NOT_FOUND\0Job given in work result not found")],
        )
        second = self.worker(b"f")
        second.send(P.GRAB_JOB)
        self.assertEqual(second.output(), response(P.JOB_ASSIGN, handle, b"f", b"d"))
        self.assertEqual(client.output(), b"")
        self.assertEqual(client.admin(b"show jobs"), b"%s\t1\t0\t0\n.\n" % handle)

    def test_resetAbilities(self) -> None:
        """
        RESET_ABILITIES forgets every function: no more jobs for the worker,
        and the jobs it held go back to the queue.
        """
        client = self.connect()
        h1 = self.submit(client, P.SUBMIT_JOB_BG, b"a", b"", b"")
        self.submit(client, P.SUBMIT_JOB_BG, b"b", b"", b"")
        worker = self.worker(b"a", b"b")
        worker.send(P.GRAB_JOB)
        worker.output()
        worker.send(P.RESET_ABILITIES)
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.NO_JOB))
        self.assertEqual(
            worker.admin(b"workers"), b"1 127.0.0.1 - :\n2 127.0.0.1 - :\n.\n"
        )
        other = self.worker(b"a")
        other.send(P.GRAB_JOB)
        self.assertEqual(other.output(), response(P.JOB_ASSIGN, h1, b"a", b""))

    def test_preSleep(self) -> None:
        """
        PRE_SLEEP has no reply while nothing is runnable; a new job then
        sends one NOOP; PRE_SLEEP with a runnable job gets a NOOP at once.
        """
        client = self.connect()
        worker = self.worker(b"f")
        worker.send(P.PRE_SLEEP)
        self.assertEqual(worker.output(), b"")
        self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"")
        self.assertEqual(worker.output(), response(P.NOOP))
        self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"")
        self.assertEqual(worker.output(), b"")
        worker.send(P.PRE_SLEEP)
        self.assertEqual(worker.output(), response(P.NOOP))

    def test_canDoTimeout(self) -> None:
        """
        CAN_DO_TIMEOUT's milliseconds limit each job the worker takes (at
        least one second); past it the job is requeued.  A non-numeric
        timeout registers a plain CAN_DO.
        """
        client = self.connect()
        handle = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"")
        slow = self.connect()
        slow.send(P.CAN_DO_TIMEOUT, b"f", b"200")
        slow.send(P.GRAB_JOB)
        slow.output()
        self.clock.advance(0.9)
        self.assertEqual(client.admin(b"status"), b"f\t1\t1\t1\n.\n")
        self.clock.advance(0.1)
        self.assertEqual(client.admin(b"status"), b"f\t1\t0\t1\n.\n")
        slow.send(P.WORK_COMPLETE, handle, b"")
        self.assertEqual(
            slow.replies(),
            [(P.ERROR, b"JOB_NOT_FOUND\0Job given in work result not found")],
        )
        plain = self.connect()
        plain.send(P.CAN_DO_TIMEOUT, b"g", b"soon")
        self.submit(client, P.SUBMIT_JOB_BG, b"g", b"", b"")
        plain.send(P.GRAB_JOB)
        plain.output()
        self.clock.advance(3600)
        self.assertEqual(client.admin(b"status"), b"f\t1\t0\t1\ng\t1\t1\t1\n.\n")

    def test_coalescing(self) -> None:
        """
        Same function and unique id: same handle; different function or
        empty unique: new handle; unique C{-} coalesces equal payloads.
        """
        client = self.connect()
        h = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"u", b"1")
        self.assertEqual(self.submit(client, P.SUBMIT_JOB, b"f", b"u", b"2"), h)
        self.assertNotEqual(self.submit(client, P.SUBMIT_JOB_BG, b"g", b"u", b"1"), h)
        e1 = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"1")
        self.assertNotEqual(self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"1"), e1)
        d1 = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"-", b"same")
        self.assertEqual(self.submit(client, P.SUBMIT_JOB_BG, b"f", b"-", b"same"), d1)
        self.assertNotEqual(
            self.submit(client, P.SUBMIT_JOB_BG, b"f", b"-", b"other"), d1
        )

    def test_maxQueue(self) -> None:
        """
        Past a function's maxqueue limit a submit gets
        C{ERROR QUEUE_ERROR "Job queue is full"}.
        """
        client = self.connect()
        self.assertEqual(client.admin(b"maxqueue f 1"), b"OK\r\n")
        self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"")
        client.send(P.SUBMIT_JOB_BG, b"f", b"", b"")
        self.assertEqual(
            client.replies(), [(P.ERROR, b"QUEUE_ERROR\0Job queue is full")]
        )

    def test_requestsNotExpected(self) -> None:
        """
        Response-only types, ALL_YOURS and the unused type 5 get
        C{ERROR INVALID_COMMAND "Command not expected"}; the connection
        stays open and keeps being served.
        """
        conn = self.connect()
        for ptype in [*RESPONSE_ONLY, P.ALL_YOURS, P.UNUSED]:
            # A body with enough NULs for the type's arguments.
            conn.send(ptype, *[b"a"] * 8)
            self.assertEqual(conn.replies(), [NOT_EXPECTED], ptype)
        self.assertFalse(conn.transport.disconnecting)
        conn.send(P.ECHO_REQ, b"still here")
        self.assertEqual(conn.output(), response(P.ECHO_RES, b"still here"))

    def test_requestsWithoutReply(self) -> None:
        """
        CAN_DO, CANT_DO, RESET_ABILITIES, SET_CLIENT_ID and CAN_DO_TIMEOUT
        are not answered; PRE_SLEEP is not answered with nothing runnable.
        """
        conn = self.connect()
        for ptype, args in [
            (P.CAN_DO, (b"f",)),
            (P.CAN_DO, (b"",)),
            (P.CAN_DO_TIMEOUT, (b"g", b"5000")),
            (P.CANT_DO, (b"f",)),
            (P.CANT_DO, (b"never-registered",)),
            (P.RESET_ABILITIES, ()),
            (P.SET_CLIENT_ID, (b"me",)),
            (P.PRE_SLEEP, ()),
        ]:
            conn.send(ptype, *args)
            self.assertEqual(conn.output(), b"", ptype)

    def test_everyRequestTypeAnswered(self) -> None:
        """
        Every type from 1 to 42 sent as a request is handled without
        closing the connection (the catalogue is complete).
        """
        conn = self.connect()
        conn.send(P.CAN_DO, b"f")
        for ptype in P:
            conn.send(ptype, *[b"1"] * 8)
            self.assertFalse(conn.transport.disconnecting, ptype)


class OrderTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    A connection's answers come in the order of its requests, even while a
    background submit waits for the store.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store = FakeStore(manual=True)
        self.core = JobServer(self.clock, self.store, handlePrefix=b"H:test")
        self.factory = GearmanServerFactory(self.core)

    def test_echoWaitsForJobCreated(self) -> None:
        """
        ECHO_RES, OPTION_RES and a foreground submit's JOB_CREATED,
        requested after a background submit, wait for its JOB_CREATED.
        """
        conn = self.connect()
        conn.raw(
            request(P.SUBMIT_JOB_BG, b"f", b"u", b"bg")
            + request(P.SUBMIT_JOB, b"f", b"", b"fg")
            + request(P.ECHO_REQ, b"ping")
            + request(P.OPTION_REQ, b"exceptions")
        )
        self.assertEqual(conn.output(), b"")
        self.store.succeedAdd()
        self.assertEqual(
            conn.replies(),
            [
                (P.JOB_CREATED, b"H:test:1"),
                (P.JOB_CREATED, b"H:test:2"),
                (P.ECHO_RES, b"ping"),
                (P.OPTION_RES, b"exceptions"),
            ],
        )
        # Nothing waits any more: answers go out at once again.
        conn.send(P.ECHO_REQ, b"again")
        self.assertEqual(conn.replies(), [(P.ECHO_RES, b"again")])

    def test_otherConnectionsNotHeld(self) -> None:
        """
        Only the connection whose submit waits is held back.
        """
        waiting = self.connect()
        other = self.connect()
        waiting.send(P.SUBMIT_JOB_BG, b"f", b"u", b"bg")
        other.send(P.ECHO_REQ, b"free")
        self.assertEqual(other.replies(), [(P.ECHO_RES, b"free")])
        self.assertEqual(waiting.output(), b"")


class FramingTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Framing: response magic, malformed and oversized packets, mixed text
    and binary, and packets in pieces.
    """

    maxPacketSize = 1024

    def assertClosedWith(
        self, conn: Connection, code: bytes, text: bytes | None = None
    ) -> None:
        [(kind, body)] = conn.replies()
        self.assertEqual(kind, P.ERROR)
        gotCode, _, gotText = body.partition(b"\0")
        self.assertEqual(gotCode, code)
        if text is not None:
            self.assertEqual(gotText, text)
        self.assertTrue(conn.transport.disconnecting)
        # The producer is let go of, or a transport whose buffer is full
        # would wait for it before closing.
        self.assertIsNone(conn.transport.producer)
        # Nothing more is read or answered.
        conn.send(P.ECHO_REQ, b"more")
        conn.raw(b"status\n")
        self.assertEqual(conn.output(), b"")

    def test_responseMagic(self) -> None:
        """
        A request with C{\\0RES} magic gets C{ERROR INVALID_MAGIC "Request
        magic expected"}; its body is consumed and the connection serves
        the next packet.
        """
        conn = self.connect()
        conn.raw(
            request(P.SUBMIT_JOB, b"f", b"", b"data", magic=RES)
            + request(P.ECHO_REQ, b"ok")
        )
        self.assertEqual(
            conn.output(),
            response(P.ERROR, b"INVALID_MAGIC", b"Request magic expected")
            + response(P.ECHO_RES, b"ok"),
        )
        self.assertFalse(conn.transport.disconnecting)
        self.assertEqual(self.core.jobs, {})

    def test_badMagic(self) -> None:
        """
        A header whose magic is neither C{\\0REQ} nor C{\\0RES}: ERROR, then
        the connection is closed.
        """
        conn = self.connect()
        conn.raw(request(P.ECHO_REQ, b"x", magic=b"\0XYZ"))
        self.assertClosedWith(conn, b"INVALID_MAGIC")

    def test_unknownTypes(self) -> None:
        """
        Type 0, 43 and beyond: C{ERROR INVALID_COMMAND}, then closed.
        """
        for ptype in [0, 43, 1000, 2**32 - 1]:
            conn = self.connect()
            conn.raw(request(ptype, b"x"))
            self.assertClosedWith(
                conn, b"INVALID_COMMAND", b"unknown packet type %d" % ptype
            )

    def test_malformed(self) -> None:
        """
        A body with too few NUL separators: C{ERROR INVALID_ARGUMENTS},
        then closed, even if the next packet's bytes follow at once.
        """
        conn = self.connect()
        conn.raw(
            _HEADER.pack(REQ, P.SUBMIT_JOB_BG, 8)
            + b"funconly"
            + request(P.ECHO_REQ, b"x")
        )
        self.assertClosedWith(conn, b"INVALID_ARGUMENTS")
        self.assertEqual(self.core.jobs, {})

    def test_oversized(self) -> None:
        """
        A body of exactly the limit is served; one byte more is refused
        from its header alone: C{ERROR ARGUMENT_TOO_LARGE}, then closed.
        """
        conn = self.connect()
        conn.send(P.ECHO_REQ, b"x" * 1024)
        self.assertEqual(conn.output(), response(P.ECHO_RES, b"x" * 1024))
        conn.raw(_HEADER.pack(REQ, P.ECHO_REQ, 1025))
        self.assertClosedWith(
            conn,
            b"ARGUMENT_TOO_LARGE",
            b"packet of 1025 bytes exceeds the limit of 1024 bytes",
        )

    def test_longTextLine(self) -> None:
        """
        A text line over 8192 bytes: C{ERROR ARGUMENT_TOO_LARGE}, then
        closed; one of 8192 bytes is answered.
        """
        conn = self.connect()
        conn.raw(b"x" * 8192 + b"\n")
        self.assertEqual(
            conn.output(),
            b"ERR UNKNOWN_COMMAND Unknown+server+command" + b"x" * 8192 + b"\r\n",
        )
        conn.raw(b"y" * 8193)
        self.assertClosedWith(conn, b"ARGUMENT_TOO_LARGE")

    def test_validPacketsBeforeErrorAnswered(self) -> None:
        """
        Packets before a fatal one in the same chunk are answered first.
        """
        conn = self.connect()
        conn.raw(request(P.ECHO_REQ, b"1") + request(0))
        [first, error] = conn.replies()
        self.assertEqual(first, (P.ECHO_RES, b"1"))
        self.assertEqual(error[0], P.ERROR)
        self.assertTrue(conn.transport.disconnecting)

    def test_textAndBinaryMixed(self) -> None:
        """
        Admin lines and binary packets mix on one connection and are
        answered in order; C{\\r\\n} and C{\\n} both end a line.
        """
        conn = self.connect()
        conn.send(P.CAN_DO, b"f")
        conn.raw(
            b"status\r\n"
            + request(P.ECHO_REQ, b"\0bin\0")
            + b"version\n"
            + request(P.SUBMIT_JOB_BG, b"f", b"", b"")
            + b"STATUS\n"
        )
        self.assertEqual(
            conn.output(),
            b"f\t0\t0\t1\n.\n"
            + response(P.ECHO_RES, b"\0bin\0")
            + b"OK "
            + self.factory.admin.version.encode()
            + b"\n"
            + response(P.JOB_CREATED, b"H:test:1")
            + b"f\t1\t0\t1\n.\n",
        )

    def test_byteByByte(self) -> None:
        """
        A stream delivered one byte per dataReceived is answered exactly as
        if it had arrived whole.
        """
        stream = (
            request(P.CAN_DO, b"f")
            + request(P.SUBMIT_JOB, b"f", b"u", b"\0payload\0")
            + b"status\n"
            + request(P.GRAB_JOB_UNIQ)
            + request(P.ECHO_REQ, b"e" * 300)
        )
        whole = self.connect()
        whole.raw(stream)
        expected = whole.output()
        self.assertIn(
            response(P.JOB_ASSIGN_UNIQ, b"H:test:1", b"f", b"u", b"\0payload\0"),
            expected,
        )
        # A fresh server for the byte-by-byte run, so handles match.
        fresh = GearmanServerFactory(
            JobServer(task.Clock(), handlePrefix=b"H:test"),
            maxPacketSize=self.maxPacketSize,
        )
        pieces = Connection(fresh, 40000)
        for i in range(len(stream)):
            pieces.raw(stream[i : i + 1])
        self.assertEqual(pieces.output(), expected)

    def test_largePacketInChunks(self) -> None:
        """
        A packet split across many reads in uneven chunks is answered once,
        whole.
        """
        conn = self.connect()
        data = request(P.ECHO_REQ, bytes(range(256)) * 3)
        for start in range(0, len(data), 7):
            self.assertEqual(conn.output(), b"")
            conn.raw(data[start : start + 7])
        self.assertEqual(conn.output(), response(P.ECHO_RES, bytes(range(256)) * 3))


class ConnectionTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Connection set-up, the readiness gate, flow control and isolation.
    """

    def test_noDelay(self) -> None:
        """
        TCP_NODELAY and keepalive (so that the jobs of a worker whose host
        vanished are requeued eventually) are requested when the connection
        is made; transports without them are fine too.
        """
        conn = self.connect()
        self.assertEqual(conn.transport.noDelay, [True])
        self.assertEqual(conn.transport.keepAlive, [True])
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert proto is not None
        plain = StringTransport()
        proto.makeConnection(plain)
        proto.dataReceived(request(P.ECHO_REQ, b"x"))
        self.assertEqual(plain.value(), response(P.ECHO_RES, b"x"))

    def test_registersAsStreamingProducer(self) -> None:
        """
        The protocol is its transport's streaming producer.
        """
        conn = self.connect()
        self.assertIs(conn.transport.producer, conn.proto)
        self.assertTrue(conn.transport.streaming)
        self.assertEqual(conn.transport.producerState, "producing")

    def test_notReadyRefuses(self) -> None:
        """
        Before the factory is ready (the store replaying, on a port bound
        early), a request is answered with C{ERROR SERVER_STARTING} (an
        admin line with C{ERR SERVER_STARTING}) and the connection closed,
        never left unanswered.  A connection made meanwhile that sends its
        first request after L{GearmanServerFactory.setReady} is served.
        """
        self.factory = GearmanServerFactory(self.core, ready=False)
        binary = self.connect()
        admin = self.connect()
        patient = self.connect()
        self.assertEqual(binary.transport.producerState, "producing")
        binary.send(P.ECHO_REQ, b"x")
        self.assertEqual(
            binary.replies(),
            [
                (
                    P.ERROR,
                    b"SERVER_STARTING\0the server is starting (its queue store is "
                    b"replaying); try again shortly",
                )
            ],
        )
        self.assertTrue(binary.transport.disconnecting)
        self.assertTrue(
            admin.admin(b"version").startswith(b"ERR SERVER_STARTING the+server")
        )
        self.assertTrue(admin.transport.disconnecting)
        self.factory.setReady()
        patient.send(P.ECHO_REQ, b"x")
        self.assertEqual(patient.replies(), [(P.ECHO_RES, b"x")])
        self.factory.setReady()
        late = self.connect()
        late.send(P.ECHO_REQ, b"y")
        self.assertEqual(late.replies(), [(P.ECHO_RES, b"y")])

    def test_flowControl(self) -> None:
        """
        When the transport pauses its producer (its send buffer is full),
        the protocol stops reading the transport, and reads again on
        resume.  A transport pauses on every write that finds its buffer
        full but resumes once: one resume must be enough.
        """
        conn = self.connect()
        conn.proto.pauseProducing()
        self.assertEqual(conn.transport.producerState, "paused")
        conn.proto.pauseProducing()
        conn.proto.pauseProducing()
        self.assertEqual(conn.transport.producerState, "paused")
        conn.proto.resumeProducing()
        self.assertEqual(conn.transport.producerState, "producing")
        # A spurious resume changes nothing.
        conn.proto.resumeProducing()
        self.assertEqual(conn.transport.producerState, "producing")

    def test_connectionLost(self) -> None:
        """
        A lost connection leaves the factory's connections and the core's
        sessions; its foreground jobs are dropped and the jobs it ran are
        requeued.
        """
        client = self.connect()
        worker = self.worker(b"f")
        self.submit(client, P.SUBMIT_JOB, b"f", b"", b"gone")
        running = self.submit(client, P.SUBMIT_JOB_BG, b"f", b"", b"kept")
        worker.send(P.GRAB_JOB)
        worker.output()
        # The worker holds the foreground job; requeue the background one
        # to it by taking it too.
        worker.send(P.GRAB_JOB)
        self.assertEqual(
            worker.output(), response(P.JOB_ASSIGN, running, b"f", b"kept")
        )
        self.assertEqual(len(self.factory.connections), 2)
        client.lose()
        worker.lose()
        self.assertEqual(self.factory.connections, set())
        admin = self.connect()
        self.assertEqual(admin.admin(b"workers"), b"3 127.0.0.1 - :\n.\n")
        self.assertEqual(admin.admin(b"show jobs"), b"%s\t1\t0\t1\n.\n" % running)

    def test_whenLost(self) -> None:
        """
        L{GearmanServerProtocol.whenLost} fires once the connection is
        gone, or at once if it is gone already.
        """
        conn = self.connect()
        d = conn.proto.whenLost()
        self.assertNoResult(d)
        conn.lose()
        self.successResultOf(d)
        self.successResultOf(conn.proto.whenLost())

    def test_close(self) -> None:
        """
        L{GearmanServerProtocol.close} unregisters the producer, then asks
        the transport to close; it reads nothing more.
        """
        conn = self.connect()
        conn.proto.close()
        self.assertTrue(conn.transport.disconnecting)
        self.assertIsNone(conn.transport.producer)
        conn.proto.close()
        conn.send(P.ECHO_REQ, b"x")
        self.assertEqual(conn.output(), b"")

    def test_garbageDoesNotAffectOthers(self) -> None:
        """
        One connection sending garbage is closed; the jobs of the others,
        on the same core, carry on.
        """
        client = self.connect()
        worker = self.worker(b"f")
        handle = self.submit(client, P.SUBMIT_JOB, b"f", b"", b"d")
        vandal = self.connect()
        vandal.send(P.CAN_DO, b"f")
        vandal.raw(b"\0GARBAGE\0\0\0\0" + b"\xff" * 100)
        self.assertTrue(vandal.transport.disconnecting)
        vandal.lose()
        self.assertFalse(client.transport.disconnecting)
        self.assertFalse(worker.transport.disconnecting)
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, handle, b"f", b"d"))
        worker.send(P.WORK_COMPLETE, handle, b"r")
        self.assertEqual(client.output(), response(P.WORK_COMPLETE, handle, b"r"))


class DispatchTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Each packet goes to its type's C{packet_<NAME>} method, looked up on the
    connection's own class; a handler that raises costs its connection
    only.
    """

    def test_subclassOverrides(self) -> None:
        """
        A subclass's handlers are called: one that overrides a base
        class's, and one for a type the base class refuses.  The base
        class's connections keep the base class's handlers.
        """

        class Custom(GearmanServerProtocol):
            def packet_ECHO_REQ(self, args: tuple[bytes, ...]) -> None:
                self.sendPacket(P.ECHO_RES, args[0] * 2)

            def packet_ALL_YOURS(self, args: tuple[bytes, ...]) -> None:
                self.sendPacket(P.NOOP)

        plain = self.connect()
        self.factory.protocol = Custom
        custom = self.connect()
        custom.send(P.ECHO_REQ, b"ab")
        custom.send(P.ALL_YOURS)
        self.assertEqual(custom.replies(), [(P.ECHO_RES, b"abab"), (P.NOOP, b"")])
        plain.send(P.ECHO_REQ, b"ab")
        plain.send(P.ALL_YOURS)
        self.assertEqual(plain.replies(), [(P.ECHO_RES, b"ab"), NOT_EXPECTED])

    def test_submitsFollowCodec(self) -> None:
        """
        Each of the six plain submit handlers passes the core the priority
        and background flag L{txgearman.codec.SUBMITS} gives its type.
        """
        calls: list[tuple[object, ...]] = []
        self.patch(self.core, "submitJob", lambda *args: calls.append(args))
        conn = self.connect()
        for ptype in SUBMITS:
            conn.send(ptype, b"f", b"u", b"d")
            self.assertEqual(
                calls.pop(),
                (conn.proto.session, b"f", b"u", b"d", *SUBMITS[ptype]),
                ptype,
            )

    def test_handlerFails(self) -> None:
        """
        A handler that raises is logged with its packet type, answered
        with C{ERROR SERVER_ERROR} after the answers before it, and its
        connection is closed without reading further; other connections
        are served as before.
        """

        def broken(handle: bytes) -> None:
            raise ZeroDivisionError("bug")

        self.patch(self.core, "getStatus", broken)
        client = self.connect()
        worker = self.worker(b"f")
        handle = self.submit(client, P.SUBMIT_JOB, b"f", b"", b"d")
        victim = self.connect()
        with capturedLogs() as events:
            victim.raw(
                request(P.ECHO_REQ, b"before")
                + request(P.GET_STATUS, b"H:test:1")
                + request(P.ECHO_REQ, b"after")
            )
        self.assertEqual(
            victim.replies(),
            [
                (P.ECHO_RES, b"before"),
                (P.ERROR, b"SERVER_ERROR\0Server failed to handle GET_STATUS"),
            ],
        )
        self.assertTrue(victim.transport.disconnecting)
        [event] = [e for e in events if "log_failure" in e]
        self.assertEqual(event["packetType"], "GET_STATUS")
        self.assertIsInstance(event["log_failure"].value, ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        victim.send(P.ECHO_REQ, b"ignored")
        self.assertEqual(victim.output(), b"")
        victim.lose()
        self.assertNotIn(victim.proto.session, self.core.sessions)

        self.assertFalse(client.transport.disconnecting)
        client.send(P.ECHO_REQ, b"still served")
        self.assertEqual(client.output(), response(P.ECHO_RES, b"still served"))
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.output(), response(P.JOB_ASSIGN, handle, b"f", b"d"))
        worker.send(P.WORK_COMPLETE, handle, b"r")
        self.assertEqual(client.output(), response(P.WORK_COMPLETE, handle, b"r"))


class BatchingTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    With a L{WriteBatcher}, a connection's packets of one reactor turn go
    out together at its end, in order; closing writes what is queued first.
    """

    def setUp(self) -> None:
        super().setUp()
        self.factory.batcher = WriteBatcher(self.clock)

    def test_endOfTurn(self) -> None:
        """
        Answers wait for the end of the turn, then arrive in order, for
        every connection the turn wrote to.
        """
        worker = self.worker(b"f")
        worker.send(P.PRE_SLEEP)
        client = self.connect()
        client.proto.dataReceived(
            request(P.ECHO_REQ, b"one") + request(P.SUBMIT_JOB, b"f", b"", b"x")
        )
        self.assertEqual(client.transport.value(), b"")
        self.assertEqual(worker.transport.value(), b"")
        self.clock.advance(0)
        self.assertEqual(
            client.transport.value(),
            response(P.ECHO_RES, b"one") + response(P.JOB_CREATED, b"H:test:1"),
        )
        self.assertEqual(worker.transport.value(), response(P.NOOP))

    def test_amplifiedRepliesWait(self) -> None:
        """
        Pipelined requests whose replies are large (C{show jobs} with many
        jobs queued) are handled only until this turn's output passes
        L{HIGH_WATER}: the rest wait, with reading paused, until the output
        has been written, and then run, in order.  The server never holds
        much more than that for one connection, however many were sent.
        """
        client = self.connect()
        for n in range(2000):
            self.core.submitJob(None, b"f", b"", b"j%d" % (n,), background=True)
        one = len(client.admin(b"show jobs"))
        count = 3 * HIGH_WATER // one
        client.proto.dataReceived(b"show jobs\n" * count + request(P.ECHO_REQ, b"last"))
        self.assertLessEqual(client.proto._pendingBytes, HIGH_WATER + one)
        self.assertEqual(client.transport.producerState, "paused")
        self.assertEqual(client.transport.value(), b"")
        flushed: list[int] = []
        flush = client.proto.flushPending

        def recording() -> None:
            flushed.append(client.proto._pendingBytes)
            flush()

        self.patch(client.proto, "flushPending", recording)
        self.clock.advance(0)
        self.assertIsNone(client.proto._backlog)
        # Written in several flushes, none holding much more than the mark.
        self.assertGreaterEqual(len(flushed), 3)
        self.assertLessEqual(max(flushed), HIGH_WATER + one)
        self.assertEqual(client.transport.producerState, "producing")
        data = client.transport.value()
        self.assertEqual(data.count(b"\n.\n"), count)
        self.assertTrue(data.endswith(response(P.ECHO_RES, b"last")))

    def test_closeDropsBacklog(self) -> None:
        """
        A connection closed while requests wait behind its output handles
        none of them.
        """
        client = self.connect()
        for n in range(2000):
            self.core.submitJob(None, b"f", b"", b"j%d" % (n,), background=True)
        client.proto.dataReceived(b"show jobs\n" * 200 + b"create function late\n")
        self.assertIsNotNone(client.proto._backlog)
        client.proto.close()
        self.clock.advance(0)
        self.assertNotIn(b"late", self.core.functions)

    def test_closeFlushesFirst(self) -> None:
        """
        The ERROR that precedes closing a connection is written before the
        connection closes, together with earlier answers of the turn.
        """
        conn = self.connect()
        conn.proto.dataReceived(request(P.ECHO_REQ, b"x") + b"\0BAD" + b"\0" * 8)
        self.assertTrue(conn.transport.disconnecting)
        value = conn.transport.value()
        self.assertTrue(value.startswith(response(P.ECHO_RES, b"x")), value)
        self.assertIn(b"INVALID_MAGIC", value)

    def test_adminCommandFails(self) -> None:
        """
        An admin command that raises is logged with the command, answered
        with C{ERR SERVER_ERROR} and its connection closed; other
        connections are served as before.
        """

        def broken() -> None:
            raise ZeroDivisionError("bug")

        self.patch(self.core, "functionStatus", broken)
        victim = self.connect()
        other = self.connect()
        with capturedLogs() as events:
            reply = victim.admin(b"status")
        self.assertEqual(
            reply, b"ERR SERVER_ERROR Server+failed+to+handle+the+command\r\n"
        )
        self.assertTrue(victim.transport.disconnecting)
        [event] = [e for e in events if "log_failure" in e]
        self.assertEqual(event["command"], "status")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(other.admin(b"version").startswith(b"OK "))

    def test_handlerFailureFlushesFirst(self) -> None:
        """
        The ERROR after a handler failed is written with the turn's earlier
        answers, before the connection closes.
        """

        def broken(handle: bytes) -> None:
            raise ZeroDivisionError("bug")

        self.patch(self.core, "getStatus", broken)
        conn = self.connect()
        conn.proto.dataReceived(
            request(P.ECHO_REQ, b"x") + request(P.GET_STATUS, b"H:test:1")
        )
        self.assertTrue(conn.transport.disconnecting)
        self.assertEqual(
            conn.transport.value(),
            response(P.ECHO_RES, b"x")
            + response(P.ERROR, b"SERVER_ERROR", b"Server failed to handle GET_STATUS"),
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
