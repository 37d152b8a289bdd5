"""
System test: a worker of 100,000 functions against a real C{twistd gearman}
over TCP.  Its 2,000 PRE_SLEEP + GRAB_JOB pairs once froze the server for
48 seconds (each walked all its functions), and its functions, 3.9 KB
each, stayed after it left.  Now an honest client's ECHO round trips stay
fast meanwhile, and the functions go, and most of their memory with them,
when it disconnects.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.fixtures import RawConnection, packet, startServer

FUNCTIONS = 100_000
PAIRS = 2_000


def residentKiB(pid: int) -> int:
    """The resident set size of process C{pid}, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class EchoProbe(threading.Thread):
    """
    An honest client: ECHO round trips one after the other, each timed,
    until told to stop.
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.connection = RawConnection(port, timeout=30.0)
        self.times: list[float] = []
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                start = time.monotonic()
                self.connection.send("ECHO_REQ", b"ping")
                assert self.connection.receive() == ("ECHO_RES", [b"ping"])
                self.times.append(time.monotonic() - start)
                time.sleep(0.005)
        except BaseException as e:
            self.failure = e
        finally:
            self.connection.close()

    def finish(self) -> list[float]:
        self.stopping.set()
        self.join(30)
        if self.failure is not None:
            raise self.failure
        return self.times


class ManyFunctionsTests(SynchronousTestCase):
    def test_sleepGrabAndReclaim(self) -> None:
        """
        A worker registers 100,000 functions (one pipelined CAN_DO each:
        the default limit admits them), then sends 2,000 PRE_SLEEP +
        GRAB_JOB pairs: every grab is answered NO_JOB, the honest client's
        ECHOs never wait half a second, and once the worker disconnects
        C{status} is empty and the server's memory shrinks again.
        """
        server = startServer(self)
        assert server.pid is not None
        baseline = residentKiB(server.pid)
        worker = RawConnection(server.port, timeout=60.0)
        self.addCleanup(worker.close)

        names = [b"many-functions-%06d" % i for i in range(FUNCTIONS)]
        worker.socket.sendall(b"".join(packet("CAN_DO", name) for name in names))
        worker.sync()
        self.assertEqual(worker.backlog, [], "no CAN_DO was refused")
        registered = residentKiB(server.pid)
        status = server.admin(b"status", timeout=30.0)
        self.assertEqual(status.count(b"\t0\t0\t1\n"), FUNCTIONS)

        probe = EchoProbe(server.port)
        probe.start()
        time.sleep(0.1)
        start = time.monotonic()
        pairs = (packet("PRE_SLEEP") + packet("GRAB_JOB")) * PAIRS
        worker.socket.sendall(pairs)
        answers = [worker.receive(timeout=60.0) for _ in range(PAIRS)]
        elapsed = time.monotonic() - start
        time.sleep(0.1)
        times = probe.finish()
        self.assertEqual(answers, [("NO_JOB", [b""])] * PAIRS)
        self.assertGreater(len(times), 5)
        self.assertLess(max(times), 0.5, f"slowest ECHO {max(times):.3f}s")
        self.assertLess(elapsed, 10.0)

        worker.close()
        deadline = time.monotonic() + 20
        while server.admin(b"status") != b".\n":
            self.assertLess(time.monotonic(), deadline, "functions not reclaimed")
            time.sleep(0.1)
        after = residentKiB(server.pid)
        grown = registered - baseline
        self.assertGreater(grown, 20_000, (baseline, registered, after))
        # Most of what the functions took is given back.
        self.assertLess(after - baseline, grown / 2, (baseline, registered, after))
