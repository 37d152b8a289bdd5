# -*- test-case-name: txgearman.test.test_web_metrics -*-
"""
C{/metrics}: the job server in Prometheus' text format, written by
prometheus_client from figures read off the core at scrape time.

The names of the gearman-exporter (C{gearman_up}, C{gearman_version_info},
and per function C{gearman_jobs}, C{gearman_jobs_running},
C{gearman_jobs_waiting}, C{gearman_workers}) come first and mean what
they mean there, so that dashboards built on it work unchanged.  A scrape
costs one pass over the functions, like the admin C{status}; no job pays
anything for it.

prometheus_client writes about 200,000 samples a second, so a server with
10,000 functions (seven samples each) takes a few hundred milliseconds to
scrape: L{MetricsResource} writes the per-function families a slice of
functions at a time, one slice per reactor turn, from figures all read at
the start of the scrape, so that the jobs flowing meanwhile never wait on
it.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    generate_latest,
    gzip_accepted,
)
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txgearman import __version__
from txgearman._histogram import Histogram
from txgearman.server.core import TIME_EVERY_MAX
from txgearman.server.function import FunctionStatus, PriorityStatus
from txgearman.store.interfaces import IStoreStatistics
from txgearman.web.health import ServerHealth

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService

__all__ = ["ServerCollector", "MetricsResource", "serverRegistry", "SLICE"]

#: Functions written per reactor turn.
SLICE = 500

# The end of the job histograms' HELP: how the core samples them.
_SAMPLED = (
    "; above about 100 jobs a second, estimated from one job in N "
    f"(N up to {TIME_EVERY_MAX}), each counted N times."
)


def _label(name: bytes) -> str:
    """
    A function name as a label value: Prometheus labels are text, and a
    function name is any bytes (undecodable ones are shown escaped).
    """
    return name.decode("utf-8", "backslashreplace")


def _gauge(
    name: str, documentation: str, labels: Sequence[str] = ()
) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


_Maker = Callable[
    [Sequence[FunctionStatus], Sequence[PriorityStatus], Sequence[float]], Metric
]


def _histogram(name: str, documentation: str, histogram: Histogram) -> Metric:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), histogram.sum)
    return family


def _perFunction(
    name: str, documentation: str, value: Callable[[FunctionStatus], int]
) -> _Maker:
    """
    A family with one sample per function, read off its admin C{status}
    row by C{value}.
    """

    def make(
        rows: Sequence[FunctionStatus], _: Sequence[PriorityStatus], __: Sequence[float]
    ) -> Metric:
        family = _gauge(name, documentation, ["function"])
        for row in rows:
            family.add_metric([_label(row.name)], value(row))
        return family

    return make


_jobs = _perFunction(
    "gearman_jobs",
    "Jobs held per function: queued, running and scheduled (admin status' second column).",
    lambda row: row.total,
)
_running = _perFunction(
    "gearman_jobs_running",
    "Jobs a worker is running, per function.",
    lambda row: row.running,
)
_waiting = _perFunction(
    "gearman_jobs_waiting",
    "Jobs held that no worker runs yet (jobs - running), per function.",
    lambda row: row.total - row.running,
)
_workers = _perFunction(
    "gearman_workers", "Workers registered per function.", lambda row: row.workers
)


def _queued(
    _: Sequence[FunctionStatus], rows: Sequence[PriorityStatus], __: Sequence[float]
) -> Metric:
    family = _gauge(
        "gearman_jobs_queued",
        "Jobs waiting per function and priority (admin prioritystatus).",
        ["function", "priority"],
    )
    for row in rows:
        label = _label(row.name)
        family.add_metric([label, "high"], row.high)
        family.add_metric([label, "normal"], row.normal)
        family.add_metric([label, "low"], row.low)
    return family


def _oldest(
    rows: Sequence[FunctionStatus], _: Sequence[PriorityStatus], ages: Sequence[float]
) -> Metric:
    family = _gauge(
        "gearman_oldest_job_age_seconds",
        "How long the longest-waiting runnable job of each function has been in its "
        "queue; 0 when none waits.",
        ["function"],
    )
    for row, age in zip(rows, ages, strict=True):
        family.add_metric([_label(row.name)], age)
    return family


#: The families with a sample per function, each made from a slice of the
#: admin status and prioritystatus rows and the ages of the oldest jobs
#: (the same functions, in order).
_PER_FUNCTION: list[_Maker] = [
    _jobs,
    _running,
    _waiting,
    _workers,
    _queued,
    _oldest,
]


class _Given(Collector):
    """
    Families already made, for prometheus_client to write.
    """

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class ServerCollector(Collector):
    """
    Reads one L{GearmanServerService} on every scrape.
    """

    def __init__(self, service: GearmanServerService) -> None:
        self.service = service
        self.health = ServerHealth(service)

    def serverFamilies(self) -> list[Metric]:
        """
        The families of the server as a whole.
        """
        service = self.service
        up = _gauge(
            "gearman_up",
            "1 while the server serves: the stored jobs replayed and the port bound.",
        )
        up.add_metric(
            [], 1 if service.factory.ready and service.port is not None else 0
        )
        ready = _gauge(
            "gearman_ready",
            "1 when every readiness check passes (/readyz answers 200).",
        )
        ready.add_metric([], 1 if all(check.ok for check in self.health.ready()) else 0)
        storeUp = _gauge(
            "gearman_store_up",
            "1 when the queue store can store (Redis connected, its lock held; "
            "SQLite's last commit went through); always 1 in memory.",
        )
        storeUp.add_metric(
            [], 1 if all(check.ok for check in self.health.store()) else 0
        )
        version = _gauge(
            "gearman_version_info", "The server's version, as a label.", ["version"]
        )
        version.add_metric([__version__], 1)
        return [
            up,
            ready,
            storeUp,
            version,
            *self.countFamilies(),
            self.connections(),
            *self.storeFamilies(),
            *self.replayFamilies(),
        ]

    def storeFamilies(self) -> list[Metric]:
        """
        The store's checks one by one and, for a store with a backend
        (Redis, an SQLite file), where it is and how its calls go.
        """
        checks = _gauge(
            "gearman_store_check",
            "1 when the store's check passes (redis: Redis answers; redis-lock: this "
            "server holds the queue's lock; sqlite: the file takes commits).",
            ["check"],
        )
        for check in self.health.store():
            checks.add_metric([check.name], 1 if check.ok else 0)
        families: list[Metric] = [checks]
        store = self.service.store
        if IStoreStatistics.providedBy(store):
            state = _gauge(
                "gearman_store_state",
                "Where the store's connection is, as a label: 1 for the state it is in.",
                ["state"],
            )
            state.add_metric([store.stateName], 1)
            failures = CounterMetricFamily(
                "gearman_store_call_failures",
                "Calls to the store's backend that failed (timed out, connection lost, "
                "refused).",
            )
            failures.add_metric([], store.failedCalls)
            families += [
                state,
                _histogram(
                    "gearman_store_call_seconds",
                    "Seconds each call to the store's backend took (a call carries a "
                    "batch of job writes and removals).",
                    store.calls,
                ),
                failures,
            ]
        return families

    def replayFamilies(self) -> list[Metric]:
        """
        The replay of stored jobs at start-up: its progress, then how long
        it took.
        """
        service = self.service
        replayed = _gauge(
            "gearman_replayed_jobs",
            "Stored jobs replayed at start-up, so far (final once "
            "gearman_replay_seconds appears).",
        )
        replayed.add_metric([], service.replayedJobs)
        families: list[Metric] = [replayed]
        if service.replaySeconds is not None:
            took = _gauge(
                "gearman_replay_seconds", "How long the replay at start-up took."
            )
            took.add_metric([], service.replaySeconds)
            families.append(took)
        return families

    def timeFamilies(self) -> list[Metric]:
        """
        How long jobs waited in their queues and ran: at high rates
        estimated from the jobs the core sampled (see
        L{txgearman.server.core.JobServer._timeGrab}).
        """
        core = self.service.core
        return [
            _histogram(
                "gearman_job_wait_seconds",
                "Seconds jobs waited in their queue before a worker took them (a job "
                "queued again after its worker failed it waits afresh)" + _SAMPLED,
                core.waitTimes,
            ),
            _histogram(
                "gearman_job_run_seconds",
                "Seconds jobs ran, from a worker taking them to their end or to the "
                "worker failing them" + _SAMPLED,
                core.runTimes,
            ),
        ]

    def countFamilies(self) -> list[Metric]:
        """
        The counters the core keeps as jobs come and go (L{JobCounts}).
        """
        counts = self.service.core.counts
        submitted = CounterMetricFamily(
            "gearman_jobs_submitted",
            "Jobs made by submits, by kind (a submit that joined a live job by its "
            "unique id makes none).",
            labels=["kind"],
        )
        submitted.add_metric(["foreground"], counts.foreground)
        submitted.add_metric(["background"], counts.background)
        submitted.add_metric(["epoch"], counts.epoch)
        families: list[Metric] = [submitted]
        for name, value, documentation in [
            ("completed", counts.completed, "Jobs that ended with WORK_COMPLETE."),
            ("failed", counts.failed, "Jobs that ended with WORK_FAIL."),
            ("exceptions", counts.exceptions, "Jobs that ended with WORK_EXCEPTION."),
            (
                "retried",
                counts.retried,
                "Jobs queued again after their worker failed them (disconnect, CANT_DO, "
                "CAN_DO_TIMEOUT).",
            ),
            ("dropped", counts.dropped, "Jobs dropped past --job-retries."),
        ]:
            family = CounterMetricFamily(f"gearman_jobs_{name}", documentation)
            family.add_metric([], value)
            families.append(family)
        errors = CounterMetricFamily(
            "gearman_errors",
            "ERROR answers sent, by code: QUEUE_ERROR counts submits refused for a full "
            "queue or a failed store.",
            labels=["code"],
        )
        for code, value in sorted(counts.errors.items()):
            errors.add_metric([code.decode("ascii", "replace")], value)
        families.append(errors)
        families += self.timeFamilies()
        return families

    def connections(self) -> Metric:
        """
        Open Gearman connections: those that registered a function
        (workers), and the others (clients, admin tools).
        """
        workers = self.service.core.workerCount()
        total = len(self.service.factory.connections)
        family = _gauge(
            "gearman_connections",
            "Open connections: workers (registered a function) and others (clients, admin).",
            ["role"],
        )
        family.add_metric(["worker"], workers)
        family.add_metric(["other"], max(total - workers, 0))
        return family

    def rows(self) -> tuple[list[FunctionStatus], list[PriorityStatus], list[float]]:
        """
        The figures of every function, now: admin C{status} and
        C{prioritystatus}, and how long its oldest runnable job has waited.
        """
        core = self.service.core
        now = self.service.reactor.seconds()
        ages = [
            0.0 if queued is None else max(now - queued, 0.0)
            for queued in core.oldestQueued()
        ]
        return core.functionStatus(), core.priorityStatus(), ages

    def collect(self) -> Iterator[Metric]:
        yield from self.serverFamilies()
        status, priority, ages = self.rows()
        for make in _PER_FUNCTION:
            yield make(status, priority, ages)


def serverRegistry(service: GearmanServerService) -> CollectorRegistry:
    """
    A registry of its own for one server (never prometheus_client's global
    one: an application may embed more than one server), for an
    application that exposes it its own way.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(service))
    return registry


def _withoutHeader(text: bytes) -> bytes:
    """
    A family's samples without its C{# HELP} and C{# TYPE} lines, for the
    slices after its first.
    """
    return text.split(b"\n", 2)[2]


class MetricsResource(Resource):
    """
    The server's metrics in Prometheus' text format (version 0.0.4, which
    every Prometheus reads), compressed when the scraper takes gzip.
    Rendered in the reactor thread, a slice of functions per turn
    (prometheus_client's own Twisted resource uses the global reactor's
    thread pool, which a library may not assume, and the core is not
    thread-safe).
    """

    isLeaf = True
    log = Logger()

    def __init__(self, service: GearmanServerService, clock: IReactorTime) -> None:
        super().__init__()
        self.collector = ServerCollector(service)
        self.clock = clock

    async def exposition(self) -> bytes:
        """
        The whole exposition, written over as many reactor turns as it
        takes.
        """
        status, priority, ages = self.collector.rows()
        parts = [generate_latest(_Given(self.collector.serverFamilies()))]
        for make in _PER_FUNCTION:
            for start in range(0, max(len(status), 1), SLICE):
                text = generate_latest(
                    _Given(
                        [
                            make(
                                status[start : start + SLICE],
                                priority[start : start + SLICE],
                                ages[start : start + SLICE],
                            )
                        ]
                    )
                )
                parts.append(_withoutHeader(text) if start else text)
                if start + SLICE < len(status):
                    await deferLater(self.clock, 0, lambda: None)
        return b"".join(parts)

    def render_GET(self, request: Request) -> Any:
        finished = False

        def gone(_: object) -> None:
            nonlocal finished
            finished = True

        request.notifyFinish().addBoth(gone)

        def write(output: bytes) -> None:
            if finished:
                return
            encoding = request.getHeader(b"accept-encoding")
            if encoding and gzip_accepted(encoding.decode("latin-1")):
                output = gzip.compress(output, compresslevel=1)
                request.setHeader(b"content-encoding", b"gzip")
            request.setHeader(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode("ascii"))
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"content-length", b"%d" % (len(output),))
            request.write(output)
            request.finish()

        def failed(failure: Any) -> None:
            self.log.failure("Rendering /metrics failed", failure)
            if not finished:
                request.setResponseCode(500)
                request.finish()

        Deferred.fromCoroutine(self.exposition()).addCallbacks(write, failed)
        return NOT_DONE_YET
