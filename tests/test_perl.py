"""
System tests: Perl's Gearman::Client and Gearman::Worker (CPAN Gearman,
a pure-Perl implementation) against a real C{twistd gearman}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.fixtures import (
    TwistdServer,
    missingPeer,
    peerBinary,
    runTool,
    spawnTool,
    startServer,
)

PEERS = Path(__file__).parent / "peers"


class PerlTests(TestCase):
    """
    Perl clients and workers submit and run jobs.
    """

    def setUp(self) -> None:
        self.perl = peerBinary("perl", "perl")
        probe = runTool([self.perl, "-MGearman::Client", "-MGearman::Worker", "-e1"])
        if probe.returncode != 0:
            missingPeer(
                "Perl has no Gearman::Client (Debian package libgearman-client-perl)"
            )
        self.server: TwistdServer = startServer(self, "--job-handle-prefix", "H:perl")

    def client(self, *args: str) -> bytes:
        done = runTool(
            [self.perl, str(PEERS / "client.pl"), str(self.server.port), *args]
        )
        self.assertEqual((done.returncode, done.stderr), (0, b""))
        return done.stdout

    def test_background(self) -> None:
        """
        A Perl client's background job is queued under the unique id it
        gave, and a Perl worker runs it.
        """
        handle = self.client("bg", "perl-up", "perl-1", "abc")
        self.assertRegex(handle, rb"^127\.0\.0\.1:\d+//H:perl:1\n$")
        self.assertEqual(self.server.admin(b"show unique jobs"), b"perl-1\n.\n")
        code, _out, err = spawnTool(
            self,
            [
                self.perl,
                str(PEERS / "worker.pl"),
                str(self.server.port),
                "perl-up",
                "1",
            ],
        ).finish()
        self.assertEqual((code, err), (0, b""))
        # Its worker left and its job ended: the function is forgotten.
        self.assertEqual(self.server.admin(b"status"), b".\n")

    def test_foreground(self) -> None:
        """
        A Perl client's foreground job runs on a Perl worker and its result
        comes back.
        """
        worker = spawnTool(
            self,
            [
                self.perl,
                str(PEERS / "worker.pl"),
                str(self.server.port),
                "perl-fg",
                "1",
            ],
        )
        self.assertEqual(self.client("fg", "perl-fg", "hello"), b"HELLO\n")
        self.assertEqual(worker.finish()[0], 0)

    def test_falseResults(self) -> None:
        """
        A Perl worker whose function returns a false value (C{""}, C{"0"})
        sends WORK_COMPLETE as the bare handle, without NUL or data: the job
        completes (as on gearmand), rather than the connection being closed
        and the job looping.
        """
        self.client("bg", "perl-false", "empty", "")
        self.client("bg", "perl-false", "zero", "0")
        code, _out, err = spawnTool(
            self,
            [
                self.perl,
                str(PEERS / "worker.pl"),
                str(self.server.port),
                "perl-false",
                "2",
            ],
        ).finish()
        self.assertEqual((code, err), (0, b""))
        # Its worker left and its jobs ended: the function is forgotten.
        self.assertEqual(self.server.admin(b"status"), b".\n")
        self.assertNotIn("INVALID_ARGUMENTS", self.server.log())
