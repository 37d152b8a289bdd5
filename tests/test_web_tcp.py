"""
The HTTP face of a real C{twistd gearman --http} process, read with treq
over real TCP: health checks, metrics against admin C{status} while jobs
flow, readiness following Redis, and bad requests that disturb nothing.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import treq
from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.fixtures import (
    LOOPBACK,
    TwistdServer,
    answersVersion,
    freePort,
    startRedis,
    startServer,
)
from txgearman.test.scrape import scrapeSamples

reactor: Any = _reactor


class WebTests(TestCase):
    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(self.pool.closeCachedConnections)

    def serve(self, *extra: str) -> tuple[TwistdServer, str]:
        port = freePort()
        server = startServer(self, "--http", f"tcp:{port}:interface={LOOPBACK}", *extra)
        return server, f"http://{LOOPBACK}:{port}"

    async def get(self, url: str, **kwargs: Any) -> tuple[int, str]:
        response = await treq.get(url, pool=self.pool, **kwargs)
        return response.code, await response.text("utf-8")

    async def metrics(
        self, base: str
    ) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        code, text = await self.get(base + "/metrics")
        self.assertEqual(code, 200)
        return scrapeSamples(text)

    async def test_health(self) -> None:
        """
        A serving server is live and ready; C{?verbose} lists the checks.
        """
        server, base = self.serve()
        self.assertEqual(await self.get(base + "/livez"), (200, "ok\n"))
        self.assertEqual(await self.get(base + "/readyz"), (200, "ok\n"))
        code, body = await self.get(base + "/readyz?verbose")
        self.assertEqual(code, 200)
        self.assertIn(f"[+]listening ok: listening on {server.endpoint}\n", body)
        self.assertTrue(body.endswith("readyz check passed\n"))

    async def test_metricsAgreeWithStatus(self) -> None:
        """
        While jobs are queued and running, every per-function gauge says
        what admin C{status} says at the same moment.
        """
        server, base = self.serve()
        worker = server.connect()
        self.addCleanup(worker.close)
        worker.send("CAN_DO", b"thumbnail")
        client = server.connect()
        self.addCleanup(client.close)
        for i in range(5):
            client.submit("SUBMIT_JOB_BG", b"thumbnail", b"u%d" % i, b"x")
        client.submit("SUBMIT_JOB_HIGH_BG", b"ocr", b"v", b"y")
        worker.send("GRAB_JOB")
        worker.expect("JOB_ASSIGN")

        status = server.admin(b"status")
        metrics = await self.metrics(base)
        rows = [line.split(b"\t") for line in status.splitlines() if line != b"."]
        self.assertEqual(len(rows), 2, status)
        for name, total, running, workers in rows:
            label = (("function", name.decode()),)
            self.assertEqual(metrics["gearman_jobs"][label], int(total))
            self.assertEqual(metrics["gearman_jobs_running"][label], int(running))
            self.assertEqual(
                metrics["gearman_jobs_waiting"][label], int(total) - int(running)
            )
            self.assertEqual(metrics["gearman_workers"][label], int(workers))
        self.assertEqual(
            metrics["gearman_jobs_queued"][(("function", "ocr"), ("priority", "high"))],
            1,
        )
        self.assertEqual(metrics["gearman_up"], {(): 1})
        response = await treq.get(base + "/api/status", pool=self.pool)
        document = await response.json()
        byName = {f["name"]: f for f in document["functions"]}
        self.assertEqual(byName["thumbnail"]["jobs"], 5)
        self.assertEqual(byName["thumbnail"]["running"], 1)
        self.assertEqual(byName["ocr"]["queued"]["high"], 1)
        response = await treq.get(base + "/api/server", pool=self.pool)
        document = await response.json()
        self.assertEqual(document["settings"]["port"], server.endpoint)
        self.assertTrue(document["ready"])

    async def test_readyFollowsRedis(self) -> None:
        """
        With Redis, C{/readyz} is 503 naming Redis while Redis is down, and
        200 again once it is back; C{/livez} stays 200 throughout.
        """
        redis = startRedis(self, appendonly=True, appendfsync="always")
        server, base = self.serve("--redis", redis.address, "--redis-timeout", "1")
        code, body = await self.get(base + "/readyz?verbose")
        self.assertEqual(code, 200, body)
        self.assertIn("[+]redis ok:", body)
        self.assertIn("[+]redis-lock ok:", body)
        metrics = await self.metrics(base)
        self.assertEqual(
            metrics["gearman_store_check"],
            {(("check", "redis"),): 1, (("check", "redis-lock"),): 1},
        )
        self.assertEqual(metrics["gearman_store_state"], {(("state", "running"),): 1})
        self.assertEqual(metrics["gearman_store_call_failures_total"], {(): 0})
        redis.kill()
        # The store notices at its next write or lock refresh.
        client = server.connect()
        self.addCleanup(client.close)
        client.send("SUBMIT_JOB_BG", b"f", b"u", b"x")
        code, body = await self.waitForCode(base + "/readyz", 503)
        self.assertIn("redis:", body)
        self.assertEqual((await self.get(base + "/livez"))[0], 200)
        metrics = await self.metrics(base)
        self.assertEqual(metrics["gearman_store_up"], {(): 0})
        self.assertEqual(metrics["gearman_ready"], {(): 0})
        self.assertEqual(metrics["gearman_store_check"][(("check", "redis"),)], 0)
        [(state, _)] = metrics["gearman_store_state"].items()
        self.assertIn(state, [(("state", "unavailable"),), (("state", "probing"),)])
        redis.restart()
        code, body = await self.waitForCode(base + "/readyz", 200)
        self.assertEqual(body, "ok\n")
        self.assertEqual((await self.metrics(base))["gearman_store_up"], {(): 1})

    async def test_replayAndStoreCalls(self) -> None:
        """
        After a restart on the same Redis, the metrics say how many jobs
        were replayed and how long it took; every call to Redis is timed.
        """
        redis = startRedis(self, appendonly=True, appendfsync="always")
        first, base = self.serve("--redis", redis.address)
        client = first.connect()
        for n in range(3):
            client.send("SUBMIT_JOB_BG", b"f", b"u%d" % n, b"x")
            self.assertEqual(client.receive()[0], "JOB_CREATED")
        client.close()
        metrics = await self.metrics(base)
        self.assertGreaterEqual(metrics["gearman_store_call_seconds_count"][()], 1)
        self.assertEqual(metrics["gearman_replayed_jobs"], {(): 0})
        first.stop()
        _, base = self.serve("--redis", redis.address)
        metrics = await self.metrics(base)
        self.assertEqual(metrics["gearman_replayed_jobs"], {(): 3})
        self.assertIn((), metrics["gearman_replay_seconds"])
        self.assertEqual(metrics["gearman_jobs_waiting"], {(("function", "f"),): 3})
        self.assertGreaterEqual(
            metrics["gearman_oldest_job_age_seconds"][(("function", "f"),)], 0
        )

    async def test_storeCallTimesOut(self) -> None:
        """
        A call to a Redis that stopped answering counts as failed once it
        times out, and the submit it carried is refused.
        """
        redis = startRedis(self)
        server, base = self.serve("--redis", redis.address, "--redis-timeout", "1")
        client = server.connect()
        self.addCleanup(client.close)
        redis.pause()
        self.addCleanup(redis.resume)
        client.send("SUBMIT_JOB_BG", b"f", b"u", b"x")
        self.assertEqual(client.receive(timeout=10)[0], "ERROR")
        metrics = await self.metrics(base)
        # A lock refresh may have gone out, and failed, beside the submit.
        failed = metrics["gearman_store_call_failures_total"][()]
        self.assertGreaterEqual(failed, 1)
        self.assertGreaterEqual(metrics["gearman_store_call_seconds_count"][()], failed)
        self.assertEqual(
            metrics["gearman_store_call_seconds_bucket"][(("le", "0.5"),)],
            0,
            "the failed call took its timeout",
        )

    async def waitForCode(
        self, url: str, code: int, timeout: float = 20.0
    ) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while True:
            got = await self.get(url)
            if got[0] == code:
                return got
            if time.monotonic() > deadline:
                self.fail(f"{url} still answers {got} after {timeout} s, not {code}")
            await deferLater(reactor, 0.2, lambda: None)

    async def test_badRequests(self) -> None:
        """
        Unknown paths and methods, a malformed request line and a huge
        header get 4xx (or 501) answers; the Gearman port is not disturbed.
        """
        server, base = self.serve()
        self.assertEqual((await self.get(base + "/no/such/thing"))[0], 404)
        response = await treq.post(base + "/readyz", b"", pool=self.pool)
        await response.content()
        self.assertEqual(response.code, 405)
        host, port = base.removeprefix("http://").split(":")
        for raw in (
            b"NONSENSE\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * 20_000
            + b"\r\n\r\n",
        ):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(raw)
                reply = s.recv(200)
            self.assertRegex(reply, rb"^HTTP/1.1 4\d\d ", raw[:20])
        self.assertTrue(answersVersion(server.port))
        self.assertEqual((await self.get(base + "/livez"))[0], 200)
