"""
Tests for L{txgearman.server.admin}: every admin command's reply, byte for byte.
"""

from __future__ import annotations

import os

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import PacketType as P
from txgearman.codec import Priority
from txgearman.server.admin import AdminCommands
from txgearman.server.core import JobServer
from txgearman.server.session import Session
from txgearman.test.fakes import FakePeer

UNKNOWN = b"ERR UNKNOWN_COMMAND Unknown+server+command"
INCOMPLETE = (
    b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
)


class AdminTests(SynchronousTestCase):
    """
    L{AdminCommands.handle} against a L{JobServer} driven directly.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.core = JobServer(self.clock, handlePrefix=b"H:a")
        self.admin = AdminCommands(self.core, version="1.2.3", getpid=lambda: 4242)
        self.peers: dict[Session, FakePeer] = {}

    def connect(
        self, host: str = "127.0.0.1", connectionId: int | None = None
    ) -> Session:
        peer = FakePeer()
        session = self.core.connect(peer, host, connectionId)
        self.peers[session] = peer
        return session

    def sent(self, session: Session) -> list[tuple[P, tuple[bytes, ...]]]:
        return self.peers[session].take()

    def submit(
        self,
        session: Session,
        name: bytes,
        unique: bytes = b"",
        priority: Priority = Priority.NORMAL,
        background: bool = True,
        when: int = 0,
    ) -> bytes:
        self.core.submitJob(session, name, unique, b"data", priority, background, when)
        [(ptype, (handle,))] = self.sent(session)
        self.assertEqual(ptype, P.JOB_CREATED)
        return handle

    def grab(self, worker: Session) -> bytes:
        self.core.grabJob(worker)
        [(ptype, args)] = self.sent(worker)
        self.assertEqual(ptype, P.JOB_ASSIGN)
        return args[0]

    def test_statusEmpty(self) -> None:
        """
        With no function, C{status} and C{prioritystatus} are just the
        terminating dot.
        """
        self.assertEqual(self.admin.handle(b"status"), b".\n")
        self.assertEqual(self.admin.handle(b"prioritystatus"), b".\n")

    def test_status(self) -> None:
        """
        C{status}: C{FUNC\\tTOTAL\\tRUNNING\\tWORKERS} per function in
        creation order; TOTAL counts queued, scheduled and running jobs.
        """
        client = self.connect()
        worker = self.connect()
        self.core.canDo(worker, b"resize")
        self.submit(client, b"resize")
        self.submit(client, b"resize", priority=Priority.HIGH)
        self.submit(client, b"email", background=False)
        self.submit(client, b"resize", when=10**12)
        self.admin.handle(b"create function idle")
        self.grab(worker)
        self.assertEqual(
            self.admin.handle(b"status"),
            b"resize\t3\t1\t1\nemail\t1\t0\t0\nidle\t0\t0\t0\n.\n",
        )

    def test_prioritystatus(self) -> None:
        """
        C{prioritystatus}: jobs waiting to run (queued or scheduled) per
        priority, then the worker count; running jobs are not counted.
        """
        client = self.connect()
        worker = self.connect()
        other = self.connect()
        self.core.canDo(worker, b"f")
        self.core.canDo(other, b"f")
        self.submit(client, b"f", priority=Priority.HIGH)
        self.submit(client, b"f", priority=Priority.HIGH)
        self.submit(client, b"f", priority=Priority.LOW, background=False)
        self.submit(client, b"f", when=10**12)
        self.submit(client, b"g", priority=Priority.LOW)
        self.grab(worker)
        self.assertEqual(
            self.admin.handle(b"prioritystatus"),
            b"f\t1\t1\t1\t2\ng\t0\t0\t1\t0\n.\n",
        )

    def test_workers(self) -> None:
        """
        C{workers}: C{ID HOST CLIENT_ID :[ FUNC]...} for every connection in
        connection order, no trailing space without functions.
        """
        worker = self.connect("127.0.0.1", 38)
        self.core.setClientId(worker, b"wk A")
        self.core.canDo(worker, b"email")
        self.core.canDo(worker, b"resize")
        other = self.connect("10.1.2.3", 39)
        self.core.canDo(other, b"resize")
        self.connect("-", 40)
        self.assertEqual(
            self.admin.handle(b"workers"),
            b"38 127.0.0.1 wk_A : email resize\n39 10.1.2.3 - : resize\n40 - - :\n.\n",
        )

    def test_workersAfterDisconnect(self) -> None:
        """
        A disconnected session is no longer listed.
        """
        gone = self.connect()
        self.core.canDo(gone, b"f")
        kept = self.connect()
        self.core.disconnect(gone)
        self.assertEqual(
            self.admin.handle(b"workers"), b"%d 127.0.0.1 - :\n.\n" % kept.connectionId
        )

    def test_showJobs(self) -> None:
        """
        C{show jobs}: C{HANDLE\\tRETRIES\\t0\\tSTORED} per job in submission
        order; STORED is 1 for stored (background) jobs.
        """
        client = self.connect()
        worker = self.connect()
        bg = self.submit(client, b"f")
        fg = self.submit(client, b"f", background=False)
        self.core.canDo(worker, b"f")
        self.assertEqual(self.grab(worker), bg)
        self.core.disconnect(worker)
        self.assertEqual(
            self.admin.handle(b"show jobs"),
            b"%s\t1\t0\t1\n%s\t0\t0\t0\n.\n" % (bg, fg),
        )

    def test_showUniqueJobs(self) -> None:
        """
        C{show unique jobs}: one unique id per line, an empty line for an
        empty id.
        """
        client = self.connect()
        self.submit(client, b"f", b"img-1")
        self.submit(client, b"f", b"")
        self.submit(client, b"g", b"-")
        self.assertEqual(self.admin.handle(b"show unique jobs"), b"img-1\n\n-\n.\n")

    def test_showErrors(self) -> None:
        """
        C{show} with other words: C{ERR UNKNOWN_SHOW_ARGUMENTS}; C{show}
        alone is an unknown command.
        """
        for line in [b"show foo", b"show unique", b"show unique foo", b"show job"]:
            self.assertEqual(
                self.admin.handle(line), b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n", line
            )
        self.assertEqual(self.admin.handle(b"show"), UNKNOWN + b"show\r\n")
        self.assertEqual(self.admin.handle(b"SHOW"), UNKNOWN + b"SHOW\r\n")

    def test_cancelQueued(self) -> None:
        """
        C{cancel job H} on a queued job: C{OK}, the job is gone at once and
        its attached clients get WORK_FAIL.
        """
        client = self.connect()
        handle = self.submit(client, b"f", background=False)
        self.assertEqual(self.admin.handle(b"cancel job " + handle), b"OK\r\n")
        self.assertEqual(self.sent(client), [(P.WORK_FAIL, (handle,))])
        # With no worker and no job left, nothing needs f: it is forgotten.
        self.assertEqual(self.admin.handle(b"status"), b".\n")
        self.assertEqual(self.admin.handle(b"show jobs"), b".\n")
        self.assertEqual(
            self.admin.handle(b"cancel job " + handle), b"ERR UNKNOWN_JOB\r\n"
        )

    def test_cancelScheduled(self) -> None:
        """
        A scheduled job can be cancelled too, and never runs.
        """
        client = self.connect()
        worker = self.connect()
        self.core.canDo(worker, b"f")
        handle = self.submit(client, b"f", when=100)
        self.assertEqual(self.admin.handle(b"CANCEL JOB " + handle), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"prioritystatus"), b"f\t0\t0\t0\t1\n.\n")
        self.clock.advance(200)
        self.core.grabJob(worker)
        self.assertEqual(self.sent(worker), [(P.NO_JOB, ())])

    def test_cancelRunning(self) -> None:
        """
        Cancelling a running job frees it at once; the worker's later
        result for it is discarded without an error.
        """
        client = self.connect()
        worker = self.connect()
        self.core.canDo(worker, b"f")
        handle = self.submit(client, b"f", background=False)
        self.grab(worker)
        self.assertEqual(self.admin.handle(b"cancel job " + handle), b"OK\r\n")
        self.assertEqual(self.sent(client), [(P.WORK_FAIL, (handle,))])
        self.assertEqual(self.admin.handle(b"status"), b"f\t0\t0\t1\n.\n")
        self.core.workComplete(worker, handle, b"late")
        self.assertEqual(self.sent(worker), [])
        self.assertEqual(self.sent(client), [])

    def test_cancelUnknown(self) -> None:
        """
        An unknown handle: C{ERR UNKNOWN_JOB}.
        """
        self.assertEqual(
            self.admin.handle(b"cancel job H:a:99"), b"ERR UNKNOWN_JOB\r\n"
        )

    def test_cancelArity(self) -> None:
        """
        C{cancel} without C{job} and exactly one handle:
        C{ERR INVALID_ARGUMENTS ...cancel}.
        """
        for line in [b"cancel", b"cancel job", b"cancel job a b", b"cancel function a"]:
            self.assertEqual(self.admin.handle(line), INCOMPLETE + b"cancel\r\n", line)

    def test_createFunction(self) -> None:
        """
        C{create function NAME} creates NAME exactly; the wrong arity is
        refused.
        """
        self.assertEqual(self.admin.handle(b"create function foo"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"Create Function foo"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"status"), b"foo\t0\t0\t0\n.\n")
        for line in [
            b"create",
            b"create function",
            b"create function a b",
            b"create job a",
        ]:
            self.assertEqual(self.admin.handle(line), INCOMPLETE + b"create\r\n", line)

    def test_dropFunction(self) -> None:
        """
        C{drop function NAME}: C{OK} for an idle function; refused while
        workers are registered, while jobs are queued, and for an unknown
        name (compared exactly).
        """
        client = self.connect()
        worker = self.connect()
        self.core.canDo(worker, b"busy")
        self.submit(client, b"queued")
        self.admin.handle(b"create function idle")
        self.assertEqual(
            self.admin.handle(b"drop function busy"),
            b"ERR there are still connected workers or executing clients\r\n",
        )
        self.assertEqual(
            self.admin.handle(b"drop function queued"),
            b"ERR there are still queued jobs\r\n",
        )
        self.assertEqual(
            self.admin.handle(b"drop function IDLE"), b"ERR function not found\r\n"
        )
        self.assertEqual(
            self.admin.handle(b"drop function nope"), b"ERR function not found\r\n"
        )
        self.assertEqual(self.admin.handle(b"DROP FUNCTION idle"), b"OK\r\n")
        self.assertEqual(
            self.admin.handle(b"drop function idle"), b"ERR function not found\r\n"
        )
        self.assertEqual(
            self.admin.handle(b"status"), b"busy\t0\t0\t1\nqueued\t1\t0\t0\n.\n"
        )
        for line in [b"drop", b"drop function", b"drop function a b", b"drop job idle"]:
            self.assertEqual(self.admin.handle(line), INCOMPLETE + b"drop\r\n", line)

    def test_dropFunctionAfterCancel(self) -> None:
        """
        A running job that was cancelled no longer counts: once its worker
        unregisters, the function can be dropped.
        """
        client = self.connect()
        worker = self.connect()
        self.assertEqual(self.admin.handle(b"create function f"), b"OK\r\n")
        self.core.canDo(worker, b"f")
        handle = self.submit(client, b"f")
        self.grab(worker)
        self.assertEqual(
            self.admin.handle(b"drop function f"),
            b"ERR there are still connected workers or executing clients\r\n",
        )
        self.admin.handle(b"cancel job " + handle)
        self.core.cantDo(worker, b"f")
        self.assertEqual(self.admin.handle(b"drop function f"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"status"), b".\n")

    def test_tooManyFunctions(self) -> None:
        """
        C{create function} and C{maxqueue} that would make one function
        more than the server may hold get an C{ERR TOO_MANY_FUNCTIONS}
        line naming the limit; known functions are still served.
        """
        self.core.maxFunctions = 2
        self.assertEqual(self.admin.handle(b"create function a"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"maxqueue b 3"), b"OK\r\n")
        error = b"ERR TOO_MANY_FUNCTIONS The+server+holds+its+limit+of+2+functions\r\n"
        self.assertEqual(self.admin.handle(b"create function c"), error)
        self.assertEqual(self.admin.handle(b"maxqueue c 1"), error)
        self.assertEqual(self.admin.handle(b"create function b"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"maxqueue a 1"), b"OK\r\n")
        self.assertEqual(self.admin.handle(b"status"), b"a\t0\t0\t0\nb\t0\t0\t0\n.\n")

    def test_forgottenFunction(self) -> None:
        """
        C{status} lists a function while a worker or a job needs it, and
        not once nothing does.
        """
        worker = self.connect()
        self.core.canDo(worker, b"f")
        self.assertEqual(self.admin.handle(b"status"), b"f\t0\t0\t1\n.\n")
        self.core.disconnect(worker)
        self.assertEqual(self.admin.handle(b"status"), b".\n")

    def test_maxqueue(self) -> None:
        """
        C{maxqueue F [H [N [L]]]} sets the admission limits (missing, zero,
        negative or non-numeric: none), creating F if needed.
        """
        for line, limits in [
            (b"maxqueue f 5", [5, 5, 5]),
            (b"maxqueue f 3 2", [3, 2, 0]),
            (b"maxqueue f 3 2 1", [3, 2, 1]),
            (b"maxqueue f 3 2 1 9", [3, 2, 1]),
            (b"maxqueue f -1 x 4", [0, 0, 4]),
            (b"maxqueue f", [0, 0, 0]),
            (b"MAXQUEUE new 7", [7, 7, 7]),
        ]:
            self.assertEqual(self.admin.handle(line), b"OK\r\n", line)
            name = line.split()[1]
            self.assertEqual(self.core.functions[name].maxQueue, limits, line)
        self.assertEqual(self.admin.handle(b"status"), b"f\t0\t0\t0\nnew\t0\t0\t0\n.\n")
        self.assertEqual(self.admin.handle(b"maxqueue"), INCOMPLETE + b"maxqueue\r\n")

    def test_maxqueueApplies(self) -> None:
        """
        The limit for the submitted priority is checked against all the
        function's jobs.
        """
        client = self.connect()
        self.admin.handle(b"maxqueue f 2 1 0")
        self.submit(client, b"f")
        self.core.submitJob(client, b"f", b"", b"", Priority.NORMAL, True)
        self.assertEqual(
            self.sent(client), [(P.ERROR, (b"QUEUE_ERROR", b"Job queue is full"))]
        )
        self.submit(client, b"f", priority=Priority.HIGH)
        self.submit(client, b"f", priority=Priority.LOW)

    def test_versionVerboseGetpid(self) -> None:
        """
        C{version}, C{verbose} and C{getpid} answer C{OK <value>\\n}.
        """
        self.assertEqual(self.admin.handle(b"version"), b"OK 1.2.3\n")
        self.assertEqual(self.admin.handle(b"verbose"), b"OK INFO\n")
        self.assertEqual(self.admin.handle(b"getpid"), b"OK 4242\n")
        self.assertEqual(
            AdminCommands(self.core).handle(b"getpid"), b"OK %d\n" % os.getpid()
        )

    def test_emptyLine(self) -> None:
        """
        An empty (or blank) line is an unknown, nameless command.
        """
        self.assertEqual(self.admin.handle(b""), UNKNOWN + b"\r\n")
        self.assertEqual(self.admin.handle(b"   "), UNKNOWN + b"\r\n")

    def test_unknownCommand(self) -> None:
        """
        An unknown command is echoed as typed right after the text; tabs
        do not separate words; C{shutdown} is not offered.
        """
        self.assertEqual(self.admin.handle(b"shutdown"), UNKNOWN + b"shutdown\r\n")
        self.assertEqual(
            self.admin.handle(b"shutdown graceful"), UNKNOWN + b"shutdown\r\n"
        )
        self.assertEqual(self.admin.handle(b"Frob x y"), UNKNOWN + b"Frob\r\n")
        self.assertEqual(self.admin.handle(b"status\tx"), UNKNOWN + b"status\tx\r\n")
        self.assertEqual(self.admin.handle(b"\xff\xfe"), UNKNOWN + b"\xff\xfe\r\n")
        self.assertEqual(self.admin.handle(b"handle"), UNKNOWN + b"handle\r\n")

    def test_caseAndSpacing(self) -> None:
        """
        Command names are case-insensitive; runs of spaces separate words;
        extra words after a complete listing command are ignored.
        """
        self.core.function(b"f")
        expected = b"f\t0\t0\t0\n.\n"
        for line in [b"STATUS", b"Status", b"  status  ", b"status extra words"]:
            self.assertEqual(self.admin.handle(line), expected, line)
        self.assertEqual(self.admin.handle(b"VERSION"), b"OK 1.2.3\n")
        self.assertEqual(self.admin.handle(b"show  JOBS"), b".\n")
        self.assertEqual(self.admin.handle(b"Show Unique Jobs"), b".\n")

    def test_settings(self) -> None:
        """
        C{settings} lists the settings it is given, then each function's
        C{maxqueue} limits; embedded without any, what the core knows.
        """
        self.assertEqual(
            self.admin.handle(b"settings"), b"version\t1.2.3\njob-retries\t-1\n.\n"
        )
        self.admin.handle(b"maxqueue f 1 2 3")
        self.admin.handle(b"maxqueue g 0")
        admin = AdminCommands(
            self.core, settings=lambda: [("port", "tcp:1"), ("store", "a\nb")]
        )
        self.assertEqual(
            admin.handle(b"SETTINGS"),
            b"port\ttcp:1\nstore\ta b\nmaxqueue\tf\t1\t2\t3\n.\n",
        )
