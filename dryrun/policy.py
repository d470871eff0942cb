"""Evaluate the policy pack in `policies/` on a program's registrations, in process.

The pack runs in pulumi-policy's own analyzer servicer, fed the way the Pulumi CLI feeds it:
the pack config is reconciled as `--policy-pack-config` is (schema defaults, then `all`, then
each policy's entry, validated against the policy's schema) and sent with `Configure`; every
custom resource goes through `Analyze`, and the whole stack through one `AnalyzeStack`.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import jsonschema
import yaml
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from ai_swarm_policies import PACK_NAME, build_policies  # importable: see dryrun/__init__.py
from dryrun import POLICY_PACK_DIR
from dryrun.engine import Registration

PolicyConfigDocument = Mapping[str, Any]
"""A `--policy-pack-config` document: policy name -> enforcement level, or an object with an
optional `enforcementLevel` and the policy's properties. The key `all` sets every level."""

ENFORCEMENT_LEVELS: Final = tuple(level.value for level in EnforcementLevel)
_PREVIEW_FALLBACK: Final = "can't run policy"
_PROVIDER_TYPE_PREFIX: Final = "pulumi:providers:"


class PolicyConfigError(ValueError):
    """The pack config is malformed or does not fit the policies' schemas."""


@dataclass(frozen=True)
class PolicyDiagnostic:
    policy: str
    enforcement_level: str
    message: str
    """As the analyzer formats it: the policy's description, a newline, then the violation."""
    urn: str
    """The resource in violation; empty for a stack-wide violation."""

    @property
    def undecided(self) -> bool:
        """The analyzer's advisory stand-in for a policy that read an unknown value."""
        return self.message.startswith(_PREVIEW_FALLBACK)


@dataclass(frozen=True)
class PolicyReport:
    diagnostics: tuple[PolicyDiagnostic, ...]
    settings: Mapping[str, Mapping[str, Any]]
    """Each policy's effective properties (pack defaults, then the config): what it enforced."""

    @property
    def mandatory_violations(self) -> tuple[PolicyDiagnostic, ...]:
        return self.at_level("mandatory")

    @property
    def advisories(self) -> tuple[PolicyDiagnostic, ...]:
        return self.at_level("advisory")

    def at_level(self, level: str) -> tuple[PolicyDiagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.enforcement_level == level)

    def of_policy(self, name: str) -> tuple[PolicyDiagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.policy == name)


class Analyzer(Protocol):
    """A policy pack's analyzer service: the servicer in process (request, gRPC context), or a
    gRPC stub of a served pack (request, timeout)."""

    def GetAnalyzerInfo(self, request: Any, context: Any) -> Any: ...  # noqa: N802
    def Configure(self, request: Any, context: Any) -> Any: ...  # noqa: N802
    def Analyze(self, request: Any, context: Any) -> Any: ...  # noqa: N802
    def AnalyzeStack(self, request: Any, context: Any) -> Any: ...  # noqa: N802


def pack_version() -> str:
    """The version the CLI reports for the pack: the one in PulumiPolicy.yaml."""
    manifest = yaml.safe_load((POLICY_PACK_DIR / "PulumiPolicy.yaml").read_text())
    return str(manifest["version"])


def new_analyzer() -> Analyzer:
    """The pack's analyzer, built as `PolicyPack` builds it, minus the gRPC server."""
    return _PolicyAnalyzerServicer(
        PACK_NAME, pack_version(), build_policies(), EnforcementLevel.ADVISORY
    )


def load_policy_config(path: str | Path) -> dict[str, Any]:
    """Read a `--policy-pack-config` file (empty means no config), checking its shape."""
    text = Path(path).read_text()
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{path}: not valid JSON: {error}") from error
    _check_document(document, str(path))
    return dict(document)


def _check_document(document: Any, source: str) -> None:
    if not isinstance(document, dict):
        raise PolicyConfigError(f"{source}: must be a JSON object keyed by policy name")
    for name, value in document.items():
        if not isinstance(value, dict | str):
            raise PolicyConfigError(
                f"{source}: {name!r} is {value!r}; allowed: an enforcement level or an object"
            )
        level = _level_of(value)
        if level is not None and level not in ENFORCEMENT_LEVELS:
            raise PolicyConfigError(
                f"{source}: {name!r} has enforcement level {level!r}; "
                f"allowed: {', '.join(ENFORCEMENT_LEVELS)}"
            )


def reconcile_config(
    analyzer: Analyzer, document: PolicyConfigDocument | None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each policy's enforcement level and properties, as the CLI computes them.

    Stricter than the CLI in one way: a policy or property the pack does not have is an error
    here (the CLI ignores it), so a typo in a committed profile cannot go unnoticed.
    """
    document = document or {}
    _check_document(document, "policy pack config")
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    schemas: dict[str, Mapping[str, Any]] = {}
    for policy in info.policies:
        schema: dict[str, Any] = json_format.MessageToDict(policy.configSchema.properties)
        schemas[policy.name] = schema
        level = analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel).lower()
        defaults = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
        result[policy.name] = (level, defaults)

    every_level = _level_of(document.get("all"))
    unknown = sorted(set(document) - set(result) - {"all"})
    if unknown:
        raise PolicyConfigError(
            f"policy pack config names {', '.join(map(repr, unknown))}, which the pack does not "
            f"have; policies: {', '.join(sorted(result))}"
        )
    for name, (level, properties) in result.items():
        given = document.get(name)
        chosen = _level_of(given) or every_level or level
        merged = {**properties, **_properties_of(given)}
        _validate_properties(name, merged, schemas[name])
        result[name] = (chosen, merged)
    return result


def _level_of(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping):
        level = entry.get("enforcementLevel")
        return str(level) if level is not None else None
    return None


def _properties_of(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        return {}
    return {key: value for key, value in entry.items() if key != "enforcementLevel"}


def _validate_properties(
    policy: str, properties: Mapping[str, Any], schema: Mapping[str, Any]
) -> None:
    extra = sorted(set(properties) - set(schema))
    if extra:
        allowed = ", ".join(sorted(schema)) or "none"
        raise PolicyConfigError(
            f"{policy}: unknown propert{'y' if len(extra) == 1 else 'ies'} "
            f"{', '.join(extra)}; allowed: {allowed}"
        )
    document_schema = {"type": "object", "properties": dict(schema)}
    validator = jsonschema.Draft7Validator(document_schema)
    errors = sorted(validator.iter_errors(dict(properties)), key=lambda e: list(e.path))
    if errors:
        problems = "; ".join(
            f"{'.'.join(map(str, error.path)) or '(root)'}: {error.message}" for error in errors
        )
        raise PolicyConfigError(f"{policy}: {problems}")


def configure(
    analyzer: Analyzer, document: PolicyConfigDocument | None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Send the reconciled config to the analyzer, as the CLI does before any analysis.

    Returns what was sent: each policy's enforcement level and properties.
    """
    reconciled = reconcile_config(analyzer, document)
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, (level, properties) in reconciled.items():
        entry = request.policyConfig[name]
        entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value(level.upper())
        entry.properties.update(properties)
    analyzer.Configure(request, None)
    return reconciled


def _options(registration: Registration) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=registration.protect,
        ignoreChanges=list(registration.ignore_changes),
        deleteBeforeReplace=registration.delete_before_replace,
        deleteBeforeReplaceDefined=registration.delete_before_replace,
        parent=registration.parent,
    )


def _provider_urn(reference: str) -> str:
    """A provider reference is `<provider urn>::<provider id>`."""
    return reference.rsplit("::", 1)[0] if reference else ""


def _provider(
    registration: Registration, by_urn: Mapping[str, Registration]
) -> analyzer_pb2.AnalyzerProviderResource | None:
    provider = by_urn.get(_provider_urn(registration.provider))
    if provider is None:
        return None  # a default provider: the engine creates it, the program never registers it
    return analyzer_pb2.AnalyzerProviderResource(
        type=provider.type, properties=provider.wire_inputs, urn=provider.urn, name=provider.name
    )


def analyze_request(
    registration: Registration, by_urn: Mapping[str, Registration]
) -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(
        type=registration.type,
        properties=registration.wire_inputs,
        urn=registration.urn,
        name=registration.name,
        options=_options(registration),
        provider=_provider(registration, by_urn),
    )


def analyze_stack_request(
    registrations: Sequence[Registration], by_urn: Mapping[str, Registration]
) -> analyzer_pb2.AnalyzeStackRequest:
    """Every resource but the providers, as the engine sends the stack after a deployment."""
    return analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=r.wire_inputs,
                urn=r.urn,
                name=r.name,
                options=_options(r),
                provider=_provider(r, by_urn),
                parent=r.parent,
                dependencies=list(r.dependencies),
                propertyDependencies={
                    key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
                    for key, urns in r.property_dependencies.items()
                },
            )
            for r in registrations
            if not r.type.startswith(_PROVIDER_TYPE_PREFIX)
        ]
    )


def _diagnostics(response: Any, urn: str | None = None) -> Iterable[PolicyDiagnostic]:
    for d in response.diagnostics:
        yield PolicyDiagnostic(
            policy=d.policyName,
            enforcement_level=analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel).lower(),
            message=d.message,
            # The engine files a resource policy's diagnostics under the analyzed resource.
            urn=urn if urn is not None else d.urn,
        )


@contextlib.contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Run the block without Python's cyclic garbage collector (reference counting goes on).

    For each stack policy, pulumi-policy's servicer rebuilds every resource's properties (a
    deserialized copy behind unknown-checking proxies) and keeps them for the whole policy, so
    they survive into the oldest generation and trigger full collections, each of which walks
    the whole heap: on 10,000 resources that is two fifths of the evaluation, and the share
    grows with the stack. The evaluation makes no reference cycles (a test holds it to that),
    so reference counting frees all it discards and the collector would find nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def evaluate(
    registrations: Sequence[Registration], policy_config: PolicyConfigDocument | None = None
) -> PolicyReport:
    """Run the pack on `registrations`: one Analyze per custom resource, one AnalyzeStack."""
    analyzer = new_analyzer()
    reconciled = configure(analyzer, policy_config)
    by_urn = {r.urn: r for r in registrations}
    found: list[PolicyDiagnostic] = []
    with cycle_collector_paused():
        for registration in registrations:
            if registration.custom:
                response = analyzer.Analyze(analyze_request(registration, by_urn), None)
                found.extend(_diagnostics(response, registration.urn))
        stack_request = analyze_stack_request(registrations, by_urn)
        found.extend(_diagnostics(analyzer.AnalyzeStack(stack_request, None)))
    settings = {name: properties for name, (_, properties) in reconciled.items()}
    return PolicyReport(tuple(found), settings)
