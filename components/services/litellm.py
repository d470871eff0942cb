"""LiteLLM: the OpenAI-compatible gateway to the configured provider models.

Keys: `LITELLM_MASTER_KEY` (`sk-` + random) guards the API and the admin UI; `LITELLM_SALT_KEY`
encrypts the provider credentials LiteLLM stores in Postgres, so it is made once and protected:
a new salt key would make those credentials unreadable.
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
from components.services.render import render_yaml

PORT = 4000
CONFIG_FILE = "/app/config.yaml"
DATABASE = "litellm"


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
            },
        },
        "general_settings": {
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            "database_url": "os.environ/DATABASE_URL",
        },
    }


class LiteLLM(Service):
    # The master key: Open WebUI uses it as its OpenAI API key, admins log in to /ui with it.
    api_key: pulumi.Output[str]
    url: str = f"http://litellm:{PORT}/v1"

    key = "litellm"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        postgres, redis = args.peer(Postgres), args.peer(Redis)
        self.api_key = pulumi.Output.secret(
            pulumi.Output.concat("sk-", self.generated_secret("master-key"))
        )
        salt_key = self.generated_secret("salt-key", protect=True)
        settings = self.context.settings
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
                    "LITELLM_MASTER_KEY": self.api_key,
                    "LITELLM_SALT_KEY": salt_key,
                    "REDIS_PASSWORD": redis.credentials(redis_service.LITELLM_USER).password,
                    **dict(settings.model_api_keys),
                },
                command=["--config", CONFIG_FILE, "--port", str(PORT)],
                uploads=[Upload(CONFIG_FILE, render_yaml(proxy_config(settings.models)))],
                published_port=PORT,
            )
        )
        self.finish()
