"""Config validation: every bad value stops the program before a single resource exists."""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ai_swarm_policies.contract import INSTANCE
from components.config import ConfigError
from dryrun.engine import (
    PLACEHOLDER_CONFIG,
    PLACEHOLDER_SECRETS,
    PROJECT_DIR,
    ProgramError,
    ProgramRun,
    run_program,
    stack_config,
)


def _shape(run: ProgramRun) -> tuple[float, float]:
    shape_config = run.one(INSTANCE).inputs["shapeConfig"]
    return shape_config["ocpus"], shape_config["memoryInGbs"]


def test_default_profile_is_todays_free_allowance(always_free_run: ProgramRun) -> None:
    assert always_free_run.outputs["profile"] == "always-free"
    assert _shape(always_free_run) == (2, 12)


def test_a1_4x24_profile_is_named_and_larger(a1_4x24_run: ProgramRun) -> None:
    assert a1_4x24_run.outputs["profile"] == "a1-4x24"
    assert _shape(a1_4x24_run) == (4, 24)


def test_explicit_sizes_override_the_profile() -> None:
    run = run_program(overrides={"profile": "a1-4x24", "ocpus": "1", "memoryGb": "6"})
    assert _shape(run) == (1, 6)


def test_volume_sizes_default_and_override() -> None:
    run = run_program(overrides={"bootVolumeGb": "60", "dataVolumeGb": "100"})
    instance = run.one(INSTANCE).inputs
    assert instance["sourceDetails"]["bootVolumeSizeInGbs"] == "60"
    assert run.one("oci:Core/volume:Volume").inputs["sizeInGbs"] == "100"


def test_availability_domain_by_index_and_by_name() -> None:
    by_index = run_program(overrides={"availabilityDomain": "3"})
    by_name = run_program(overrides={"availabilityDomain": "Uocm:EU-FRANKFURT-1-AD-2"})
    assert by_index.one(INSTANCE).inputs["availabilityDomain"] == "Uocm:EU-FRANKFURT-1-AD-3"
    assert by_name.one(INSTANCE).inputs["availabilityDomain"] == "Uocm:EU-FRANKFURT-1-AD-2"


def test_admin_cidrs_accept_a_json_list_and_comma_separated_text() -> None:
    as_list = run_program(overrides={"adminCidrs": '["203.0.113.0/28", "10.0.0.0/8"]'})
    as_text = run_program(overrides={"adminCidrs": "203.0.113.0/28, 10.0.0.0/8"})
    sources = {
        rule["source"]
        for run in (as_list, as_text)
        for rule in run.one("oci:Core/securityList:SecurityList").inputs["ingressSecurityRules"]
        if rule["protocol"] == "6"
    }
    assert sources == {"203.0.113.0/28", "10.0.0.0/8"}


def test_compartment_defaults_to_the_tenancy_and_can_be_set(always_free_run: ProgramRun) -> None:
    assert always_free_run.one(INSTANCE).inputs["compartmentId"].startswith("ocid1.tenancy.")
    other = "ocid1.compartment.oc1..aaaaexample"
    run = run_program(overrides={"compartmentOcid": other})
    # IAM (the off-site dumps' dynamic group and policies) lives in the tenancy itself.
    iam = [r for r in run.registrations if r.type.startswith("oci:Identity/")]
    assert {r.inputs["compartmentId"] for r in iam} == {"ocid1.tenancy.oc1..dryrunplaceholder"}
    others = [r for r in run.registrations if r.custom and r not in iam]
    assert {r.inputs.get("compartmentId") for r in others} == {
        other,
        None,  # resources without a compartment (the readiness command)
    }


KEY_PUBLIC_BODY = "AAAAC3NzaC1lZDI1NTE5AAAAIFZfmMJyhNh42eSvwaHisUoMUb6t/zYTmFTfXWBFRU+L"

# (key, value set, the bad value as the message shows it, what the message says is allowed)
BAD_VALUES = [
    ("profile", "free", "'free'", "always-free, a1-4x24"),
    ("ocpus", "two", "'two'", "a whole number from 1 to 80"),
    ("ocpus", "0", "'0'", "a whole number from 1 to 80"),
    ("ocpus", "81", "'81'", "a whole number from 1 to 80"),
    ("ocpus", "1.5", "'1.5'", "a whole number from 1 to 80"),
    ("memoryGb", "129", "'129'", "a whole number from 2 to 128"),  # 2 OCPUs x 1..64 GB
    ("memoryGb", "1", "'1'", "a whole number from 2 to 128"),
    ("memoryGb", "lots", "'lots'", "a whole number from 2 to 128"),
    ("bootVolumeGb", "49", "'49'", "a whole number from 50 to 32768"),
    ("dataVolumeGb", "10", "'10'", "a whole number from 50 to 32768"),
    ("adminCidrs", '["10.0.0.300/32"]', "'10.0.0.300/32'", "a CIDR with no host bits set"),
    ("adminCidrs", '["198.51.100.7/24"]', "'198.51.100.7/24'", "a CIDR with no host bits set"),
    ("adminCidrs", '["0.0.0.0/0"]', "'0.0.0.0/0'", "narrower than the whole internet"),
    ("adminCidrs", "::/0", "'::/0'", "narrower than the whole internet"),
    ("adminCidrs", "", "''", "required"),
    ("adminCidrs", '["198.51.100.7/32", 5]', "5]", "a list of the CIDRs"),
    # The whole internet in pieces, and IPv6 on a VCN without IPv6 (it would admit nobody).
    ("adminCidrs", '["0.0.0.0/1", "128.0.0.0/1"]', "'0.0.0.0/1'", "IPv4 range of /8 or narrower"),
    ("adminCidrs", '["10.0.0.0/7"]', "'10.0.0.0/7'", "IPv4 range of /8 or narrower"),
    ("adminCidrs", '["::/1", "8000::/1"]', "'::/1'", "IPv6 range of /32 or narrower"),
    ("adminCidrs", '["2001:db8::/64"]', "'2001:db8::/64'", "the VCN has no IPv6"),
    ("vcnCidr", "10.0.0.0/15", "'10.0.0.0/15'", "a network from /16 to /30"),
    ("vcnCidr", "10.0.0.0/31", "'10.0.0.0/31'", "a network from /16 to /30"),
    ("vcnCidr", "172.30.0.0/16", "'172.30.0.0/16'", "apart from 172.30.0.0/24"),
    ("availabilityDomain", "\u00b2", "'\u00b2'", "a 1-based index from 1 to 3"),
    ("sshPublicKey", "not-a-key", "'not-a-key'", "an OpenSSH public key line"),
    ("sshPublicKey", f"ssh-rsa {KEY_PUBLIC_BODY}", "'ssh-rsa AAAA", "a whole key of its type"),
    ("sshPublicKey", "ssh-ed25519 %%%notbase64", "%%%notbase64", "a whole key of its type"),
    ("sshPublicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "AAAAC3Nz", "a whole key of its type"),
    ("sshPublicKey", "", "''", "an OpenSSH public key line"),
    ("availabilityDomain", "4", "'4'", "a 1-based index from 1 to 3"),
    ("availabilityDomain", "0", "'0'", "a 1-based index from 1 to 3"),
    ("availabilityDomain", "Uocm:NOWHERE-AD-1", "NOWHERE", "a 1-based index from 1 to 3"),
    ("hostName", "Swarm_A1", "'Swarm_A1'", "lowercase letters"),
    ("subnetCidr", "10.1.0.0/24", "'10.1.0.0/24'", "inside vcnCidr 10.0.0.0/16"),
    ("subnetCidr", "10.0.1.0/29", "'10.0.1.0/29'", "a network of /28 or larger"),
    ("vcnCidr", "10.0.0.0/33", "'10.0.0.0/33'", "an IPv4 network"),
    ("compartmentOcid", "my-compartment", "'my-compartment'", "an OCID"),
    ("oci:tenancyOcid", "", "''", "required"),
    ("oci:region", "", "''", "required"),
    ("oci:region", "Frankfurt", "'Frankfurt'", "e.g. eu-frankfurt-1"),
]


@pytest.mark.parametrize(("key", "value", "shown", "allowed"), BAD_VALUES)
def test_bad_value_is_rejected_before_any_resource(
    key: str, value: str, shown: str, allowed: str
) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(overrides={key: value})
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    qualified = key if ":" in key else f"ai-swarm:{key}"
    assert error.key == qualified
    message = str(error)
    assert message.startswith(f"config {qualified}: ")
    assert shown in message
    assert allowed in message
    assert failure.value.registrations == ()


def test_memory_limits_follow_the_ocpu_count() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(overrides={"ocpus": "1", "memoryGb": "65"})
    assert "a whole number from 1 to 64" in str(failure.value.cause)
    assert run_program(overrides={"ocpus": "1", "memoryGb": "64"}).one(INSTANCE)


SECRET_KEYS = ("ai-swarm:sshPrivateKey", "ai-swarm:modelApiKeys", "oci:privateKey")


def test_committed_stack_files_hold_no_secret() -> None:
    for path in PROJECT_DIR.glob("Pulumi.*.yaml"):
        config = stack_config(path.stem.removeprefix("Pulumi."))
        text = path.read_text()
        assert "secure:" not in text, path.name
        assert not set(config) & set(SECRET_KEYS), path.name


def _other_key() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def _with_passphrase() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


PLACEHOLDER_PRIVATE_KEY = PLACEHOLDER_SECRETS["ai-swarm:sshPrivateKey"]

# (the private key, set with --secret, and what the message says is allowed)
BAD_PRIVATE_KEYS = [
    ("", "an OpenSSH private key without a passphrase"),
    (PLACEHOLDER_PRIVATE_KEY[: len(PLACEHOLDER_PRIVATE_KEY) // 2], "without a passphrase"),
    ("not a key at all", "an OpenSSH private key"),
    (_with_passphrase(), "without a passphrase"),
    (_other_key(), "the private half of ai-swarm:sshPublicKey, but they do not match"),
]


@pytest.mark.parametrize(("value", "allowed"), BAD_PRIVATE_KEYS)
def test_private_key_must_parse_and_match_the_public_key(value: str, allowed: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(secrets={"sshPrivateKey": value})
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert error.key == "ai-swarm:sshPrivateKey"
    message = str(error)
    assert message.startswith("config ai-swarm:sshPrivateKey: <secret, not shown> ")
    assert allowed in message
    assert not any(line in message for line in value.splitlines() if len(line) > 8)
    assert failure.value.registrations == ()


def test_private_key_set_without_secret_is_refused_with_the_command_that_fixes_it() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(overrides={"sshPrivateKey": PLACEHOLDER_PRIVATE_KEY + "\n"})
    message = str(failure.value.cause)
    assert "pulumi config set --secret ai-swarm:sshPrivateKey" in message
    assert "PRIVATE KEY" not in message
    assert failure.value.registrations == ()


def test_an_rsa_key_pair_in_pem_is_accepted() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    run = run_program(
        overrides={"sshPublicKey": f"{public} me@laptop"}, secrets={"sshPrivateKey": private}
    )
    metadata = run.one(INSTANCE).inputs["metadata"]
    assert metadata["ssh_authorized_keys"] == f"{public} me@laptop"


# A value that holds a control character would start a line of its own in the env or YAML file
# it is written to (LiteLLM's env file, its config.yaml, cloud-init), or steer a terminal.
CONTROL_VALUES = ["a\nb", "\x00", "\x1b[2J", "a\rb", "a\tb", "a\x7fb", "a\x85b", "a\u2028b"]


def _json(value: object) -> str:
    return json.dumps(value)


# (the key as set, its value around the bad text, the key the error names, set with --secret)
# Every plain key, and every kind of place in a structured one: a string field, a list entry, a
# field name.
CONTROL_CASES: list[tuple[str, Callable[[str], str], str, bool]] = [
    *(
        (name, lambda bad: bad, name if ":" in name else f"ai-swarm:{name}", False)
        for name in (
            "oci:region",
            "oci:tenancyOcid",
            "compartmentOcid",
            "profile",
            "ocpus",
            "memoryGb",
            "bootVolumeGb",
            "dataVolumeGb",
            "availabilityDomain",
            "hostName",
            "vcnCidr",
            "subnetCidr",
            "adminCidrs",
            "sshPublicKey",
            "sshIdentityFile",
            "exposeUis",
        )
    ),
    ("adminCidrs", lambda bad: _json(["10.0.0.0/8", bad]), "ai-swarm:adminCidrs[1]", False),
    (
        "services",
        lambda bad: _json({"redis": {"image": bad}}),
        "ai-swarm:services.redis.image",
        False,
    ),
    ("services", lambda bad: _json({bad: {}}), "ai-swarm:services", False),
    (
        "models",
        lambda bad: _json([{"name": "m", "model": "openai/m", "apiBase": bad}]),
        "ai-swarm:models[0].apiBase",
        False,
    ),
    ("models", lambda bad: _json([{"name": bad, "model": "x"}]), "ai-swarm:models[0].name", False),
    ("backups", lambda bad: _json({"period": bad}), "ai-swarm:backups.period", False),
    (
        "replica",
        lambda bad: _json({"enabled": True, "externalCidrs": [bad]}),
        "ai-swarm:replica.externalCidrs[0]",
        False,
    ),
    (
        "modelApiKeys",
        lambda bad: _json({"OPENAI_API_KEY": f"sk-{bad}"}),
        "ai-swarm:modelApiKeys.OPENAI_API_KEY",
        True,
    ),
    ("modelApiKeys", lambda bad: _json({bad: "sk-x"}), "ai-swarm:modelApiKeys", True),
]


@pytest.mark.parametrize("bad", CONTROL_VALUES, ids=ascii)
@pytest.mark.parametrize(
    ("key", "value", "named", "secret"), CONTROL_CASES, ids=[case[2] for case in CONTROL_CASES]
)
def test_a_control_character_in_any_value_is_refused_naming_the_key(
    key: str, value: Callable[[str], str], named: str, secret: bool, bad: str
) -> None:
    given = {key: value(bad)}
    with pytest.raises(ProgramError) as failure:
        run_program(overrides=None if secret else given, secrets=given if secret else None)
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert error.key == named
    message = str(error)
    assert "without control characters" in message
    assert message.isprintable()  # one line, nothing a terminal would act on
    if secret:
        assert "<secret, not shown>" in message
        assert "sk-" not in message
    assert failure.value.registrations == ()


@pytest.mark.parametrize("bad", [c for c in CONTROL_VALUES if c not in ("a\nb", "a\rb")])
def test_a_private_key_keeps_its_line_breaks_and_nothing_else(bad: str) -> None:
    head, tail = PLACEHOLDER_PRIVATE_KEY.split("\n", 1)
    with pytest.raises(ProgramError) as failure:
        run_program(secrets={"sshPrivateKey": f"{head}\n{bad}\n{tail}"})
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert error.key == "ai-swarm:sshPrivateKey"
    assert "without control characters" in str(error)
    assert "PRIVATE KEY" not in str(error)
    assert failure.value.registrations == ()


def test_surrounding_line_breaks_are_dropped_not_refused() -> None:
    """`cat key.pub | pulumi config set ai-swarm:sshPublicKey` keeps the file's last newline."""
    public = PLACEHOLDER_CONFIG["ai-swarm:sshPublicKey"]
    run = run_program(overrides={"sshPublicKey": f"{public}\n", "hostName": "\tswarm-b1\r\n"})
    metadata = run.one(INSTANCE).inputs["metadata"]
    assert metadata["ssh_authorized_keys"] == public
    assert run.one(INSTANCE).inputs["displayName"] == "swarm-b1"


def test_every_key_the_program_reads_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases above cover every key the program reads: a new key needs a case of its own."""
    read: set[str] = set()
    original = pulumi.Config.get

    def spy(config: pulumi.Config, name: str, default: str | None = None) -> str | None:
        read.add(config.full_key(name))
        return original(config, name, default)

    monkeypatch.setattr(pulumi.Config, "get", spy)
    run_program()
    covered = {key if ":" in key else f"ai-swarm:{key}" for key, *_ in CONTROL_CASES}
    assert read - covered == {"ai-swarm:sshPrivateKey"}  # checked by the test above
    assert "ai-swarm:models" in read  # the spy sees the structured keys too
