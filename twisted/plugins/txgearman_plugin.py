"""
Registers C{twistd gearman}.  Nothing is imported until it is used.
"""

from twisted.application.service import ServiceMaker

txgearman = ServiceMaker(
    "txgearman",
    "txgearman.server.tap",
    "A Gearman job server.",
    "gearman",
)
