"""What a failed `pulumi up` means for the next attempt, read from the CLI's output.

The OCI provider reports a service error as `<status>-<code>, <message>` (for example
`500-InternalError, Out of host capacity.`), and older providers as `Service error:<code>.
<message>. http status code: <status>`; Pulumi prints it under the failing resource. A mandatory
policy violation is listed as `[mandatory]  <policy>` under `Policies:`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final


class FailureKind(enum.Enum):
    CAPACITY = "out of host capacity"
    THROTTLED = "too many requests"
    LIMIT = "service limit exceeded"
    AUTHORISATION = "not authenticated or not authorised"
    POLICY = "mandatory policy violated"
    REFUSED = "plan refused"  # by `python -m deploy up` itself, after the preview
    OTHER = "failed"

    @property
    def retries(self) -> bool:
        """Capacity and throttling pass with time; every other failure needs the operator."""
        return self in (FailureKind.CAPACITY, FailureKind.THROTTLED)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str  # the line of output that decided the kind, shortened
    hint: str | None = None


# Checked in this order: a stop reason anywhere in the output wins over a retryable one, and
# capacity (try another domain) wins over throttling (wait, same domain).
_PATTERNS: Final = (
    (FailureKind.POLICY, re.compile(r"\[mandatory\]")),
    (
        FailureKind.AUTHORISATION,
        re.compile(r"\b(?:NotAuthenticated|NotAuthorizedOrNotFound|NotAuthorized)\b"),
    ),
    (FailureKind.LIMIT, re.compile(r"\b(?:LimitExceeded|QuotaExceeded)\b")),
    (FailureKind.CAPACITY, re.compile(r"out of host capacity", re.IGNORECASE)),
    (FailureKind.THROTTLED, re.compile(r"\bTooManyRequests\b|\b429-")),
)
_PROTECTED_REPLACEMENT: Final = re.compile(r"marked for protection", re.IGNORECASE)
_ERROR_LINE: Final = re.compile(r"\berror\b", re.IGNORECASE)
_ERROR_WRAPPER: Final = re.compile(r"errors? occurred:\s*$")
_SUMMARY_ERROR: Final = re.compile(r"error: (?:update|preview) failed|\*\*[a-z ]*failed\*\*")
_DETAIL_LIMIT: Final = 160


def classify(output: str) -> Failure:
    """The kind of failure the CLI's output (stdout and stderr together) reports."""
    lines = output.splitlines()
    for kind, pattern in _PATTERNS:
        for line in lines:
            if pattern.search(line):
                return Failure(kind, _shorten(line))
    for line in lines:
        if _PROTECTED_REPLACEMENT.search(line):
            return Failure(
                FailureKind.OTHER,
                _shorten(line),
                hint=(
                    "a protected resource (the data volume lives in one availability domain) "
                    "would have to be replaced; see 'python -m deploy up' in docs/operations.md"
                ),
            )
    # The resource's own error, under "Diagnostics:", says more than the progress lines, the
    # "1 error occurred:" wrapper or the stack's closing "error: update failed".
    if "Diagnostics:" in lines:
        lines = lines[lines.index("Diagnostics:") :]
    return Failure(FailureKind.OTHER, _shorten(_resource_error(lines) or output))


def _resource_error(lines: list[str]) -> str | None:
    fallback = None
    for index, line in enumerate(lines):
        if not _ERROR_LINE.search(line):
            continue
        if _ERROR_WRAPPER.search(line) and index + 1 < len(lines):
            return lines[index + 1]
        if _SUMMARY_ERROR.search(line):
            fallback = fallback or line
            continue
        return line
    return fallback


def _shorten(line: str) -> str:
    text = " ".join(line.split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"
