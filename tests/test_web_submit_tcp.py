"""
HTTP job submission (C{--http-submit}) on a real C{twistd gearman}
process, with curl and raw sockets as clients and Debian's gearman tools
as workers, and side by side with gearmand 1.1.20's own HTTP plugin
(C{gearmand -r http}) on the requests where gearmand is right.
"""

from __future__ import annotations

import socket
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from tests.fixtures import (
    LOOPBACK,
    GearmanTools,
    TwistdServer,
    answersVersion,
    freePort,
    peerBinary,
    startGearmand,
    startServer,
    waitForWorkers,
)


def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """
    Run curl; return the last answer's status, headers (lower-cased names)
    and body.
    """
    out = subprocess.run(
        [peerBinary("curl", "curl"), "-s", "-i", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    head, _, body = out.rpartition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        head, body = body, b""
    lines = head.split(b"\r\n\r\n")[-1].split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode().lower()] = value.strip().decode()
    return status, headers, body


class SubmitTCPTests(SynchronousTestCase):
    def serve(self, *extra: str) -> tuple[TwistdServer, str]:
        port = freePort()
        server = startServer(
            self, "--http", f"tcp:{port}:interface={LOOPBACK}", "--http-submit", *extra
        )
        return server, f"http://{LOOPBACK}:{port}"

    def reverser(self, port: int) -> None:
        """
        A C{gearman -w} worker for C{rev}, which reverses its input.
        """
        GearmanTools(self, port).spawnGearman("-w", "-f", "rev", "--", "rev")
        waitForWorkers(port, b"rev", 1)

    def test_curl(self) -> None:
        """
        curl submits a foreground job and gets its result; a background one
        and gets 202 with the handle.
        """
        server, base = self.serve()
        self.reverser(server.port)
        status, headers, body = curl("--data-binary", "hello", base + "/rev")
        self.assertEqual((status, body), (200, b"olleh"))
        self.assertEqual(headers["x-gearman-command"], "WORK_COMPLETE")
        self.assertRegex(headers["x-gearman-job-handle"], r"^H:.+:\d+$")
        status, headers, body = curl(
            "-H", "X-Gearman-Background: true", "--data", "later", base + "/queued"
        )
        self.assertEqual(status, 202)
        self.assertEqual(headers["x-gearman-command"], "JOB_CREATED")
        self.assertIn(b"queued\t1\t0\t0\n", server.admin(b"status"))

    def test_keepAlive(self) -> None:
        """
        HTTP/1.1: several requests on one connection, each answered.
        """
        server, base = self.serve()
        self.reverser(server.port)
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            reader = s.makefile("rb")
            for word in (b"abc", b"hello"):
                s.sendall(
                    b"POST /rev HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(word), word)
                )
                self.assertEqual(reader.readline(), b"HTTP/1.1 200 OK\r\n")
                headers = {}
                while (line := reader.readline()) != b"\r\n":
                    name, _, value = line.partition(b":")
                    headers[name.lower()] = value.strip()
                self.assertEqual(
                    reader.read(int(headers[b"content-length"])), word[::-1]
                )

    def test_streamed(self) -> None:
        """
        A worker's WORK_DATA reaches the client whole and in order
        (chunked), which gearmand 1.1.20's plugin corrupts.
        """
        server, base = self.serve()
        worker = server.connect()
        self.addCleanup(worker.close)
        worker.send("CAN_DO", b"lines")
        worker.sync()
        request = subprocess.Popen(
            [
                peerBinary("curl", "curl"),
                "-s",
                "--max-time",
                "20",
                "--data",
                "x",
                base + "/lines",
            ],
            stdout=subprocess.PIPE,
        )
        self.addCleanup(request.kill)
        worker.send("GRAB_JOB")
        while True:
            kind, args = worker.receive(10)
            if kind == "JOB_ASSIGN":
                break
            worker.send("GRAB_JOB")
        handle = args[0]
        for line in (b"a1\n", b"b2\n", b"c3\n"):
            worker.send("WORK_DATA", handle, line)
        worker.send("WORK_COMPLETE", handle, b"end\n")
        out, _ = request.communicate(timeout=20)
        self.assertEqual(out, b"a1\nb2\nc3\nend\n")

    def test_bodyLimit(self) -> None:
        """
        A body over C{--max-packet-size} is refused with 413 before it is
        read; the Gearman port is not disturbed.
        """
        server, base = self.serve("--max-packet-size", "2048")
        status, _, body = curl("--data-binary", "x" * 4096, base + "/rev")
        self.assertEqual(status, 413)
        self.assertIn(b"--max-packet-size", body)
        self.assertTrue(answersVersion(server.port))

    def test_asGearmand(self) -> None:
        """
        On the requests gearmand 1.1.20's HTTP plugin answers right, the
        same result and C{X-Gearman-Command}; where it is wrong, the
        documented fix: a failed job is 502 with its whole handle (gearmand:
        200 and the handle cut by one character).
        """
        gearmandHttp = freePort()
        gearmand = startGearmand(self, "-r", "http", "--http-port", str(gearmandHttp))
        server, base = self.serve()
        for port in (server.port, gearmand.port):
            self.reverser(port)
            tools = GearmanTools(self, port)
            tools.spawnGearman("-w", "-f", "fails", "--", "false")
            waitForWorkers(port, b"fails", 1)
        ours = curl("--data-binary", "gearman", base + "/rev")
        theirs = curl(
            "--data-binary", "gearman", f"http://{LOOPBACK}:{gearmandHttp}/rev"
        )
        self.assertEqual((ours[0], ours[2]), (theirs[0], theirs[2]))
        self.assertEqual(ours[2], b"namraeg")
        self.assertEqual(ours[1]["x-gearman-command"], theirs[1]["x-gearman-command"])
        failed = curl("--data", "x", base + "/fails")
        theirFailed = curl("--data", "x", f"http://{LOOPBACK}:{gearmandHttp}/fails")
        self.assertEqual(theirFailed[0], 200)
        self.assertEqual(theirFailed[1]["x-gearman-command"], "WORK_FAIL")
        self.assertEqual(failed[0], 502)
        self.assertEqual(failed[1]["x-gearman-command"], "WORK_FAIL")
        self.assertRegex(failed[1]["x-gearman-job-handle"], r"^H:.+:\d+$")
