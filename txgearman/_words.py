"""
Wording that every layer's messages share.  Imports nothing, so that each
layer may use it without leaning on another.
"""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """
    A count with its noun in the right number, for messages people read:
    C{"1 job"}, C{"0 jobs"}, C{"2 jobs"}.

    @param plural: the plural where it is not C{noun + "s"}.
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count} {plural if plural is not None else noun + 's'}"
