"""image-platforms: every image and container runs the platform of the host it is on.

A host's platform follows from its instance's shape (`contract.SHAPES`: linux/arm64 on
A1.Flex, linux/amd64 on E2.1.Micro). A container is placed by its `ai-swarm.host` label, as the
budgets place it. A `RemoteImage` carries no label: it is placed on the hosts of the containers
that run it (their `image` input comes from it) and of the containers that share its Docker
provider (one provider per host, so the daemon that pulls it). Both joins use URNs, which are
known in preview; the images' ids and the providers' addresses are not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from .analyzed import resources
from .contract import CONTAINER, INSTANCE, REMOTE_IMAGE, SHAPES, ShapeFacts
from .measure import Resource
from .reading import UndecidableError, container_host, instance_host, plain, plain_text


@dataclass
class _Placement:
    """Hosts (name -> shape facts) and where each image and provider is used."""

    hosts: dict[str, ShapeFacts] = field(default_factory=dict)
    host_shapes: dict[str, str] = field(default_factory=dict)
    by_image: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_provider: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def image_hosts(self, image: Resource) -> set[str]:
        found = set(self.by_image.get(image.urn, ()))
        if image.provider:
            found |= self.by_provider.get(image.provider, set())
        return found


def _describe(platform: object) -> str:
    return str(platform) if platform else "unset (the daemon decides)"


def _host_of_instance(instance: Resource) -> tuple[str | None, str | None]:
    return instance_host(instance.props), plain_text(instance.props, "shape")


def _placement(
    stack: Iterable[Resource], report: ReportViolation
) -> tuple[_Placement, list[Resource]]:
    """Hosts and containers placed on them; the images, to be judged once all are placed."""
    placement = _Placement()
    containers: list[tuple[Resource, str]] = []
    images: list[Resource] = []
    for resource in stack:
        try:
            if resource.type == INSTANCE:
                name, shape = _host_of_instance(resource)
                if name is not None and shape in SHAPES and name not in placement.hosts:
                    placement.hosts[name] = SHAPES[shape]
                    placement.host_shapes[name] = shape
            elif resource.type == CONTAINER:
                host = container_host(resource.props)
                if host is not None:
                    containers.append((resource, host))
            elif resource.type == REMOTE_IMAGE:
                images.append(resource)
        except UndecidableError as error:
            report(f"{resource.type} '{resource.name}': {error}.", resource.urn)
    for container, host in containers:
        if host not in placement.hosts:
            continue  # the budgets report a label naming no host; a shape outside SHAPES is
            # refused by a1-allowance
        for urn in container.property_dependencies.get("image", ()):
            placement.by_image[urn].add(host)
        if container.provider:
            placement.by_provider[container.provider].add(host)
        _check_container(container, host, placement, report)
    return placement, images


def _check_container(
    container: Resource, host: str, placement: _Placement, report: ReportViolation
) -> None:
    try:
        platform = plain(container.props, "platform")
    except UndecidableError as error:
        report(f"Container '{container.name}': {error}.", container.urn)
        return
    if not platform:
        return  # a container runs its image's platform: the RemoteImage is judged
    facts = placement.hosts[host]
    if platform not in facts.platforms:
        report(
            f"Container '{container.name}' uses platform {platform}, but its host '{host}' is "
            f"a {placement.host_shapes[host]} and runs {facts.platform}. Fix: set "
            f"platform='{facts.platform}' (the platform of the host the service is placed on), "
            "and pick an image tag that has a build for it.",
            container.urn,
        )


def _check_image(image: Resource, placement: _Placement, report: ReportViolation) -> None:
    platform = plain(image.props, "platform")
    hosts = sorted(placement.image_hosts(image))
    wanted: Mapping[str, str] = {
        host: placement.hosts[host].platform
        for host in hosts
        if platform not in placement.hosts[host].platforms
    }
    if hosts:
        if not wanted:
            return
        on = ", ".join(
            f"'{host}' ({placement.host_shapes[host]}: {wanted[host]})" for host in wanted
        )
        report(
            f"Image '{image.name}' uses platform {_describe(platform)}, but it runs on {on}. "
            f"Fix: set platform='{next(iter(wanted.values()))}' on the host's RemoteImage, and "
            "if `ai-swarm:services.<name>.image` names an image without a build for it, pick "
            "one that has it.",
            image.urn,
        )
        return
    # No container places it: its platform must be one that a host of the stack runs (that a
    # shape of the allowance runs, when the stack has no host).
    shapes = list(placement.hosts.values()) or list(SHAPES.values())
    if any(platform in facts.platforms for facts in shapes):
        return
    report(
        f"Image '{image.name}' uses platform {_describe(platform)}; no container places it on a "
        f"host, and the stack's hosts run {', '.join(sorted({f.platform for f in shapes}))}. "
        "Fix: set the platform of the host that pulls it (linux/arm64 on A1.Flex, linux/amd64 "
        "on E2.1.Micro).",
        image.urn,
    )


def _check_platforms(args: StackValidationArgs, report: ReportViolation) -> None:
    placement, images = _placement(resources(args, INSTANCE, CONTAINER, REMOTE_IMAGE), report)
    for image in images:
        try:
            _check_image(image, placement, report)
        except UndecidableError as error:
            report(f"{image.type} '{image.name}': {error}.", image.urn)


def image_platforms_policy() -> Policy:
    return StackValidationPolicy(
        name="image-platforms",
        description=(
            "Images and containers use their host's platform: linux/arm64 on A1.Flex, "
            "linux/amd64 on E2.1.Micro."
        ),
        validate=_check_platforms,
        enforcement_level=EnforcementLevel.MANDATORY,
    )
