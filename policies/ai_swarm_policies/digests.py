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

from .contract import CONTAINER, REMOTE_IMAGE
from .messages import deciding
from .reading import UndecidableError, plain

POLICY_NAME: Final = "digest-pinned-images"
_DIGEST: Final = re.compile(r"@sha256:[0-9a-f]{64}$")


def _check_digest_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == REMOTE_IMAGE:
        reference = plain(args.props, "name")
    elif args.resource_type == CONTAINER:
        try:
            reference = plain(args.props, "image")
        except UndecidableError:
            return  # an image id from a RemoteImage, whose name is judged on its own
    else:
        return
    if not reference or str(reference).startswith("sha256:"):
        return  # none, or an image id: content-addressed already
    if _DIGEST.search(str(reference)):
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
