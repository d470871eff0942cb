"""Runs `__main__.py` in-process under Pulumi's mocks and records every registration.

The tests and the offline dry run share this engine. It stands in for the cloud only: the
program, the Pulumi SDK and the providers' Python SDKs run as they do under the CLI, and each
registration is captured as the engine's resource monitor receives it (type, name, parent,
provider, dependencies, options, and the inputs in wire form with secrets and unknowns marked).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import gc
import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func

from ai_swarm_policies.contract import (
    INSTANCE,
    PUBLIC_IP,
    RANDOM_PASSWORD,
    REMOTE_COMMAND,
    REMOTE_IMAGE,
    VCN,
)
from dryrun import tls_mocks

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "ai-swarm"
DEFAULT_STACK = "oracle"

_SECRET_SIG_KEY = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig


def _placeholder_key_pair() -> tuple[str, str]:
    """An Ed25519 key pair derived from a public seed: a stand-in that anyone can make again,
    so it guards nothing, and the config reader's key checks (parsed, halves match) still run."""
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"ai-swarm dry run").digest())
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    # PKCS#8, which ssh and pulumi-command read too: unlike OpenSSH's own format (whose random
    # check number differs on every write) it is the same text in every run.
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return f"{public.decode()} dry-run-placeholder", private.decode()


_PLACEHOLDER_PUBLIC_KEY, _PLACEHOLDER_PRIVATE_KEY = _placeholder_key_pair()

# Stand-ins for the identity a real stack gets from its owner. None of them is a credential.
PLACEHOLDER_CONFIG: Mapping[str, str] = {
    "oci:region": "eu-frankfurt-1",
    "oci:tenancyOcid": "ocid1.tenancy.oc1..dryrunplaceholder",
    "ai-swarm:adminCidrs": json.dumps(["198.51.100.7/32"]),
    "ai-swarm:sshPublicKey": _PLACEHOLDER_PUBLIC_KEY,
}
PLACEHOLDER_SECRETS: Mapping[str, str] = {"ai-swarm:sshPrivateKey": _PLACEHOLDER_PRIVATE_KEY}


class ProgramError(Exception):
    """The program raised `cause`; `registrations` is what it had registered until then."""

    def __init__(self, cause: BaseException, registrations: tuple[Registration, ...]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.registrations = registrations


class Unknown:
    """An input whose value is not known until the resource it comes from exists."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


class Secret:
    """A stack output that is a secret: its value is never handed out by the engine."""

    def __repr__(self) -> str:
        return "[secret]"


SECRET = Secret()


@dataclass(frozen=True)
class Registration:
    """One resource as the Pulumi engine would receive it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    property_dependencies: Mapping[str, tuple[str, ...]]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    wire_inputs: struct_pb2.Struct
    inputs: dict[str, Any] = field(compare=False)

    @property
    def secret_paths(self) -> tuple[str, ...]:
        """Dotted paths of the inputs that travel as secrets."""
        return tuple(_secret_paths(json_format.MessageToDict(self.wire_inputs), ""))


@dataclass(frozen=True)
class Invoke:
    """A data-source call the program made (token such as `oci:Core/getImages:getImages`)."""

    token: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class ProgramRun:
    stack: str
    preview: bool
    registrations: tuple[Registration, ...]
    outputs: Mapping[str, Any]
    invokes: tuple[Invoke, ...]
    # Every value the mocked generators (pulumi-random) made, secret or not: a test can look
    # for them anywhere, whatever the program did to them on the way.
    generated: tuple[str, ...] = ()
    # The id the mocked cloud gave each custom resource, by URN ("" in preview).
    ids: Mapping[str, str] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}


def stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The stack's committed config as the CLI hands it over (structured values as JSON)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} in {project_dir}")
    document = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # encrypted: cannot be read offline; the placeholder stands in for it
        config[qualify_key(key)] = _config_text(value)
    return config


def qualify_key(key: str) -> str:
    """`profile` -> `ai-swarm:profile`; keys with a namespace are kept."""
    return key if ":" in key else f"{PROJECT}:{key}"


def _config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def run_program(
    stack: str = DEFAULT_STACK,
    overrides: Mapping[str, str] | None = None,
    preview: bool = False,
    project_dir: Path = PROJECT_DIR,
    secrets: Mapping[str, str] | None = None,
) -> ProgramRun:
    """Run the program for `stack` under mocks and return what it registered.

    `overrides` (keys with or without the `ai-swarm:` namespace) win over the stack file, which
    wins over the placeholders; `secrets` are set as `pulumi config set --secret` sets them.
    `preview=True` leaves created outputs unknown, as in `pulumi preview`. Errors raised by the
    program (a `ConfigError`, say) propagate.
    """
    config = {**PLACEHOLDER_CONFIG, **PLACEHOLDER_SECRETS, **stack_config(stack, project_dir)}
    config.update({qualify_key(k): v for k, v in (overrides or {}).items()})
    config.update({qualify_key(k): v for k, v in (secrets or {}).items()})
    secret_keys = [k for k in PLACEHOLDER_SECRETS if config[k] == PLACEHOLDER_SECRETS[k]]
    secret_keys += [qualify_key(k) for k in secrets or {}]
    # A fresh context per run: the SDK keeps its settings, config and root stack in context vars.
    return contextvars.Context().run(
        _run_isolated, stack, config, secret_keys, preview, project_dir / "__main__.py"
    )


def _run_isolated(
    stack: str, config: dict[str, str], secret_keys: list[str], preview: bool, program: Path
) -> ProgramRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = RecordingMonitor(CloudMocks(preview))
    try:
        pulumi.runtime.set_mocks(
            monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor
        )
        pulumi.runtime.set_all_config(config, secret_keys)
        loop.run_until_complete(run_pulumi_func(_program_runner(program)))
        outputs = loop.run_until_complete(_stack_outputs())
    except Exception as error:
        raise ProgramError(error, tuple(monitor.registrations)) from error
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        _close_leftover_loops()
    mocks = monitor.mocks
    return ProgramRun(
        stack,
        preview,
        tuple(monitor.registrations),
        outputs,
        tuple(mocks.invokes),
        tuple(mocks.generated),
        dict(monitor.ids),
    )


def _close_leftover_loops() -> None:
    """Close the event loops the SDK's mocked invokes make in executor threads (pulumi
    runtime/mocks.py `Invoke`, `_ensure_event_loop`), which nothing closes: left to the
    interpreter's exit, one may be collected after its own sockets and print a traceback."""
    for found in gc.get_objects():
        if (
            isinstance(found, asyncio.AbstractEventLoop)
            and not found.is_closed()
            and not found.is_running()
        ):
            found.close()


def _program_runner(program: Path) -> Callable[[], None]:
    def run() -> None:
        runpy.run_path(str(program), run_name="__main__")

    return run


async def _stack_outputs() -> dict[str, Any]:
    root = pulumi.runtime.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {})
    resolved: dict[str, Any] = {}
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        if await output.is_secret():
            resolved[name] = SECRET
        elif await output.is_known():
            resolved[name] = await output.future()
        else:
            resolved[name] = UNKNOWN
    return resolved


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping the whole registration request of every resource."""

    mocks: CloudMocks

    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.ids: dict[str, str] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(_registration(response.urn, request))
            self.ids[response.urn] = response.id
        return response


def _registration(urn: str, request: Any) -> Registration:
    wire = struct_pb2.Struct()
    wire.CopyFrom(request.object)
    return Registration(
        urn=urn,
        type=request.type,
        name=request.name,
        custom=request.custom,
        parent=request.parent,
        provider=request.provider,
        dependencies=tuple(request.dependencies),
        property_dependencies={
            key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
        },
        protect=request.protect,
        retain_on_delete=request.retainOnDelete,
        delete_before_replace=request.deleteBeforeReplace,
        ignore_changes=tuple(request.ignoreChanges),
        replace_on_changes=tuple(request.replaceOnChanges),
        wire_inputs=wire,
        inputs=plain_value(json_format.MessageToDict(wire)),
    )


def plain_value(wire: Any) -> Any:
    """Wire form to Python values: secrets unwrapped, unknowns as `UNKNOWN`."""
    if isinstance(wire, dict):
        if wire.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return plain_value(wire.get("value"))
        return {key: plain_value(item) for key, item in wire.items()}
    if isinstance(wire, list):
        return [plain_value(item) for item in wire]
    if wire == rpc.UNKNOWN:
        return UNKNOWN
    return wire


def _secret_paths(wire: Any, prefix: str) -> list[str]:
    if isinstance(wire, dict):
        if wire.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return [prefix]
        return [p for k, v in wire.items() for p in _secret_paths(v, f"{prefix}.{k}".lstrip("."))]
    if isinstance(wire, list):
        return [p for i, v in enumerate(wire) for p in _secret_paths(v, f"{prefix}[{i}]")]
    return []


GENERATOR_PREFIX = "random:"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
INSTANCE_TYPE = "oci:Core/instance:Instance"
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
TLS_CERT_REQUEST = "tls:index/certRequest:CertRequest"
TLS_LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"


class CloudMocks(pulumi_mocks.Mocks):
    """Plausible answers from OCI, Docker and the generators, deterministic per resource name.

    In preview, outputs that only exist after creation are left out, so the SDK makes them
    unknown, as `pulumi preview` does.
    """

    def __init__(self, preview: bool) -> None:
        self.preview = preview
        self.invokes: list[Invoke] = []
        self.generated: list[str] = []

    def new_resource(
        self, args: pulumi_mocks.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if self.preview:
            return "", state
        created = _created_outputs(args.typ, args.name, args.inputs)
        if args.typ.startswith(GENERATOR_PREFIX):
            self.generated.extend(str(value) for value in created.values())
        state.update(created)
        return _resource_id(args.typ, args.name, args.inputs), state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append(Invoke(args.token, dict(args.args)))
        answer = _INVOKE_ANSWERS.get(args.token)
        return (answer(args.args) if answer else {}), []


def _resource_id(type_: str, name: str, inputs: Mapping[str, Any]) -> str:
    """`<name>-id`; an instance's OCID follows the inputs that OCI can only set at launch (its
    availability domain, compartment and metadata), as a change of one of those replaces it
    with a new instance, while display names, tags or sizes change in place."""
    if type_ != INSTANCE_TYPE:
        return f"{name}-id"
    fixed_at_launch = {key: inputs.get(key) for key in _INSTANCE_LAUNCH_INPUTS}
    digest = hashlib.sha256(json.dumps(fixed_at_launch, sort_keys=True).encode()).hexdigest()
    return f"ocid1.instance.oc1.eu-frankfurt-1.{digest[:24]}"


_INSTANCE_LAUNCH_INPUTS = ("availabilityDomain", "compartmentId", "metadata")


def _fake(name: str, purpose: str, length: int) -> str:
    """A stable stand-in for a generated value: the same name always gets the same value."""
    digest = hashlib.sha256(f"{purpose}/{name}".encode()).hexdigest()
    return (digest * (length // len(digest) + 1))[:length]


def _fake_bytes(name: str, length: int) -> dict[str, str]:
    """RandomBytes' two encodings of the same stand-in bytes."""
    raw = bytes.fromhex(_fake(name, "bytes", 2 * length))
    return {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}


def _ssh_ed25519_key(name: str) -> dict[str, str]:
    """A pulumi-tls Ed25519 key as it reports it, the same for the same name: OpenSSH's private
    key format (which sshd and cloud-init take) written here with a fixed check number, and the
    public half as an authorized_keys line with a newline."""
    seed = hashlib.sha256(f"ssh-host-key/{name}".encode()).digest()
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    public_blob = field(b"ssh-ed25519") + field(public)
    check = seed[:4] * 2
    secret = check + public_blob + field(seed + public) + field(b"")
    secret += bytes(range(1, 1 + (-len(secret)) % 8))
    blob = b"openssh-key-v1\0" + field(b"none") * 2 + field(b"") + (1).to_bytes(4, "big")
    blob += field(public_blob) + field(secret)
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return {
        "privateKeyOpenssh": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(lines)
        + "\n-----END OPENSSH PRIVATE KEY-----\n",
        "publicKeyOpenssh": f"ssh-ed25519 {base64.b64encode(public_blob).decode()}\n",
    }


def _created_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    length = int(inputs.get("length", 32))
    if type_ == TLS_PRIVATE_KEY:
        if inputs.get("algorithm") == "ECDSA":
            return tls_mocks.ecdsa_key(name)
        return _ssh_ed25519_key(name)
    if type_ in tls_mocks.CERTIFICATE_TYPES:
        return tls_mocks.certificate_outputs(type_, name, plain_value(dict(inputs)))
    outputs: dict[str, dict[str, Any]] = {
        RANDOM_PASSWORD: {"result": _fake(name, "password", length)},
        RANDOM_BYTES: _fake_bytes(name, length),
        PUBLIC_IP: {"ipAddress": "192.0.2.10"},
        INSTANCE: _instance_outputs(inputs),
        VCN: {"defaultSecurityListId": f"{name}-default-security-list"},
        REMOTE_COMMAND: {"stdout": "", "stderr": ""},
        REMOTE_IMAGE: {"imageId": f"sha256:{_fake(name, 'image', 64)}"},
    }
    return outputs.get(type_, {})


def _instance_outputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's addresses: the private one it asked for (else the A1's fixed one), and an
    ephemeral public one only when launched with `assign_public_ip`."""
    vnic = inputs.get("createVnicDetails") or {}
    outputs = {"privateIp": vnic.get("privateIp", "10.0.1.10"), "state": "RUNNING"}
    if vnic.get("assignPublicIp") == "true":
        outputs["publicIp"] = "192.0.2.11"
    return outputs


def _availability_domains(args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "availabilityDomains": [
            {
                "name": f"Uocm:EU-FRANKFURT-1-AD-{n}",
                "id": f"ad-{n}",
                "compartmentId": args.get("compartmentId"),
            }
            for n in (1, 2, 3)
        ]
    }


def _images(args: Mapping[str, Any]) -> dict[str, Any]:
    version = args.get("operatingSystemVersion", "")
    return {
        "images": [
            {
                "id": f"ocid1.image.oc1.eu-frankfurt-1.dryrun-ubuntu-{version}-aarch64-{n}",
                "displayName": f"Canonical-Ubuntu-{version}-aarch64-2026.1{n}.01-0",
                "operatingSystem": args.get("operatingSystem"),
                "operatingSystemVersion": version,
            }
            for n in (1, 0)
        ]
    }


def _vnic_attachments(args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "vnicAttachments": [
            {"vnicId": f"{args.get('instanceId')}-vnic", "instanceId": args.get("instanceId")}
        ]
    }


def _private_ips(args: Mapping[str, Any]) -> dict[str, Any]:
    """A VNIC may hold secondary private IPs, and OCI does not list the primary one first."""
    vnic = args.get("vnicId")
    return {
        "privateIps": [
            {"id": f"{vnic}-secondary-ip", "ipAddress": "10.0.1.11", "isPrimary": False},
            {"id": f"{vnic}-private-ip", "ipAddress": "10.0.1.10", "isPrimary": True},
        ]
    }


def _namespace(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"namespace": "dryrunnamespace"}


_INVOKE_ANSWERS: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "oci:Identity/getAvailabilityDomains:getAvailabilityDomains": _availability_domains,
    "oci:Core/getImages:getImages": _images,
    "oci:Core/getVnicAttachments:getVnicAttachments": _vnic_attachments,
    "oci:Core/getPrivateIps:getPrivateIps": _private_ips,
    "oci:ObjectStorage/getNamespace:getNamespace": _namespace,
}
