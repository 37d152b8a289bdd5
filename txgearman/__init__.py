"""
txgearman: a Gearman job server on Twisted, with a durable queue in Redis.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
