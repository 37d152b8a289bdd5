"""
Tests for L{txgearman.client.arguments}: what the library takes as bytes.
"""

from twisted.trial.unittest import SynchronousTestCase

from txgearman.client import GearmanAdminClient, GearmanWorker
from txgearman.client.arguments import asBytes, asOptionalBytes
from txgearman.server.service import GearmanServerService
from txgearman.testing import GearmanPump


class AsBytesTests(SynchronousTestCase):
    def test_bytesAndStr(self) -> None:
        """
        Bytes are taken as they are, C{str} as UTF-8, other buffers copied.
        """
        self.assertEqual(asBytes(b"a\0b", "x"), b"a\0b")
        self.assertEqual(asBytes("\u00e9", "x"), b"\xc3\xa9")
        self.assertEqual(asBytes(bytearray(b"ab"), "x"), b"ab")
        self.assertEqual(asOptionalBytes(None, "x"), None)

    def test_otherRefused(self) -> None:
        """
        Anything else is a L{TypeError} that names the argument and the type.
        """
        error = self.assertRaises(TypeError, asBytes, 42, "data")
        self.assertEqual(str(error), "data must be bytes or str, not int")
        self.assertRaises(TypeError, asOptionalBytes, 1.5, "clientId")


class LibraryArgumentTests(SynchronousTestCase):
    """
    Every argument the documentation says may be C{str}: accepted, or
    refused at once naming the argument.
    """

    def test_worker(self) -> None:
        worker = GearmanWorker(["tcp:h:1"], clientId="w\u00e9")
        self.assertEqual(worker.clientId, "w\u00e9".encode())
        error = self.assertRaises(TypeError, GearmanWorker, ["tcp:h:1"], clientId=3)
        self.assertIn("clientId", str(error))
        error = self.assertRaises(TypeError, worker.register, 5, lambda job: None)
        self.assertIn("function", str(error))

    def test_admin(self) -> None:
        """
        Admin function names and handles may be C{str}; a wrong type or a
        name that cannot be one word of a line is refused before sending.
        """
        pump = GearmanPump()
        server = pump.startServer()
        admin = GearmanAdminClient(pump.endpoint(), reactor=pump.clock)
        pump.result(admin.createFunction("fr\u00e9sh"))
        self.assertIn("fr\u00e9sh".encode(), server.core.functions)
        pump.result(admin.maxQueue("fr\u00e9sh", 3))
        pump.result(admin.dropFunction("fr\u00e9sh"))
        error = self.assertRaises(TypeError, admin.createFunction, 7)
        self.assertEqual(str(error), "name must be bytes or str, not int")
        error = self.assertRaises(ValueError, admin.cancelJob, "H:a b")
        self.assertIn("handle is not usable", str(error))
        pump.result(admin.close())

    def test_handlePrefix(self) -> None:
        """
        The embedded server's handle prefix may be C{str}.
        """
        pump = GearmanPump()
        service = GearmanServerService(
            pump.serverEndpoint("g"), pump.clock, handlePrefix="H:\u00e9"
        )
        self.assertEqual(service.core.handlePrefix, "H:\u00e9:".encode())
        error = self.assertRaises(
            TypeError,
            GearmanServerService,
            pump.serverEndpoint("h"),
            pump.clock,
            handlePrefix=1,
        )
        self.assertIn("handlePrefix", str(error))
