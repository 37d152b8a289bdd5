"""
System tests: C{twistd gearman} as a process: daemonizing with a pid file,
its log file, signals (SIGTERM stops, SIGUSR2 drains), an occupied port,
bad options, and dropping privileges with C{-u}/C{-g}.

Jobs are made over raw protocol connections, so these tests need no peer
binary.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import time

from twisted.trial.unittest import SkipTest, TestCase

import txgearman
from tests.fixtures import (
    LOOPBACK,
    TwistdServer,
    connectRaw,
    processGone,
    refused,
    startRedis,
    startServer,
    waitFor,
)


def idsOf(pid: int) -> tuple[list[int], list[int]]:
    """
    The real, effective, saved and filesystem uids and gids of C{pid}.
    """
    fields: dict[str, list[int]] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                fields[key] = [int(v) for v in value.split()]
    return fields["Uid"], fields["Gid"]


class TwistdProcessTests(TestCase):
    """
    The server process under twistd.
    """

    def newServer(self, *extraArgs: str, **kwargs: object) -> TwistdServer:
        server = TwistdServer(self.mktemp(), extraArgs, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(server.stop)
        return server

    def test_daemonWritesPidFile(self) -> None:
        """
        Without C{-n}, twistd detaches: the command returns 0 once the
        server is up, the pid file names the serving process, and SIGTERM
        to that pid stops it cleanly and removes the pid file.
        """
        server = self.newServer(daemon=True)
        server.start()
        assert server.process is not None
        self.assertEqual(server.process.returncode, 0)
        pid = int(server.pidPath.read_text())
        self.assertNotEqual(pid, server.process.pid)
        self.assertEqual(server.admin(b"getpid"), b"OK %d\n" % (pid,))
        os.kill(pid, signal.SIGTERM)
        waitFor(lambda: processGone(pid), 10, what="the daemon to exit")
        self.assertFalse(server.pidPath.exists())
        self.assertIn("Server Shut Down.", server.log())

    def test_logFile(self) -> None:
        """
        C{--logfile} gets the startup line naming the version, the endpoint
        and the queue store; nothing goes to standard output.
        """
        server = startServer(self)
        line = (
            f"txgearman {txgearman.__version__} on tcp:{server.port}:interface=127.0.0.1; "
            f"queue store: memory"
        )
        waitFor(lambda: line in server.logPath.read_text(), what="the startup line")
        self.assertEqual(server.outputPath.read_text(), "")

    def test_sigtermExitsPromptly(self) -> None:
        """
        SIGTERM stops the server within a few seconds even with queued and
        running jobs and open connections, which are closed.
        """
        server = startServer(self)
        client = connectRaw(self, server.port)
        client.submit("SUBMIT_JOB", b"waiting", b"", b"")
        client.submit("SUBMIT_JOB_BG", b"running", b"", b"")
        worker = connectRaw(self, server.port)
        worker.send("CAN_DO", b"running")
        worker.send("GRAB_JOB")
        worker.expect("JOB_ASSIGN")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        status = server.wait(5)
        self.assertLess(time.monotonic() - started, 5)
        # twistd stops the reactor, then ends by the signal it was sent.
        self.assertEqual(status, -signal.SIGTERM)
        self.assertIn("Server Shut Down.", server.log())
        self.assertEqual(client.socket.recv(100), b"")

    def test_sighupRotatesLog(self) -> None:
        """
        SIGHUP, which gearmand's logrotate set-ups send, rotates the log
        file as SIGUSR1 does, and the server keeps serving.
        """
        server = startServer(self)
        server.signal(signal.SIGHUP)
        rotated = server.logPath.with_name(server.logPath.name + ".1")
        waitFor(rotated.exists, 5, what="the rotated log file")
        self.assertTrue(server.running(), server.log())
        self.assertTrue(server.admin(b"version").startswith(b"OK "))

    def test_sigusr2Drains(self) -> None:
        """
        SIGUSR2 closes the listening port at once, lets the connections
        already open finish the queued jobs, then exits 0.
        """
        server = startServer(self)
        client = connectRaw(self, server.port)
        handle = client.submit("SUBMIT_JOB_BG", b"drain", b"d-1", b"payload")
        client.close()
        # The worker connects before the signal (and is accepted: a
        # connection still in the listen backlog is reset when the port
        # closes), and asks for work after.
        worker = connectRaw(self, server.port)
        worker.sync()
        server.signal(signal.SIGUSR2)
        waitFor(lambda: refused(server.port), 2, what="the port to close")
        time.sleep(0.5)
        self.assertTrue(server.running(), server.log())
        worker.send("CAN_DO", b"drain")
        worker.send("GRAB_JOB")
        self.assertEqual(worker.expect("JOB_ASSIGN"), [handle, b"drain", b"payload"])
        time.sleep(0.5)
        self.assertTrue(server.running(), "exited with a job still running")
        worker.send("WORK_COMPLETE", handle, b"done")
        self.assertEqual(server.wait(10), 0, server.log())
        self.assertIn("Draining", server.log())

    def test_sigusr2WithNothingQueued(self) -> None:
        """
        SIGUSR2 on an idle server exits 0 promptly.
        """
        server = startServer(self)
        server.signal(signal.SIGUSR2)
        self.assertEqual(server.wait(5), 0, server.log())

    def test_portInUse(self) -> None:
        """
        When the port is taken, twistd exits non-zero and says why.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind((LOOPBACK, 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            server = self.newServer(port=port)
            server.launch()
            assert server.process is not None
            status = server.process.wait(20)
        self.assertNotEqual(status, 0)
        log = server.log()
        self.assertIn(f"Couldn't listen on 127.0.0.1:{port}", log)
        self.assertIn("Address already in use", log)

    def test_badOption(self) -> None:
        """
        An invalid plugin option makes twistd exit non-zero with the
        option's error and without serving.
        """
        server = self.newServer("--job-retries", "-5")
        server.launch()
        assert server.process is not None
        self.assertNotEqual(server.process.wait(20), 0)
        self.assertIn("--job-retries must be -1 or more", server.log())
        self.assertTrue(refused(server.port))

    def test_dropPrivilegesWithRedis(self) -> None:
        """
        With C{--redis} at a host name, as nobody/nogroup: the server looks
        the name up and connects after the privilege drop (when Python's
        own files may be unreadable), and stores and serves jobs.
        """
        if os.getuid() != 0:
            raise SkipTest("dropping privileges needs root")
        redis = startRedis(self)
        server = TwistdServer(
            self.mktemp(),
            ["--redis", f"localhost:{redis.port}", "--redis-start-timeout", "10"],
            twistdArgs=["-u", "nobody", "-g", "nogroup"],
        )
        self.addCleanup(server.stop)
        server.start()
        client = connectRaw(self, server.port)
        client.submit("SUBMIT_JOB_BG", b"priv", b"", b"stored")
        self.assertEqual(len(redis.keys(b"txgearman:job:*")), 1)
        self.assertNotIn("unreachable", server.log())

    def test_dropPrivileges(self) -> None:
        """
        Started as root with C{-u nobody -g nogroup}, the server binds its
        port, then runs as nobody/nogroup and still serves jobs.
        """
        if os.getuid() != 0:
            raise SkipTest("dropping privileges needs root")
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
        server = TwistdServer(
            self.mktemp(), twistdArgs=["-u", "nobody", "-g", "nogroup"]
        )
        self.addCleanup(server.stop)
        server.start()
        assert server.pid is not None
        self.assertEqual(idsOf(server.pid), ([uid] * 4, [gid] * 4))
        self.assertIn(f"set uid/gid {uid}/{gid}", server.log())
        client = connectRaw(self, server.port)
        handle = client.submit("SUBMIT_JOB", b"priv", b"", b"x")
        worker = connectRaw(self, server.port)
        worker.send("CAN_DO", b"priv")
        worker.send("GRAB_JOB")
        self.assertEqual(worker.expect("JOB_ASSIGN"), [handle, b"priv", b"x"])
        worker.send("WORK_COMPLETE", handle, b"ok")
        self.assertEqual(client.expect("WORK_COMPLETE"), [handle, b"ok"])
        self.assertEqual(server.admin(b"getpid"), b"OK %d\n" % (server.pid,))
