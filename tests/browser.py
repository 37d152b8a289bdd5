"""
A real headless Chromium, driven over the DevTools protocol on a pipe
(C{--remote-debugging-pipe}: JSON messages ending in NUL on file
descriptors 3 and 4), for the dashboard's tests.  No WebDriver, no
websocket library: the test reads the live page with C{Runtime.evaluate},
sees every console message and uncaught exception, and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from typing import Any

from twisted.trial.unittest import FailTest

from tests.fixtures import peerBinary, waitFor

__all__ = ["Chromium", "chromiumBinary"]


def chromiumBinary() -> str:
    """
    Debian's C{chromium} (C{.ci/run} installs it); the test fails under
    C{CI=true} and skips elsewhere when it is missing.
    """
    return peerBinary("chromium", package="chromium")


class Chromium:
    """
    One headless browser with one page.

    @ivar console: every console message and uncaught exception the page
        produced, as C{(kind, text)}; the dashboard writes none when all is
        well.
    """

    def __init__(self, profile: str, width: int = 1280, height: int = 900) -> None:
        os.makedirs(profile, exist_ok=True)
        toChrome = os.pipe()
        fromChrome = os.pipe()
        childRead, childWrite = toChrome[0], fromChrome[1]

        # Chromium reads commands on fd 3 and writes answers on fd 4; the
        # shell puts the pipes there, whatever numbers they have here.
        self.process = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                f'exec "$0" "$@" 3<&{childRead} 4>&{childWrite}',
                chromiumBinary(),
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(childRead, childWrite),
            start_new_session=True,
        )
        os.close(childRead)
        os.close(childWrite)
        self.profile = profile
        self.write = toChrome[1]
        self.read = fromChrome[0]
        self.buffer = b""
        self.nextId = 0
        self.console: list[tuple[str, str]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        self.call("Runtime.enable", session=self.session)
        self.call("Page.enable", session=self.session)

    # -- the protocol --------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """
        Send one command and return its result, noting the events that
        arrive meanwhile.
        """
        self.nextId += 1
        message: dict[str, Any] = {
            "id": self.nextId,
            "method": method,
            "params": params or {},
        }
        if session is not None:
            message["sessionId"] = session
        os.write(self.write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline, method)
            if answer.get("id") == self.nextId:
                if "error" in answer:
                    raise FailTest(f"Chromium refused {method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result
            self._event(answer)

    def _receive(self, deadline: float, waitingFor: str) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FailTest(f"Chromium did not answer {waitingFor}")
            ready, _, _ = select.select([self.read], [], [], left)
            if ready:
                chunk = os.read(self.read, 1 << 20)
                if not chunk:
                    raise FailTest(f"Chromium exited while answering {waitingFor}")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _event(self, event: dict[str, Any]) -> None:
        method = event.get("method")
        params = event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(arg.get("value", arg.get("description", "")))
                for arg in params["args"]
            )
            self.console.append((params["type"], text))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get(
                "text"
            )
            self.console.append(("exception", str(text)))

    # -- the page ------------------------------------------------------------

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=self.session)

    def evaluate(self, expression: str) -> Any:
        """
        The value of a JavaScript expression in the page, as JSON.
        """
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise FailTest(f"{expression!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def waitFor(self, expression: str, timeout: float = 15.0, what: str = "") -> Any:
        """
        Evaluate C{expression} until it is truthy; return its value.
        """
        return waitFor(
            lambda: self.evaluate(expression), timeout, what or repr(expression)
        )

    def screenshot(self) -> bytes:
        """
        The page as a PNG, all of it.
        """
        result = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=self.session,
        )
        return base64.b64decode(result["data"])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except FailTest:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.close(self.write)
        os.close(self.read)
        shutil.rmtree(self.profile, ignore_errors=True)
