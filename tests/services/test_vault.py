"""Vault as OpenBao: raft on the data volume, a static seal key off it, self-initialisation with
no root token left, LiteLLM's secrets written on stdin, and an Agent that renders them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.services import vault as vault_service
from components.services.base import INSTANCE_LABEL
from dryrun.engine import ProgramRun, Registration
from tests.services.conftest import MODEL_API_KEYS, WITH_MODELS
from tests.services.readers import (
    COMMAND,
    REMOTE_IMAGE,
    container,
    depends_on,
    env,
    instance_id,
    label,
    owner,
    run_with,
    upload,
)

RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
VOLUME = "docker:index/volume:Volume"
LITELLM_VARIABLES = {"LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", *MODEL_API_KEYS}


# How every Vault host step starts, as the host's shell sees it.
IN_THE_SERVER = "set -eu\ndocker exec -i vault sh -c '"


def _json(run: ProgramRun, name: str, path: str) -> dict[str, Any]:
    document = json.loads(upload(container(run, name), path))
    assert isinstance(document, dict)
    return document


def _server_config(run: ProgramRun) -> dict[str, Any]:
    return _json(run, "vault", "/openbao/config/server.json")


def _upload_entry(registration: Registration, path: str) -> dict[str, Any]:
    [found] = [u for u in registration.inputs["uploads"] if u["file"] == path]
    assert isinstance(found, dict)
    return found


def _kv_writes(run: ProgramRun) -> dict[str, Registration]:
    prefix = "vault-kv-"
    return {
        c.name.removeprefix(prefix): c for c in run.of_type(COMMAND) if c.name.startswith(prefix)
    }


def test_server_is_openbao_in_server_mode_on_raft(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    image = free_run.one(REMOTE_IMAGE, "vault-image")
    assert image.inputs["name"] == "openbao/openbao:2.7.2"
    assert vault.inputs["command"] == ["server"]  # the image's default is a dev server
    config = _server_config(free_run)
    assert config["storage"] == {"raft": {"path": "/openbao/raft", "node_id": "vault"}}
    assert config["listener"] == {"tcp": {"address": "0.0.0.0:8200", "tls_disable": True}}
    assert config["api_addr"] == "http://vault:8200"
    assert "disable_mlock" not in config  # OpenBao 2.x has no mlock; `false` is fatal there
    assert "IPC_LOCK" not in vault.inputs.get("capabilities", {}).get("adds", [])
    # The image runs as `openbao`: its entrypoint's setcap and chown would fail.
    assert {"SKIP_SETCAP": "true", "SKIP_CHOWN": "true"}.items() <= env(vault).items()


def test_raft_directory_is_on_the_data_volume_owned_by_openbao(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    mounts = [m for m in vault.inputs["mounts"] if m["target"] == "/openbao/raft"]
    assert mounts == [{"type": "bind", "source": "/mnt/data/vault/raft", "target": "/openbao/raft"}]
    [made] = [c for c in free_run.of_type(COMMAND) if c.name == "vault-vault-data-dirs"]
    script = made.inputs["create"]
    assert script.index("mkdir -p /mnt/data/vault/raft") < script.index(
        "chown 100:1000 /mnt/data/vault/raft"
    )


def test_listener_is_reachable_on_the_services_network_only(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    assert vault.inputs.get("ports", []) == []
    assert vault.inputs["networksAdvanced"][0]["aliases"] == ["vault"]


def test_seal_key_is_random_protected_and_secret(free_run: ProgramRun) -> None:
    [key] = free_run.of_type(RANDOM_BYTES)
    assert key.inputs["length"] == 32
    assert key.protect
    assert "keepers" not in key.inputs
    assert owner(free_run, key).type == "ai-swarm:service:Vault"
    assert free_run.generated  # the mock made it, so a leak of its value is findable


def test_seal_key_is_a_0400_file_of_openbao_off_the_data_volume(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    seal = _server_config(free_run)["seal"]["static"]
    assert seal["current_key_id"] == "ai-swarm-1"
    assert "previous_key" not in seal
    path = seal["current_key"].removeprefix("file://")
    entry = _upload_entry(vault, path)
    assert (entry["owner"], entry["group"], entry["permissions"]) == ("100", "1000", "0400")
    assert not any(path.startswith(m["target"]) for m in vault.inputs["mounts"])
    assert "uploads" in vault.secret_paths
    [key] = free_run.of_type(RANDOM_BYTES)
    assert key.urn in vault.property_dependencies["uploads"]


def test_rotation_keeps_the_previous_key_with_its_own_id() -> None:
    seal = vault_service.seal_stanza(2)["static"]
    assert (seal["current_key_id"], seal["previous_key_id"]) == ("ai-swarm-2", "ai-swarm-1")
    assert seal["current_key"] != seal["previous_key"]
    assert seal["previous_key"] == f"file://{vault_service.seal_key_file(1)}"


def _requests(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """The self-initialisation requests by name."""
    return {
        name: request
        for stanza in _server_config(run)["initialize"]
        for (block,) in [stanza.values()]
        for item in block["request"]
        for name, request in item.items()
    }


def test_self_initialisation_sets_up_kv_approle_and_policies(free_run: ProgramRun) -> None:
    requests = _requests(free_run)
    assert requests["kv"]["path"] == "sys/mounts/kv"
    assert requests["kv"]["data"] == {"type": "kv-v2"}
    assert requests["approle"]["data"] == {"type": "approle"}
    agent_policy = json.loads(requests["agent_policy"]["data"]["policy"])
    assert agent_policy == {"path": {"kv/data/ai-swarm/litellm/*": {"capabilities": ["read"]}}}
    provisioner = requests["provisioner_role"]["data"]
    assert provisioner["bind_secret_id"] is False
    assert provisioner["secret_id_bound_cidrs"] == provisioner["token_bound_cidrs"]
    assert provisioner["token_bound_cidrs"] == ["127.0.0.1/32"]
    provisioner_policy = json.loads(requests["provisioner_policy"]["data"]["policy"])["path"]
    assert "read" not in {c for rule in provisioner_policy.values() for c in rule["capabilities"]}
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name) for name in requests)


def test_no_step_initialises_by_hand_or_handles_a_root_token(free_run: ProgramRun) -> None:
    scripts = [c.inputs["create"] for c in free_run.of_type(COMMAND)]
    forbidden_words = ("operator init", "generate-root", "root_token", "unseal", "token create")
    for forbidden in (*forbidden_words, "VAULT_TOKEN"):
        assert not any(forbidden in s for s in scripts), forbidden
    assert "initialize" in _server_config(free_run)
    assert not [name for name in free_run.outputs if "recovery" in name.lower()]


def test_health_means_initialised_and_unsealed_and_rendered(free_run: ProgramRun) -> None:
    # No uninitcode/sealedcode overrides: 501 and 503 fail the probe.
    probe = container(free_run, "vault").inputs["healthcheck"]["tests"]
    assert probe == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8200/v1/sys/health"]
    agent_probe = container(free_run, "vault-agent").inputs["healthcheck"]["tests"]
    assert agent_probe == ["CMD-SHELL", "test -s /openbao/rendered/litellm.env"]


def test_one_kv_write_per_litellm_variable_on_stdin_logged_nowhere(free_run: ProgramRun) -> None:
    writes = _kv_writes(free_run)
    assert set(writes) == LITELLM_VARIABLES
    for variable, write in writes.items():
        # What the host runs: the program in the server container, stdin passed on (the
        # programs themselves run against the real bao in tests/integration/test_vault.py).
        assert write.inputs["create"].startswith(IN_THE_SERVER)
        assert write.inputs["update"] == write.inputs["create"]
        assert f"ai-swarm/litellm/{variable} value=-" in write.inputs["create"]
        assert "stdin" in write.secret_paths
        assert write.inputs["logging"] == "none"
        assert write.inputs["triggers"] == [instance_id(free_run)]
        assert depends_on(free_run, write) == {"vault"}
    for variable, value in MODEL_API_KEYS.items():
        assert writes[variable].inputs["stdin"] == value


def test_changing_one_provider_key_changes_only_its_write(free_run: ProgramRun) -> None:
    changed = {**MODEL_API_KEYS, "OPENAI_API_KEY": "sk-test-openai-rotated-000000000000"}
    run = run_with(WITH_MODELS, secrets={"modelApiKeys": json.dumps(changed)})
    before, after = _kv_writes(free_run), _kv_writes(run)
    differing = {v for v in before if before[v].inputs != after[v].inputs}
    assert differing == {"OPENAI_API_KEY"}
    assert after["OPENAI_API_KEY"].inputs["stdin"] == changed["OPENAI_API_KEY"]
    # The Agent's config names variables only: it is the same.
    agent_before, agent_after = container(free_run, "vault-agent"), container(run, "vault-agent")
    config = vault_service.AGENT_CONFIG_FILE
    assert upload(agent_before, config) == upload(agent_after, config)


def test_agent_secret_id_is_registered_on_stdin(free_run: ProgramRun) -> None:
    approle = free_run.one(COMMAND, "vault-agent-approle")
    assert approle.inputs["create"].startswith(IN_THE_SERVER)
    assert "stdin" in approle.secret_paths
    assert approle.inputs["logging"] == "none"
    assert approle.inputs["triggers"] == [instance_id(free_run)]
    agent = container(free_run, "vault-agent")
    secret_id = _upload_entry(agent, "/openbao/agent/secret-id")
    assert approle.inputs["stdin"] == secret_id["content"]
    for path in ("/openbao/agent/secret-id", "/openbao/agent/role-id"):
        entry = _upload_entry(agent, path)
        assert (entry["owner"], entry["group"], entry["permissions"]) == ("100", "1000", "0600")
    assert _upload_entry(agent, "/openbao/agent/role-id")["content"] == "litellm-agent"


def test_agent_renders_litellms_file_with_approle(free_run: ProgramRun) -> None:
    agent = container(free_run, "vault-agent")
    vault = container(free_run, "vault")
    assert agent.property_dependencies["image"] == vault.property_dependencies["image"]
    assert agent.inputs["command"] == ["agent", "-config=/openbao/agent/agent.json"]
    config = _json(free_run, "vault-agent", "/openbao/agent/agent.json")
    assert config["vault"] == {"address": "http://vault:8200"}
    [method] = config["auto_auth"]["method"]
    assert method["type"] == "approle"
    assert method["config"]["role_id_file_path"] == "/openbao/agent/role-id"
    assert method["config"]["secret_id_file_path"] == "/openbao/agent/secret-id"
    assert method["config"]["remove_secret_id_file_after_reading"] is False
    assert "sink" not in config["auto_auth"]
    [template] = config["template"]
    assert template["destination"] == "/openbao/rendered/litellm.env"
    assert template["perms"] == "0640"
    for variable in LITELLM_VARIABLES:
        assert f'secret "kv/data/ai-swarm/litellm/{variable}"' in template["contents"]
        assert f"{variable}={{{{ .Data.data.value }}}}" in template["contents"]
    # The Agent starts once Vault holds every value it renders.
    waits_for = {free_run.by_urn()[urn].name for urn in agent.dependencies}
    writes = {f"vault-kv-{variable}" for variable in LITELLM_VARIABLES}
    assert {"vault-vault", "vault-agent-approle", *writes} <= waits_for


def test_rendered_file_lives_on_a_tmpfs_volume_of_this_instance(free_run: ProgramRun) -> None:
    volume = free_run.one(VOLUME, "vault-rendered")
    assert volume.inputs["driverOpts"]["type"] == "tmpfs"
    assert "uid=100" in volume.inputs["driverOpts"]["o"]
    assert "mode=0750" in volume.inputs["driverOpts"]["o"]
    assert label(volume, INSTANCE_LABEL) == instance_id(free_run)
    agent = container(free_run, "vault-agent")
    assert {"type": "volume", "source": "vault-rendered", "target": "/openbao/rendered"} in [
        {k: m[k] for k in ("type", "source", "target")} for m in agent.inputs["mounts"]
    ]
    assert depends_on(free_run, agent) == {"vault"}


def test_seal_rewrap_runs_once_per_seal_key_as_the_provisioner(free_run: ProgramRun) -> None:
    rewrap = free_run.one(COMMAND, "vault-seal-rewrap")
    assert rewrap.inputs["create"].startswith(IN_THE_SERVER)
    assert "bao write -f sys/rotate/root" in rewrap.inputs["create"]
    assert "role_id=ai-swarm-provisioner" in rewrap.inputs["create"]
    # Again for a new seal key; a new instance reruns it like every host step (harmlessly).
    assert rewrap.inputs["triggers"] == [instance_id(free_run), "ai-swarm-1"]
    assert "stdin" not in rewrap.inputs
    assert depends_on(free_run, rewrap) == {"vault"}
    policy = json.loads(_requests(free_run)["provisioner_policy"]["data"]["policy"])["path"]
    assert policy["sys/rotate/root"] == {"capabilities": ["update", "sudo"]}


def test_a_new_agent_policy_in_a_later_release_reruns_the_reconcile_step(
    free_run: ProgramRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's script holds the policy and role it writes: a release that changes either
    changes the script, and pulumi-command runs `update` on a changed script (an in-place
    update), so the next `up` brings every existing Vault to them."""
    reconcile = free_run.one(COMMAND, "vault-agent-reconcile")
    assert reconcile.inputs["create"] == reconcile.inputs["update"]
    urns = free_run.by_urn()
    approle = free_run.one(COMMAND, "vault-agent-approle")
    assert reconcile.urn in approle.dependencies  # the role is current before its secret-id
    assert {urns[u].name for u in reconcile.dependencies} >= {"vault-vault"}
    monkeypatch.setattr(
        vault_service, "agent_policy", lambda: vault_service.policy({"kv/data/x/*": ["read"]})
    )
    later = run_with().one(COMMAND, "vault-agent-reconcile")
    assert later.inputs["create"] != reconcile.inputs["create"]
    assert later.inputs["triggers"] == reconcile.inputs["triggers"]  # updated, not replaced
