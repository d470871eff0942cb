"""What `pulumi up` is about to do to the resources that hold the data, and where they live.

The Automation API's `up` runs `pulumi up --yes --skip-preview`: the preview `python -m deploy up`
runs before it is the only look at the plan. The engine reports every step of a preview as a
`resourcePreEvent` (all but `remove-pending-replace` and default-provider steps; pulumi's
pkg/engine `shouldReportStep`), so the steps on the instance, the data volume and its attachment
are all there. Only `same`, `create`, `update`, `read` and `refresh` leave a live one in place:
any other operation (`replace`, `create-replacement`, `delete-replaced`, `delete`, `discard`, ...)
removes or swaps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from pulumi.automation import EngineEvent

from deploy.ports import OperatorError, PlannedStep, Preview

INSTANCE_TYPE: Final = "oci:Core/instance:Instance"
VOLUME_TYPE: Final = "oci:Core/volume:Volume"
ATTACHMENT_TYPE: Final = "oci:Core/volumeAttachment:VolumeAttachment"
GUARDED: Final = {
    INSTANCE_TYPE: "the instance",
    VOLUME_TYPE: "the data volume",
    ATTACHMENT_TYPE: "the data volume's attachment",
}
# Operations that keep a live resource where it is; anything else on a guarded type is refused.
KEEPS: Final = frozenset({"same", "create", "update", "read", "refresh"})
# OCI names a domain `<tenancy prefix>:<REGION>-AD-<n>` (e.g. `Uocm:PHX-AD-1`), listed in order.
_DOMAIN_INDEX: Final = re.compile(r"-AD-(?P<index>[0-9]+)$")


def preview_from_events(events: Iterable[EngineEvent], counts: Mapping[Any, int]) -> Preview:
    """The preview's steps from the engine's events, with the summary's count per operation
    (`PreviewResult.change_summary`: keyed by the JSON's op strings, typed as `OpType`)."""
    steps = []
    for event in events:
        pre = event.resource_pre_event
        if pre is None:
            continue
        meta = pre.metadata
        steps.append(
            PlannedStep(
                op=_op_name(meta.op), urn=meta.urn, type=meta.type, keys=tuple(meta.keys or ())
            )
        )
    return Preview(steps=tuple(steps), counts={_op_name(op): n for op, n in counts.items()})


def _op_name(op: object) -> str:
    # OpType is a str Enum, whose str() is "OpType.REPLACE": its value is the engine's name.
    return str(op.value) if isinstance(op, Enum) else str(op)


@dataclass(frozen=True)
class PlanReview:
    """The guarded resources the plan removes or swaps, one line each, and why the plan could
    not be read (then nothing is known to be safe)."""

    dangerous: tuple[str, ...]
    unreadable: str | None = None

    @property
    def safe(self) -> bool:
        return not self.dangerous and self.unreadable is None


def review(preview: Preview) -> PlanReview:
    if not preview.steps:
        # Every preview has at least the stack's own step: no step means the events were lost.
        return PlanReview((), "the preview reported no resource step")
    by_urn: dict[str, list[PlannedStep]] = {}
    for step in preview.steps:
        if step.type in GUARDED and step.op not in KEEPS:
            by_urn.setdefault(step.urn, []).append(step)
    kinds = list(GUARDED)
    ordered = sorted(by_urn.values(), key=lambda steps: kinds.index(steps[0].type))
    lines = tuple(_describe(steps) for steps in ordered)
    seen_ops = {step.op for step in preview.steps}
    unnamed = sorted(
        op for op, count in preview.counts.items() if count and op not in KEEPS | seen_ops
    )
    if unnamed:
        return PlanReview(
            lines, f"the preview counts {', '.join(unnamed)} steps that its events do not name"
        )
    return PlanReview(lines)


def _describe(steps: Sequence[PlannedStep]) -> str:
    first = steps[0]
    name = first.urn.rpartition("::")[2]
    ops = list(dict.fromkeys(step.op for step in steps))
    # A replacement is several steps (delete-replaced, replace, create-replacement): one verb.
    verb = "replace" if any("replace" in op for op in ops) else "/".join(ops)
    keys = list(dict.fromkeys(key for step in steps for key in step.keys))
    because = f" (because of {', '.join(keys)})" if keys else ""
    return f"{verb} {GUARDED[first.type]} {name}{because}"


def data_volume_domain(deployment: Mapping[str, Any]) -> str | None:
    """The availability domain of the data volume in the stack's exported state, or None when
    the state holds no volume. The volume's own state is read, not the config or a stack output:
    it says where the volume is even when the config has changed since, or when the last `up`
    failed after creating it (stack outputs are only written by an `up` that completes)."""
    domains = set()
    for resource in deployment.get("resources") or []:
        if resource.get("type") != VOLUME_TYPE or resource.get("delete"):
            continue
        recorded = (resource.get("outputs") or {}).get("availabilityDomain") or (
            resource.get("inputs") or {}
        ).get("availabilityDomain")
        if isinstance(recorded, str) and recorded:
            domains.add(recorded)
    if len(domains) > 1:
        raise OperatorError(
            "the stack holds data volumes in several availability domains: "
            + ", ".join(sorted(domains))
        )
    return domains.pop() if domains else None


def domain_index(name: str, names: Sequence[str] | None) -> int | None:
    """The 1-based index of the domain `name`: its place in `names` (OCI's list, in order) or,
    without the list, the `-AD-<n>` ending OCI gives every domain name; None when neither says."""
    if names is not None:
        return list(names).index(name) + 1 if name in names else None
    match = _DOMAIN_INDEX.search(name)
    return int(match["index"]) if match else None
