"""
System tests: the same packets sent to Debian's gearmand 1.1.20 and to
C{twistd gearman} get the same answers, byte for byte.

Each scenario below talks to a server through raw connections and returns
the transcript of what came back; the test runs it against both servers
and compares.  Scenarios stay clear of the documented differences
(docs/protocol.md), so a mismatch here is a compatibility regression.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import TestCase

from tests.fixtures import RawConnection, adminCommand, startGearmand, startServer

Transcript = list[object]
Scenario = Callable[["Servers"], Transcript]


def exchange(conn: RawConnection, *packets: tuple[Any, ...]) -> Transcript:
    """
    Send C{packets}, then collect every answer up to an echo round trip,
    so that "no answer" is recorded too.
    """
    for name, *args in packets:
        conn.send(name, *args)
    conn.sync()
    answers: Transcript = list(conn.backlog)
    conn.backlog.clear()
    return answers


class Servers:
    """
    Opens raw and admin connections to one server.
    """

    def __init__(self, testCase: TestCase, port: int) -> None:
        self.testCase = testCase
        self.port = port

    def connect(self) -> RawConnection:
        conn = RawConnection(self.port)
        self.testCase.addCleanup(conn.close)
        return conn

    def admin(self, line: bytes) -> bytes:
        return adminCommand(self.port, line)

    def listing(self, line: bytes) -> list[bytes]:
        """
        An admin listing with its lines sorted: gearmand lists in hash
        order, txgearman in creation order (a documented difference).
        """
        reply = self.admin(line)
        self.testCase.assertTrue(reply.endswith(b"\n.\n") or reply == b".\n", reply)
        return sorted(reply.splitlines()[:-1])


# -- scenarios ---------------------------------------------------------------


def echo(servers: Servers) -> Transcript:
    conn = servers.connect()
    return exchange(conn, ("ECHO_REQ", b"\x00binary\x00\xff" * 100), ("ECHO_REQ", b""))


def submitAndStatus(servers: Servers) -> Transcript:
    client = servers.connect()
    return [
        exchange(client, ("SUBMIT_JOB_BG", b"f1", b"u1", b"one")),
        exchange(client, ("SUBMIT_JOB_BG", b"f1", b"u1", b"ignored")),
        exchange(client, ("SUBMIT_JOB_HIGH_BG", b"f1", b"", b"two")),
        exchange(client, ("SUBMIT_JOB_LOW_BG", b"f1", b"", b"three")),
        exchange(client, ("SUBMIT_JOB_BG", b"f1", b"-", b"payload")),
        exchange(client, ("SUBMIT_JOB_BG", b"f1", b"-", b"payload")),
        exchange(client, ("SUBMIT_JOB_BG", b"f2", b"u1", b"other function")),
        exchange(client, ("GET_STATUS", b"H:diff:1")),
        exchange(client, ("GET_STATUS", b"H:diff:999")),
        exchange(client, ("GET_STATUS_UNIQUE", b"u1")),
        servers.listing(b"status"),
        servers.listing(b"prioritystatus"),
        servers.listing(b"show jobs"),
        servers.listing(b"show unique jobs"),
    ]


def uniqueLimits(servers: Servers) -> Transcript:
    client = servers.connect()
    return [
        exchange(client, ("SUBMIT_JOB_BG", b"f", b"u" * 63, b"")),
        exchange(client, ("SUBMIT_JOB_BG", b"f", b"u" * 63, b"")),
        exchange(client, ("SUBMIT_JOB_BG", b"f", b"u" * 65, b"")),
        exchange(client, ("SUBMIT_JOB", b"f", b"v" * 65, b"")),
    ]


def wrongParty(servers: Servers) -> Transcript:
    conn = servers.connect()
    answers: Transcript = []
    for name in (
        "NOOP",
        "NO_JOB",
        "ALL_YOURS",
        "JOB_CREATED",
        "ECHO_RES",
        "OPTION_RES",
    ):
        args = (b"x",) if name in ("JOB_CREATED", "ECHO_RES", "OPTION_RES") else ()
        answers.append(exchange(conn, (name, *args)))
    conn.socket.sendall(
        b"\0RES" + (16).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"hi"
    )
    answers.append(exchange(conn))
    return answers


def options(servers: Servers) -> Transcript:
    conn = servers.connect()
    return [
        exchange(conn, ("OPTION_REQ", b"exceptions")),
        exchange(conn, ("OPTION_REQ", b"EXCEPTIONS")),
        exchange(conn, ("OPTION_REQ", b"nonsense")),
    ]


def workerFlow(servers: Servers) -> Transcript:
    """
    A foreground client and a worker: assignment, progress, data, status,
    completion, and every result reaching the client.
    """
    client = servers.connect()
    worker = servers.connect()
    out: Transcript = []
    out.append(exchange(worker, ("CAN_DO", b"rev"), ("GRAB_JOB_UNIQ",)))
    out.append(exchange(worker, ("PRE_SLEEP",)))
    out.append(exchange(client, ("SUBMIT_JOB", b"rev", b"r1", b"hello")))
    out.append(exchange(worker))  # the NOOP
    out.append(exchange(worker, ("GRAB_JOB_UNIQ",)))
    out.append(exchange(worker, ("WORK_STATUS", b"H:diff:1", b"1", b"2")))
    out.append(exchange(client, ("GET_STATUS", b"H:diff:1")))
    out.append(exchange(client, ("GET_STATUS_UNIQUE", b"r1")))
    out.append(exchange(worker, ("WORK_DATA", b"H:diff:1", b"part\0ial")))
    out.append(exchange(worker, ("WORK_WARNING", b"H:diff:1", b"careful")))
    out.append(exchange(worker, ("WORK_COMPLETE", b"H:diff:1", b"olleh")))
    out.append(exchange(client))
    out.append(exchange(client, ("GET_STATUS", b"H:diff:1")))
    out.append(servers.admin(b"status"))
    return out


def grabKinds(servers: Servers) -> Transcript:
    client = servers.connect()
    worker = servers.connect()
    out: Transcript = []
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"g", b"a", b"1")))
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"g", b"b", b"2")))
    out.append(
        exchange(
            client, ("SUBMIT_REDUCE_JOB_BACKGROUND", b"g", b"c", b"red", b"", b"3")
        )
    )
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"g", b"d", b"4")))
    out.append(exchange(worker, ("CAN_DO", b"g")))
    out.append(exchange(worker, ("GRAB_JOB",)))
    out.append(exchange(worker, ("GRAB_JOB_UNIQ",)))
    out.append(exchange(worker, ("GRAB_JOB_ALL",)))
    out.append(exchange(worker, ("GRAB_JOB_ALL",)))
    out.append(exchange(worker, ("GRAB_JOB",)))
    for n in (1, 2, 3, 4):
        out.append(exchange(worker, ("WORK_COMPLETE", b"H:diff:%d" % n, b"")))
    out.append(exchange(worker, ("WORK_COMPLETE", b"H:diff:1", b"")))
    return out


def priorities(servers: Servers) -> Transcript:
    client = servers.connect()
    worker = servers.connect()
    for name, data in (
        ("SUBMIT_JOB_LOW_BG", b"low"),
        ("SUBMIT_JOB_BG", b"normal"),
        ("SUBMIT_JOB_HIGH_BG", b"high"),
        ("SUBMIT_JOB_BG", b"normal2"),
    ):
        exchange(client, (name, b"p", b"", data))
    out: Transcript = [exchange(worker, ("CAN_DO", b"p"))]
    for _ in range(5):
        out.append(exchange(worker, ("GRAB_JOB",)))
    return out


def failures(servers: Servers) -> Transcript:
    """
    WORK_FAIL, WORK_EXCEPTION to a client that asked for exceptions, and
    results for handles the worker does not hold.
    """
    client = servers.connect()
    worker = servers.connect()
    out: Transcript = []
    out.append(exchange(client, ("OPTION_REQ", b"exceptions")))
    out.append(
        exchange(
            client, ("SUBMIT_JOB", b"x", b"", b"1"), ("SUBMIT_JOB", b"x", b"", b"2")
        )
    )
    out.append(exchange(worker, ("CAN_DO", b"x"), ("GRAB_JOB",), ("GRAB_JOB",)))
    out.append(exchange(worker, ("WORK_FAIL", b"H:diff:1")))
    out.append(exchange(worker, ("WORK_EXCEPTION", b"H:diff:2", b"boom")))
    out.append(exchange(client))
    for name, args in (
        ("WORK_STATUS", (b"H:diff:9", b"1", b"2")),
        ("WORK_DATA", (b"H:diff:9", b"d")),
        ("WORK_WARNING", (b"H:diff:9", b"w")),
        ("WORK_COMPLETE", (b"H:diff:9", b"c")),
        ("WORK_FAIL", (b"H:diff:9",)),
        ("WORK_EXCEPTION", (b"H:diff:9", b"e")),
    ):
        out.append(exchange(worker, (name, *args)))
    return out


def requeueOnDisconnect(servers: Servers) -> Transcript:
    client = servers.connect()
    out: Transcript = [exchange(client, ("SUBMIT_JOB_BG", b"rq", b"k", b"again"))]
    first = servers.connect()
    out.append(exchange(first, ("CAN_DO", b"rq"), ("GRAB_JOB_UNIQ",)))
    first.close()
    second = servers.connect()
    out.append(exchange(second, ("CAN_DO", b"rq"), ("GRAB_JOB_UNIQ",)))
    out.append(servers.admin(b"show jobs"))
    return out


def wakeups(servers: Servers) -> Transcript:
    sleepers = [servers.connect() for _ in range(3)]
    out: Transcript = []
    for sleeper in sleepers:
        out.append(exchange(sleeper, ("CAN_DO", b"w"), ("PRE_SLEEP",)))
    client = servers.connect()
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"w", b"", b"1")))
    out.append([exchange(sleeper) for sleeper in sleepers])
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"w", b"", b"2")))
    out.append([exchange(sleeper) for sleeper in sleepers])
    out.append(exchange(sleepers[0], ("GRAB_JOB",), ("PRE_SLEEP",)))
    return out


def maxqueue(servers: Servers) -> Transcript:
    client = servers.connect()
    out: Transcript = [exchange(client, ("SUBMIT_JOB_BG", b"mq", b"", b"0"))]
    out.append(servers.admin(b"maxqueue mq 3 2 1"))
    for name in (
        "SUBMIT_JOB_LOW_BG",
        "SUBMIT_JOB_BG",
        "SUBMIT_JOB_BG",
        "SUBMIT_JOB_HIGH_BG",
    ):
        out.append(exchange(client, (name, b"mq", b"", b"x")))
    out.append(exchange(client, ("SUBMIT_JOB_HIGH_BG", b"mq", b"", b"y")))
    out.append(servers.admin(b"maxqueue mq"))
    out.append(exchange(client, ("SUBMIT_JOB_BG", b"mq", b"", b"z")))
    out.append(servers.admin(b"maxqueue"))
    return out


def adminCommands(servers: Servers) -> Transcript:
    client = servers.connect()
    exchange(client, ("SUBMIT_JOB_BG", b"adm", b"job-1", b""))
    lines = [
        b"show",
        b"show stuff",
        b"cancel job H:diff:999",
        b"cancel job H:diff:1",
        b"create function made\r",
        b"create function",
        b"drop function nope",
        b"drop function",
        b"bogus",
        b"",
    ]
    return [servers.listing(b"STATUS")] + [servers.admin(line) for line in lines]


SCENARIOS: dict[str, Scenario] = {
    "echo": echo,
    "submitAndStatus": submitAndStatus,
    "uniqueLimits": uniqueLimits,
    "wrongParty": wrongParty,
    "options": options,
    "workerFlow": workerFlow,
    "grabKinds": grabKinds,
    "priorities": priorities,
    "failures": failures,
    "requeueOnDisconnect": requeueOnDisconnect,
    "wakeups": wakeups,
    "maxqueue": maxqueue,
    "adminCommands": adminCommands,
}


class DifferentialTests(TestCase):
    """
    Every scenario gets the same answers from gearmand and txgearman.
    """

    def compare(self, scenario: Scenario, *options: str) -> None:
        gearmand = startGearmand(self, "--job-handle-prefix", "H:diff")
        expected = scenario(Servers(self, gearmand.port))
        server = startServer(self, "--job-handle-prefix", "H:diff", *options)
        txgearman = scenario(Servers(self, server.port))
        self.assertEqual(txgearman, expected)


# txgearman's own options per scenario.  gearmand wakes every sleeping
# worker for each job; txgearman by default wakes just enough of them, and
# does as gearmand with --worker-wakeup 0 (docs/protocol.md).
SCENARIO_OPTIONS: dict[str, tuple[str, ...]] = {"wakeups": ("--worker-wakeup", "0")}


def _makeTest(name: str, scenario: Scenario) -> Callable[[DifferentialTests], None]:
    def test(self: DifferentialTests) -> None:
        self.compare(scenario, *SCENARIO_OPTIONS.get(name, ()))

    test.__name__ = "test_" + name
    test.__doc__ = f"The {name} scenario gets gearmand's answers."
    return test


for _name, _scenario in SCENARIOS.items():
    setattr(DifferentialTests, "test_" + _name, _makeTest(_name, _scenario))
