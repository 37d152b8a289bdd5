"""
System tests: C{twistd -n gearman --redis ...} against a real redis-server
(and Sentinel), with real processes killed, paused and restarted.

Background jobs must survive a restart of txgearman, stay exact (the
function, unique id and data gearmand 1.1.20's Redis queue mangles), be
refused with C{ERROR QUEUE_ERROR} rather than lost when Redis is away, and
never run after their client was told they failed.  Redis is inspected
directly through the fixture's own client, never through txgearman.
"""

from __future__ import annotations

import socket
import threading
import time

from twisted.trial.unittest import TestCase

from tests.fixtures import (
    LOOPBACK,
    GearmanTools,
    KilledUnderLoad,
    RedisServer,
    TwistdServer,
    Worker,
    connectRaw,
    freePort,
    refused,
    restartServer,
    startRedis,
    startSentinel,
    startServer,
    submitBackground,
    waitFor,
)

PREFIX = b"txgearman"
LAYOUT = PREFIX + b":layout"
LOCK = PREFIX + b":lock"
#: Room for a loaded machine in the timing assertions.
SLACK = 3.0
SEQ = PREFIX + b":seq"


def jobKeys(redis: RedisServer, prefix: bytes = PREFIX) -> list[bytes]:
    return redis.keys(prefix + b":job:*")


class RedisSystemTests(TestCase):
    """
    C{twistd gearman --redis} with real Redis and Gearman processes.
    """

    def redisArgs(self, redis: RedisServer, *more: str) -> list[str]:
        return ["--redis", redis.address, *more]

    def noJobKeysLeft(self, redis: RedisServer) -> None:
        waitFor(lambda: not jobKeys(redis), 10, what="Redis to hold no job key")

    # -- 1 -------------------------------------------------------------------

    def test_seedScenarioSurvivesRestart(self) -> None:
        """
        C{echo 123 | gearman -f test -b} stores the job in Redis before the
        client hears JOB_CREATED; it survives a restart of txgearman (the
        same status afterwards), C{gearman -w} then runs it, and the finished
        job is deleted from Redis, leaving only the layout, sequence and
        lock keys (and no lock once the server stopped).
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis))
        tools = GearmanTools(self, server.port)
        self.assertEqual(tools.submit("-f", "test", "-b", input=b"123\n"), b"")
        keys = jobKeys(redis)
        self.assertEqual(len(keys), 1, keys)
        self.assertIn(b"123", redis.command("GET", keys[0]))
        self.assertEqual(tools.status(), b"test\t1\t0\t0\n.\n")

        server = restartServer(self, server)
        self.assertEqual(jobKeys(redis), keys)
        self.assertEqual(tools.status(), b"test\t1\t0\t0\n.\n")
        self.assertEqual(tools.submit("-w", "-f", "test", "-c", "1"), b"123\n")
        # Its worker left and its job ended: the function is forgotten.
        self.assertEqual(tools.status(), b".\n")
        waitFor(
            lambda: redis.keys(PREFIX + b":*") == [LAYOUT, LOCK, SEQ],
            10,
            what=f"only the layout, lock and seq keys (have {redis.keys(b'*')!r})",
        )
        server.stop()
        self.assertEqual(redis.keys(b"*"), [LAYOUT, SEQ])

    def test_pipelinedAnswersInOrder(self) -> None:
        """
        A client that pipelines a background submit, a foreground submit
        and an ECHO_REQ gets the answers in that order, as from gearmand,
        although the background job's answer waits for Redis: libgearman
        matches JOB_CREATED to its submits by order.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis))
        connection = server.connect()
        self.addCleanup(connection.close)
        for _ in range(20):
            connection.send("SUBMIT_JOB_BG", b"ordered", b"", b"bg")
            connection.send("SUBMIT_JOB", b"ordered", b"", b"fg")
            connection.send("ECHO_REQ", b"ping")
            bg = connection.expect("JOB_CREATED")
            fg = connection.expect("JOB_CREATED")
            self.assertEqual(connection.expect("ECHO_RES"), [b"ping"])
            self.assertLess(
                int(bg[0].rsplit(b":", 1)[1]), int(fg[0].rsplit(b":", 1)[1]), (bg, fg)
            )
        self.assertEqual(len(jobKeys(redis)), 20)

    # -- 2 -------------------------------------------------------------------

    def test_exactJobsAndOrderAfterRestart(self) -> None:
        """
        Jobs that gearmand 1.1.20's Redis queue loses or mangles (uniques
        with dashes, two jobs with an empty unique, unique C{-}, data with
        NUL and 0xff bytes) come back after a restart exactly as submitted,
        in the right order: HIGH first, NORMAL in submission order, LOW
        last, and the epoch job only once its time has come.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis))
        function = b"my-func"
        when = int(time.time()) + 6
        client = connectRaw(self, server.port)
        normal = [
            (b"a-b", b"dashed unique"),
            (b"", b"empty unique, first"),
            (b"", b"empty unique, second"),
            (b"-", b"unique is a dash"),
            (b"bin", b"x\x00y\xff"),
        ]
        for unique, data in normal:
            client.submit("SUBMIT_JOB_BG", function, unique, data)
        client.send(
            "SUBMIT_JOB_EPOCH", function, b"epoch", b"%d" % (when,), b"at\x00when"
        )
        client.expect("JOB_CREATED")
        client.submit("SUBMIT_JOB_HIGH_BG", function, b"high", b"urgent")
        client.submit("SUBMIT_JOB_LOW_BG", function, b"low", b"whenever")
        client.close()
        self.assertEqual(len(jobKeys(redis)), 8)

        server = restartServer(self, server)
        worker = Worker(self, server.port, function)
        startedAt = time.time()
        self.assertLess(
            startedAt,
            when,
            "the restart took so long that the epoch job is due already",
        )
        jobs = worker.drain(
            lambda jobs: len(jobs) >= 8, timeout=when - time.time() + 15
        )
        self.assertEqual(
            [(job.function, job.unique, job.data) for job in jobs],
            [
                (function, b"high", b"urgent"),
                *[(function, unique, data) for unique, data in normal],
                (function, b"low", b"whenever"),
                (function, b"epoch", b"at\x00when"),
            ],
        )
        self.assertGreaterEqual(jobs[-1].at, when)
        self.assertLess(jobs[-2].at, when)
        self.noJobKeysLeft(redis)

    # -- 3 -------------------------------------------------------------------

    def test_redisKilledDuringSubmits(self) -> None:
        """
        Redis killed with SIGKILL and restarted from its append-only file
        in the middle of a stream of background submits: each submit gets
        JOB_CREATED or C{ERROR QUEUE_ERROR}; submits succeed again without
        restarting txgearman; every job that got JOB_CREATED runs, none
        that got ERROR ever does, and Redis keeps no record of them.
        """
        redis = startRedis(self, appendonly=True)
        server = startServer(self, *self.redisArgs(redis, "--redis-timeout", "1"))
        client = connectRaw(self, server.port)
        created: list[bytes] = []
        errored: list[bytes] = []
        outage = threading.Event()
        back = threading.Event()
        failures: list[BaseException] = []

        def killAndRestart() -> None:
            try:
                time.sleep(0.5)
                redis.kill()
                outage.set()
                time.sleep(1.0)
                redis.start()
                back.set()
            except BaseException as e:
                failures.append(e)
                back.set()

        killer = threading.Thread(target=killAndRestart, daemon=True)
        deadline = time.monotonic() + 25
        createdAfter = 0
        i = 0
        killer.start()
        try:
            while not back.is_set() or createdAfter < 50:
                self.assertLess(
                    time.monotonic(), deadline, "submits did not succeed again"
                )
                i += 1
                data = b"job-%d" % (i,)
                name, args = submitBackground(client, data)
                if name == "JOB_CREATED":
                    created.append(data)
                    if back.is_set():
                        createdAfter += 1
                else:
                    self.assertEqual(args[0], b"QUEUE_ERROR", args)
                    errored.append(data)
                if outage.is_set() and not back.is_set():
                    time.sleep(0.01)
        finally:
            killer.join(30)
        self.assertEqual(failures, [])
        self.assertTrue(errored, "no submit failed while Redis was down")
        self.assertGreater(len(created), createdAfter)

        worker = Worker(self, server.port, b"stream")
        worker.drain(lambda jobs: set(created) <= {j.data for j in jobs}, settle=2.0)
        ran = set(worker.data())
        self.assertEqual(
            ran - set(created), set(), "jobs that got ERROR (or were never sent) ran"
        )
        self.assertEqual(set(created) - ran, set())
        self.noJobKeysLeft(redis)
        self.assertIn(b"stream\t0\t0\t1\n", server.admin(b"status"))

    # -- 4 -------------------------------------------------------------------

    def test_serverKilledUnderLoad(self) -> None:
        """
        txgearman killed with SIGKILL while four clients submit background
        jobs as fast as they can, then started again: once the dead
        server's lock has expired, every job that got JOB_CREATED is
        replayed and runs once; nothing that was never submitted runs.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis, "--redis-lock-ttl", "2"))
        load = KilledUnderLoad(server)
        load.run()
        self.assertEqual(load.problems, [])

        server = restartServer(self, server)
        load.assertEachRanOnce(self, server)
        self.noJobKeysLeft(redis)

    # -- 5 -------------------------------------------------------------------

    def test_redisPaused(self) -> None:
        """
        With Redis frozen by SIGSTOP the server stays responsive: echoes,
        admin commands and foreground jobs go on, and a background submit
        gets C{ERROR QUEUE_ERROR} once C{--redis-timeout} has passed.
        After SIGCONT background submits succeed again, and exactly the
        jobs that got JOB_CREATED run.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis, "--redis-timeout", "1"))
        client = connectRaw(self, server.port)
        client.submit("SUBMIT_JOB_BG", b"bg", b"", b"before")
        fgWorker = connectRaw(self, server.port)
        fgWorker.send("CAN_DO", b"fg")
        fgWorker.sync()

        redis.pause()
        self.addCleanup(self.resume, redis)
        bgClient = connectRaw(self, server.port)
        bgClient.send("SUBMIT_JOB_BG", b"bg", b"", b"during")
        submittedAt = time.monotonic()

        started = time.monotonic()
        client.send("ECHO_REQ", b"ping")
        self.assertEqual(client.expect("ECHO_RES", timeout=1.0), [b"ping"])
        self.assertLess(time.monotonic() - started, 1.0)
        # The job being stored may be counted already: the reply is what matters.
        self.assertIn(b"\nfg\t0\t0\t1\n", b"\n" + server.admin(b"status", timeout=1.0))

        client.send("SUBMIT_JOB", b"fg", b"", b"foreground")
        handle = client.expect("JOB_CREATED", timeout=1.0)[0]
        fgWorker.send("GRAB_JOB")
        self.assertEqual(fgWorker.expect("JOB_ASSIGN"), [handle, b"fg", b"foreground"])
        fgWorker.send("WORK_COMPLETE", handle, b"done")
        self.assertEqual(client.expect("WORK_COMPLETE", timeout=1.0), [handle, b"done"])

        name, args = bgClient.receive(10.0)
        waited = time.monotonic() - submittedAt
        self.assertEqual(name, "ERROR", args)
        self.assertEqual(args[0], b"QUEUE_ERROR")
        self.assertLess(waited, 1.0 + 3.0)
        self.assertIn(b"bg\t1\t0\t0\n", server.admin(b"status", timeout=1.0))
        started = time.monotonic()
        client.send("ECHO_REQ", b"still")
        self.assertEqual(client.expect("ECHO_RES", timeout=1.0), [b"still"])
        self.assertLess(time.monotonic() - started, 1.0)

        redis.resume()
        attempts = [0]

        def submitted() -> bool:
            attempts[0] += 1
            name, args = submitBackground(bgClient, b"after-%d" % attempts[0], b"bg")
            if name == "ERROR":
                self.assertEqual(args[0], b"QUEUE_ERROR")
                time.sleep(0.2)
                return False
            return True

        waitFor(submitted, 15, what="a background submit to succeed after SIGCONT")
        created = [b"before", b"after-%d" % attempts[0]]
        for n in range(5):
            client.submit("SUBMIT_JOB_BG", b"bg", b"", b"more-%d" % n)
            created.append(b"more-%d" % n)
        self.assertEqual(len(jobKeys(redis)), len(created))
        worker = Worker(self, server.port, b"bg")
        worker.drain(lambda jobs: len(jobs) >= len(created), settle=1.0)
        self.assertEqual(worker.data(), created)
        self.noJobKeysLeft(redis)

    def resume(self, redis: RedisServer) -> None:
        if redis.running:
            redis.resume()

    # -- 6 -------------------------------------------------------------------

    def test_redisUnreachableAtStart(self) -> None:
        """
        With nothing listening at the Redis address, twistd retries for
        C{--redis-start-timeout}, then exits with status 1 and logs that
        the address is unreachable.
        """
        port = freePort()
        server = TwistdServer(
            self.mktemp(),
            ["--redis", f"{LOOPBACK}:{port}", "--redis-start-timeout", "2"],
        )
        self.addCleanup(server.stop)
        started = time.monotonic()
        server.launch()
        status = server.wait(20)
        elapsed = time.monotonic() - started
        self.assertEqual(status, 1, server.log())
        self.assertGreaterEqual(elapsed, 2.0)
        self.assertLess(elapsed, 2.0 + 10.0)
        log = server.log()
        self.assertIn(f"Redis at {LOOPBACK}:{port} is unreachable", log)
        self.assertIn("gave up after 2 s", log)

    def test_queueHeldByAnotherServer(self) -> None:
        """
        A second server on the same Redis and prefix exits with status 1
        saying that another txgearman server holds the queue, and leaves
        the first one serving; with another C{--redis-prefix} it starts and
        keeps its jobs apart.
        """
        redis = startRedis(self)
        first = startServer(self, *self.redisArgs(redis))
        second = TwistdServer(
            self.mktemp(), self.redisArgs(redis, "--redis-start-timeout", "1")
        )
        self.addCleanup(second.stop)
        second.launch()
        self.assertEqual(second.wait(20), 1, second.log())
        log = second.log()
        self.assertIn("another txgearman server", log)
        self.assertIn("holds the queue under prefix txgearman", log)

        connectRaw(self, first.port).submit("SUBMIT_JOB_BG", b"f", b"", b"first's")
        third = startServer(self, *self.redisArgs(redis, "--redis-prefix", "other"))
        connectRaw(self, third.port).submit("SUBMIT_JOB_BG", b"f", b"", b"third's")
        self.assertEqual(len(jobKeys(redis)), 1)
        otherKeys = jobKeys(redis, b"other")
        self.assertEqual(len(otherKeys), 1)
        self.assertTrue(redis.command("GET", otherKeys[0]).endswith(b"third's"))
        self.assertIn(b"f\t1\t0\t0\n", first.admin(b"status"))
        self.assertIn(b"f\t1\t0\t0\n", third.admin(b"status"))

    def test_restartAfterKillServesAtOnce(self) -> None:
        """
        Killed with SIGKILL and started again at once with the same options,
        the server recognises the lock it finds as its own dead
        predecessor's (same host, same listening address, which is free):
        it serves within about two seconds, not after the lock's 15 s, with
        every acknowledged job back.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis))
        client = connectRaw(self, server.port)
        for n in range(100):
            client.submit("SUBMIT_JOB_BG", b"kept", b"", b"job-%d" % (n,))
        server.kill()
        self.assertTrue(redis.command("GET", LOCK), "the dead server's lock is there")
        again = TwistdServer(server.directory, server.extraArgs, port=server.port)
        self.addCleanup(again.stop)
        started = time.monotonic()
        again.start(timeout=30)
        self.assertLess(time.monotonic() - started, 2.0 + SLACK)
        self.assertEqual(again.admin(b"status"), b"kept\t100\t0\t0\n.\n")
        self.assertIn("previous run", again.log())

    def test_redisLostItsData(self) -> None:
        """
        Redis flushed under a running server (as a restart without
        persistence does): at its next write the server writes back every
        background job it holds, so that after a restart of the server all
        500 acknowledged jobs are there, and the one submitted after the
        flush too.
        """
        redis = startRedis(self)
        server = startServer(self, *self.redisArgs(redis))
        client = connectRaw(self, server.port)
        for n in range(500):
            client.submit("SUBMIT_JOB_BG", b"kept", b"", b"job-%d" % (n,))
        redis.flushall()
        client.submit("SUBMIT_JOB_BG", b"kept", b"", b"after")
        self.assertEqual(len(jobKeys(redis)), 501)
        self.assertIn("lost this queue's keys", server.log())
        again = restartServer(self, server)
        self.assertEqual(again.admin(b"status"), b"kept\t501\t0\t0\n.\n")

    def test_secondServerRefusedAtOnce(self) -> None:
        """
        A second server on the same Redis and prefix, while the first runs,
        exits with status 1 within a few seconds (not after
        C{--redis-start-timeout}), naming the other server, and never
        accepts a connection meanwhile.
        """
        redis = startRedis(self)
        first = startServer(self, *self.redisArgs(redis))
        second = TwistdServer(self.mktemp(), self.redisArgs(redis))
        self.addCleanup(second.stop)
        status, seconds, accepted = second.launchRefused()
        self.assertEqual(status, 1, second.log())
        self.assertLess(seconds, 10.0)
        self.assertEqual(accepted, [])
        log = second.log()
        self.assertIn("is running (it keeps its lock fresh)", log)
        self.assertIn(
            f"on {socket.gethostname()} with tcp {LOOPBACK}:{first.port}", log
        )
        self.assertEqual(first.admin(b"version")[:3], b"OK ")

    def test_refusedWhileRedisUnreachable(self) -> None:
        """
        While Redis cannot be reached at start-up, the port refuses
        connections (clients fail over at once), and once Redis answers the
        server serves.
        """
        port = freePort()
        server = TwistdServer(
            self.mktemp(),
            ["--redis", f"{LOOPBACK}:{port}", "--redis-start-timeout", "30"],
        )
        self.addCleanup(server.stop)
        server.launch()
        waitFor(lambda: "unreachable" in server.log(), 20, what="the retries to start")
        self.assertTrue(refused(server.port))
        startRedis(self, port=port)
        server.waitUntilServing(30)
        self.assertEqual(server.admin(b"version")[:3], b"OK ")

    # -- 7 -------------------------------------------------------------------

    def test_sentinelFailover(self) -> None:
        """
        Through Sentinel, the server follows a failover: a job stored (and
        replicated) before the master dies still runs, and background
        submits succeed again once the replica is promoted.
        """
        master = startRedis(self)
        replica = startRedis(self, replicaOf=(master.host, master.port))
        waitFor(
            lambda: b"master_link_status:up" in replica.command("INFO", "replication"),
            30,
            what="the replica to sync",
        )
        sentinel = startSentinel(self, "mymaster", master, downAfterMs=500)
        waitFor(
            lambda: sentinel.command("SENTINEL", "replicas", "mymaster"),
            30,
            what="the Sentinel to find the replica",
        )
        server = startServer(
            self,
            "--redis",
            f"sentinel://{LOOPBACK}:{sentinel.port}/mymaster",
            "--redis-timeout",
            "1",
            "--redis-start-timeout",
            "10",
        )
        client = connectRaw(self, server.port)
        client.submit("SUBMIT_JOB_BG", b"sent", b"", b"before failover")
        waitFor(
            lambda: len(jobKeys(replica)) == 1, 10, what="the job to reach the replica"
        )

        master.kill()
        assert replica.port is not None
        sentinel.waitForMaster(replica.port, 30)
        attempts = [0]

        def submitted() -> bool:
            attempts[0] += 1
            name, args = submitBackground(client, b"after-%d" % attempts[0], b"sent")
            if name == "ERROR":
                self.assertEqual(args[0], b"QUEUE_ERROR")
                time.sleep(0.2)
                return False
            return True

        waitFor(submitted, 20, what="a background submit to succeed after the failover")
        created = [b"before failover", b"after-%d" % attempts[0]]
        worker = Worker(self, server.port, b"sent")
        worker.drain(lambda jobs: len(jobs) >= 2, settle=1.0)
        self.assertEqual(worker.data(), created)
        self.noJobKeysLeft(replica)
