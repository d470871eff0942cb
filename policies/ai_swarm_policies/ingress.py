"""no-public-ingress: nothing is reachable from the internet except `publicPorts`.

"The internet" is any source wider than /8 (IPv4) or /32 (IPv6): `0.0.0.0/1` plus
`128.0.0.0/1` admit everyone as surely as `0.0.0.0/0` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .analyzed import resources
from .contract import (
    CONTAINER,
    DEFAULT_SECURITY_LIST,
    NSG_RULE,
    POSTGRES_REPOSITORY,
    REMOTE_IMAGE,
    SECURITY_LIST,
)
from .measure import Resource
from .messages import deciding, fmt
from .reading import UndecidableError, plain, plain_items, plain_number, pulled_image
from .settings import settings

PUBLIC_INGRESS_SCHEMA: Final = PolicyConfigSchema(
    {
        "publicPorts": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 65535},
            "default": [],
            "description": "Ports that may be reached from anywhere (0.0.0.0/0, ::/0).",
        },
        "minIpv4SourcePrefix": {
            "type": "integer",
            "minimum": 0,
            "maximum": 32,
            "default": 8,
            "description": "An IPv4 source wider than this prefix counts as the internet.",
        },
        "minIpv6SourcePrefix": {
            "type": "integer",
            "minimum": 0,
            "maximum": 128,
            "default": 32,
            "description": "An IPv6 source wider than this prefix counts as the internet.",
        },
    }
)


def _is_internet(source: Any, args: ResourceValidationArgs) -> bool:
    try:
        network = ipaddress.ip_network(str(source), strict=False)
    except ValueError:
        return False  # a service label such as "all-fra-services-in-oracle-services-network"
    setting = settings(args.get_config(), PUBLIC_INGRESS_SCHEMA)
    return network.prefixlen < int(setting(f"minIpv{network.version}SourcePrefix"))


_PROTOCOL_OPTIONS: Final = {"6": ("TCP", "tcpOptions"), "17": ("UDP", "udpOptions")}
_ALL_PORTS: Final = (1, 65535)


def _rule_ports(rule: Any, range_path: Sequence[str]) -> tuple[str, tuple[int, int] | None]:
    """What a rule admits: a protocol name and its destination ports (None: not a port range).

    OCI reads a TCP/UDP rule without options as all ports, and one bound as a single port.
    """
    protocol = str(plain(rule, "protocol"))
    if protocol not in _PROTOCOL_OPTIONS:
        return ("all protocols" if protocol == "all" else f"protocol {protocol}"), None
    name, options = _PROTOCOL_OPTIONS[protocol]
    low = plain_number(rule, options, *range_path, "min")
    high = plain_number(rule, options, *range_path, "max")
    if low is None and high is None:
        return name, _ALL_PORTS
    first = low if low is not None else high
    last = high if high is not None else low
    return name, (int(first or 0), int(last or 0))


def _ports_allowed(ports: tuple[int, int] | None, public: frozenset[int]) -> bool:
    if ports is None:
        return False
    low, high = ports
    # The length test first: a wide range can never be covered, so it is never walked.
    return high - low < len(public) and all(port in public for port in range(low, high + 1))


def _describe_ports(protocol: str, ports: tuple[int, int] | None) -> str:
    if ports is None:
        return protocol
    low, high = ports
    return f"{protocol} port {low}" if low == high else f"{protocol} ports {low}-{high}"


def _public_ports(args: ResourceValidationArgs) -> frozenset[int]:
    configured = settings(args.get_config(), PUBLIC_INGRESS_SCHEMA)("publicPorts")
    return frozenset(int(port) for port in configured)


def _public_ingress_fix(public: frozenset[int], remedy: str) -> str:
    allowed = ", ".join(str(port) for port in sorted(public)) or "none"
    return (
        f"(ports allowed from anywhere: {allowed}; publicPorts). Fix: {remedy}, or add the port "
        "to publicPorts in the no-public-ingress pack config."
    )


def _check_public_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _check_container_ports(args, report)
        return
    if args.resource_type in (SECURITY_LIST, DEFAULT_SECURITY_LIST):
        rules = list(enumerate(plain_items(args.props, "ingressSecurityRules")))
        range_path: tuple[str, ...] = ()
    elif args.resource_type == NSG_RULE and plain(args.props, "direction") == "INGRESS":
        rules, range_path = [(0, args.props)], ("destinationPortRange",)
    else:
        return
    public = _public_ports(args)
    kind = args.resource_type.rsplit(":", 1)[-1]
    for index, rule in rules:
        source = plain(rule, "source")
        if plain(rule, "sourceType") not in (None, "CIDR_BLOCK") or not _is_internet(source, args):
            continue
        protocol, ports = _rule_ports(rule, range_path)
        if _ports_allowed(ports, public):
            continue
        where = "the rule" if args.resource_type == NSG_RULE else f"ingress rule {index}"
        report(
            f"{kind} '{args.name}': {where} admits {_describe_ports(protocol, ports)} from "
            f"{source} "
            + _public_ingress_fix(public, "admit only the sources in `ai-swarm:adminCidrs`"),
            None,
        )


def _on_every_interface(ip: Any) -> bool:
    """Docker publishes on every interface when the address is unset or unspecified
    (0.0.0.0, ::, or any other spelling of them)."""
    if ip is None or ip == "":
        return True
    try:
        return ipaddress.ip_address(str(ip)).is_unspecified
    except ValueError:
        return False  # not an address at all: Docker binds nothing to every interface for it


def _check_container_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    public = _public_ports(args)
    for port in plain_items(args.props, "ports"):
        ip = plain(port, "ip")
        if not _on_every_interface(ip):
            continue
        external = plain_number(port, "external")
        if external is not None and int(external) in public:
            continue
        internal = plain_number(port, "internal")
        published = f"host port {int(external)}" if external is not None else "a random host port"
        report(
            f"Container '{args.name}' publishes port {fmt(internal or 0)} as {published} on "
            f"every interface (ip {ip or 'unset'}) "
            + _public_ingress_fix(public, 'bind it to ip="127.0.0.1" and reach it by SSH tunnel'),
            None,
        )


# --- postgres-bind-address ------------------------------------------------------------------


def _repository(reference: str) -> str:
    """An image reference's repository name, without registry path, tag or digest:
    `docker.io/library/postgres:15-alpine@sha256:…` -> `postgres`."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def _images_run(container: Resource, images: dict[str, Resource]) -> list[str] | None:
    """The image references a container runs: its own `image` when that is a name, else the
    names of the RemoteImages its `image` comes from (its id is unknown until the pull).
    None when neither tells."""
    own = pulled_image(CONTAINER, container.props)
    if own is not None:
        return [own]
    names = [
        pulled_image(REMOTE_IMAGE, images[urn].props)
        for urn in container.property_dependencies.get("image", ())
        if urn in images
    ]
    found = [name for name in names if name is not None]
    return found or None


def _check_postgres_bind(args: StackValidationArgs, report: ReportViolation) -> None:
    """A container that runs a postgres image publishes no port on every interface: the
    database is reached on one address (loopback, or the host's private address for the
    replica), never on all of them, whatever publicPorts allows."""
    images = {image.urn: image for image in resources(args, REMOTE_IMAGE)}
    for container in resources(args, CONTAINER):
        try:
            everywhere = [
                port
                for port in plain_items(container.props, "ports")
                if _on_every_interface(plain(port, "ip"))
            ]
            if not everywhere:
                continue
            run = _images_run(container, images)
        except UndecidableError as error:
            report(f"Container '{container.name}': {error}.", container.urn)
            continue
        if run is None:
            report(
                f"Container '{container.name}' publishes a port on every interface and its "
                "image is not known until apply, so whether it runs PostgreSQL cannot be told. "
                "Fix: give it the image of a RemoteImage of the stack (image=remote.image_id) "
                "or bind its ports to one address.",
                container.urn,
            )
            continue
        postgres = [ref for ref in run if _repository(ref) == POSTGRES_REPOSITORY]
        if not postgres:
            continue
        ports = ", ".join(
            f"{fmt(plain_number(port, 'internal') or 0)} (ip {plain(port, 'ip') or 'unset'})"
            for port in everywhere
        )
        report(
            f"Container '{container.name}' runs {postgres[0]} and publishes port {ports} on "
            "every interface (an unset ip, 0.0.0.0 or :: is every address): PostgreSQL must "
            'never be reachable on all of a host\'s addresses. Fix: bind it to ip="127.0.0.1", '
            "or to the host's private address for the replica.",
            container.urn,
        )


def postgres_bind_policy() -> Policy:
    return StackValidationPolicy(
        name="postgres-bind-address",
        description="PostgreSQL is never published on every interface (0.0.0.0, ::, unset).",
        validate=_check_postgres_bind,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def public_ingress_policy() -> Policy:
    return ResourceValidationPolicy(
        name="no-public-ingress",
        description=(
            "Nothing is reachable from the internet (a source wider than /8, or /32 for IPv6) "
            "except publicPorts."
        ),
        validate=deciding(_check_public_ingress),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PUBLIC_INGRESS_SCHEMA,
    )
