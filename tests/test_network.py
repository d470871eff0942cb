"""The VCN admits the admin CIDRs on the admitted ports, and nothing from the whole internet."""

from __future__ import annotations

import ipaddress

from ai_swarm_policies.contract import SECURITY_LIST
from dryrun.engine import ProgramRun, run_program

TCP = "6"


def _tcp_rules(run: ProgramRun) -> list[dict[str, object]]:
    rules = run.one(SECURITY_LIST).inputs["ingressSecurityRules"]
    return [rule for rule in rules if rule["protocol"] == TCP]


def test_network_component_owns_the_vcn_resources(always_free_run: ProgramRun) -> None:
    network = always_free_run.one("ai-swarm:oci:Network")
    children = {r.type for r in always_free_run.registrations if r.parent == network.urn}
    assert children == {
        "oci:Core/vcn:Vcn",
        "oci:Core/defaultSecurityList:DefaultSecurityList",
        "oci:Core/internetGateway:InternetGateway",
        "oci:Core/routeTable:RouteTable",
        SECURITY_LIST,
        "oci:Core/subnet:Subnet",
    }


def test_ssh_is_admitted_from_admin_cidrs_only(always_free_run: ProgramRun) -> None:
    rules = _tcp_rules(always_free_run)
    assert [(r["source"], r["tcpOptions"]) for r in rules] == [
        ("198.51.100.7/32", {"min": 22, "max": 22})
    ]


def test_every_admin_cidr_gets_every_port() -> None:
    run = run_program(overrides={"adminCidrs": '["203.0.113.0/28", "192.0.2.0/24"]'})
    assert {r["source"] for r in _tcp_rules(run)} == {"203.0.113.0/28", "192.0.2.0/24"}


def test_no_ingress_rule_admits_the_whole_internet(always_free_run: ProgramRun) -> None:
    lists = [
        r
        for r in always_free_run.registrations
        if r.type in (SECURITY_LIST, "oci:Core/defaultSecurityList:DefaultSecurityList")
    ]
    sources = [rule["source"] for r in lists for rule in r.inputs.get("ingressSecurityRules", [])]
    assert sources
    assert all(ipaddress.ip_network(source).prefixlen > 0 for source in sources)
    default_list = always_free_run.one("oci:Core/defaultSecurityList:DefaultSecurityList")
    assert default_list.inputs.get("ingressSecurityRules", []) == []


def test_path_mtu_icmp_is_admitted_from_inside_the_vcn(always_free_run: ProgramRun) -> None:
    rules = always_free_run.one(SECURITY_LIST).inputs["ingressSecurityRules"]
    icmp = [rule for rule in rules if rule["protocol"] == "1"]
    assert icmp == [
        {
            "protocol": "1",
            "source": "10.0.0.0/16",
            "sourceType": "CIDR_BLOCK",
            "description": "path-MTU discovery inside the VCN",
            "icmpOptions": {"type": 3, "code": 4},
        }
    ]


def test_egress_is_open_and_routed_through_the_internet_gateway(
    always_free_run: ProgramRun,
) -> None:
    egress = always_free_run.one(SECURITY_LIST).inputs["egressSecurityRules"]
    assert egress == [
        {"destination": "0.0.0.0/0", "protocol": "all", "destinationType": "CIDR_BLOCK"}
    ]
    route = always_free_run.one("oci:Core/routeTable:RouteTable").inputs["routeRules"]
    assert route == [
        {
            "networkEntityId": "swarm-igw-id",
            "destination": "0.0.0.0/0",
            "destinationType": "CIDR_BLOCK",
        }
    ]


def test_subnet_uses_the_admin_list_and_the_route_table(always_free_run: ProgramRun) -> None:
    subnet = always_free_run.one("oci:Core/subnet:Subnet").inputs
    assert subnet["cidrBlock"] == "10.0.1.0/24"
    assert subnet["securityListIds"] == ["swarm-admin-ingress-id"]
    assert subnet["routeTableId"] == "swarm-routes-id"
    assert always_free_run.one("oci:Core/vcn:Vcn").inputs["cidrBlocks"] == ["10.0.0.0/16"]
