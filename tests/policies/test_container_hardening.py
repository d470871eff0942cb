"""container-hardening and no-public-ingress's width rule, through the analyzer servicer."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2

from ai_swarm_policies.contract import DOCKER_NETWORK, DOCKER_VOLUME
from dryrun.synthetic import container, resource, security_list, tcp_rule
from tests.policies.policy_requests import analyze, analyzer, of_policy

POLICY = "container-hardening"
ROOT_ESCAPES = ["DAC_READ_SEARCH", "DAC_OVERRIDE", "SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE"]


def _verdict(config: dict[str, Any] | None = None, name: str = "app", **inputs: Any) -> list[str]:
    diagnostics = analyze(analyzer(config), container(name, **inputs))
    return [d.message for d in of_policy(diagnostics, POLICY)]


def _bind(source: str, read_only: bool = False) -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": "/data", "readOnly": read_only}


def _local_volume(**driver_options: str) -> dict[str, Any]:
    options = {"driverName": "local", "driverOptions": driver_options}
    return {"type": "volume", "source": "v", "target": "/v", "volumeOptions": options}


def test_a_hardened_container_with_its_data_and_a_tmpfs_volume_passes() -> None:
    mounts = [_bind("/mnt/data/app"), _local_volume(type="tmpfs", device="tmpfs", o="size=1m")]
    capabilities = {"drops": ["ALL"]}
    assert _verdict(mounts=mounts, capabilities=capabilities, user="1000:1000") == []


def test_by_default_no_capability_may_be_added_back() -> None:
    # Every container of the stack runs as its own user from the start: none needs one.
    [message] = _verdict(capabilities={"drops": ["ALL"], "adds": ["CHOWN"]}, user="1000:1000")
    assert "adds CHOWN, beyond allowedCapabilities ()" in message


def test_node_exporter_keeps_the_host_view_the_config_grants_it_by_name() -> None:
    view: dict[str, Any] = {
        "networkMode": "host",
        "pidMode": "host",
        "mounts": [_bind("/", read_only=True)],
    }
    assert _verdict(name="node-exporter", **view) == []
    [message] = _verdict(name="node-exporter", ipcMode="host", **view)
    assert "shares the host's ipc namespace (ipcMode host" in message
    [message] = _verdict(name="exporter", **view)
    assert "Container 'exporter': shares the host's network namespace (networkMode host" in message
    assert (
        "shares the host's pid namespace" in message and "which holds the Docker socket" in message
    )
    config = {POLICY: {"hostAccess": {"exporter": ["network", "pid", "socket-directory"]}}}
    assert _verdict(config, name="exporter", **view) == []


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"privileged": True}, "runs privileged"),
        ({"mounts": [_bind("/var/run/docker.sock", read_only=True)]}, "the Docker socket"),
        ({"mounts": [_bind("/run/docker.sock")]}, "the Docker socket"),
        ({"mounts": [_bind("/var/run//docker.sock", read_only=True)]}, "the Docker socket"),
        ({"mounts": [_bind("/run/./docker.sock", read_only=True)]}, "the Docker socket"),
        ({"mounts": [_bind("//var/run/docker.sock", read_only=True)]}, "the Docker socket"),
        ({"mounts": [_bind("/mnt/data/../../run/docker.sock")]}, "the Docker socket"),
        (
            {"mounts": [_bind("/run/containerd/containerd.sock", read_only=True)]},
            "containerd's socket",
        ),
        (
            {"volumes": [{"hostPath": "/var/run/docker.sock", "containerPath": "/s"}]},
            "the Docker socket",
        ),
        (
            {"volumes": [{"hostPath": "/run//", "containerPath": "/r", "readOnly": True}]},
            "mounts the host's /run//, which holds the Docker socket",
        ),
        (
            {"mounts": [_bind("/", read_only=True)]},
            "mounts the host's /, which holds the Docker socket",
        ),
        ({"mounts": [_bind("/etc")]}, "mounts the host's /etc writable"),
        ({"mounts": [_bind("/mnt/data/../etc")]}, "mounts the host's /mnt/data/../etc writable"),
        ({"mounts": [_bind("/mnt/database")]}, "mounts the host's /mnt/database writable"),
        (
            {"volumes": [{"hostPath": "/home/ubuntu", "containerPath": "/h"}]},
            "mounts the host's /home/ubuntu writable",
        ),
        (
            {"mounts": [_local_volume(type="none", o="bind", device="/etc")]},
            "mounts[0] mounts the host's /etc writable",
        ),
        (
            {"mounts": [_local_volume(type="none", o="bind,ro", device="/var/run")]},
            "which holds the Docker socket",
        ),
        (
            {"mounts": [_local_volume(type="ext4", device="/dev/sda1")]},
            "mounts /dev/sda1 (type ext4) through the local driver",
        ),
        (
            {"mounts": [{"type": "volume", "target": "/v", "volumeOptions": {"driverName": "x"}}]},
            "uses the volume driver x, a plugin",
        ),
        ({"mounts": [{"type": "npipe", "target": "/p"}]}, "type 'npipe', which the pack cannot"),
        ({"networkMode": "host"}, "shares the host's network namespace (networkMode host"),
        (
            {"networkMode": "container:db"},
            "shares container db's network namespace (networkMode container:db",
        ),
        ({"pidMode": "host"}, "shares the host's pid namespace (pidMode host"),
        ({"ipcMode": "host"}, "shares the host's ipc namespace (ipcMode host"),
        ({"usernsMode": "host"}, "shares the host's userns namespace (usernsMode host"),
        ({"cgroupnsMode": "host"}, "shares the host's cgroupns namespace (cgroupnsMode host"),
        (
            {"devices": [{"hostPath": "/dev/sda", "containerPath": "/dev/sda"}]},
            "reaches the host devices /dev/sda",
        ),
        ({"deviceCgroupRules": ["b 8:* rmw"]}, "by cgroup rule (b 8:* rmw)"),
        ({"gpus": "all"}, "requests host devices through a device driver"),
        ({"deviceRequests": [{"driver": "nvidia"}]}, "requests host devices through a device"),
        (
            {"securityOpts": ["no-new-privileges:true", "seccomp=unconfined"]},
            "turns seccomp off (seccomp=unconfined)",
        ),
        (
            {"securityOpts": ["no-new-privileges:true", "seccomp:unconfined"]},
            "turns seccomp off (seccomp:unconfined)",
        ),
        (
            {"securityOpts": ["no-new-privileges:true", "apparmor=unconfined"]},
            "turns AppArmor off (apparmor=unconfined)",
        ),
        (
            {"securityOpts": ["no-new-privileges:true", "label=disable"]},
            "turns SELinux labels off",
        ),
        (
            {"securityOpts": ["no-new-privileges:true", "systempaths=unconfined"]},
            "unmasks /proc and /sys paths",
        ),
        (
            {
                "securityOpts": [
                    "no-new-privileges:true",
                    'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
                ]
            },
            "sets the security option seccomp={",
        ),
        ({"capabilities": {"adds": ["CHOWN"]}}, "keeps Docker's default capabilities"),
        ({"capabilities": {"drops": ["ALL"], "adds": ["NET_RAW"]}}, "adds NET_RAW, beyond"),
        ({"capabilities": {"drops": ["ALL"], "adds": ["CAP_SYS_ADMIN"]}}, "adds SYS_ADMIN"),
        ({"securityOpts": []}, "set no-new-privileges"),
        ({"securityOpts": ["no-new-privileges:false"]}, "set no-new-privileges"),
    ],
)
def test_each_way_out_of_the_container_fails(inputs: dict[str, Any], named: str) -> None:
    [message] = _verdict(**inputs)
    assert named in message
    assert "Container 'app': " in message


@pytest.mark.parametrize("option", ["no-new-privileges", "no-new-privileges=true"])
def test_every_spelling_of_no_new_privileges_counts(option: str) -> None:
    assert _verdict(securityOpts=[option]) == []


# The five capabilities allowed, so only the root rule can object.
EVERY_ESCAPE_ALLOWED = {POLICY: {"allowedCapabilities": ROOT_ESCAPES}}


@pytest.mark.parametrize("capability", ROOT_ESCAPES)
@pytest.mark.parametrize("user", [None, "root", "0", "0:0", "root:1000"])
def test_a_root_process_may_not_keep_a_capability_that_escapes(
    capability: str, user: str | None
) -> None:
    inputs: dict[str, Any] = {"capabilities": {"drops": ["ALL"], "adds": [capability]}}
    if user is not None:
        inputs["user"] = user
    [message] = _verdict(EVERY_ESCAPE_ALLOWED, name="litellm", **inputs)
    assert f"Container 'litellm': runs as root (user {user or 'unset'}" in message
    assert f"with {capability} (rootRefusedCapabilities)" in message


def test_the_root_rule_fires_with_the_default_config_for_litellms_capability() -> None:
    adds = {"drops": ["ALL"], "adds": ["DAC_READ_SEARCH"]}
    [message] = _verdict(name="litellm", capabilities=adds)
    assert "runs as root (user unset" in message and "open_by_handle_at" in message


def test_a_root_process_adding_all_is_refused_every_escape() -> None:
    config: dict[str, Any] = {POLICY: {"allowedCapabilities": ["ALL"]}}
    [message] = _verdict(config, capabilities={"drops": ["ALL"], "adds": ["ALL"]})
    assert f"with {', '.join(sorted(ROOT_ESCAPES))} (rootRefusedCapabilities)" in message


@pytest.mark.parametrize("user", ["1000", "1000:1000", "postgres"])
def test_a_non_root_user_may_keep_an_allowed_capability(user: str) -> None:
    adds = {"drops": ["ALL"], "adds": ROOT_ESCAPES}
    assert _verdict(EVERY_ESCAPE_ALLOWED, user=user, capabilities=adds) == []


def test_entrypoints_that_drop_root_are_named_in_the_config() -> None:
    # An image whose entrypoint starts as root, chowns its data and drops to a service user.
    needs = ["CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID"]
    adds = {"drops": ["ALL"], "adds": needs}
    allowed: dict[str, Any] = {"allowedCapabilities": needs}
    named: dict[str, Any] = {POLICY: {**allowed, "entrypointDropsRoot": ["postgres"]}}
    assert _verdict(named, name="postgres", capabilities=adds) == []
    [message] = _verdict({POLICY: allowed}, name="postgres", capabilities=adds)
    assert "runs as root" in message


def test_the_allow_list_and_writable_paths_are_configurable() -> None:
    config = {POLICY: {"allowedCapabilities": ["NET_BIND_SERVICE"], "writableHostPaths": ["/srv"]}}
    adds = {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]}
    assert _verdict(config, capabilities=adds, mounts=[_bind("/srv/app")]) == []
    [message] = _verdict(config, mounts=[_bind("/mnt/data/app")])
    assert "outside /srv" in message


def _judged(type_: str, inputs: dict[str, Any]) -> list[str]:
    diagnostics = of_policy(analyze(analyzer(), resource(type_, "it", inputs)), POLICY)
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in diagnostics)
    return [d.message for d in diagnostics]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=100"},
        {"o": "bind", "device": "/mnt/data/x"},
    ],
)
def test_a_docker_volume_on_docker_disk_memory_or_the_data_volume_passes(
    options: dict[str, str],
) -> None:
    assert _judged(DOCKER_VOLUME, {"driver": "local", "driverOpts": options}) == []


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"driverOpts": {"type": "none", "o": "bind", "device": "/etc"}}, "/etc writable"),
        ({"driverOpts": {"o": "bind,ro", "device": "/"}}, "which holds the Docker socket"),
        ({"driverOpts": {"o": "rbind", "device": "/run/docker.sock"}}, "the Docker socket"),
        ({"driverOpts": {"type": "ext4", "device": "/dev/sda1"}}, "mounts /dev/sda1"),
        ({"driver": "rexray/ebs"}, "the volume driver rexray/ebs"),
    ],
)
def test_a_docker_volume_that_reaches_the_host_fails(inputs: dict[str, Any], named: str) -> None:
    [message] = _judged(DOCKER_VOLUME, inputs)
    assert message.split("\n", 1)[1].startswith("Volume 'it': ") and named in message


def test_a_docker_network_other_than_a_bridge_fails() -> None:
    assert _judged(DOCKER_NETWORK, {"driver": "bridge"}) == []
    [message] = _judged(DOCKER_NETWORK, {"driver": "macvlan"})
    assert "Network 'it': uses the macvlan driver, not bridge" in message


@pytest.mark.parametrize(
    ("type_", "inputs"),
    [
        (
            "docker:index/service:Service",
            {
                "name": "svc",
                "taskSpec": {
                    "containerSpec": {
                        "image": "redis:latest",
                        "privileges": {"seLinuxContext": {"disable": True}},
                    }
                },
            },
        ),
        ("docker:index/plugin:Plugin", {"name": "vieux/sshfs:latest", "grantAllPermissions": True}),
        ("docker:index/image:Image", {"imageName": "app:latest"}),
        ("docker:index/registryImage:RegistryImage", {"name": "app:latest"}),
    ],
)
def test_a_docker_type_the_pack_cannot_judge_fails_naming_it(
    type_: str, inputs: dict[str, Any]
) -> None:
    [found] = of_policy(analyze(analyzer(), resource(type_, "it", inputs)), POLICY)
    assert found.enforcementLevel == analyzer_pb2.MANDATORY
    assert f"{type_} 'it' is a Docker resource type container-hardening cannot judge" in (
        found.message
    )


@pytest.mark.parametrize(
    "sources",
    [["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/7"], ["::/1", "8000::/1"], ["2001:db8::/31"]],
)
def test_the_internet_in_pieces_is_still_the_internet(sources: list[str]) -> None:
    rules = [tcp_rule(source, 22) for source in sources]
    diagnostics = of_policy(analyze(analyzer(), security_list("open", *rules)), "no-public-ingress")
    assert [source for source in sources if any(source in d.message for d in diagnostics)] == (
        sources
    )


def test_the_widest_admin_ranges_pass_and_the_width_is_configurable() -> None:
    admitted = security_list("admin", tcp_rule("10.0.0.0/8", 22), tcp_rule("2001:db8::/32", 22))
    assert analyze(analyzer(), admitted) == []
    strict = {"no-public-ingress": {"minIpv4SourcePrefix": 24, "minIpv6SourcePrefix": 48}}
    assert len(of_policy(analyze(analyzer(strict), admitted), "no-public-ingress")) == 2
