"""The security baseline: container limits, protected data, pinned images."""

from __future__ import annotations

from typing import Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .contract import (
    CONTAINER,
    HOST_LABEL,
    HOST_TAG,
    IMAGE_IGNORE_PATHS,
    INSTANCE,
    VOLUME,
)
from .messages import deciding, fmt
from .reading import container_host, plain, plain_number, pulled_image
from .settings import settings, strings

# --- container-limits-required --------------------------------------------------------------


def _check_container_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    cpus = plain_number(args.props, "cpus")
    memory = plain_number(args.props, "memory")
    host = container_host(args.props)
    problems = []
    if cpus is None or cpus <= 0:
        problems.append(f"cpus is {fmt(cpus) if cpus is not None else 'unset'} (must be > 0)")
    if memory is None or memory <= 0:
        problems.append(
            f"memory is {fmt(memory) + ' MB' if memory is not None else 'unset'} (must be > 0)"
        )
    if host is None:
        problems.append(f"the label {HOST_LABEL} is missing (must name the host's {HOST_TAG} tag)")
    if problems:
        report(
            f"Container '{args.name}': {'; '.join(problems)}. Without them the host budgets "
            "cannot count it. Fix: give the service a limit with "
            "`ai-swarm:services.<name>.cpus` / `ai-swarm:services.<name>.memoryMb` and place "
            f"it on a host with the {HOST_LABEL} label.",
            None,
        )


# --- protected-data -------------------------------------------------------------------------


def _check_protected_data(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == VOLUME and not args.opts.protect:
        report(
            f"Volume '{args.name}' is not protected, so a destroy or a replacement deletes the "
            "services' data. Fix: register it with "
            "protect=True (and retain_on_delete=True).",
            None,
        )
    elif args.resource_type == INSTANCE:
        # Every host: the Micro keeps the replica's data on its boot volume.
        ignored = sorted(args.opts.ignore_changes)
        if IMAGE_IGNORE_PATHS.isdisjoint(ignored):
            shape = plain(args.props, "shape")
            report(
                f"Instance '{args.name}' ({shape}) does not ignore changes to its image "
                f"(ignore_changes {ignored}): a newer image from get_images would re-image its "
                "boot disk (the A1's system, the Micro's replica data) on the "
                'next up. Fix: ignore_changes=["sourceDetails.sourceId"] (camelCase: the SDK '
                "does not translate nested paths).",
                None,
            )


# --- pinned-images --------------------------------------------------------------------------

PINNED_IMAGES_SCHEMA: Final = PolicyConfigSchema(
    {
        "movingTags": strings(
            ["latest", "main", "main-latest", "main-stable", "stable"],
            "Image tags that move to new images over time.",
        )
    }
)


def _image_reference_problem(reference: str, moving_tags: frozenset[str]) -> str | None:
    if "@" in reference:
        return None  # pinned by digest
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag, so Docker pulls the moving :latest"
    tag = last.rsplit(":", 1)[1]
    return f"uses the moving tag '{tag}'" if tag in moving_tags else None


def _check_pinned_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    reference = pulled_image(args.resource_type, args.props)
    if reference is None:
        return
    moving = frozenset(settings(args.get_config(), PINNED_IMAGES_SCHEMA)("movingTags"))
    problem = _image_reference_problem(reference, moving)
    if problem:
        report(
            f"Image '{reference}' of '{args.name}' {problem}: the next pull may bring another "
            "version. Fix: pin a version tag (or a digest) in the image table or with "
            "`ai-swarm:services.<name>.image`.",
            None,
        )


def container_limits_policy() -> Policy:
    return ResourceValidationPolicy(
        name="container-limits-required",
        description="Every container sets cpus, memory and its host label.",
        validate=deciding(_check_container_limits),
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def protected_data_policy() -> Policy:
    return ResourceValidationPolicy(
        name="protected-data",
        description="Data volumes are protected and instances are never re-imaged.",
        validate=deciding(_check_protected_data),
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def pinned_images_policy() -> Policy:
    return ResourceValidationPolicy(
        name="pinned-images",
        description="Images are pinned to a version tag or a digest.",
        validate=deciding(_check_pinned_images),
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=PINNED_IMAGES_SCHEMA,
    )
