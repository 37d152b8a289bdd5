# -*- test-case-name: txgearman.test.test_arguments -*-
"""
The library's arguments that may be C{str} or C{bytes}: checked and made
bytes before anything is sent or registered, so that a wrong argument is a
C{TypeError} naming it, at once, and never a broken connection.
"""

from __future__ import annotations

__all__ = ["asBytes", "asOptionalBytes"]


def asBytes(value: object, name: str) -> bytes:
    """
    C{value} as bytes: bytes as they are, C{str} as UTF-8.

    @raise TypeError: for anything else, naming the argument.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes or str, not {type(value).__name__}")


def asOptionalBytes(value: object, name: str) -> bytes | None:
    """L{asBytes}, with C{None} kept as C{None}."""
    return None if value is None else asBytes(value, name)
