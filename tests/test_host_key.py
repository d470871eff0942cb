"""The host's SSH host key: made in the stack, installed by cloud-init, pinned by every remote
command from the first contact on."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ai_swarm_policies.contract import REMOTE_COMMAND
from dryrun.engine import ProgramRun, run_program
from tests.helpers import INSTANCE, user_data

TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"


def _installed_public_key(run: ProgramRun) -> str:
    """The public half of the host key cloud-init installs, worked out from the private half."""
    keys = user_data(run)["ssh_keys"]
    private = serialization.load_ssh_private_key(keys["ed25519_private"].encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert keys["ed25519_public"].split() == public.decode().split()
    return public.decode()


def test_every_remote_command_pins_the_host_key_cloud_init_installs(
    always_free_run: ProgramRun,
) -> None:
    installed = _installed_public_key(always_free_run)
    commands = always_free_run.of_type(REMOTE_COMMAND)
    assert len(commands) > 5  # the readiness gate, host settings, Vault's steps, ...
    for registration in commands:
        host_key = registration.inputs["connection"].get("hostKey")
        assert isinstance(host_key, str), registration.name
        assert host_key.split() == installed.split(), registration.name


def test_cloud_init_installs_that_key_alone() -> None:
    """The image's host keys are deleted and no other is made (cc_ssh generates none when
    `ssh_keys` is given): the server has no other key to offer."""
    document = user_data(run_program())
    assert document["ssh_deletekeys"] is True
    assert set(document["ssh_keys"]) == {"ed25519_private", "ed25519_public"}
    assert "ssh_genkeytypes" not in document


def test_the_host_key_is_protected_and_travels_as_a_secret(always_free_run: ProgramRun) -> None:
    key = always_free_run.one(TLS_PRIVATE_KEY)
    assert key.inputs["algorithm"] == "ED25519"
    assert key.protect  # a new key would change the user data, which replaces the instance
    assert "metadata.user_data" in always_free_run.one(INSTANCE).secret_paths
