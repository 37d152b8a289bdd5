"""
The scripts in C{examples/} (documented in docs/api.md) run as shown
against a real C{twistd gearman} server.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.fixtures import runTool, spawnTool, startRedis, startServer, waitFor

#: The examples sit beside the tests in the source tree (not in the package).
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *args]


class ExampleTests(TestCase):
    def setUp(self) -> None:
        self.server = startServer(self)
        self.address = f"127.0.0.1:{self.server.port}"

    def startWorker(self, jobs: int) -> None:
        worker = spawnTool(
            self, example("worker.py", self.address, "--jobs", str(jobs))
        )
        self.worker = worker
        self.server.waitForWorkers(b"reverse", 1)

    def test_clientAndWorker(self) -> None:
        """
        examples/client.py gets results from examples/worker.py: a plain
        function, an async one reporting progress, and a JobFailed that the
        client reports as an error (exit status 1).
        """
        self.startWorker(2)
        done = runTool(example("client.py", f"tcp:{self.address}", "reverse", "hello"))
        self.assertEqual((done.returncode, done.stdout), (0, b"olleh\n"), done.stderr)
        failed = runTool(example("client.py", self.address, "reverse", ""))
        self.assertEqual(failed.returncode, 1)
        self.assertIn(b"JobFailed", failed.stderr)
        # A failed job does not count towards the worker's --jobs.
        slow = runTool(example("client.py", self.address, "slow-upper", "a b c"))
        self.assertEqual((slow.returncode, slow.stdout), (0, b"done\n"), slow.stderr)
        self.assertIn(b"progress 3/3", slow.stderr)
        status, _out, err = self.worker.finish(timeout=20)
        self.assertEqual(status, 0, err)

    def test_background(self) -> None:
        """
        examples/client.py --background queues a job and reports its status.
        """
        queued = runTool(
            example("client.py", self.address, "reverse", "x", "--background")
        )
        self.assertEqual(queued.returncode, 0, queued.stderr)
        self.assertRegex(
            queued.stdout, rb"^queued as H:\S+:\d+\nknown=True running=False\n$"
        )

    def test_adminStatus(self) -> None:
        """
        examples/admin_status.py lists functions and workers.
        """
        self.startWorker(1)
        shown = runTool(example("admin_status.py", self.address))
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(b"reverse: 0 queued, 0 running, 1 workers", shown.stdout)
        self.assertIn(b"reverse slow-upper", shown.stdout)

    def test_embeddedServer(self) -> None:
        """
        examples/embedded_server.py runs a server, a worker and a client in
        one process, in memory and with Redis.
        """
        alone = runTool(example("embedded_server.py"), timeout=30)
        self.assertEqual(alone.returncode, 0, alone.stderr)
        self.assertTrue(alone.stdout.endswith(b"HELLO!\n"), alone.stdout)
        redis = startRedis(self)
        durable = runTool(
            example("embedded_server.py", "--redis", redis.address), timeout=30
        )
        self.assertEqual(durable.returncode, 0, durable.stderr)
        self.assertTrue(durable.stdout.endswith(b"HELLO!\n"), durable.stdout)
        waitFor(
            lambda: redis.keys(b"embedded-example:layout") != [],
            5,
            what="the layout key",
        )
