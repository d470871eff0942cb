"""node-exporter: the host's view, its own flags only, on loopback."""

from __future__ import annotations

from dryrun.engine import ProgramRun
from tests.services.readers import container

# Prometheus server flags that node-exporter rejects (it exits), and the deprecated filter.
FORBIDDEN = ("--web.enable-lifecycle", "--web.enable-admin-api", "--collector.filesystem.ignored-")


def test_runs_with_the_host_network_pid_namespace_and_root(free_run: ProgramRun) -> None:
    inputs = container(free_run, "node-exporter").inputs
    assert inputs["networkMode"] == "host"
    assert inputs["pidMode"] == "host"
    assert "networksAdvanced" not in inputs
    assert inputs["mounts"] == [
        {
            "type": "bind",
            "source": "/",
            "target": "/host",
            "readOnly": True,
            "bindOptions": {"propagation": "rslave"},
        }
    ]


def test_flags_are_node_exporters_own(free_run: ProgramRun) -> None:
    flags = container(free_run, "node-exporter").inputs["command"]
    assert "--path.rootfs=/host" in flags
    assert "--web.listen-address=127.0.0.1:9100" in flags
    excludes = [f for f in flags if f.startswith("--collector.filesystem.mount-points-exclude=")]
    assert len(excludes) == 1
    assert all(flag.startswith("--") and "=" in flag for flag in flags)
    assert not [flag for flag in flags if flag.startswith(FORBIDDEN)]


def test_health_fetches_metrics_with_the_images_wget(free_run: ProgramRun) -> None:
    inputs = container(free_run, "node-exporter").inputs
    assert inputs["healthcheck"]["tests"] == [
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        "http://127.0.0.1:9100/metrics",
    ]
    assert inputs.get("ports", []) == []


def test_runs_as_the_uid_the_host_firewall_keeps_from_link_local(free_run: ProgramRun) -> None:
    """On the host's network only its uid sets node-exporter apart: the image's `USER nobody`
    pinned by number, the uid the firewall's OUTPUT rule names (tests/integration/
    test_host_firewall.py sends packets as it)."""
    assert container(free_run, "node-exporter").inputs["user"] == "65534:65534"
