"""Pipelines: Open WebUI's plugin server, a second OpenAI-style backend. Marked legacy upstream."""

from __future__ import annotations

import pulumi

from components.services.base import (
    ContainerSpec,
    DataDir,
    Health,
    Service,
    ServiceArgs,
    http_probe,
)

PORT = 9099


class Pipelines(Service):
    api_key: pulumi.Output[str]
    url: str = f"http://pipelines:{PORT}"

    key = "pipelines"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        # The image's default key is public; always replace it.
        self.api_key = self.generated_secret("api-key")
        self.run(
            ContainerSpec(
                name="pipelines",
                health=Health(
                    http_probe(f"http://127.0.0.1:{PORT}/", "python"), start_period="60s"
                ),
                secret_env={"PIPELINES_API_KEY": self.api_key},
                data=[DataDir("pipelines", "/app/pipelines")],
            )
        )
        self.finish()
