"""Vault, served by OpenBao: a server that initialises and unseals itself, and an Agent that
renders LiteLLM's secrets into a file LiteLLM reads.

- Storage is integrated raft on the data volume. The `static` seal wraps the root key with a
  32-byte key from pulumi-random, uploaded into the server container's own filesystem (never
  the data volume): a copy of the volume alone cannot be unsealed, and the server unseals
  itself on every start.
- The `initialize` stanzas in the server config run once, on empty storage: they mount KV v2,
  enable AppRole, write the policies and roles, and OpenBao revokes the root token they used.
  With an auto-unseal, self-initialisation makes no recovery keys either.
- Later writes (LiteLLM's secrets, the Agent's policy and role as this release has them, the
  Agent's secret-id) are remote commands that run `bao` inside the server container as the
  provisioner role, which logs in from the container's own loopback only and may write just
  those. Every value travels on the command's stdin.
- The Agent logs in with AppRole (role-id and secret-id uploaded as 0600 files), from the
  services' network only, and renders LiteLLM's environment file (0640, the Agent's group)
  onto a tmpfs volume LiteLLM mounts read-only; LiteLLM's process is in that group
  (`privileges`), so it reads the file without any capability.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pulumi_random as random

from components.services.base import (
    HOST_LABEL,
    INSTANCE_LABEL,
    ContainerSpec,
    DataDir,
    Health,
    Service,
    ServiceArgs,
    SharedVolume,
    Upload,
    http_probe,
)
from components.services.catalog import NETWORK_SUBNET
from components.services.privileges import PRIVILEGES
from components.services.render import render_env_template, render_json

PORT = 8200
CLUSTER_PORT = 8201
SERVER_NAME = "vault"
AGENT_NAME = "vault-agent"
ADDRESS = f"http://{SERVER_NAME}:{PORT}"
LOCAL_ADDRESS = f"http://127.0.0.1:{PORT}"
# The user the openbao image runs as (uid 100, gid 1000; the privileges table cites the source).
_OPENBAO = PRIVILEGES[SERVER_NAME].runs_as
OPENBAO_UID = str(_OPENBAO.uid)
OPENBAO_GID = str(_OPENBAO.gid)
# The image's entrypoint runs `bao server -config=/openbao/config` (every .hcl/.json file in it).
# Its optional `setcap` and `chown` steps cannot work for a process without capabilities: the
# SKIP_ variables turn them off where the entrypoint still has them. Source: openbao/openbao,
# .release/docker/docker-entrypoint.sh.
CONFIG_DIR = "/openbao/config"
SERVER_CONFIG_FILE = f"{CONFIG_DIR}/server.json"
SKIP_ENTRYPOINT_STEPS = {"SKIP_SETCAP": "true", "SKIP_CHOWN": "true"}
RAFT_DIR = "/openbao/raft"
SEAL_DIR = "/openbao/seal"  # in the container's own filesystem: off the data volume
AGENT_DIR = "/openbao/agent"
AGENT_CONFIG_FILE = f"{AGENT_DIR}/agent.json"
ROLE_ID_FILE = f"{AGENT_DIR}/role-id"
SECRET_ID_FILE = f"{AGENT_DIR}/secret-id"
RENDERED_DIR = "/openbao/rendered"  # the tmpfs volume, in the Agent
LITELLM_ENV_FILE = "litellm.env"
# The Agent re-reads KV v2 secrets this often (they have no lease to watch).
RENDER_INTERVAL = "30s"
# tmpfs mode of the rendered volume and of the file in it: the Agent's user writes, its group
# (which LiteLLM's process joins) reads, nobody else enters.
RENDERED_VOLUME_OPTIONS = f"size=1m,uid={OPENBAO_UID},gid={OPENBAO_GID},mode=0750"
RENDERED_FILE_MODE = "0640"

KV_MOUNT = "kv"
LITELLM_PATH = "ai-swarm/litellm"  # one KV secret per variable under it, field `value`
VALUE_FIELD = "value"
AGENT_ROLE = "litellm-agent"
AGENT_POLICY = "litellm-agent"
PROVISIONER_ROLE = "ai-swarm-provisioner"
PROVISIONER_POLICY = "ai-swarm-provisioner"
LOOPBACK_CIDR = "127.0.0.1/32"
# Where the Agent logs in from: its container's address on the services' network. Its
# secret-id and the tokens it gets are good from there only.
SERVICES_CIDR = str(NETWORK_SUBNET)
# The Agent's secret-id stays good this long after the AppRole step last registered it (each
# run registers it afresh): long past any restart of the Agent, which logs in again with the
# same file, but not forever.
AGENT_SECRET_ID_TTL = "8760h"
# Where the remote commands run `bao`: in the server container, so the provisioner's login
# comes from the container's own loopback. These commands run in SSH sessions opened after the
# host's readiness gate, so the login already carries the docker group.
IN_SERVER = f"docker exec -i {SERVER_NAME} "

# Bump to rotate the seal key: the new key becomes current, the old one stays as previous so
# that the server can still unseal, and the rewrap step then stores the root key wrapped by the
# new key alone. OpenBao does not rewrap by itself here: its post-unseal seal-key upgrade needs
# a recovery key, which self-initialisation does not make (docs/operations.md, "Rotating the
# seal key").
SEAL_KEY_GENERATION = 1
SEAL_KEY_BYTES = 32  # AES-256-GCM, the only key the static seal takes


def seal_key_id(generation: int) -> str:
    return f"ai-swarm-{generation}"


def seal_key_file(generation: int) -> str:
    return f"{SEAL_DIR}/{seal_key_id(generation)}.key"


def kv_data_path(variable: str) -> str:
    """The API path the Agent reads a variable from (KV v2 puts `data/` after the mount)."""
    return f"{KV_MOUNT}/data/{LITELLM_PATH}/{variable}"


def seal_stanza(generation: int) -> dict[str, Any]:
    """The static seal with the current key and, after a rotation, the one before it."""
    stanza = {
        "current_key_id": seal_key_id(generation),
        "current_key": f"file://{seal_key_file(generation)}",
    }
    if generation > 1:
        stanza["previous_key_id"] = seal_key_id(generation - 1)
        stanza["previous_key"] = f"file://{seal_key_file(generation - 1)}"
    return {"static": stanza}


def policy(rules: Mapping[str, Sequence[str]]) -> str:
    """An ACL policy (JSON form) granting `capabilities` on each path."""
    return render_json(
        {"path": {path: {"capabilities": list(caps)} for path, caps in rules.items()}}
    )


def _request(operation: str, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"operation": operation, "path": path, "data": dict(data)}


LITELLM_SECRETS = f"{KV_MOUNT}/data/{LITELLM_PATH}/*"
AGENT_POLICY_PATH = f"sys/policies/acl/{AGENT_POLICY}"
AGENT_ROLE_PATH = f"auth/approle/role/{AGENT_ROLE}"


def agent_policy() -> str:
    """What the Agent may do: read LiteLLM's secrets."""
    return policy({LITELLM_SECRETS: ["read"]})


def agent_role() -> dict[str, Any]:
    """The Agent's AppRole: its secret-id and tokens bound to the services' network, the
    secret-id finite; any number of logins (the Agent logs in again after each restart)."""
    return {
        "role_id": AGENT_ROLE,
        "token_policies": [AGENT_POLICY],
        "secret_id_ttl": AGENT_SECRET_ID_TTL,
        "secret_id_num_uses": 0,
        "secret_id_bound_cidrs": [SERVICES_CIDR],
        "token_bound_cidrs": [SERVICES_CIDR],
        "token_ttl": "1h",
        "token_max_ttl": "4h",
    }


def provisioner_policy() -> str:
    """The provisioner writes LiteLLM's secrets, keeps the Agent's policy and role as this
    release has them (those two paths exactly), manages the Agent's secret-ids and rotates the
    root key; it reads nothing."""
    return policy(
        {
            LITELLM_SECRETS: ["create", "update"],
            AGENT_POLICY_PATH: ["update"],
            AGENT_ROLE_PATH: ["update"],
            f"{AGENT_ROLE_PATH}/custom-secret-id": ["update"],
            f"{AGENT_ROLE_PATH}/secret-id/lookup": ["update"],
            f"{AGENT_ROLE_PATH}/secret-id/destroy": ["update"],
            f"{AGENT_ROLE_PATH}/secret-id": ["list"],
            f"{AGENT_ROLE_PATH}/secret-id-accessor/destroy": ["update"],
            # A new root key is stored wrapped by the current seal key only (seal rotation).
            "sys/rotate/root": ["update", "sudo"],
        }
    )


def initialize_stanzas() -> list[dict[str, Any]]:
    """Self-initialisation, run by the server once on empty storage with a root token that it
    revokes afterwards. Names follow OpenBao's `^[A-Za-z_][A-Za-z0-9_-]*$`. The Agent's policy
    and role are written again by the reconcile step on later `up`s; the provisioner's are
    fixed here for the Vault's life (nothing else may write them)."""
    return [
        {
            "engines": {
                "request": [
                    {"kv": _request("update", f"sys/mounts/{KV_MOUNT}", {"type": "kv-v2"})},
                    {"approle": _request("update", "sys/auth/approle", {"type": "approle"})},
                ]
            }
        },
        {
            "policies": {
                "request": [
                    {
                        "agent_policy": _request(
                            "update", AGENT_POLICY_PATH, {"policy": agent_policy()}
                        )
                    },
                    {
                        "provisioner_policy": _request(
                            "update",
                            f"sys/policies/acl/{PROVISIONER_POLICY}",
                            {"policy": provisioner_policy()},
                        )
                    },
                ]
            }
        },
        {
            "roles": {
                "request": [
                    {"agent_role": _request("update", AGENT_ROLE_PATH, agent_role())},
                    {
                        # No secret-id: only a process inside the server container, whose
                        # loopback this is, can log in, and whoever can do that can read the
                        # seal key anyway.
                        "provisioner_role": _request(
                            "update",
                            f"auth/approle/role/{PROVISIONER_ROLE}",
                            {
                                "role_id": PROVISIONER_ROLE,
                                "bind_secret_id": False,
                                "secret_id_bound_cidrs": [LOOPBACK_CIDR],
                                "token_bound_cidrs": [LOOPBACK_CIDR],
                                "token_policies": [PROVISIONER_POLICY],
                                "token_ttl": "60s",
                                "token_max_ttl": "60s",
                            },
                        )
                    },
                ]
            }
        },
    ]


def server_config(seal_generation: int | None = None) -> dict[str, Any]:
    """Listens inside its container only: no port is published, so only the services' network
    reaches it, in plain HTTP (no TLS on that network yet). mlock does not exist in OpenBao
    2.x, so there is no `disable_mlock` and no IPC_LOCK."""
    return {
        "storage": {"raft": {"path": RAFT_DIR, "node_id": SERVER_NAME}},
        "listener": {"tcp": {"address": f"0.0.0.0:{PORT}", "tls_disable": True}},
        "api_addr": ADDRESS,
        "cluster_addr": f"http://{SERVER_NAME}:{CLUSTER_PORT}",
        "seal": seal_stanza(seal_generation or SEAL_KEY_GENERATION),
        "initialize": initialize_stanzas(),
        "ui": False,
        "log_level": "info",
    }


def agent_config(variables: Sequence[str]) -> dict[str, Any]:
    """AppRole auto-auth from the uploaded files (kept: a restarted Agent logs in again) and one
    template, LiteLLM's environment file. No token sink: nothing else needs the Agent's token."""
    return {
        "vault": {"address": ADDRESS},
        "auto_auth": {
            "method": [
                {
                    "type": "approle",
                    "config": {
                        "role_id_file_path": ROLE_ID_FILE,
                        "secret_id_file_path": SECRET_ID_FILE,
                        "remove_secret_id_file_after_reading": False,
                    },
                }
            ]
        },
        "template_config": {"static_secret_render_interval": RENDER_INTERVAL},
        "template": [
            {
                "destination": f"{RENDERED_DIR}/{LITELLM_ENV_FILE}",
                "contents": render_env_template(
                    {name: kv_data_path(name) for name in variables}, VALUE_FIELD
                ),
                "perms": RENDERED_FILE_MODE,
            }
        ],
    }


def as_provisioner(bao_command: str) -> str:
    """A shell program that logs in as the provisioner and then runs `bao_command` (which may
    read this program's stdin). The short-lived token stays in this process's environment."""
    login = f"bao write -field=token auth/approle/login role_id={PROVISIONER_ROLE}"
    return f'set -eu\nBAO_TOKEN="$({login})"\nexport BAO_TOKEN\n{bao_command}\n'


def in_server(program: str) -> str:
    """The host's script: `program` run by sh inside the server container, stdin passed on."""
    return f"set -eu\n{IN_SERVER}sh -c {shlex.quote(program)}\n"


def kv_put_program(variable: str) -> str:
    """Write stdin, as is, into the variable's KV secret (a new version when it changed)."""
    path = f"{LITELLM_PATH}/{variable}"
    put = f"bao kv put -mount={KV_MOUNT} {path} {VALUE_FIELD}=- >/dev/null"
    return as_provisioner(put)


def rewrap_program() -> str:
    """Rotate the root key: the new one is stored wrapped by the current seal key, so that the
    previous seal key is no longer needed."""
    return as_provisioner("bao write -f sys/rotate/root >/dev/null")


REINITIALISE_HINT = (
    "this Vault's provisioner may not write the Agent's policy and role: it was initialised "
    "before they were kept up to date. Its contents all come from the Pulumi state, so "
    'initialise it again (docs/operations.md: "A Vault made before reconciliation")'
)


def reconcile_program() -> str:
    """Write the Agent's policy and role as this release has them (idempotent: the same text
    written again changes nothing)."""
    writes = [
        (AGENT_POLICY_PATH, {"policy": agent_policy()}),
        (AGENT_ROLE_PATH, agent_role()),
    ]
    hint = shlex.quote(REINITIALISE_HINT)
    return as_provisioner(
        "\n".join(
            f"printf %s {shlex.quote(render_json(data))} | bao write {path} - >/dev/null"
            f" || {{ echo {hint} >&2; exit 1; }}"
            for path, data in writes
        )
    )


def secret_id_program() -> str:
    """Register stdin as the Agent's only secret-id, afresh (a full lifetime from now): the
    value is destroyed and registered again, then every other secret-id of the role, such as
    one this value replaced, is destroyed."""
    role = AGENT_ROLE_PATH
    register = "\n".join(
        [
            'secret_id="$(cat)"',
            f'printf %s "$secret_id" | bao write {role}/secret-id/destroy secret_id=- >/dev/null',
            f'printf %s "$secret_id" | bao write {role}/custom-secret-id secret_id=- >/dev/null',
            f'current="$(printf %s "$secret_id" | bao write -field=secret_id_accessor'
            f' {role}/secret-id/lookup secret_id=-)"',
            f"for accessor in $(bao list -format=json {role}/secret-id | tr -d '[]\",'); do",
            '  [ "$accessor" = "$current" ] ||'
            f' bao write {role}/secret-id-accessor/destroy secret_id_accessor="$accessor"'
            " >/dev/null",
            "done",
        ]
    )
    return as_provisioner(register)


@dataclass(frozen=True)
class RenderedEnv:
    """What a consumer of a rendered file needs: the volume to mount, the file's name in it,
    and the resources that must exist before it starts."""

    volume: docker.Volume
    file_name: str
    ready: Sequence[pulumi.Resource]

    def mount(self, container_path: str) -> SharedVolume:
        return SharedVolume(self.volume, container_path, read_only=True)


class Vault(Service):
    key = "vault"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        seal_uploads = [self._seal_key_upload(g) for g in self._seal_generations()]
        self.server = self.run(
            ContainerSpec(
                name=SERVER_NAME,
                # Fails on 501 (not initialised) and 503 (sealed), as on any other non-2xx.
                health=Health(http_probe(f"{LOCAL_ADDRESS}/v1/sys/health", "wget")),
                # BAO_ADDR serves the `bao` the remote commands run in this container.
                env={"BAO_ADDR": LOCAL_ADDRESS, **SKIP_ENTRYPOINT_STEPS},
                command=["server"],
                uploads=[Upload(SERVER_CONFIG_FILE, render_json(server_config())), *seal_uploads],
                data=[DataDir("vault/raft", RAFT_DIR)],
            )
        )
        self.rendered = docker.Volume(
            f"{name}-rendered",
            name=f"{name}-rendered",
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": RENDERED_VOLUME_OPTIONS},
            labels=[
                docker.VolumeLabelArgs(label=HOST_LABEL, value=self.context.host_key),
                docker.VolumeLabelArgs(label=INSTANCE_LABEL, value=self.context.instance_id),
            ],
            opts=self._child(),
        )
        self._host_step(
            "seal-rewrap",
            in_server(rewrap_program()),
            None,
            [self.server],
            # Needed once per seal key (the rewrapped root key is on the data volume); like
            # every host step it runs again on a new instance too, where it is merely harmless.
            triggers=[self.context.instance_id, seal_key_id(SEAL_KEY_GENERATION)],
        )
        self.finish()

    def _seal_generations(self) -> list[int]:
        return [g for g in (SEAL_KEY_GENERATION - 1, SEAL_KEY_GENERATION) if g >= 1]

    def _seal_key_upload(self, generation: int) -> Upload:
        key = random.RandomBytes(
            f"{self.name}-seal-key-{generation}",
            length=SEAL_KEY_BYTES,
            # A lost seal key makes every byte in Vault unreadable.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        return Upload(
            seal_key_file(generation),
            pulumi.Output.secret(key.base64),
            secret=True,
            owner=OPENBAO_UID,
            group=OPENBAO_GID,
            permissions="0400",
        )

    def _host_step(
        self,
        purpose: str,
        script: str,
        stdin: pulumi.Input[str] | None,
        depends_on: Sequence[pulumi.Resource],
        triggers: Sequence[pulumi.Input[str]] = (),
    ) -> command.remote.Command:
        """A step on the host, any secret on its stdin: redone when its `triggers` (by default
        the instance: a new host) or its stdin change, its output never logged."""
        return command.remote.Command(
            f"{self.name}-{purpose}",
            connection=self.context.connection,
            create=script,
            update=script,
            stdin=None if stdin is None else pulumi.Output.secret(stdin),
            logging=command.remote.Logging.NONE,
            triggers=list(triggers) or [self.context.instance_id],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(depends_on), additional_secret_outputs=["stdout"]
            ),
        )

    def feed_litellm(self, secrets: Mapping[str, pulumi.Input[str]]) -> RenderedEnv:
        """Write LiteLLM's secrets into KV (one resource per variable, so a changed value
        rewrites that one only) and start the Agent that renders them into LiteLLM's file."""
        writes = [
            self._host_step(
                f"kv-{variable}", in_server(kv_put_program(variable)), value, [self.server]
            )
            for variable, value in sorted(secrets.items())
        ]
        # The Agent's policy and role as this release has them, on every Vault: the step runs
        # again whenever their text changes (and on a new host).
        reconcile = self._host_step(
            "agent-reconcile", in_server(reconcile_program()), None, [self.server]
        )
        secret_id = self.generated_secret("agent-secret-id")
        approle = self._host_step(
            "agent-approle", in_server(secret_id_program()), secret_id, [self.server, reconcile]
        )
        rendered_file = f"{RENDERED_DIR}/{LITELLM_ENV_FILE}"
        agent = self.run(
            ContainerSpec(
                name=AGENT_NAME,
                # The file exists once the Agent has logged in and read every secret in it.
                health=Health(["CMD-SHELL", f"test -s {rendered_file}"]),
                env=SKIP_ENTRYPOINT_STEPS,
                command=["agent", f"-config={AGENT_CONFIG_FILE}"],
                uploads=[
                    Upload(AGENT_CONFIG_FILE, render_json(agent_config(sorted(secrets)))),
                    self._agent_file(ROLE_ID_FILE, AGENT_ROLE),
                    self._agent_file(SECRET_ID_FILE, secret_id),
                ],
                volumes=[SharedVolume(self.rendered, RENDERED_DIR)],
                depends_on=[self.server, approle, *writes],
            )
        )
        return RenderedEnv(self.rendered, LITELLM_ENV_FILE, [agent, *writes])

    def _agent_file(self, path: str, content: pulumi.Input[str]) -> Upload:
        return Upload(
            path, content, secret=True, owner=OPENBAO_UID, group=OPENBAO_GID, permissions="0600"
        )
