"""The VCN the hosts live in: one public subnet, reachable only from the admin CIDRs, and the
A1's Postgres port from the replica's peers (the Micro, `externalCidrs`) when it has any."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

ANYWHERE_V4 = "0.0.0.0/0"
TCP = "6"
ICMP = "1"
ALL_PROTOCOLS = "all"
# ICMP "destination unreachable / fragmentation needed": path-MTU discovery breaks without it.
_PATH_MTU_ICMP = oci.core.SecurityListIngressSecurityRuleIcmpOptionsArgs(type=3, code=4)


@dataclass(frozen=True)
class NetworkArgs:
    compartment_id: str
    vcn_cidr: ipaddress.IPv4Network
    subnet_cidr: ipaddress.IPv4Network
    admin_cidrs: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
    admin_ports: Sequence[int]
    # Who may reach Postgres' published port (`ReplicaSettings.peer_networks`): none, no rule.
    postgres_peers: Sequence[ipaddress.IPv4Network] = ()
    postgres_port: int | None = None
    dns_label: str = "aiswarm"


class Network(pulumi.ComponentResource):
    """VCN, internet gateway, route table, security list and one public subnet."""

    subnet_id: pulumi.Output[str]
    vcn_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:oci:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        vcn = oci.core.Vcn(
            f"{name}-vcn",
            compartment_id=args.compartment_id,
            cidr_blocks=[str(args.vcn_cidr)],
            display_name=f"{name}-vcn",
            dns_label=args.dns_label,
            opts=child,
        )
        # OCI gives every VCN a default list admitting SSH from anywhere; nothing uses it, but
        # an empty one cannot be attached to a subnet by mistake later.
        oci.core.DefaultSecurityList(
            f"{name}-default-security-list",
            manage_default_resource_id=vcn.default_security_list_id,
            compartment_id=args.compartment_id,
            ingress_security_rules=[],
            egress_security_rules=[],
            opts=child,
        )
        gateway = oci.core.InternetGateway(
            f"{name}-igw",
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            enabled=True,
            display_name=f"{name}-igw",
            opts=child,
        )
        route_table = oci.core.RouteTable(
            f"{name}-routes",
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            display_name=f"{name}-routes",
            route_rules=[
                oci.core.RouteTableRouteRuleArgs(
                    network_entity_id=gateway.id,
                    destination=ANYWHERE_V4,
                    destination_type="CIDR_BLOCK",
                )
            ],
            opts=child,
        )
        security_list = oci.core.SecurityList(
            f"{name}-admin-ingress",
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            display_name=f"{name}-admin-ingress",
            ingress_security_rules=ingress_rules(args),
            egress_security_rules=[
                oci.core.SecurityListEgressSecurityRuleArgs(
                    destination=ANYWHERE_V4, protocol=ALL_PROTOCOLS, destination_type="CIDR_BLOCK"
                )
            ],
            opts=child,
        )
        subnet = oci.core.Subnet(
            f"{name}-public",
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            cidr_block=str(args.subnet_cidr),
            display_name=f"{name}-public",
            dns_label="public",
            route_table_id=route_table.id,
            security_list_ids=[security_list.id],
            prohibit_public_ip_on_vnic=False,
            opts=child,
        )

        self.vcn_id = vcn.id
        self.subnet_id = subnet.id
        self.register_outputs({"vcnId": self.vcn_id, "subnetId": self.subnet_id})


def ingress_rules(args: NetworkArgs) -> list[oci.core.SecurityListIngressSecurityRuleArgs]:
    """One TCP rule per admin CIDR and port, one per Postgres peer, plus path-MTU ICMP from
    inside the VCN."""
    tcp_rules = [
        oci.core.SecurityListIngressSecurityRuleArgs(
            protocol=TCP,
            source=str(cidr),
            source_type="CIDR_BLOCK",
            description=f"admin access to port {port}",
            tcp_options=oci.core.SecurityListIngressSecurityRuleTcpOptionsArgs(min=port, max=port),
        )
        for cidr in args.admin_cidrs
        for port in args.admin_ports
    ]
    peer_rules = [
        oci.core.SecurityListIngressSecurityRuleArgs(
            protocol=TCP,
            source=str(cidr),
            source_type="CIDR_BLOCK",
            description=f"replication from {cidr} to Postgres on {args.postgres_port}",
            tcp_options=oci.core.SecurityListIngressSecurityRuleTcpOptionsArgs(
                min=args.postgres_port, max=args.postgres_port
            ),
        )
        for cidr in args.postgres_peers
        if args.postgres_port is not None
    ]
    path_mtu = oci.core.SecurityListIngressSecurityRuleArgs(
        protocol=ICMP,
        source=str(args.vcn_cidr),
        source_type="CIDR_BLOCK",
        description="path-MTU discovery inside the VCN",
        icmp_options=_PATH_MTU_ICMP,
    )
    return [*tcp_rules, *peer_rules, path_mtu]
