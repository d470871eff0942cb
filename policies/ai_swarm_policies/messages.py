"""Formatting: every message names the resource, the numbers and the fix."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from pulumi_policy import ReportViolation, ResourceValidationArgs

from .measure import Undecidable
from .reading import UndecidableError


def fmt(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def largest(items: Sequence[tuple[str, float]], unit: str, limit: int = 5) -> str:
    top = heapq.nlargest(limit, items, key=lambda item: item[1])
    listed = ", ".join(f"{name} {fmt(value)}{unit}" for name, value in top)
    more = len(items) - len(top)
    return f"{listed} and {more} more" if more > 0 else listed


def report_undecidable(report: ReportViolation, found: Iterable[Undecidable]) -> None:
    """Each value a stack policy needed and could not read is a violation of that policy."""
    for undecidable in found:
        report(undecidable.message, undecidable.resource.urn)


def report_count(
    report: ReportViolation,
    what: str,
    names: Sequence[str],
    *,
    setting: str,
    allowed: int,
    policy: str,
) -> None:
    if len(names) <= allowed:
        return
    listed = ", ".join(f"'{name}'" for name in names[:10])
    report(
        f"The stack has {len(names)} {what} ({listed}{' …' if len(names) > 10 else ''}), "
        f"more than the {allowed} allowed ({setting}). Fix: remove {len(names) - allowed} of "
        f"them, or raise {setting} in the {policy} pack config.",
        None,
    )


ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]


def deciding(check: ResourceCheck) -> ResourceCheck:
    """A resource validation for which an undecidable value is a violation, not a crash."""

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        try:
            check(args, report)
        except UndecidableError as error:
            report(f"{args.resource_type} '{args.name}': {error}.", None)

    return validate
