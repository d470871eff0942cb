"""The analyzer's view of a stack, as the measure takes it."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource, StackValidationArgs

from .measure import Resource


def resource(analyzed: PolicyResource) -> Resource:
    return Resource(
        type=analyzed.resource_type,
        name=analyzed.name,
        urn=analyzed.urn,
        props=analyzed.props,
        property_dependencies={
            key: [dependency.urn for dependency in dependencies]
            for key, dependencies in analyzed.property_dependencies.items()
        },
        provider=analyzed.provider.urn if analyzed.provider is not None else "",
    )


def resources(args: StackValidationArgs, *types: str) -> Iterator[Resource]:
    """The stack's resources of `types`, one at a time: a policy adapts only what it measures
    and holds no copy of the stack."""
    return (resource(r) for r in args.resources if r.resource_type in types)
