"""The capacity search's decisions: which load to run next, from the verdicts so far (pure).

`next_load(results, start, cap, integer, resolution)` takes the loads tried so far and whether
each was met, and returns the next load to run or None when the search is done:

1. **Bracket.** Start at `start`; while the highest tried load is met and below `cap`, double it
   (the last step is clipped to `cap`). The first unmet load closes the bracket.
2. **Bisect** between the highest met load below the lowest unmet one and that unmet load: the
   midpoint (rounded down for integer loads such as users), until the two are adjacent integers
   or, for a rate, closer than `resolution` requests per second.

The search stops at once when `start` itself is unmet (nothing below was asked for: lower
`--min`), and when `cap` is met (the capacity is at least `cap`). The sweep's answer and the
search's agree when the capacity is monotone in load; the search needs about log2 of the range
plus log2 of the bracket's width runs instead of one per swept load.
"""

from __future__ import annotations

import math


def bracket(results: dict[float, bool]) -> tuple[float | None, float | None]:
    """(highest met load below the lowest unmet, lowest unmet load); None where there is none."""
    unmet = [x for x, met in results.items() if not met]
    hi = min(unmet) if unmet else None
    met = [x for x, ok in results.items() if ok and (hi is None or x < hi)]
    return (max(met) if met else None), hi


def next_load(results: dict[float, bool], *, start: float, cap: float, integer: bool, resolution: float) -> float | None:
    """The next load to try, or None when the search has decided (see the module docstring)."""
    if start not in results:
        return start
    lo, hi = bracket(results)
    if lo is None:
        return None  # the smallest load asked for is unmet
    if hi is None:
        if lo >= cap:
            return None
        nxt = min(cap, lo * 2)
        return float(math.floor(nxt)) if integer else nxt
    if integer:
        if hi - lo <= 1:
            return None
        return float((int(lo) + int(hi)) // 2)
    if hi - lo <= resolution:
        return None
    return (lo + hi) / 2
