"""
Reading a C{/metrics} answer back, for the tests of the HTTP face (unit
and over TCP): prometheus_client's own parser, so that what the tests read
is what Prometheus reads.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "scrapeSamples"]

#: Sample name -> sorted label pairs -> value.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrapeSamples(text: str) -> Samples:
    """
    Every sample of an exposition, by name and labels.
    """
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value
            )
    return found
