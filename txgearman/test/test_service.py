"""
Tests for L{txgearman.server.service}: start-up order, replay, stopping, draining
and the drain signal, on a fake reactor (on a real port:
C{tests/test_service_tcp.py}).
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txgearman.codec import PacketType
from txgearman.server.claim import ListeningClaim
from txgearman.server.protocol import GearmanServerFactory
from txgearman.server.service import (
    GearmanServerService,
    endpointDescription,
    listensEarly,
)
from txgearman.store.interfaces import IRestorableStore, StoredJob, StoreError
from txgearman.store.memory import MemoryQueueStore
from txgearman.test.fakes import MemoryConnection, response

CAN_DO, SUBMIT_JOB, JOB_CREATED, GRAB_JOB, JOB_ASSIGN, WORK_COMPLETE = (
    1,
    7,
    8,
    9,
    11,
    13,
)
SUBMIT_JOB_EPOCH, GRAB_JOB_ALL, JOB_ASSIGN_ALL = 36, 39, 40
ECHO_REQ = 16
SUBMIT_JOB_BG, ERROR = 18, 19


class ControlledStore(MemoryQueueStore):
    """
    A memory store whose C{start} fires when the test says so.
    """

    def __init__(self, startResult: Deferred[None] | None = None) -> None:
        super().__init__()
        self.startResult: Deferred[None] = (
            startResult if startResult is not None else Deferred()
        )
        self.started = False
        self.stopped = False

    def start(self) -> Deferred[None]:
        self.started = True
        return self.startResult

    def stop(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


@implementer(IListeningPort)
class RecordingPort:
    def __init__(self) -> None:
        self.listening = True

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.listening = False

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 4730)


@implementer(IStreamServerEndpoint)
class RecordingEndpoint:
    """
    An endpoint that records the factory it listens with.
    """

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.factories: list[Any] = []
        self.ports: list[RecordingPort] = []

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        if self.error is not None:
            return fail(self.error)
        self.factories.append(factory)
        port = RecordingPort()
        self.ports.append(port)
        listening: IListeningPort = port
        return succeed(listening)


class ThreadlessReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} whose C{callFromThread} runs the call at once.
    """

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


class Connection(MemoryConnection):
    """
    A L{MemoryConnection} from port 5000.
    """

    def __init__(self, factory: GearmanServerFactory) -> None:
        super().__init__(factory, 5000)


class EndpointDescriptionTests(SynchronousTestCase):
    def test_bareNumber(self) -> None:
        """
        A bare port number means TCP on every interface.
        """
        self.assertEqual(endpointDescription("4730"), "tcp:4730")

    def test_description(self) -> None:
        """
        Anything else is taken as a strports description.
        """
        for description in [
            "tcp:4730:interface=127.0.0.1",
            "unix:/tmp/g.sock",
            "tcp6:0",
        ]:
            self.assertEqual(endpointDescription(description), description)


@implementer(IRestorableStore)
class RestorableStore(MemoryQueueStore):
    """
    A memory store that is told what the server holds, as the Redis store
    is, so that it could write it back.
    """

    holdings: Any = None

    def setHoldings(self, holdings: Any) -> None:
        self.holdings = holdings


class HoldingsTests(SynchronousTestCase):
    def test_holdings(self) -> None:
        """
        Once started, a store that can write back what it lost is given
        what lists every stored job the core holds, with its key and
        record, queued or running; foreground jobs are not among them.
        """
        store = RestorableStore()
        service = GearmanServerService(
            RecordingEndpoint(), reactor=MemoryReactorClock(), store=store
        )
        service.startService()
        client = Connection(service.factory)
        client.send(SUBMIT_JOB_BG, b"f", b"u", b"one")
        client.send(SUBMIT_JOB_BG, b"f", b"", b"two")
        client.send(SUBMIT_JOB, b"f", b"", b"foreground")
        worker = Connection(service.factory)
        worker.send(CAN_DO, b"f")
        worker.send(GRAB_JOB)
        held = store.holdings()
        self.assertEqual(
            sorted((key, job.data) for key, job in held),
            sorted((key, job.data) for key, job in store.jobs.items()),
        )
        self.assertEqual(sorted(job.data for _key, job in held), [b"one", b"two"])


class StartTests(SynchronousTestCase):
    """
    Listening and the readiness gate.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_listensOnDescription(self) -> None:
        """
        A strports description (or bare port number) of an unprivileged port
        is listened on once the store is ready, once; the claim of that
        address is then held.
        """
        claim = ListeningClaim(socket.AF_INET, "127.0.0.1", 4731)
        service = GearmanServerService(
            "tcp:4731:interface=127.0.0.1", reactor=self.reactor, claim=claim
        )
        self.assertFalse(service.listenEarly)
        service.privilegedStartService()
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertFalse(claim.held)
        service.startService()
        self.assertEqual(
            self.reactor.tcpServers, [(4731, service.factory, 50, "127.0.0.1")]
        )
        self.assertIsNotNone(service.port)
        self.assertTrue(claim.held)
        plain = GearmanServerService("4732", reactor=self.reactor)
        plain.startService()
        self.assertEqual(self.reactor.tcpServers[1], (4732, plain.factory, 50, ""))

    def test_privilegedPortEarly(self) -> None:
        """
        A port below 1024 is listened on in L{privilegedStartService}, before
        twistd drops privileges.
        """
        service = GearmanServerService("473", reactor=self.reactor)
        self.assertTrue(service.listenEarly)
        service.privilegedStartService()
        self.assertEqual(self.reactor.tcpServers, [(473, service.factory, 50, "")])
        service.startService()
        self.assertEqual(len(self.reactor.tcpServers), 1)

    def test_listensEarly(self) -> None:
        """
        L{listensEarly}: TCP ports below 1024, Unix sockets and other kinds of
        endpoint are bound early; other TCP ports (and port 0) once ready.
        """
        for description, early in [
            ("tcp:4730", False),
            ("tcp:0", False),
            ("tcp6:4730:interface=\\:\\:1", False),
            ("tcp:80", True),
            ("tcp6:443", True),
            ("unix:/run/gearman.sock", True),
        ]:
            self.assertEqual(listensEarly(description), early, description)

    def test_notListeningUntilReady(self) -> None:
        """
        While the store starts, an unprivileged port is not listened on, so
        clients are refused and fail over; once it has replayed, it is.
        """
        store = ControlledStore()
        service = GearmanServerService("tcp:4733", reactor=self.reactor, store=store)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertNoResult(service.ready)
        store.startResult.callback(None)
        self.successResultOf(service.ready)
        self.assertEqual(self.reactor.tcpServers, [(4733, service.factory, 50, "")])

    def test_lateListenFails(self) -> None:
        """
        A port that cannot be listened on once the store is ready fails the
        start: C{ready} fails, the reason is logged and a running reactor
        stops.
        """
        self.reactor.running = True
        endpoint = RecordingEndpoint(
            CannotListenError("127.0.0.1", 4730, OSError("in use"))
        )
        service = GearmanServerService(
            endpoint, reactor=self.reactor, listenEarly=False
        )
        service.privilegedStartService()
        service.startService()
        self.failureResultOf(service.ready, CannotListenError)
        self.assertTrue(self.reactor.hasStopped)

    def test_listenFailureRaises(self) -> None:
        """
        An endpoint that cannot listen makes L{privilegedStartService}
        raise, so that twistd reports it before running.
        """
        endpoint = RecordingEndpoint(
            CannotListenError("127.0.0.1", 4730, OSError("in use"))
        )
        service = GearmanServerService(endpoint, reactor=self.reactor)
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertIsNone(service.port)

    def test_listenLater(self) -> None:
        """
        An endpoint that listens asynchronously: its port is recorded when
        it arrives, and stopped if the service stopped meanwhile.
        """
        listening: Deferred[IListeningPort] = Deferred()
        endpoint = RecordingEndpoint()
        endpoint.listen = lambda factory: listening  # type: ignore[method-assign]
        service = GearmanServerService(endpoint, reactor=self.reactor)
        service.privilegedStartService()
        self.assertIsNone(service.port)
        port = RecordingPort()
        listening.callback(port)
        self.assertIs(service.port, port)

        late: Deferred[IListeningPort] = Deferred()
        endpoint.listen = lambda factory: late  # type: ignore[method-assign]
        other = GearmanServerService(endpoint, reactor=self.reactor)
        other.privilegedStartService()
        self.successResultOf(other.stopService())
        port = RecordingPort()
        late.callback(port)
        self.assertIsNone(other.port)
        self.assertFalse(port.listening)

    def test_listenFailsLater(self) -> None:
        """
        An endpoint that fails asynchronously fails C{ready}.
        """
        listening: Deferred[IListeningPort] = Deferred()
        endpoint = RecordingEndpoint()
        endpoint.listen = lambda factory: listening  # type: ignore[method-assign]
        service = GearmanServerService(endpoint, reactor=self.reactor)
        service.privilegedStartService()
        ready = service.ready
        listening.errback(CannotListenError("::", 4730, OSError("no")))
        self.failureResultOf(ready, CannotListenError)

    def test_replayBeforeReading(self) -> None:
        """
        On a port bound early, a request that comes before the store has
        replayed is answered with C{ERROR SERVER_STARTING} and its
        connection closed (an admin line with C{ERR SERVER_STARTING}); once
        the store has replayed, stored jobs are queued under new handles (in
        store order, with their priority, time and reducer), connections are
        served (those made before too) and C{ready} fires.
        """
        store = ControlledStore()
        store.add(StoredJob(b"f", b"u1", b"low", priority=2))
        store.add(StoredJob(b"f", b"u2", b"high\0", priority=0, reducer=b"red"))
        store.add(StoredJob(b"f", b"", b"later", when=10**12))
        endpoint = RecordingEndpoint()
        service = GearmanServerService(
            endpoint, reactor=self.reactor, store=store, handlePrefix=b"H:svc"
        )
        service.privilegedStartService()
        self.assertEqual(endpoint.factories, [service.factory])
        early = Connection(service.factory)
        self.assertFalse(service.factory.ready)

        service.startService()
        ready = service.ready
        self.assertTrue(store.started)
        self.assertNoResult(ready)
        self.assertEqual(service.core.jobs, {})
        refused = Connection(service.factory)
        refused.send(ECHO_REQ, b"hello")
        self.assertEqual(
            refused.replies(),
            [
                (
                    PacketType.ERROR,
                    b"SERVER_STARTING\0the server is starting (its queue store is "
                    b"replaying); try again shortly",
                )
            ],
        )
        self.assertTrue(refused.transport.disconnecting)
        admin = Connection(service.factory)
        self.assertEqual(
            admin.admin(b"status"),
            b"ERR SERVER_STARTING the+server+is+starting+(its+queue+store+is+"
            b"replaying);+try+again+shortly\r\n",
        )
        self.assertTrue(admin.transport.disconnecting)

        store.startResult.callback(None)
        self.successResultOf(ready)
        self.successResultOf(service.ready)
        self.assertTrue(service.factory.ready)
        self.assertFalse(early.transport.disconnecting)
        self.assertEqual(list(service.core.jobs), [b"H:svc:1", b"H:svc:2", b"H:svc:3"])
        early.send(CAN_DO, b"f")
        early.send(GRAB_JOB_ALL)
        early.send(GRAB_JOB)
        early.send(GRAB_JOB)
        self.assertEqual(
            early.output(),
            response(JOB_ASSIGN_ALL, b"H:svc:2", b"f", b"u2", b"red", b"high\0")
            + response(JOB_ASSIGN, b"H:svc:1", b"f", b"low")
            + response(10),
        )
        # Completing a replayed job removes its record.
        early.send(WORK_COMPLETE, b"H:svc:2", b"")
        self.assertEqual(
            sorted(job.data for job in store.jobs.values()), [b"later", b"low"]
        )

    def test_storeStartFails(self) -> None:
        """
        A store that cannot start makes C{ready} fail (for every caller),
        leaves requests refused and stops a running reactor.
        """
        store = ControlledStore(fail(StoreError("no redis")))
        self.reactor.running = True
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        service = GearmanServerService(
            RecordingEndpoint(), reactor=self.reactor, store=store
        )
        service.privilegedStartService()
        conn = Connection(service.factory)
        service.startService()
        self.failureResultOf(service.ready, StoreError)
        self.failureResultOf(service.ready, StoreError)
        self.assertFalse(service.factory.ready)
        conn.send(ECHO_REQ, b"hello")
        self.assertEqual(conn.replies()[0][0], PacketType.ERROR)
        self.assertTrue(conn.transport.disconnecting)
        self.assertTrue(self.reactor.hasStopped)
        # A store's error is its own clear message: logged as such, with no
        # traceback, and kept for twistd's exit status.
        [event] = [e for e in events if e["log_level"] is LogLevel.critical]
        self.assertEqual(formatEvent(event), "The job server could not start: no redis")
        self.assertNotIn("log_failure", event)
        assert service.startFailure is not None
        self.assertTrue(service.startFailure.check(StoreError))

    def test_storeReplayFails(self) -> None:
        """
        A replay that fails makes C{ready} fail too.
        """
        store = ControlledStore(succeed(None))
        store.replay = lambda restore: fail(StoreError("corrupt"))  # type: ignore[method-assign]
        service = GearmanServerService(
            RecordingEndpoint(), reactor=self.reactor, store=store
        )
        service.startService()
        self.failureResultOf(service.ready, StoreError)
        self.assertFalse(service.factory.ready)
        self.assertIsNotNone(service.startFailure)

    def test_unexpectedStartFailure(self) -> None:
        """
        Any other start failure is logged with its traceback.
        """
        store = ControlledStore(fail(RuntimeError("bug")))
        service = GearmanServerService(
            RecordingEndpoint(), reactor=self.reactor, store=store
        )
        service.startService()
        self.failureResultOf(service.ready, RuntimeError)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class StopTests(SynchronousTestCase):
    """
    Stopping and draining, on a fake reactor.
    """

    def setUp(self) -> None:
        self.reactor = ThreadlessReactor()
        self.endpoint = RecordingEndpoint()
        self.store = ControlledStore(succeed(None))
        self.service = GearmanServerService(
            self.endpoint,
            reactor=self.reactor,
            store=self.store,
            handlePrefix=b"H:svc",
            closeTimeout=5,
        )
        self.service.privilegedStartService()
        self.service.startService()
        self.successResultOf(self.service.ready)
        [self.port] = self.endpoint.ports

    def test_stopService(self) -> None:
        """
        Stopping stops listening, cancels the core's timers, closes every
        connection (letting go of it as producer) and, once they are gone,
        stops the store.
        """
        first = Connection(self.service.factory)
        second = Connection(self.service.factory)
        first.send(SUBMIT_JOB_EPOCH, b"f", b"", b"%d" % (10**12), b"")
        self.assertNotEqual(self.reactor.getDelayedCalls(), [])
        d = self.service.stopService()
        self.assertFalse(self.port.listening)
        self.assertIsNone(self.service.port)
        self.assertFalse(self.service.running)
        for conn in (first, second):
            self.assertTrue(conn.transport.disconnecting)
            self.assertIsNone(conn.transport.producer)
        self.assertNoResult(d)
        self.assertFalse(self.store.stopped)
        first.lose()
        self.assertNoResult(d)
        second.lose()
        self.successResultOf(d)
        self.assertTrue(self.store.stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(second.transport.disconnected)

    def test_stopAbortsStuckConnections(self) -> None:
        """
        A connection that has not closed C{closeTimeout} seconds after the
        stop (its peer does not read) is aborted.
        """
        conn = Connection(self.service.factory)
        d = self.service.stopService()
        self.reactor.advance(4.9)
        self.assertFalse(conn.transport.disconnected)
        self.reactor.advance(0.1)
        self.assertTrue(conn.transport.disconnected)
        self.assertNoResult(d)
        conn.lose()
        self.successResultOf(d)
        self.assertTrue(self.store.stopped)

    def test_stopWithoutConnections(self) -> None:
        """
        With no connection, stopping completes at once.
        """
        self.successResultOf(self.service.stopService())
        self.assertTrue(self.store.stopped)
        self.assertFalse(self.port.listening)

    def _queueJob(self) -> tuple[Connection, bytes]:
        client = Connection(self.service.factory)
        client.send(SUBMIT_JOB, b"f", b"", b"x")
        self.assertEqual(client.output(), response(JOB_CREATED, b"H:svc:1"))
        return client, b"H:svc:1"

    def test_drainEmpties(self) -> None:
        """
        L{GearmanServerService.drain} stops listening at once, keeps serving
        connections, and fires C{True} once no job is left.
        """
        client, handle = self._queueJob()
        d = self.service.drain(timeout=10, interval=0.5)
        self.assertFalse(self.port.listening)
        self.assertNoResult(d)
        worker = Connection(self.service.factory)
        worker.send(CAN_DO, b"f")
        worker.send(GRAB_JOB)
        self.reactor.advance(0.5)
        self.assertNoResult(d)
        worker.send(WORK_COMPLETE, handle, b"done")
        self.assertEqual(client.output(), response(WORK_COMPLETE, handle, b"done"))
        self.reactor.advance(0.5)
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_drainRefusesSubmits(self) -> None:
        """
        While draining, a submit on a connection already open is answered
        with C{ERROR SERVER_DRAINING} (so that clients take it elsewhere)
        and creates no job; the job already held still runs.
        """
        client, handle = self._queueJob()
        self.service.drain(timeout=10, interval=0.5)
        client.send(SUBMIT_JOB, b"f", b"", b"late")
        client.send(SUBMIT_JOB_BG, b"f", b"", b"late")
        self.assertEqual(
            client.output(),
            2
            * response(
                ERROR,
                b"SERVER_DRAINING",
                b"Server is draining and takes no new jobs; submit to another server",
            ),
        )
        self.assertEqual(list(self.service.core.jobs), [handle])

    def test_drainTimeoutSaysWhatIsLost(self) -> None:
        """
        A drain that times out with the memory store logs how many
        acknowledged background jobs it abandons.
        """
        client = Connection(self.service.factory)
        client.send(SUBMIT_JOB_BG, b"f", b"", b"x")
        client.send(SUBMIT_JOB_BG, b"f", b"", b"y")
        with capturedLogs() as events:
            d = self.service.drain(timeout=1, interval=1)
            self.reactor.advance(1)
        self.assertIs(self.successResultOf(d), False)
        [text] = [formatEvent(e) for e in events if "timed out" in formatEvent(e)]
        self.assertIn("abandoning 2 acknowledged background jobs", text)

    def test_drainIdle(self) -> None:
        """
        Draining an idle server fires C{True} at once.
        """
        self.assertIs(self.successResultOf(self.service.drain()), True)

    def test_drainTimeout(self) -> None:
        """
        Jobs still there after the timeout: C{False}, and polling stops.
        """
        self._queueJob()
        d = self.service.drain(timeout=3, interval=1)
        self.reactor.advance(2)
        self.assertNoResult(d)
        self.reactor.advance(1)
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class DrainSignalTests(SynchronousTestCase):
    """
    The drain signal handler.
    """

    def test_signalDrainsThenStops(self) -> None:
        """
        With a drain signal, the signal drains the server and then stops
        the reactor; stopping the service restores the previous handler.
        """
        sig = signal.SIGUSR2
        previous = signal.getsignal(sig)
        self.addCleanup(signal.signal, sig, previous)
        calls: list[int] = []
        signal.signal(sig, lambda signum, frame: calls.append(signum))
        mine = signal.getsignal(sig)

        fake = ThreadlessReactor()
        fake.running = True
        endpoint = RecordingEndpoint()
        service = GearmanServerService(
            endpoint,
            reactor=fake,
            drainSignal=sig,
            drainTimeout=30,
            handlePrefix=b"H:s",
        )
        service.startService()
        self.assertIsNot(signal.getsignal(sig), mine)
        client = Connection(service.factory)
        client.send(SUBMIT_JOB, b"f", b"", b"")
        os.kill(os.getpid(), sig)
        self.assertFalse(endpoint.ports[0].listening)
        self.assertFalse(fake.hasStopped)
        client.lose()
        fake.advance(0.2)
        self.assertTrue(fake.hasStopped)
        self.assertEqual(calls, [])

        client2 = Connection(service.factory)
        d = service.stopService()
        client2.lose()
        self.successResultOf(d)
        self.assertIs(signal.getsignal(sig), mine)

    def test_hangupRotatesLog(self) -> None:
        """
        With C{hangupRotatesLog}, SIGHUP gets SIGUSR1's handler (twistd's
        log rotation) while the service runs, and its old handler back
        afterwards.
        """
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            self.addCleanup(signal.signal, sig, signal.getsignal(sig))
        rotations: list[int] = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: rotations.append(signum))
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        service = GearmanServerService(
            RecordingEndpoint(), reactor=ThreadlessReactor(), hangupRotatesLog=True
        )
        service.startService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(rotations, [signal.SIGHUP])
        self.successResultOf(service.stopService())
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)

    def test_noRestart(self) -> None:
        """
        A stopped service refuses to start again (its core still holds the
        first run's jobs); a new service on the same store replays them.
        """
        store = MemoryQueueStore()
        first = GearmanServerService(
            RecordingEndpoint(), reactor=ThreadlessReactor(), store=store
        )
        first.startService()
        first.core.submitJob(None, b"f", b"", b"kept", background=True)
        self.successResultOf(first.stopService())
        self.assertRaises(RuntimeError, first.startService)
        second = GearmanServerService(
            RecordingEndpoint(), reactor=ThreadlessReactor(), store=store
        )
        second.startService()
        self.successResultOf(second.ready)
        self.assertEqual([job.data for job in second.core.iterJobs()], [b"kept"])

    def test_hangupHarmlessWithoutRotation(self) -> None:
        """
        Without a SIGUSR1 handler to borrow, SIGHUP still only reloads,
        rather than kill the process.
        """
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            self.addCleanup(signal.signal, sig, signal.getsignal(sig))
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        service = GearmanServerService(
            RecordingEndpoint(), reactor=ThreadlessReactor(), hangupRotatesLog=True
        )
        reloads: list[str] = []
        service.reloaders.append(lambda: reloads.append("reloaded"))
        service.startService()
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        self.assertEqual(reloads, ["reloaded"])
        self.successResultOf(service.stopService())
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)

    def test_hangupRotatesAndReloads(self) -> None:
        """
        SIGHUP reopens the log as SIGUSR1 does, then reloads; a reloader
        that raises is logged and the others still run.
        """
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            self.addCleanup(signal.signal, sig, signal.getsignal(sig))
        calls: list[str] = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append("rotated"))
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        service = GearmanServerService(
            RecordingEndpoint(), reactor=ThreadlessReactor(), hangupRotatesLog=True
        )

        def broken() -> None:
            raise RuntimeError("boom")

        service.reloaders.extend([broken, lambda: calls.append("reloaded")])
        service.startService()
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        self.assertEqual(calls, ["rotated", "reloaded"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(service.stopService())
