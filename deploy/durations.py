"""Durations on the command line: a whole number and a unit, `90s`, `15m`, `24h` (`0s` too)."""

from __future__ import annotations

import argparse
import re
from typing import Final

_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600}
_DURATION: Final = re.compile(r"(?P<amount>[0-9]+)(?P<unit>[smh])")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises `argparse.ArgumentTypeError`, which argparse reports with the
    flag's name (`argument --deadline: ...`)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: a whole number and a unit s, m or h (90s, 15m, 24h, 0s)"
        )
    return float(int(match["amount"]) * _UNIT_SECONDS[match["unit"]])


def format_duration(seconds: float) -> str:
    """`2h05m`, `14m30s`, `45s`: the largest two units, rounded to the second."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
