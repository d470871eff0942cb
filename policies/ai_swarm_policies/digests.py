"""digest-pinned-images: every pulled image is named by digest (`repository@sha256:…`).

A tag, even a version tag, can be pushed again with other content; a digest cannot. The
program names images by digest while the repository's `images.lock` pins them (written by
`python -m deploy images --lock` after checking each one for its host's platform), so an image
named by tag here was never checked, or its tag changed after the last lock. Advisory: a stack
without a lock is valid, it just pulls whatever the tags name on the day.
"""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .messages import deciding
from .reading import pulled_image

POLICY_NAME: Final = "digest-pinned-images"
_DIGEST: Final = re.compile(r"@sha256:[0-9a-f]{64}$")


def _check_digest_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    reference = pulled_image(args.resource_type, args.props)
    if reference is None or _DIGEST.search(reference):
        return
    report(
        f"Image '{reference}' of '{args.name}' is not pinned by digest: a tag pushed again "
        "changes what runs, unchecked. Fix: run `python -m deploy images --lock` and commit "
        "images.lock (the program then pulls repository@sha256:…).",
        None,
    )


def digest_pinned_policy() -> Policy:
    return ResourceValidationPolicy(
        name=POLICY_NAME,
        description="Images are pinned by digest (images.lock), not by tag alone.",
        validate=deciding(_check_digest_pinned),
        enforcement_level=EnforcementLevel.ADVISORY,
    )
