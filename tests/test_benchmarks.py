"""
C{benchmarks/hostile.py --quick} still runs to the end against this tree's
server and reports every figure.  A smoke test, not a measurement: nothing
here depends on how fast anything was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.fixtures import findRedisServer

HOSTILE = Path(__file__).resolve().parent.parent / "benchmarks" / "hostile.py"


class HostileSmokeTests(TestCase):
    def test_quick(self) -> None:
        """
        A quick run exits 0 and prints one JSON object with the honest
        latencies, the memory readings, a row per pattern, the fuzzer's
        count, the idle-function figures and a restart that lost nothing.
        """
        env = {**os.environ, "REDIS_SERVER": findRedisServer()}
        try:
            done = subprocess.run(
                [sys.executable, str(HOSTILE), "--quick", "--json"],
                capture_output=True,
                timeout=120,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            self.fail(f"hostile.py --quick did not finish: {e.stderr!r}")
        self.assertEqual(
            done.returncode, 0, done.stderr.decode() + done.stdout.decode()
        )
        result = json.loads(done.stdout)
        self.assertTrue(result["ok"], result)
        self.assertGreaterEqual(result["fuzz"]["packets"], result["scale"]["packets"])
        for phase in ("quiet", "hostile"):
            for op in ("echo", "fg"):
                self.assertGreater(result["honest"][phase][op]["n"], 0)
        self.assertEqual(
            sorted(result["rss_mib"]),
            ["after", "before", "peak", "peak_sampled", "start"],
        )
        self.assertEqual(
            [row["name"][:2] for row in result["patterns"]],
            ["11", "11", "11", "12", "13", "14"],
        )
        self.assertIn("bytes_per_function_worker_gone", result["idle_functions"])
        durable = result["durability"]
        self.assertEqual(durable["lost"], 0, durable)
        self.assertGreater(durable["acked"], 0)
        self.assertIsNotNone(durable["restart_to_echo_s"])


REPLAY = HOSTILE.parent / "replay.py"


class ReplaySmokeTests(TestCase):
    def test_sqlite(self) -> None:
        """
        C{replay.py --store sqlite --gearmand} on a small queue exits 0 with
        a row for each server and the file's size per job.
        """
        done = subprocess.run(
            [
                sys.executable,
                str(REPLAY),
                "--store",
                "sqlite",
                "--jobs",
                "2000",
                "--gearmand",
                "--timeout",
                "60",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        output = done.stdout.decode() + done.stderr.decode()
        self.assertEqual(done.returncode, 0, output)
        self.assertIn("| txgearman --sqlite |", output)
        self.assertIn("| gearmand -t 1 -q libsqlite3 |", output)
        self.assertNotIn("gearmand failed", output)
        self.assertIn("bytes a job of 100 data bytes", output)
        self.assertIn("Restored 2000 jobs", output)
