"""`--deep`: ELF headers made here, and the entrypoint followed through layers as images lay
them out (an entrypoint script, busybox's /bin/sh symlink, Debian's /bin -> usr/bin)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from deploy.elf import DeepCheckError, elf_machine, find_entrypoint
from deploy.images import Target, check_image
from deploy.registry import Repository
from tests.deploy.image_registry import (
    E_MACHINE,
    Link,
    RecordedRegistry,
    config,
    elf_header,
    layer,
)

ARM64 = "linux/arm64"
AARCH64, X86_64 = E_MACHINE["arm64"], E_MACHINE["amd64"]
REPO = Repository("ghcr.io", "team/app")


def elf(machine: int) -> bytes:
    return elf_header(machine) + b"\0" * 200


@pytest.mark.parametrize(
    ("header", "machine"),
    [
        (elf_header(183), 183),
        (elf_header(62), 62),
        (elf_header(22, big_endian=True), 22),  # s390x is big-endian: e_machine too
        (elf_header(40, elf_class=1), 40),  # a 32-bit ARM header has e_machine at the same place
    ],
    ids=["aarch64", "x86-64", "s390x", "arm"],
)
def test_the_machine_type_of_an_elf_header(header: bytes, machine: int) -> None:
    assert elf_machine(header) == machine


@pytest.mark.parametrize(
    "header",
    [b"#!/bin/sh\n", b"\x7fELF\x02\x01", elf_header(183)[:19], b"\x7fELF\x02\x03" + bytes(58)],
    ids=["script", "ident only", "cut short", "no byte order"],
)
def test_what_is_not_an_elf_header_has_no_machine(header: bytes) -> None:
    assert elf_machine(header) is None


def test_the_python_running_this_test_is_read_as_its_own_machine() -> None:
    with open(os.path.realpath(sys.executable), "rb") as binary:
        header = binary.read(64)
    expected = {"x86_64": 62, "aarch64": 183}[os.uname().machine]
    assert elf_machine(header) == expected


def publish(registry: RecordedRegistry, layers: list[bytes], **settings: Any) -> str:
    """An arm64 image (index entry and config both say so) with these layers, base first."""
    registry.publish(
        REPO.path,
        "1.0",
        {ARM64: config("arm64", **settings)},
        layers={ARM64: layers},
    )
    return "1.0"


def alpine_like(busybox_machine: int) -> list[bytes]:
    base = layer({"bin/busybox": elf(busybox_machine), "bin/sh": Link("/bin/busybox")})
    top = layer({"usr/local/bin/docker-entrypoint.sh": b'#!/bin/sh\nexec "$@"\n'})
    return [base, top]


def deep(registry: RecordedRegistry) -> tuple[bool, str]:
    found = check_image(registry, Target("ghcr.io/team/app", "1.0", ARM64), deep=True)
    return found.ok, found.detail


def test_an_entrypoint_script_is_followed_to_its_interpreter(registry: RecordedRegistry) -> None:
    publish(registry, alpine_like(AARCH64), Entrypoint=["docker-entrypoint.sh"], Cmd=["redis"])
    ok, detail = deep(registry)
    assert ok, detail
    assert detail == (
        "config says linux/arm64; runs docker-entrypoint.sh -> "
        "/usr/local/bin/docker-entrypoint.sh -> /bin/sh -> /bin/busybox (AArch64)"
    )


def test_amd64_binaries_under_an_arm64_index_entry_and_config_fail(
    registry: RecordedRegistry,
) -> None:
    # The index and the config both say arm64: only the binary tells (BerriAI/litellm#29382).
    publish(registry, alpine_like(X86_64), Entrypoint=["docker-entrypoint.sh"])
    ok, detail = deep(registry)
    assert not ok
    assert detail.endswith("/bin/busybox is built for x86-64, not AArch64 (linux/arm64)")


def test_a_command_is_found_on_path_through_a_directory_symlink(
    registry: RecordedRegistry,
) -> None:
    # Debian's merged /usr: /bin is a symlink to usr/bin, and PATH lists /usr/local/bin first.
    base = layer({"bin": Link("usr/bin"), "usr/bin/bash": elf(AARCH64)})
    app = layer({"app/backend/start.sh": b"#!/usr/bin/env bash\n"})
    publish(
        registry,
        [base, app],
        Cmd=["bash", "start.sh"],
        Env=["PATH=/usr/local/bin:/bin:/usr/bin"],
        WorkingDir="/app/backend",
    )
    ok, detail = deep(registry)
    assert ok, detail
    assert detail.endswith("runs bash -> /bin/bash -> /usr/bin/bash (AArch64)")


def test_a_relative_entrypoint_is_found_under_the_working_directory(
    registry: RecordedRegistry,
) -> None:
    base = layer({"bin/busybox": elf(AARCH64), "bin/sh": Link("busybox")})
    app = layer({"app/docker/prod_entrypoint.sh": b"#!/bin/sh\n"})
    publish(registry, [base, app], Entrypoint=["docker/prod_entrypoint.sh"], WorkingDir="/app")
    ok, detail = deep(registry)
    assert ok, detail
    assert "/app/docker/prod_entrypoint.sh -> /bin/sh -> /bin/busybox (AArch64)" in detail


def test_the_top_layer_wins_and_a_whiteout_hides_the_file_below(
    registry: RecordedRegistry,
) -> None:
    base = layer({"usr/bin/tool": elf(X86_64), "usr/bin/old": elf(AARCH64)})
    top = layer({"usr/bin/tool": elf(AARCH64), "usr/bin/.wh.old": b""})
    publish(registry, [base, top], Entrypoint=["/usr/bin/tool"])
    assert deep(registry)[0]
    manifest, configuration = _image(registry)
    assert find_entrypoint(registry, REPO, manifest, configuration).machine == AARCH64
    gone = {**configuration, "config": {"Entrypoint": ["/usr/bin/old"]}}
    with pytest.raises(DeepCheckError, match="/usr/bin/old is not in the image"):
        find_entrypoint(registry, REPO, manifest, gone)


def test_the_search_stops_where_the_file_is(registry: RecordedRegistry) -> None:
    # 2 MB of incompressible data after the binary, and a base layer below it: neither is read.
    base = layer({}, padding=2_000_000)
    top = layer({"bin/app": elf(AARCH64)}, padding=2_000_000)
    publish(registry, [base, top], Entrypoint=["/bin/app"])
    assert deep(registry)[0]
    manifest, _ = _image(registry)
    base_digest, top_digest = (d["digest"] for d in manifest["layers"])
    assert base_digest not in registry.blob_bytes_read
    assert 0 < registry.blob_bytes_read[top_digest] < 200_000 < len(top)


def test_a_layer_it_cannot_read_makes_the_deep_check_fail(registry: RecordedRegistry) -> None:
    zstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    digest, size = registry.add_image(
        REPO.path, config("arm64", Entrypoint=["/bin/app"]), [b"zstd"], layer_type=zstd
    )
    registry.add_index(REPO.path, "1.0", [(ARM64, digest, size)])
    ok, detail = deep(registry)
    assert not ok and detail == f"cannot check: cannot read a layer of type {zstd}"


def test_an_image_without_entrypoint_or_command_fails_deep(registry: RecordedRegistry) -> None:
    publish(registry, [layer({"bin/app": elf(AARCH64)})])
    ok, detail = deep(registry)
    assert not ok and "names no entrypoint and no command" in detail


def _image(registry: RecordedRegistry) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads(registry.manifests[(REPO.path, "1.0")].content)
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(registry.manifests[(REPO.path, digest)].content)
    configuration = json.loads(registry.blobs[(REPO.path, manifest["config"]["digest"])])
    return manifest, configuration


@pytest.fixture
def registry() -> RecordedRegistry:
    return RecordedRegistry()


def test_a_hard_link_is_followed_and_a_dangling_link_is_named(registry: RecordedRegistry) -> None:
    base = layer({"bin/busybox": elf(AARCH64), "bin/sh": Link("bin/busybox", hard=True)})
    publish(registry, [base], Entrypoint=["/bin/sh"])
    assert deep(registry) == (
        True,
        "config says linux/arm64; runs /bin/sh -> /bin/busybox (AArch64)",
    )
    dangling = RecordedRegistry()
    publish(dangling, [layer({"bin/sh": Link("/bin/busybox")})], Entrypoint=["/bin/sh"])
    ok, detail = deep(dangling)
    assert not ok and detail == "cannot check: /bin/sh -> /bin/busybox: not in the image"
