"""container-hardening and no-public-ingress's width rule, through the analyzer servicer."""

from __future__ import annotations

from typing import Any

import pytest

from dryrun.synthetic import container, security_list, tcp_rule
from tests.policies.policy_requests import analyze, analyzer, of_policy

POLICY = "container-hardening"


def _verdict(config: dict[str, Any] | None = None, **inputs: Any) -> list[str]:
    diagnostics = analyze(analyzer(config), container("app", **inputs))
    return [d.message for d in of_policy(diagnostics, POLICY)]


def _bind(source: str, read_only: bool = False) -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": "/data", "readOnly": read_only}


def test_a_hardened_container_with_its_data_and_a_read_only_host_view_passes() -> None:
    mounts = [_bind("/mnt/data/app"), _bind("/", read_only=True)]
    capabilities = {"drops": ["ALL"], "adds": ["CHOWN", "SETUID", "SETGID"]}
    assert _verdict(mounts=mounts, capabilities=capabilities) == []


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"privileged": True}, "runs privileged"),
        ({"mounts": [_bind("/var/run/docker.sock", read_only=True)]}, "the Docker socket"),
        ({"mounts": [_bind("/run/docker.sock")]}, "the Docker socket"),
        (
            {"volumes": [{"hostPath": "/var/run/docker.sock", "containerPath": "/s"}]},
            "the Docker socket",
        ),
        ({"mounts": [_bind("/etc")]}, "mounts the host's /etc writable"),
        ({"mounts": [_bind("/mnt/data/../etc")]}, "mounts the host's /mnt/data/../etc writable"),
        ({"mounts": [_bind("/mnt/database")]}, "mounts the host's /mnt/database writable"),
        (
            {"volumes": [{"hostPath": "/home/ubuntu", "containerPath": "/h"}]},
            "mounts the host's /home/ubuntu writable",
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


def test_the_allow_list_and_writable_paths_are_configurable() -> None:
    config = {POLICY: {"allowedCapabilities": ["NET_BIND_SERVICE"], "writableHostPaths": ["/srv"]}}
    adds = {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]}
    assert _verdict(config, capabilities=adds, mounts=[_bind("/srv/app")]) == []
    [message] = _verdict(config, mounts=[_bind("/mnt/data/app")])
    assert "outside /srv" in message


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
