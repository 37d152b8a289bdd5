"""
The library modules leave the choice of reactor to the application: none
installs the global reactor when imported.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

#: Every module an application imports to use txgearman as a library.
LIBRARY = [
    "txgearman.client",
    "txgearman.client.clientprotocol",
    "txgearman.client.worker",
    "txgearman.client.workerprotocol",
    "txgearman.client.admin",
    "txgearman.client.endpoints",
    "txgearman.client.errors",
    "txgearman.server.service",
    "txgearman.server.core",
    "txgearman.server.protocol",
    "txgearman.server.tap",
    "txgearman.store.memory",
    "txgearman.store.redis",
    "txgearman.store.redisaddress",
    "txgearman.store.redislayout",
    "txgearman.testing",
]


class ImportTests(SynchronousTestCase):
    def test_noReactorInstalled(self) -> None:
        """
        Importing the library modules, in a fresh interpreter, installs no
        reactor: an application may still install the asyncio reactor, say.
        L{txgearman.store.redis} among them: it imports txredisapi (which
        would) only when a store is made.
        """
        code = (
            "import sys\n"
            + "".join(f"import {name}\n" for name in LIBRARY)
            + "assert 'twisted.internet.reactor' not in sys.modules, 'reactor installed'\n"
            + "from twisted.internet import asyncioreactor\n"
            + "asyncioreactor.install()\n"
            + "print('ok')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual((done.returncode, done.stdout), (0, "ok\n"), done.stderr)

    def test_clientAlone(self) -> None:
        """
        Importing the client library loads neither the job server nor
        txredisapi: an application that only submits jobs carries neither.
        """
        code = (
            "import sys\n"
            "import txgearman.client\n"
            "loaded = sorted(m for m in sys.modules\n"
            "    if m.startswith(('txgearman.server', 'txgearman.store', 'txredisapi')))\n"
            "print(loaded)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual((done.returncode, done.stdout), (0, "[]\n"), done.stderr)
