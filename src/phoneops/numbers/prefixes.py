"""How much of a digit string a pattern reads: the prefix beyond which only "any digit" tokens remain.

`significant_prefix(pattern)` is the smallest K such that, for two strings of the same length that are digits
from position K on and agree on their first K characters, the pattern (a full match) accepts both or neither.
It walks the pattern's syntax tree (Python's own parser): every token that is not "any digit" (a literal, a
narrower class, an anchor-free dot...) sits at an offset of at most `hi` from the start on every path through
the pattern, and reads up to `hi + 1`; K is the largest such end. Repeats of a sub-pattern that reads
something multiply its reach by their count; an unbounded repeat of one, or a construct this walk does not
know (back-references, look-arounds, conditionals), gives None: read the whole string.

Line types use it to run the type patterns once per distinct prefix ("LLL:" plus the significant digits)
instead of once per number: every number that shares that prefix (and so its length) has the same type.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

# Python's own regex parser (the module `re` compiles with; typeshed has no stubs for it)
sre: Any = importlib.import_module("re._parser")
c: Any = importlib.import_module("re._constants")

__all__ = ["significant_prefix"]

_DIGITS = [(c.RANGE, (ord("0"), ord("9")))]
_ZERO_WIDTH = {c.AT}
_REPEATS = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}


class _Unknown(Exception):
    pass


def _walk(tokens: Any) -> tuple[float, float, float]:
    """(shortest width, longest width, end of the farthest restrictive token; -1 when none) of a token list,
    offsets from its start."""
    lo = hi = 0.0
    reach = -1.0
    for op, av in tokens:
        if op in _ZERO_WIDTH:
            continue
        if op is c.IN and list(av) == _DIGITS:
            lo, hi = lo + 1, hi + 1
        elif op in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
            reach = max(reach, hi + 1)
            lo, hi = lo + 1, hi + 1
        elif op is c.SUBPATTERN:
            sub_lo, sub_hi, sub_reach = _walk(av[-1])
            if sub_reach >= 0:
                reach = max(reach, hi + sub_reach)
            lo, hi = lo + sub_lo, hi + sub_hi
        elif op is c.BRANCH:
            walked = [_walk(branch) for branch in av[1]]
            reaches = [r for _, _, r in walked if r >= 0]
            if reaches:
                reach = max(reach, hi + max(reaches))
            lo, hi = lo + min(w[0] for w in walked), hi + max(w[1] for w in walked)
        elif op in _REPEATS:
            least, most, sub = av
            most = math.inf if most == c.MAXREPEAT else most
            sub_lo, sub_hi, sub_reach = _walk(sub)
            if sub_reach >= 0 and most > 0:
                if math.isinf(most):
                    raise _Unknown
                reach = max(reach, hi + (most - 1) * sub_hi + sub_reach)  # the last copy, started as late as can be
            lo, hi = lo + least * sub_lo, hi + most * sub_hi
        else:
            raise _Unknown
    return lo, hi, reach


def significant_prefix(pattern: str) -> int | None:
    """K (see the module docstring), or None when the pattern's reach cannot be bounded."""
    try:
        _, _, reach = _walk(sre.parse(pattern))
    except _Unknown:
        return None
    if math.isinf(reach):
        return None
    return max(0, int(reach))
