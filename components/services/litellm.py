"""LiteLLM: the OpenAI-compatible gateway to the configured provider models.

Keys: `LITELLM_MASTER_KEY` (`sk-` + random) guards the API and the admin UI; `LITELLM_SALT_KEY`
encrypts the provider credentials LiteLLM stores in Postgres, so it is made once and protected:
a new salt key would make those credentials unreadable.

Those two and the provider API keys live in Vault, never in the container's environment: the
Vault Agent renders them into a file on a tmpfs volume this container mounts read-only. The
container's entrypoint waits for that file, exports its lines, runs the image's own entrypoint,
and exits when the file changes, so that its restart policy starts LiteLLM with the new values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from components.config import ModelRoute
from components.services import redis as redis_service
from components.services.base import (
    ContainerSpec,
    Health,
    Service,
    ServiceArgs,
    Upload,
    http_probe,
)
from components.services.postgres import Postgres
from components.services.redis import Redis
from components.services.render import render_env_runner, render_yaml
from components.services.vault import Vault

PORT = 4000
CONFIG_FILE = "/app/config.yaml"
DATABASE = "litellm"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
SALT_KEY_ENV = "LITELLM_SALT_KEY"
SECRETS_DIR = "/run/ai-swarm/vault"  # the Agent's tmpfs volume, read-only here
# The image's entrypoint (WORKDIR /app), which ends in `exec litellm "$@"`; the process runs as
# root without capabilities and reads the Agent's 0640 file as a member of the Agent's group
# (privileges). Source: BerriAI/litellm, Dockerfile (ENTRYPOINT ["docker/prod_entrypoint.sh"],
# USER root) and docker/prod_entrypoint.sh.
IMAGE_ENTRYPOINT = "docker/prod_entrypoint.sh"
# After a reboot the Agent renders the file again once Vault has unsealed itself.
ENV_FILE_WAIT_S = 120
ENV_FILE_POLL_S = 5


def model_list(routes: Sequence[ModelRoute]) -> list[dict[str, Any]]:
    """`model_list` entries; API keys are `os.environ/<NAME>` references, never values."""
    entries = []
    for route in routes:
        params: dict[str, Any] = {"model": route.model}
        if route.api_key_env:
            params["api_key"] = f"os.environ/{route.api_key_env}"
        if route.api_base:
            params["api_base"] = route.api_base
        entries.append({"model_name": route.name, "litellm_params": params})
    return entries


def proxy_config(routes: Sequence[ModelRoute]) -> dict[str, Any]:
    """config.yaml: models, the Redis cache found through Sentinel, secrets from the env."""
    return {
        "model_list": model_list(routes),
        "litellm_settings": {
            "cache": True,
            "cache_params": {
                "type": "redis",
                "service_name": redis_service.MASTER_NAME,
                "sentinel_nodes": [[redis_service.SENTINEL_HOST, redis_service.SENTINEL_PORT]],
                # Its own ACL user, on the master and on the Sentinel alike: litellm's
                # `_redis.py` sends the Sentinels the master's arguments (username included)
                # with `sentinel_password` as the password. Since v1.88 `password` reaches the
                # Sentinel-discovered master.
                "username": redis_service.LITELLM_USER,
                "password": "os.environ/REDIS_PASSWORD",
                "sentinel_password": "os.environ/REDIS_PASSWORD",
                # Every key under "litellm:", the only keys its Redis user may touch.
                "namespace": redis_service.LITELLM_KEY_PREFIX,
            },
        },
        "general_settings": {
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
            "database_url": "os.environ/DATABASE_URL",
        },
    }


class LiteLLM(Service):
    # The master key: admins log in to /ui with it, and Open WebUI's virtual key is made with it.
    api_key: pulumi.Output[str]
    url: str = f"http://litellm:{PORT}/v1"

    key = "litellm"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        postgres, redis, vault = args.peer(Postgres), args.peer(Redis), args.peer(Vault)
        self.api_key = pulumi.Output.secret(
            pulumi.Output.concat("sk-", self.generated_secret("master-key"))
        )
        salt_key = self.generated_secret("salt-key", protect=True)
        settings = self.context.settings
        secrets = {
            MASTER_KEY_ENV: self.api_key,
            SALT_KEY_ENV: salt_key,
            **dict(settings.model_api_keys),
        }
        env_file = vault.feed_litellm(secrets)
        runner = render_env_runner(
            f"{SECRETS_DIR}/{env_file.file_name}",
            IMAGE_ENTRYPOINT,
            sorted(secrets),
            wait_s=ENV_FILE_WAIT_S,
            poll_s=ENV_FILE_POLL_S,
        )
        self.run(
            ContainerSpec(
                name="litellm",
                health=Health(
                    http_probe(f"http://127.0.0.1:{PORT}/health/liveliness", "python"),
                    # The first start applies the Prisma schema migrations to Postgres.
                    start_period="180s",
                    wait_timeout=600,
                ),
                env={"LITELLM_MODE": "PRODUCTION"},
                secret_env={
                    "DATABASE_URL": postgres.database_url(DATABASE),
                    "REDIS_PASSWORD": redis.credentials(redis_service.LITELLM_USER).password,
                },
                # "$0" names the script in its messages; the command is its "$@".
                entrypoint=["/bin/sh", "-c", runner, "litellm-env"],
                command=["--config", CONFIG_FILE, "--port", str(PORT)],
                uploads=[Upload(CONFIG_FILE, render_yaml(proxy_config(settings.models)))],
                volumes=[env_file.mount(SECRETS_DIR)],
                published_port=PORT,
                depends_on=env_file.ready,
            )
        )
        self.finish()
