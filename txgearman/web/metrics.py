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
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.web.resource import Resource
from twisted.web.server import Request

from txgearman import __version__
from txgearman.web.health import ServerHealth

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService

__all__ = ["ServerCollector", "MetricsResource", "serverRegistry"]


def _label(name: bytes) -> str:
    """
    A function name as a label value: Prometheus labels are text, and a
    function name is any bytes (undecodable ones are shown escaped).
    """
    return name.decode("utf-8", "backslashreplace")


class ServerCollector(Collector):
    """
    Reads one L{GearmanServerService} on every scrape.
    """

    def __init__(self, service: GearmanServerService) -> None:
        self.service = service
        self.health = ServerHealth(service)

    def collect(self) -> Iterator[Metric]:
        service = self.service
        core = service.core
        up = GaugeMetricFamily(
            "gearman_up",
            "1 while the server serves: the stored jobs replayed and the port bound.",
        )
        up.add_metric(
            [], 1 if service.factory.ready and service.port is not None else 0
        )
        yield up
        checks = self.health.ready()
        ready = GaugeMetricFamily(
            "gearman_ready",
            "1 when every readiness check passes (/readyz answers 200).",
        )
        ready.add_metric([], 1 if all(check.ok for check in checks) else 0)
        yield ready
        storeUp = GaugeMetricFamily(
            "gearman_store_up",
            "1 when the queue store can store (Redis connected, its lock held); "
            "always 1 in memory.",
        )
        storeChecks = self.health.store()
        storeUp.add_metric([], 1 if all(check.ok for check in storeChecks) else 0)
        yield storeUp
        version = GaugeMetricFamily(
            "gearman_version_info",
            "The server's version, as a label.",
            labels=["version"],
        )
        version.add_metric([__version__], 1)
        yield version

        jobs = GaugeMetricFamily(
            "gearman_jobs",
            "Jobs held per function: queued, running and scheduled (admin status' second column).",
            labels=["function"],
        )
        running = GaugeMetricFamily(
            "gearman_jobs_running",
            "Jobs a worker is running, per function.",
            labels=["function"],
        )
        waiting = GaugeMetricFamily(
            "gearman_jobs_waiting",
            "Jobs held that no worker runs yet (jobs - running), per function.",
            labels=["function"],
        )
        workers = GaugeMetricFamily(
            "gearman_workers", "Workers registered per function.", labels=["function"]
        )
        queued = GaugeMetricFamily(
            "gearman_jobs_queued",
            "Jobs waiting per function and priority (admin prioritystatus).",
            labels=["function", "priority"],
        )
        for status in core.functionStatus():
            name = [_label(status.name)]
            jobs.add_metric(name, status.total)
            running.add_metric(name, status.running)
            waiting.add_metric(name, status.total - status.running)
            workers.add_metric(name, status.workers)
        for row in core.priorityStatus():
            label = _label(row.name)
            queued.add_metric([label, "high"], row.high)
            queued.add_metric([label, "normal"], row.normal)
            queued.add_metric([label, "low"], row.low)
        yield jobs
        yield running
        yield waiting
        yield workers
        yield queued


def serverRegistry(service: GearmanServerService) -> CollectorRegistry:
    """
    A registry of its own for one server (never prometheus_client's global
    one: an application may embed more than one server).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(service))
    return registry


class MetricsResource(Resource):
    """
    The registry in the text exposition format, rendered in the reactor
    thread (prometheus_client's own Twisted resource uses the global
    reactor's thread pool, which a library may not assume).
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        # The format the scraper asks for (Prometheus' text format, or
        # OpenMetrics), compressed if it takes gzip, as prometheus_client's
        # own exporters do.
        header = request.getHeader(b"accept")
        encoder, contentType = choose_encoder(
            header.decode("latin-1") if header else ""
        )
        output = encoder(self.registry)
        encoding = request.getHeader(b"accept-encoding")
        if encoding and gzip_accepted(encoding.decode("latin-1")):
            output = gzip.compress(output, compresslevel=1)
            request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"content-type", contentType.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return output
