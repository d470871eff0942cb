"""The pack as the Pulumi CLI starts it: `python -m pulumi.policy <engine> policies` serves the
analyzer over gRPC on loopback, and the same requests get the same answers from it."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from dryrun import POLICY_PACK_DIR
from dryrun.policy import Analyzer, analyze_stack_request, configure
from dryrun.synthetic import instance

STARTUP_SECONDS = 60


@pytest.fixture(scope="module")
def served_pack() -> Iterator[Analyzer]:
    # The engine address is only used by packs that call back into the engine; this one doesn't.
    command = [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_PACK_DIR)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            process.terminate()
            pytest.fail(f"the pack did not start: {line!r} {process.stderr.read()}")
        with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_served_pack_lists_its_policies(served_pack: Analyzer) -> None:
    info = served_pack.GetAnalyzerInfo(empty_pb2.Empty(), None)
    assert info.name == "ai-swarm"
    assert "a1-allowance" in [policy.name for policy in info.policies]


def test_the_served_pack_rejects_4x24_by_default_and_accepts_it_with_the_profile(
    served_pack: Analyzer,
) -> None:
    stack = [instance("app", 4, 24)]
    request = analyze_stack_request(stack, {})
    configure(served_pack, None)
    (violation,) = served_pack.AnalyzeStack(request, None).diagnostics
    assert violation.policyName == "a1-allowance"
    assert violation.enforcementLevel == analyzer_pb2.MANDATORY
    assert "2026-06-15" in violation.message
    configure(served_pack, {"a1-allowance": {"maxA1Ocpus": 4, "maxA1MemoryGb": 24}})
    assert list(served_pack.AnalyzeStack(request, None).diagnostics) == []
