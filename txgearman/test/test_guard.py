"""
Tests for L{txgearman.server.guard}: every packet and admin command the
ACL governs, allowed and denied, on connections in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txgearman.codec import PacketType as P
from txgearman.server.acl import ADMIN_READ, ADMIN_WRITE, AccessPolicy
from txgearman.server.core import JobServer
from txgearman.server.guard import DENIALS_LOGGED, GuardedServerProtocol
from txgearman.server.protocol import GearmanServerFactory
from txgearman.test.fakes import MemoryConnection, RecordingTransport
from txgearman.test.test_acl import RULES


class _Subject:
    def __init__(self, commonName: str) -> None:
        self.commonName = commonName


class _Certificate:
    def __init__(self, commonName: str) -> None:
        self._subject = _Subject(commonName)

    def get_subject(self) -> _Subject:
        return self._subject


@implementer(ISSLTransport)
class IdentifiedTransport(RecordingTransport):  # type: ignore[misc]
    """A transport whose peer presented a certificate for C{commonName}."""

    def __init__(self, commonName: str, peerPort: int) -> None:
        super().__init__(peerPort)
        self.certificate = _Certificate(commonName)

    def getPeerCertificate(self) -> Any:
        return self.certificate


def denied(right: str, what: bytes) -> tuple[P, bytes]:
    return (P.ERROR, b"PERMISSION_DENIED\0" + right.encode() + b" " + what)


class GuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.core = JobServer(self.clock, handlePrefix=b"H:test")
        self.factory = GearmanServerFactory(self.core)
        self.policy = AccessPolicy.fromText(RULES)
        self.factory.guard(self.policy)
        self._ports = iter(range(40000, 50000))

    def connect(self, identity: str | None) -> MemoryConnection:
        port = next(self._ports)
        if identity is None:
            return MemoryConnection(self.factory, port)
        conn = MemoryConnection(
            self.factory, transport=IdentifiedTransport(identity, port)
        )
        assert isinstance(conn.proto, GuardedServerProtocol)
        conn.proto.handshakeCompleted()
        return conn

    def test_identity(self) -> None:
        """
        A TLS connection is its certificate's common name once the handshake
        ends; a plain one is anonymous.
        """
        web = self.connect("web")
        assert isinstance(web.proto, GuardedServerProtocol)
        self.assertEqual(web.proto.rights.identity, "web")
        plain = self.connect(None)
        assert isinstance(plain.proto, GuardedServerProtocol)
        self.assertEqual(plain.proto.rights.identity, "anonymous")

    def test_beforeHandshake(self) -> None:
        """Before its handshake, a TLS connection may do nothing."""
        conn = MemoryConnection(
            self.factory, transport=IdentifiedTransport("web", 40000)
        )
        conn.send(P.SUBMIT_JOB_BG, b"resize", b"", b"x")
        self.assertEqual(conn.replies(), [denied("submit", b"resize")])

    def test_submit(self) -> None:
        """
        Every kind of submit is judged by C{submit} on its function: denied
        ones get an ERROR naming the right and the function, and no job.
        """
        web = self.connect("web")
        worker = self.connect("worker")
        submits: list[tuple[P, tuple[bytes, ...]]] = [
            (P.SUBMIT_JOB, (b"", b"d")),
            (P.SUBMIT_JOB_BG, (b"", b"d")),
            (P.SUBMIT_JOB_HIGH, (b"", b"d")),
            (P.SUBMIT_JOB_HIGH_BG, (b"", b"d")),
            (P.SUBMIT_JOB_LOW, (b"", b"d")),
            (P.SUBMIT_JOB_LOW_BG, (b"", b"d")),
            (P.SUBMIT_JOB_EPOCH, (b"", b"0", b"d")),
            (P.SUBMIT_JOB_SCHED, (b"", b"", b"", b"", b"", b"", b"d")),
            (P.SUBMIT_REDUCE_JOB, (b"", b"r", b"", b"d")),
            (P.SUBMIT_REDUCE_JOB_BACKGROUND, (b"", b"r", b"", b"d")),
        ]
        for ptype, rest in submits:
            for name in (b"resize", b"thumb-x"):
                web.send(ptype, name, *rest)
                replies = web.replies()
                self.assertEqual(
                    [t for t, _ in replies], [P.JOB_CREATED], (ptype, name)
                )
            web.send(ptype, b"crop", *rest)
            self.assertEqual(web.replies(), [denied("submit", b"crop")], ptype)
            worker.send(ptype, b"resize", *rest)
            self.assertEqual(worker.replies(), [denied("submit", b"resize")], ptype)
        self.assertNotIn(b"crop", self.core.functions)

    def test_joinDenied(self) -> None:
        """
        Submitting another client's function and unique id, to join its job
        and read its result, needs C{submit} on that function.
        """
        web = self.connect("web")
        web.send(P.SUBMIT_JOB, b"resize", b"u1", b"secret")
        web.replies()
        other = self.connect(None)
        other.send(P.SUBMIT_JOB, b"resize", b"u1", b"")
        self.assertEqual(other.replies(), [denied("submit", b"resize")])

    def test_register(self) -> None:
        """
        CAN_DO and CAN_DO_TIMEOUT need C{register} and C{grab}: a denial
        names the missing right, and the worker is not registered.
        """
        worker = self.connect("worker")
        for ptype, extra in [(P.CAN_DO, ()), (P.CAN_DO_TIMEOUT, (b"1000",))]:
            worker.send(ptype, b"resize", *extra)
            self.assertEqual(worker.replies(), [])
            worker.send(ptype, b"thumb-x", *extra)
            self.assertEqual(worker.replies(), [denied("grab", b"thumb-x")])
            worker.send(ptype, b"crop", *extra)
            self.assertEqual(worker.replies(), [denied("register", b"crop")])
        names = [w.functions for w in self.core.listWorkers()]
        self.assertEqual(names, [[b"resize"]])

    def test_grabOnlyAllowed(self) -> None:
        """
        A worker never receives a job of a function it may not grab, even
        though it asked for it and another rule let it register.
        """
        web = self.connect("web")
        web.send(P.SUBMIT_JOB_BG, b"thumb-x", b"", b"t")
        web.send(P.SUBMIT_JOB_BG, b"resize", b"", b"r")
        web.replies()
        worker = self.connect("worker")
        worker.send(P.CAN_DO, b"thumb-x")
        worker.send(P.CAN_DO, b"resize")
        worker.replies()
        worker.send(P.GRAB_JOB)
        (assigned,) = worker.replies()
        self.assertEqual(assigned[0], P.JOB_ASSIGN)
        self.assertTrue(assigned[1].endswith(b"\0resize\0r"))
        worker.send(P.GRAB_JOB_UNIQ)
        self.assertEqual(worker.replies(), [(P.NO_JOB, b"")])

    def test_reloadNarrows(self) -> None:
        """
        A reload that takes rights away applies to open connections: the
        next packet is judged by the new rules, and a worker loses the
        functions it may no longer take, before its next GRAB_JOB.
        """
        web = self.connect("web")
        worker = self.connect("worker")
        worker.send(P.CAN_DO, b"resize")
        web.send(P.SUBMIT_JOB_BG, b"resize", b"", b"r")
        web.replies()
        self.policy.replace(
            AccessPolicy.fromText(
                "[web]\nsubmit = thumb-*\n[worker]\nregister = resize\n"
            ).rules
        )
        with capturedLogs() as events:
            self.factory.rejudge()
        self.assertIn(
            "grab resize (after reload)",
            [e.get("right", "") + " " + e.get("what", "") for e in events],
        )
        worker.send(P.GRAB_JOB)
        self.assertEqual(worker.replies()[-1], (P.NO_JOB, b""))
        web.send(P.SUBMIT_JOB_BG, b"resize", b"", b"r")
        self.assertEqual(web.replies(), [denied("submit", b"resize")])
        web.send(P.SUBMIT_JOB_BG, b"thumb-a", b"", b"r")
        self.assertEqual([t for t, _ in web.replies()], [P.JOB_CREATED])

    def test_getStatus(self) -> None:
        """
        GET_STATUS needs C{status} on the job's function; an identity with
        no C{status} right at all is denied whatever the handle.
        """
        web = self.connect("web")
        web.send(P.SUBMIT_JOB_BG, b"resize", b"u-r", b"r")
        web.send(P.SUBMIT_JOB_BG, b"thumb-x", b"u-t", b"t")
        (_, resize), (_, thumb) = web.replies()
        web.send(P.GET_STATUS, resize)
        self.assertEqual(
            web.replies(), [(P.STATUS_RES, resize + b"\x001\x000\x000\x000")]
        )
        web.send(P.GET_STATUS, thumb)
        self.assertEqual(web.replies(), [denied("status", b"thumb-x")])
        web.send(P.GET_STATUS, b"H:test:999")
        self.assertEqual(web.replies()[0][0], P.STATUS_RES)
        guesser = self.connect(None)
        for handle in (resize, b"H:test:999"):
            guesser.send(P.GET_STATUS, handle)
            self.assertEqual(guesser.replies(), [denied("status", handle)])

    def test_getStatusUnique(self) -> None:
        web = self.connect("web")
        web.send(P.SUBMIT_JOB_BG, b"resize", b"u-r", b"r")
        web.send(P.SUBMIT_JOB_BG, b"thumb-x", b"u-t", b"t")
        web.replies()
        web.send(P.GET_STATUS_UNIQUE, b"u-r")
        self.assertEqual(web.replies()[0][0], P.STATUS_RES_UNIQUE)
        web.send(P.GET_STATUS_UNIQUE, b"u-t")
        self.assertEqual(web.replies(), [denied("status", b"thumb-x")])
        other = self.connect("worker")
        other.send(P.GET_STATUS_UNIQUE, b"u-r")
        self.assertEqual(other.replies(), [denied("status", b"u-r")])

    def test_admin(self) -> None:
        """
        Every admin command is judged: the operator may run the read-only
        ones and C{cancel job}; everything else is answered
        C{ERR PERMISSION_DENIED}; unknown commands are unknown to anybody.
        """
        operator = self.connect("operator")
        web = self.connect("web")
        anonymous = self.connect(None)
        lines = {
            "status": b"status",
            "prioritystatus": b"prioritystatus",
            "workers": b"workers",
            "show jobs": b"show jobs",
            "show unique jobs": b"show unique jobs",
            "version": b"version",
            "getpid": b"getpid",
            "verbose": b"verbose",
            "settings": b"settings",
            "acl list": b"acl list",
            "shutdown": b"shutdown",
            "cancel job": b"cancel job H:test:1",
            "drop function": b"drop function f",
            "create function": b"create function f",
            "maxqueue": b"maxqueue f 10",
        }
        self.assertEqual(set(lines), set(ADMIN_READ + ADMIN_WRITE))
        for command, line in lines.items():
            refusal = (
                b"ERR PERMISSION_DENIED " + command.replace(" ", "+").encode() + b"\r\n"
            )
            allowed = command in ADMIN_READ or command == "cancel job"
            answer = operator.admin(line)
            if allowed:
                self.assertNotEqual(answer, refusal, command)
                self.assertFalse(answer.startswith(b"ERR PERMISSION_DENIED"), command)
            else:
                self.assertEqual(answer, refusal, command)
            self.assertEqual(web.admin(line), refusal, command)
            if command == "version":
                self.assertEqual(anonymous.admin(line), b"OK 0.1.0\n")
            else:
                self.assertEqual(anonymous.admin(line), refusal, command)
        self.assertNotIn(b"f", self.core.functions)
        self.assertEqual(
            web.admin(b"reboot now"),
            b"ERR UNKNOWN_COMMAND Unknown+server+commandreboot\r\n",
        )

    def test_aclList(self) -> None:
        operator = self.connect("operator")
        self.assertEqual(
            operator.admin(b"acl list"),
            b"anonymous\tadmin=version\n"
            b"operator\tadmin=read,cancel job\n"
            b"web\tsubmit=resize,thumb-*\tstatus=resize\n"
            b"worker\tregister=resize,thumb-*\tgrab=resize\n.\n",
        )

    def test_cancelOthersJobs(self) -> None:
        """Without C{cancel job}, nobody can cancel another client's jobs."""
        web = self.connect("web")
        for n in range(100):
            web.send(P.SUBMIT_JOB_BG, b"resize", b"u%d" % n, b"x")
        handles = [body for _, body in web.replies()]
        other = self.connect(None)
        for handle in handles:
            self.assertEqual(
                other.admin(b"cancel job " + handle),
                b"ERR PERMISSION_DENIED cancel+job\r\n",
            )
        self.assertEqual(len(self.core.jobs), 100)

    def test_denialsLogged(self) -> None:
        """
        Denials are logged with the identity, and a peer that keeps asking
        cannot flood the log.
        """
        web = self.connect("web")
        with capturedLogs() as events:
            for _ in range(DENIALS_LOGGED + 50):
                web.send(P.SUBMIT_JOB_BG, b"crop", b"", b"")
        self.assertEqual(len(web.replies()), DENIALS_LOGGED + 50)
        denials = [e for e in events if e.get("right") == "submit"]
        self.assertEqual(len(denials), DENIALS_LOGGED)
        self.assertEqual(denials[0]["identity"], "web")
        self.assertEqual(denials[0]["what"], "crop")
        self.assertIn("not logged", denials[-1]["more"])

    def test_echoFree(self) -> None:
        """Packets that need no right are served to anybody."""
        nobody = self.connect("stranger")
        nobody.send(P.ECHO_REQ, b"ping")
        self.assertEqual(nobody.replies(), [(P.ECHO_RES, b"ping")])


class UnguardedTests(SynchronousTestCase):
    def test_aclDisabled(self) -> None:
        core = JobServer(task.Clock(), handlePrefix=b"H:test")
        conn = MemoryConnection(GearmanServerFactory(core))
        self.assertEqual(
            conn.admin(b"acl list"),
            b"ERR ACL_DISABLED The+server+runs+without+--acl\r\n",
        )


class CostTests(SynchronousTestCase):
    def test_fewAttributes(self) -> None:
        """
        A guarded connection keeps one attribute more than a plain one: past
        CPython's shared-keys limit (30 in 3.11), instance dictionaries stop
        sharing keys and every attribute read on the per-packet path slows
        (measured: 2.5% more instructions per job with two more).
        """
        core = JobServer(task.Clock(), handlePrefix=b"H:test")
        plain = MemoryConnection(GearmanServerFactory(core))
        factory = GearmanServerFactory(core)
        factory.guard(AccessPolicy.fromText(RULES))
        guarded = MemoryConnection(factory)
        self.assertEqual(len(vars(guarded.proto)), len(vars(plain.proto)) + 1)
        self.assertLessEqual(len(vars(guarded.proto)), 29)
