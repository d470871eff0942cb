"""The analyzer calls the Pulumi engine makes, for the policy tests. The resources they judge
are built by `dryrun.synthetic`, which the benchmarks share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pulumi.runtime import rpc

from dryrun.engine import Registration
from dryrun.policy import (
    Analyzer,
    PolicyConfigDocument,
    analyze_request,
    analyze_stack_request,
    configure,
    new_analyzer,
)

UNKNOWN: Final[str] = rpc.UNKNOWN
"""What the SDK sends for an input that is not known until apply."""

Diagnostics = list[Any]  # analyzer_pb2.AnalyzeDiagnostic, as the servicer returns them


def analyzer(config: PolicyConfigDocument | None = None) -> Analyzer:
    """The pack's analyzer, configured as the CLI configures it for `config`."""
    configured = new_analyzer()
    configure(configured, config)
    return configured


def analyze(target: Analyzer, registration: Registration) -> Diagnostics:
    response = target.Analyze(analyze_request(registration, {}), None)
    return list(response.diagnostics)


def analyze_stack(target: Analyzer, registrations: Sequence[Registration]) -> Diagnostics:
    by_urn = {r.urn: r for r in registrations}
    response = target.AnalyzeStack(analyze_stack_request(registrations, by_urn), None)
    return list(response.diagnostics)


def of_policy(diagnostics: Diagnostics, policy: str) -> Diagnostics:
    return [d for d in diagnostics if d.policyName == policy]
