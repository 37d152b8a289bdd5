"""
The dashboard at C{/} of a real C{twistd gearman --http} process, loaded in
a real headless Chromium: it shows what admin C{status} and C{workers} show,
follows new jobs, filters and sorts a thousand functions, says when the
server is gone, and logs no JavaScript error.

C{TXGEARMAN_SCREENSHOT=path.png} keeps a screenshot of a busy dashboard for
a person to look at (docs/dashboard.png is one).
"""

from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.browser import Chromium, chromiumBinary
from tests.fixtures import LOOPBACK, RawConnection, TwistdServer, freePort, startServer

# The rows of the functions table, as the page shows them.
_ROWS = """Array.from(document.querySelectorAll("#functions tbody tr"),
  (tr) => Array.from(tr.cells, (td) => td.textContent))"""
_WORKERS = """Array.from(document.querySelectorAll("#workers tbody tr"),
  (tr) => Array.from(tr.cells, (td) => td.textContent))"""
_POLLS = "Number(document.body.dataset.polls || 0)"


class DashboardTests(SynchronousTestCase):
    def setUp(self) -> None:
        chromiumBinary()
        self.httpPort = freePort()
        self.server = startServer(
            self, "--http", f"tcp:{self.httpPort}:interface={LOOPBACK}"
        )
        self.browser = Chromium(self.mktemp())
        self.addCleanup(self.browser.close)
        # Cleanups run last first: this one before the browser closes.
        self.addCleanup(self.checkConsole)
        self.connections: list[RawConnection] = []
        self.addCleanup(self.closeConnections)

    def closeConnections(self) -> None:
        for connection in self.connections:
            connection.close()

    def checkConsole(self) -> None:
        """
        Every test: the page never wrote to the console or threw.
        """
        self.assertEqual(self.browser.console, [])
        self.assertIsNone(self.browser.evaluate("document.body.dataset.errors || null"))

    def url(self, query: str = "") -> str:
        return f"http://{LOOPBACK}:{self.httpPort}/{query}"

    def connect(self) -> RawConnection:
        connection = self.server.connect()
        self.connections.append(connection)
        return connection

    def submit(self, function: bytes, count: int) -> None:
        client = self.connect()
        for n in range(count):
            client.submit("SUBMIT_JOB_BG", function, b"%d-%f" % (n, time.time()), b"x")

    def submitEach(self, **counts: int) -> None:
        """
        Background jobs for several functions (C{img_small} is C{img-small}).
        """
        for name, count in counts.items():
            self.submit(name.replace("_", "-").encode(), count)

    def open(self, query: str = "") -> None:
        self.browser.navigate(self.url(query))
        self.browser.waitFor(
            f"document.readyState === 'complete' && {_POLLS} > 0", what="a first poll"
        )

    def nextPoll(self) -> None:
        """
        Wait until the page has polled the server again, twice (a poll
        may have been under way already).
        """
        now = self.browser.evaluate(_POLLS)
        self.browser.waitFor(f"{_POLLS} >= {now + 2}", what="two more polls")

    def statusRows(self) -> dict[str, list[str]]:
        """
        Admin C{status}: function -> [jobs, running, workers].
        """
        lines = self.server.admin(b"status").decode().splitlines()
        return {
            name: [total, running, workers]
            for name, total, running, workers in (
                line.split("\t") for line in lines if line != "."
            )
        }

    def test_showsTheServer(self) -> None:
        """
        The page shows every function with the figures of admin C{status},
        the workers with what they run, the counters and the server.
        """
        worker = self.connect()
        worker.send("SET_CLIENT_ID", b"thumbnailer-1")
        worker.send("CAN_DO", b"resize")
        worker.sync()
        self.submit(b"resize", 3)
        # A name that is markup must be shown as text.
        self.submit(b"crop<b>&", 2)
        worker.send("GRAB_JOB")
        worker.expect("JOB_ASSIGN")
        self.open("?interval=500")
        rows = self.browser.evaluate(_ROWS)
        status = self.statusRows()
        self.assertEqual(sorted(row[0] for row in rows), sorted(status))
        for name, jobs, running, waiting, workers, high, normal, low, oldest in rows:
            self.assertEqual([jobs, running, workers], status[name])
            self.assertEqual(int(waiting), int(jobs) - int(running))
            self.assertEqual(int(normal), int(waiting))
            self.assertEqual((high, low), ("0", "0"))
            self.assertGreaterEqual(float(oldest), 0.0)
        self.assertEqual(
            self.browser.evaluate("document.querySelectorAll('#functions b').length"), 0
        )
        workers = self.browser.evaluate(_WORKERS)
        self.assertEqual(len(workers), 1)
        self.assertEqual(workers[0][1:], [LOOPBACK, "thumbnailer-1", "resize"])
        text = self.browser.evaluate("document.getElementById('counters').textContent")
        self.assertIn("5 (0 foreground, 5 background, 0 epoch)", text)
        self.assertEqual(self.browser.evaluate("document.body.dataset.state"), "live")
        self.assertEqual(
            self.browser.evaluate("document.getElementById('ready').textContent"), "yes"
        )
        self.assertIn(
            "memory",
            self.browser.evaluate("document.getElementById('store').textContent"),
        )

    def test_followsNewJobs(self) -> None:
        """
        Jobs submitted while the page is open appear at its next poll, in
        the table and in the history of queue depth.
        """
        self.submit(b"first", 1)
        self.open("?interval=500")
        self.assertEqual([row[0] for row in self.browser.evaluate(_ROWS)], ["first"])
        self.submit(b"second", 4)
        self.nextPoll()
        rows = {row[0]: row for row in self.browser.evaluate(_ROWS)}
        self.assertEqual(rows["second"][1], "4")
        self.assertEqual(
            self.browser.evaluate("document.getElementById('waiting-now').textContent"),
            "(5 now)",
        )
        points = self.browser.evaluate(
            "document.querySelector('#spark-waiting polyline').getAttribute('points')"
        ).split()
        self.assertGreaterEqual(len(points), 2)
        # The newest sample is drawn higher (a smaller y) than the first.
        self.assertLess(float(points[-1].split(",")[1]), float(points[0].split(",")[1]))

    def test_filterAndSort(self) -> None:
        """
        The filter and the sort order come from the address and go back to
        it, so that a view can be shared.
        """
        self.submitEach(img_small=1, img_large=3, img_mid=2, mail=5)
        self.open("?filter=img&sort=waiting&order=desc")
        rows = self.browser.evaluate(_ROWS)
        self.assertEqual(
            [row[0] for row in rows], ["img-large", "img-mid", "img-small"]
        )
        self.assertEqual(
            self.browser.evaluate(
                "document.getElementById('function-count').textContent"
            ),
            "(3 of 4)",
        )
        # A click on the "function" header sorts by name, ascending.
        self.browser.evaluate("document.querySelector('th[data-key=name]').click()")
        rows = self.browser.evaluate(_ROWS)
        self.assertEqual(
            [row[0] for row in rows], ["img-large", "img-mid", "img-small"]
        )
        self.browser.evaluate(
            "const f = document.getElementById('filter'); f.value = 'MAIL';"
            "f.dispatchEvent(new Event('input'))"
        )
        self.assertEqual([row[0] for row in self.browser.evaluate(_ROWS)], ["mail"])
        self.assertEqual(self.browser.evaluate("location.search"), "?filter=MAIL")

    def test_thousandFunctions(self) -> None:
        """
        With 1,000 functions the page draws them all, and filtering and
        sorting them stays quick.
        """
        client = self.connect()
        for n in range(1000):
            client.submit("SUBMIT_JOB_BG", b"fn-%04d" % n, b"", b"x" * (n % 7))
        started = time.monotonic()
        self.open()
        self.browser.waitFor(f"({_ROWS}).length === 1000", what="1,000 rows")
        loaded = time.monotonic() - started
        took = self.browser.evaluate(
            """(() => {
              const t0 = performance.now();
              document.querySelector('th[data-key=name]').click();
              const sorted = performance.now() - t0;
              const f = document.getElementById('filter');
              const t1 = performance.now();
              f.value = 'fn-099'; f.dispatchEvent(new Event('input'));
              return [sorted, performance.now() - t1];
            })()"""
        )
        rows = self.browser.evaluate(_ROWS)
        self.assertEqual(
            [row[0] for row in rows], [f"fn-{n:04d}" for n in range(999, 989, -1)]
        )
        # Generous bounds: a shared machine; the figures are printed.
        self.assertLess(loaded, 10.0)
        self.assertLess(max(took), 1000.0)
        print(
            f"\n1,000 functions: loaded in {loaded:.2f} s; sort {took[0]:.1f} ms, "
            f"filter {took[1]:.1f} ms"
        )
        self.nextPoll()
        self.assertEqual(len(self.browser.evaluate(_ROWS)), 10)

    def test_disconnected(self) -> None:
        """
        When the server goes away the page says so, keeps its last figures,
        and comes back by itself when the server does.
        """
        self.submit(b"resize", 2)
        self.open("?interval=500")
        port = self.server.port
        self.server.stop()
        self.browser.waitFor(
            "document.body.dataset.state === 'disconnected'",
            what="the disconnected state",
        )
        self.assertIn(
            "disconnected",
            self.browser.evaluate("document.getElementById('state').textContent"),
        )
        self.assertEqual([row[0] for row in self.browser.evaluate(_ROWS)], ["resize"])
        again = TwistdServer(
            self.mktemp(),
            ["--http", f"tcp:{self.httpPort}:interface={LOOPBACK}"],
            port=port,
        )
        self.addCleanup(again.stop)
        again.start()
        self.browser.waitFor(
            "document.body.dataset.state === 'live'", what="live again"
        )
        # The new server has no jobs: the row goes.
        self.browser.waitFor(f"({_ROWS}).length === 0", what="the empty table")

    def test_screenshot(self) -> None:
        """
        A screenshot of a busy dashboard: a PNG a person can look at.
        """
        worker = self.connect()
        worker.send("CAN_DO", b"resize")
        worker.send("CAN_DO", b"thumbnail")
        worker.sync()
        self.submitEach(resize=12, thumbnail=4, email=30, report=2)
        self.open("?interval=500&sort=waiting")
        # A few samples of a changing queue for the history lines.
        for extra in (5, 9, 3, 12, 6):
            self.submit(b"email", extra)
            self.nextPoll()
        png = self.browser.screenshot()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 10_000)
        path = os.environ.get("TXGEARMAN_SCREENSHOT") or os.path.abspath(
            self.mktemp() + ".png"
        )
        with open(path, "wb") as f:
            f.write(png)
        print(f"\nscreenshot: {path}")
