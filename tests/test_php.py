"""
System tests: PHP's gearman extension (pecl gearman on libgearman), as
client and as worker, against a real C{twistd gearman}.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.fixtures import (
    SpawnedTool,
    TwistdServer,
    missingPeer,
    peerBinary,
    runTool,
    spawnTool,
    startServer,
)

PEERS = Path(__file__).parent / "peers"


def phpWithGearman() -> str:
    """
    The C{php} interpreter, with the gearman extension loaded.
    """
    php = peerBinary("php", "php-cli")
    probe = runTool([php, "-r", 'exit(class_exists("GearmanClient") ? 0 : 1);'])
    if probe.returncode != 0:
        missingPeer("PHP has no gearman extension (Debian package php-gearman)")
    return php


class PHPTests(TestCase):
    """
    PHP clients and workers submit, run and watch jobs.
    """

    def setUp(self) -> None:
        self.php = phpWithGearman()
        self.server: TwistdServer = startServer(self, "--job-handle-prefix", "H:php")

    def client(self, *args: str) -> object:
        done = runTool(
            [self.php, str(PEERS / "client.php"), str(self.server.port), *args]
        )
        self.assertEqual(done.stderr, b"", done.stderr)
        self.assertEqual(done.returncode, 0)
        return json.loads(done.stdout)

    def worker(self, function: str, count: int, mode: str) -> SpawnedTool:
        script = str(PEERS / "worker.php")
        argv = [self.php, script, str(self.server.port), function, str(count), mode]
        return spawnTool(self, argv)

    def test_foregroundBinary(self) -> None:
        """
        A PHP client's foreground job with NUL bytes in its payload runs on
        a PHP worker and the reversed payload comes back intact.
        """
        worker = self.worker("php-rev", 1, "reverse")
        result = self.client("fg", "php-rev", b"hello\0world\xff".hex())
        self.assertEqual(result, {"result": b"\xffdlrow\0olleh".hex(), "rc": 0})
        self.assertEqual(worker.finish()[0], 0)

    def test_backgroundPriorities(self) -> None:
        """
        Background jobs of every priority are queued, answer C{jobStatus}
        as known and not running, and run high, normal, low.
        """
        handles = []
        for priority in ("low", "normal", "high"):
            answer = self.client("bg", priority, "php-order", "u-" + priority, priority)
            assert isinstance(answer, dict)
            self.assertEqual(answer["rc"], 0)
            self.assertTrue(answer["handle"].startswith("H:php:"))
            handles.append(answer["handle"])
        self.assertEqual(
            self.server.admin(b"prioritystatus"), b"php-order\t1\t1\t1\t0\n.\n"
        )
        self.assertEqual(self.client("status", handles[0]), [True, False, 0, 0])
        code, out, err = self.worker("php-order", 3, "log").finish()
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out.split(), [b"high", b"normal", b"low"])
        self.assertEqual(self.client("status", handles[0]), [False, False, 0, 0])

    def test_uniqueCoalesces(self) -> None:
        """
        Two background submits with one unique id share one job.
        """
        first = self.client("bg", "normal", "php-uniq", "same", "a")
        second = self.client("bg", "normal", "php-uniq", "same", "b")
        self.assertEqual(first, second)
        self.assertEqual(self.server.admin(b"status"), b"php-uniq\t1\t0\t0\n.\n")

    def test_workFail(self) -> None:
        """
        A PHP worker's WORK_FAIL reaches the PHP client as a failure.
        """
        self.worker("php-fail", 1, "fail")
        result = self.client("fg", "php-fail", b"x".hex())
        assert isinstance(result, dict)
        self.assertEqual(result["result"], "")
        self.assertNotEqual(result["rc"], 0)
