"""How a benchmark judges a figure: ok when it meets its limit; short of it, "bounded" when a
bound measured in the same run explains the gap (the figure reaches BOUND_SHARE of it: the
machine, not the code, sets the ceiling), else SHORT, which fails the bench."""

from __future__ import annotations

BOUND_SHARE = 0.9


def verdict(value: float, op: str, limit: float, bound: float | None = None) -> tuple[str, bool]:
    """(status, passed) for ``value`` against ``op`` (">=" or "<=") ``limit``."""
    if (value >= limit) if op == ">=" else (value <= limit):
        return "ok", True
    if bound is not None and op == ">=" and value >= BOUND_SHARE * bound:
        return f"bounded ({bound:.2f} measured)", True
    return "SHORT", False
