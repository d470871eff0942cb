"""Each policy of the pack on hand-built resources, through pulumi-policy's analyzer servicer.

The servicer is the one `PolicyPack` serves to the CLI, configured the way the CLI configures it,
so these tests also cover enforcement levels, config defaults and the message format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2

from ai_swarm_policies.contract import DEFAULT_SECURITY_LIST, NSG_RULE, VCN, VOLUME
from dryrun.policy import new_analyzer
from dryrun.synthetic import (
    container,
    instance,
    remote_image,
    resource,
    security_list,
    tcp_rule,
    volume,
)
from tests.policies.policy_requests import (
    UNKNOWN,
    Diagnostics,
    analyze,
    analyze_stack,
    analyzer,
    of_policy,
)

MANDATORY = analyzer_pb2.MANDATORY
ADVISORY = analyzer_pb2.ADVISORY
ADMIN = "198.51.100.7/32"


def only(diagnostics: Diagnostics, policy: str) -> Any:
    found = of_policy(diagnostics, policy)
    assert len(found) == 1, [d.message for d in diagnostics]
    return found[0]


# --- The pack's policies, levels and config schema ----------------------------------------

# Every threshold of the pack, with its default.
EXPECTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "a1-allowance": {
        "maxA1Ocpus": 2,
        "maxA1MemoryGb": 12,
        "maxA1Instances": 2,
        "maxMicroInstances": 2,
        "maxAlwaysFreeInstances": 4,
        "allowedShapes": ["VM.Standard.A1.Flex", "VM.Standard.E2.1.Micro"],
    },
    "block-storage-allowance": {"maxBlockStorageGb": 200, "maxVpusPerGb": 10},
    "vcn-allowance": {"maxVcns": 2},
    "backup-allowance": {"maxVolumeBackups": 5},
    "host-memory-budget": {"hostReservedMemoryMb": 1536, "microReservedMemoryMb": 512},
    "host-cpu-budget": {"maxCpuOvercommit": 1.5},
    "no-public-ingress": {"publicPorts": [], "minIpv4SourcePrefix": 8, "minIpv6SourcePrefix": 32},
    "container-hardening": {
        "allowedCapabilities": [],
        "rootRefusedCapabilities": [
            "DAC_READ_SEARCH",
            "DAC_OVERRIDE",
            "SYS_ADMIN",
            "SYS_PTRACE",
            "SYS_MODULE",
        ],
        "entrypointDropsRoot": [],
        "writableHostPaths": ["/mnt/data"],
        "hostAccess": {"node-exporter": ["network", "pid", "socket-directory"]},
    },
    "object-storage-allowance": {
        "maxObjectStorageGb": 20,
        "expectedDumpGb": 1,
        "maxObjectDays": 30,
    },
}
EXPECTED_LEVELS = {
    "a1-allowance": MANDATORY,
    "block-storage-allowance": MANDATORY,
    "vcn-allowance": MANDATORY,
    "backup-allowance": MANDATORY,
    "always-free-resource-types": MANDATORY,
    "host-memory-budget": MANDATORY,
    "host-cpu-budget": MANDATORY,
    "container-limits-required": MANDATORY,
    "image-platforms": MANDATORY,
    "no-public-ingress": MANDATORY,
    "postgres-bind-address": MANDATORY,
    "container-hardening": MANDATORY,
    "protected-data": MANDATORY,
    "pinned-images": ADVISORY,
    "digest-pinned-images": ADVISORY,
    "object-storage-allowance": MANDATORY,
}


def test_pack_declares_each_policy_with_its_level() -> None:
    info = new_analyzer().GetAnalyzerInfo(None, None)
    assert info.name == "ai-swarm"
    assert {p.name: p.enforcementLevel for p in info.policies} == EXPECTED_LEVELS


def test_the_packs_readme_lists_each_policy_with_its_level() -> None:
    """policies/README.md's table is where a reader looks a policy up: every policy the
    analyzer declares, at its level, and no other."""
    readme = (Path(__file__).resolve().parents[2] / "policies" / "README.md").read_text()
    levels = {"mandatory": MANDATORY, "advisory": ADVISORY}
    listed = {
        row[0].strip(" `"): levels[row[1].strip()]
        for row in (line.strip("|").split("|") for line in readme.splitlines())
        if len(row) > 2 and row[1].strip() in levels
    }
    assert listed == EXPECTED_LEVELS


def test_every_threshold_is_a_config_property_with_its_default() -> None:
    info = new_analyzer().GetAnalyzerInfo(None, None)
    schemas = {p.name: p.configSchema.properties for p in info.policies}
    for policy, defaults in EXPECTED_DEFAULTS.items():
        for key, default in defaults.items():
            assert schemas[policy][key]["default"] == default, (policy, key)


# --- a1-allowance ---------------------------------------------------------------------------


def test_one_host_at_the_free_allowance_passes() -> None:
    assert analyze_stack(analyzer(), [instance("app", 2, 12)]) == []


def test_4x24_is_rejected_by_default_with_the_2026_change_explained() -> None:
    found = only(analyze_stack(analyzer(), [instance("app", 4, 24)]), "a1-allowance")
    assert found.enforcementLevel == MANDATORY
    for part in (
        "'app' 4 OCPU / 24 GB",
        "allowance of 2 OCPU / 12 GB",
        "`ai-swarm:ocpus`",
        "`ai-swarm:profile`",
        "2026-06-15",
        "1,500 OCPU hours and 9,000 GB hours",
        "--policy-pack-config policies/profiles/a1-4x24.json",
    ):
        assert part in found.message


def test_message_starts_with_the_policy_description_as_the_cli_prints_it() -> None:
    found = only(analyze_stack(analyzer(), [instance("app", 4, 24)]), "a1-allowance")
    description, _, violation = found.message.partition("\n")
    assert description == found.description
    assert violation.startswith("A1 instances use 4 OCPU / 24 GB")


def test_the_4x24_profile_config_accepts_4x24() -> None:
    config = {"a1-allowance": {"maxA1Ocpus": 4, "maxA1MemoryGb": 24, "maxA1Instances": 4}}
    assert analyze_stack(analyzer(config), [instance("app", 4, 24)]) == []


def test_a_raised_allowance_is_still_enforced_without_the_free_tier_note() -> None:
    config = {"a1-allowance": {"maxA1Ocpus": 4, "maxA1MemoryGb": 24}}
    stack = [instance("app", 4, 24), instance("extra", 1, 6)]
    found = only(analyze_stack(analyzer(config), stack), "a1-allowance")
    assert "5 OCPU / 30 GB in total" in found.message
    assert "allowance of 4 OCPU / 24 GB" in found.message
    assert "2026-06-15" not in found.message


def test_instances_are_summed() -> None:
    stack = [instance("one", 1, 6), instance("two", 1, 7)]
    found = only(analyze_stack(analyzer(), stack), "a1-allowance")
    assert "2 OCPU / 13 GB in total" in found.message


def test_more_a1_instances_than_allowed_fail_even_when_small() -> None:
    stack = [instance(f"tiny-{n}", 0.5, 3) for n in range(3)]
    found = only(analyze_stack(analyzer(), stack), "a1-allowance")
    assert "3 A1 instances" in found.message
    assert "the 2 allowed (maxA1Instances)" in found.message


def test_a_shape_outside_allowed_shapes_fails_on_that_instance() -> None:
    paid = instance("paid", 1, 16, shape="VM.Standard.E4.Flex")
    found = only(analyze_stack(analyzer(), [paid]), "a1-allowance")
    assert found.urn == paid.urn
    assert "'VM.Standard.E4.Flex'" in found.message and "allowedShapes" in found.message


def test_at_most_two_micro_instances() -> None:
    micros = [instance(f"micro-{n}", None, None, shape="VM.Standard.E2.1.Micro") for n in range(3)]
    assert analyze_stack(analyzer(), micros[:2]) == []
    found = only(analyze_stack(analyzer(), micros), "a1-allowance")
    assert "3 VM.Standard.E2.1.Micro instances" in found.message


def test_an_a1_instance_without_a_size_fails() -> None:
    found = only(analyze_stack(analyzer(), [instance("app", None, None)]), "a1-allowance")
    assert "shapeConfig.ocpus" in found.message


# --- block-storage-allowance and vcn-allowance ---------------------------------------------


def test_boot_plus_data_volume_at_200_gb_passes() -> None:
    assert analyze_stack(analyzer(), [instance("app"), volume("data", "150")]) == []


def test_storage_over_200_gb_fails_with_the_sizes() -> None:
    stack = [instance("app", boot_gb="100"), volume("data", "150")]
    found = only(analyze_stack(analyzer(), stack), "block-storage-allowance")
    assert "250 GB" in found.message and "allowance of 200 GB" in found.message
    assert "by 50 GB" in found.message and "`ai-swarm:dataVolumeGb`" in found.message


def test_an_unset_boot_volume_counts_as_50_gb() -> None:
    stack = [instance("app", boot_gb=None), volume("data", "151")]
    found = only(analyze_stack(analyzer(), stack), "block-storage-allowance")
    assert "201 GB" in found.message


def test_a_volume_without_a_size_fails_rather_than_being_guessed() -> None:
    sizeless = volume("data", None)
    found = only(analyze_stack(analyzer(), [instance("app"), sizeless]), "block-storage-allowance")
    assert found.urn == sizeless.urn and "sets no size (sizeInGbs)" in found.message


def test_the_deprecated_size_in_mbs_counts() -> None:
    legacy = resource(VOLUME, "legacy", {"sizeInMbs": str(160 * 1024)}, protect=True)
    found = only(analyze_stack(analyzer(), [instance("app"), legacy]), "block-storage-allowance")
    assert "210 GB" in found.message


def test_storage_allowance_is_configurable() -> None:
    config = {"block-storage-allowance": {"maxBlockStorageGb": 300}}
    stack = [instance("app", boot_gb="100"), volume("data", "150")]
    assert analyze_stack(analyzer(config), stack) == []


def test_at_most_two_vcns() -> None:
    vcns = [resource(VCN, f"vcn-{n}", {"cidrBlocks": ["10.0.0.0/16"]}) for n in range(3)]
    assert analyze_stack(analyzer(), vcns[:2]) == []
    found = only(analyze_stack(analyzer(), vcns), "vcn-allowance")
    assert "3 VCNs" in found.message and "maxVcns" in found.message


# --- host-memory-budget and host-cpu-budget -----------------------------------------------


def test_containers_that_fit_the_host_pass() -> None:
    stack = [
        instance("app"),
        container("webui", memory=4096, cpus="1"),
        container("litellm", memory=4096, cpus="1"),
        container("postgres", memory=2000, cpus="1"),
    ]
    assert analyze_stack(analyzer(), stack) == []


def test_memory_over_the_host_fails_naming_host_numbers_and_fix() -> None:
    host = instance("app")
    stack = [host, container("webui", memory=8192), container("litellm", memory=3072)]
    found = only(analyze_stack(analyzer(), stack), "host-memory-budget")
    assert found.urn == host.urn
    for part in (
        "Host 'app'",
        "sum to 11,264 MB",
        "10,752 MB allowed",
        "12,288 MB instance memory - 1,536 MB reserved",
        "by 512 MB",
        "webui 8,192 MB",
        "`ai-swarm:services.<name>.memoryMb`",
    ):
        assert part in found.message


def test_memory_reserve_is_configurable() -> None:
    stack = [instance("app"), container("webui", memory=8192), container("litellm", memory=3072)]
    config = {"host-memory-budget": {"hostReservedMemoryMb": 1024}}
    assert analyze_stack(analyzer(config), stack) == []


def test_each_host_is_budgeted_with_its_own_containers() -> None:
    stack = [
        instance("a", 1, 6),
        instance("b", 1, 6),
        container("a-db", host="a", memory=4000),
        container("b-db", host="b", memory=4000),
    ]
    assert analyze_stack(analyzer(), stack) == []


def test_a_container_on_a_host_that_is_not_in_the_stack_fails() -> None:
    lost = container("lost", host="elsewhere")
    found = only(analyze_stack(analyzer(), [instance("app"), lost]), "host-memory-budget")
    assert found.urn == lost.urn
    assert "ai-swarm.host=elsewhere" in found.message and "ai-swarm-host=elsewhere" in found.message


def test_cpus_over_ocpus_times_overcommit_fail() -> None:
    stack = [instance("app"), container("a", cpus="1.5"), container("b", cpus="1.5")]
    assert of_policy(analyze_stack(analyzer(), stack), "host-cpu-budget") == []
    found = only(
        analyze_stack(analyzer(), [*stack, container("c", cpus="0.25")]), "host-cpu-budget"
    )
    assert "sum to 3.25" in found.message and "3 allowed (2 OCPU x 1.5" in found.message
    assert "by 0.25" in found.message and "maxCpuOvercommit" in found.message


def test_cpu_overcommit_is_configurable() -> None:
    stack = [instance("app"), container("a", cpus="2"), container("b", cpus="2")]
    assert of_policy(analyze_stack(analyzer(), stack), "host-cpu-budget") != []
    config = {"host-cpu-budget": {"maxCpuOvercommit": 2}}
    assert analyze_stack(analyzer(config), stack) == []


# --- Resource policies ----------------------------------------------------------------------


def test_a_container_with_limits_and_host_passes() -> None:
    assert analyze(analyzer(), container("db")) == []


def test_a_container_without_limits_or_host_fails_once_listing_each_gap() -> None:
    found = only(
        analyze(analyzer(), container("db", None, None, None)), "container-limits-required"
    )
    assert found.enforcementLevel == MANDATORY
    assert "cpus is unset" in found.message and "memory is unset" in found.message
    assert "ai-swarm.host is missing" in found.message
    assert "`ai-swarm:services.<name>.memoryMb`" in found.message


def test_zero_cpus_fail() -> None:
    found = only(analyze(analyzer(), container("db", cpus="0")), "container-limits-required")
    assert "cpus is 0 (must be > 0)" in found.message


def test_ingress_from_admin_cidrs_passes() -> None:
    assert analyze(analyzer(), security_list("admin", tcp_rule(ADMIN, 22))) == []


@pytest.mark.parametrize("source", ["0.0.0.0/0", "::/0"])
def test_ssh_from_anywhere_fails(source: str) -> None:
    found = only(
        analyze(analyzer(), security_list("open", tcp_rule(source, 22))), "no-public-ingress"
    )
    assert f"admits TCP port 22 from {source}" in found.message
    assert "`ai-swarm:adminCidrs`" in found.message and "publicPorts" in found.message


def test_public_ports_admit_exactly_their_ports() -> None:
    config = {"no-public-ingress": {"publicPorts": [80, 443]}}
    assert analyze(analyzer(config), security_list("web", tcp_rule("0.0.0.0/0", 443))) == []
    wide = security_list("web", tcp_rule("0.0.0.0/0", 80, 443))
    found = only(analyze(analyzer(config), wide), "no-public-ingress")
    assert "TCP ports 80-443" in found.message and "allowed from anywhere: 80, 443" in found.message


def test_a_rule_without_port_options_admits_every_port() -> None:
    rule = {"protocol": "6", "source": "0.0.0.0/0"}
    config = {"no-public-ingress": {"publicPorts": [22]}}
    found = only(analyze(analyzer(config), security_list("open", rule)), "no-public-ingress")
    assert "TCP ports 1-65535" in found.message


@pytest.mark.parametrize(("protocol", "named"), [("all", "all protocols"), ("1", "protocol 1")])
def test_portless_protocols_from_anywhere_fail(protocol: str, named: str) -> None:
    rule = {"protocol": protocol, "source": "0.0.0.0/0"}
    found = only(analyze(analyzer(), security_list("open", rule)), "no-public-ingress")
    assert f"admits {named} from 0.0.0.0/0" in found.message


def test_ocis_default_security_list_rule_fails() -> None:
    default = resource(
        DEFAULT_SECURITY_LIST, "default", {"ingressSecurityRules": [tcp_rule("0.0.0.0/0", 22)]}
    )
    assert of_policy(analyze(analyzer(), default), "no-public-ingress") != []
    emptied = resource(DEFAULT_SECURITY_LIST, "default", {"ingressSecurityRules": []})
    assert analyze(analyzer(), emptied) == []


def _nsg_rule(direction: str, source: str) -> Any:
    return resource(
        NSG_RULE,
        f"{direction.lower()}-https",
        {
            "direction": direction,
            "protocol": "6",
            "source": source,
            "destination": source,
            "tcpOptions": {"destinationPortRange": {"min": 443, "max": 443}},
        },
    )


def test_nsg_ingress_from_anywhere_fails_and_egress_is_not_ingress() -> None:
    found = only(analyze(analyzer(), _nsg_rule("INGRESS", "0.0.0.0/0")), "no-public-ingress")
    assert "TCP port 443 from 0.0.0.0/0" in found.message
    assert analyze(analyzer(), _nsg_rule("EGRESS", "0.0.0.0/0")) == []
    assert analyze(analyzer(), _nsg_rule("INGRESS", ADMIN)) == []


# Docker binds an unset address, IPv4's 0.0.0.0 and IPv6's :: (however spelled) to every
# interface.
@pytest.mark.parametrize("ip", [None, "", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0"])
def test_a_container_port_on_every_interface_fails(ip: str | None) -> None:
    port = {"internal": 8080, "external": 8080, **({"ip": ip} if ip is not None else {})}
    found = only(analyze(analyzer(), container("webui", ports=[port])), "no-public-ingress")
    assert "publishes port 8,080 as host port 8080 on every interface" in found.message
    assert 'ip="127.0.0.1"' in found.message


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.0.1.10"])
def test_a_container_port_on_one_address_passes(ip: str) -> None:
    port = {"internal": 8080, "external": 8080, "ip": ip}
    assert analyze(analyzer(), container("webui", ports=[port])) == []


def test_a_container_port_on_loopback_or_in_public_ports_passes() -> None:
    loopback = {"internal": 8080, "external": 8080, "ip": "127.0.0.1"}
    assert analyze(analyzer(), container("webui", ports=[loopback])) == []
    public = {"internal": 443, "external": 443}
    config = {"no-public-ingress": {"publicPorts": [443]}}
    assert analyze(analyzer(config), container("proxy", ports=[public])) == []


def test_an_unprotected_volume_fails() -> None:
    assert analyze(analyzer(), volume("data", protect=True)) == []
    found = only(analyze(analyzer(), volume("data", protect=False)), "protected-data")
    assert "Volume 'data' is not protected" in found.message
    assert "protect=True" in found.message


@pytest.mark.parametrize("ignored", [["sourceDetails.sourceId"], ["sourceDetails"]])
def test_an_a1_instance_that_ignores_its_image_passes(ignored: list[str]) -> None:
    assert analyze(analyzer(), instance("app", ignore_changes=ignored)) == []


@pytest.mark.parametrize("ignored", [[], ["source_details.source_id"], ["metadata"]])
def test_an_a1_instance_that_follows_new_images_fails(ignored: list[str]) -> None:
    found = only(analyze(analyzer(), instance("app", ignore_changes=ignored)), "protected-data")
    assert '"sourceDetails.sourceId"' in found.message and "re-image" in found.message


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("redis", "has no tag"),
        ("redis:latest", "moving tag 'latest'"),
        ("ghcr.io/open-webui/open-webui:main", "moving tag 'main'"),
        ("localhost:5000/litellm", "has no tag"),
    ],
)
def test_unpinned_images_get_an_advisory(image: str, problem: str) -> None:
    found = only(analyze(analyzer(), remote_image("img", image)), "pinned-images")
    assert found.enforcementLevel == ADVISORY
    assert problem in found.message and "`ai-swarm:services.<name>.image`" in found.message


@pytest.mark.parametrize(
    "image", ["redis:7.2.4-alpine", "postgres@sha256:" + "a" * 64, "localhost:5000/app:1.2"]
)
def test_pinned_images_pass(image: str) -> None:
    assert of_policy(analyze(analyzer(), remote_image("img", image)), "pinned-images") == []


def test_a_container_naming_a_moving_image_gets_an_advisory() -> None:
    found = only(analyze(analyzer(), container("db", image="postgres")), "pinned-images")
    assert "'postgres'" in found.message


# --- Enforcement levels and config as the CLI sends them ----------------------------------


def test_config_can_lower_a_policy_to_advisory() -> None:
    found = only(
        analyze_stack(analyzer({"a1-allowance": "advisory"}), [instance("app", 4, 24)]),
        "a1-allowance",
    )
    assert found.enforcementLevel == ADVISORY


def test_all_disabled_silences_everything_but_an_explicit_level_wins() -> None:
    stack = [instance("app", 4, 24), volume("data", "300", protect=False)]
    assert analyze_stack(analyzer({"all": "disabled"}), stack) == []
    config = {"all": "disabled", "block-storage-allowance": {"enforcementLevel": "mandatory"}}
    diagnostics = analyze_stack(analyzer(config), stack)
    assert [d.policyName for d in diagnostics] == ["block-storage-allowance"]


def test_a_policy_configured_without_properties_uses_its_schema_defaults() -> None:
    raw = new_analyzer()
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    request.policyConfig["a1-allowance"].enforcementLevel = MANDATORY
    raw.Configure(request, None)
    assert analyze_stack(raw, [instance("app", 2, 12)]) == []
    found = only(analyze_stack(raw, [instance("app", 4, 24)]), "a1-allowance")
    assert "allowance of 2 OCPU / 12 GB" in found.message


# --- Preview: unknown outputs --------------------------------------------------------------


def _previewed_host() -> list[Any]:
    """A host as `pulumi preview` sends it: image id and subnet unknown, sizes plain."""
    return [
        instance("app", source_id=UNKNOWN, subnet_id=UNKNOWN),
        volume("data", "150"),
        container("db", image=UNKNOWN, memory=2048, cpus="1"),
    ]


def test_budget_policies_decide_in_preview_when_other_values_are_unknown() -> None:
    stack = _previewed_host()
    diagnostics = analyze_stack(analyzer(), stack)
    assert diagnostics == []
    over = [*stack, container("webui", memory=12000)]
    found = analyze_stack(analyzer(), over)
    assert [d.policyName for d in found] == ["host-memory-budget"]
    assert found[0].enforcementLevel == MANDATORY


def test_resource_policies_decide_in_preview_when_other_values_are_unknown() -> None:
    for registration in _previewed_host():
        assert analyze(analyzer(), registration) == []


def test_an_unknown_budget_input_is_a_mandatory_violation_not_a_preview_advisory() -> None:
    diagnostics = analyze_stack(analyzer(), [instance("app", ocpus=UNKNOWN)])
    found = only(diagnostics, "a1-allowance")
    assert found.enforcementLevel == MANDATORY
    assert "`shapeConfig.ocpus` is not known until apply" in found.message
    assert not any(d.message.startswith("can't run policy") for d in diagnostics)


def test_an_unknown_ingress_source_is_a_violation() -> None:
    rule = {"protocol": "6", "source": UNKNOWN}
    found = only(analyze(analyzer(), security_list("open", rule)), "no-public-ingress")
    assert found.enforcementLevel == MANDATORY and "is not known until apply" in found.message


def test_an_unknown_limit_fails_only_the_budget_that_needs_it() -> None:
    stack = [instance("app"), container("db", cpus=UNKNOWN, memory=1024)]
    found = analyze_stack(analyzer(), stack)
    assert [d.policyName for d in found] == ["host-cpu-budget"]
    assert "`cpus` is not known until apply" in found[0].message
    assert found[0].urn == stack[1].urn
    sized = [instance("app", memory_gb=UNKNOWN), container("db", cpus="1", memory=1024)]
    assert {d.policyName for d in analyze_stack(analyzer(), sized)} == {
        "a1-allowance",
        "host-memory-budget",
    }
