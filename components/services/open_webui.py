"""Open WebUI: the chat UI, using LiteLLM (and Pipelines) as OpenAI backends, Ollama off."""

from __future__ import annotations

import pulumi

from components.services import redis as redis_service
from components.services.base import (
    ContainerSpec,
    DataDir,
    Health,
    Service,
    ServiceArgs,
    http_probe,
)
from components.services.litellm import LiteLLM
from components.services.pipelines import Pipelines
from components.services.postgres import Postgres
from components.services.redis import Redis

PORT = 8080
DATABASE = "openwebui"
# Open WebUI joins several OpenAI base URLs, and their keys, with ";".
LIST_SEPARATOR = ";"


class OpenWebUI(Service):
    key = "openWebui"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        postgres, redis = args.peer(Postgres), args.peer(Redis)
        litellm, pipelines = args.peer(LiteLLM), args.optional_peer(Pipelines)
        backends: list[LiteLLM | Pipelines] = [litellm, *([pipelines] if pipelines else [])]
        redis_url = redis.url()
        sentinel = {"HOSTS": redis_service.SENTINEL_HOST, "PORT": str(redis_service.SENTINEL_PORT)}
        self.run(
            ContainerSpec(
                name="open-webui",
                health=Health(
                    http_probe(f"http://127.0.0.1:{PORT}/health", "python"),
                    # The first start migrates the database and downloads embedding models.
                    start_period="600s",
                    wait_timeout=1200,
                ),
                env={
                    "ENABLE_OLLAMA_API": "false",
                    "OPENAI_API_BASE_URLS": LIST_SEPARATOR.join(b.url for b in backends),
                    # Without this, env changes after the first start would be ignored.
                    "ENABLE_PERSISTENT_CONFIG": "false",
                    "ENABLE_WEBSOCKET_SUPPORT": "true",
                    "WEBSOCKET_MANAGER": "redis",
                    **{f"REDIS_SENTINEL_{k}": v for k, v in sentinel.items()},
                    **{f"WEBSOCKET_SENTINEL_{k}": v for k, v in sentinel.items()},
                },
                secret_env={
                    "OPENAI_API_KEYS": pulumi.Output.all(*(b.api_key for b in backends)).apply(
                        LIST_SEPARATOR.join
                    ),
                    "WEBUI_SECRET_KEY": self.generated_secret("secret-key"),
                    "DATABASE_URL": postgres.database_url(DATABASE),
                    "REDIS_URL": redis_url,
                    "WEBSOCKET_REDIS_URL": redis_url,
                },
                data=[DataDir("open-webui", "/app/backend/data")],
                published_port=PORT,
            )
        )
        self.finish()
