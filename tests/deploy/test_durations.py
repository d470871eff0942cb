from __future__ import annotations

import argparse

import pytest

from deploy.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("90s", 90), ("15m", 900), ("24h", 86400), (" 5m ", 300)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "-5s", "1.5h", "1h30m", "m", "5 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45.4, "45s"), (870, "14m30s"), (7500, "2h05m")]
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
