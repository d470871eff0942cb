"""Open WebUI: the chat UI, using LiteLLM (and Pipelines) as OpenAI backends, Ollama off.

Open WebUI calls LiteLLM with a virtual key of its own that may only call LLM API routes, never
with LiteLLM's master key: whatever runs inside Open WebUI (its tools, functions, pipelines)
could otherwise administer LiteLLM. The key's value is generated here; a command on the host
registers it with LiteLLM's key API once LiteLLM is healthy, reading the master key and the
virtual key from its stdin only.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pulumi
import pulumi_command as command

from components.services import redis as redis_service
from components.services.base import (
    ContainerSpec,
    DataDir,
    Health,
    Service,
    ServiceArgs,
    http_probe,
)
from components.services.litellm import PORT as LITELLM_PORT
from components.services.litellm import LiteLLM
from components.services.pipelines import Pipelines
from components.services.postgres import Postgres
from components.services.redis import Redis

PORT = 8080
DATABASE = "openwebui"
# Open WebUI joins several OpenAI base URLs, and their keys, with ";".
LIST_SEPARATOR = ";"

# LiteLLM's key API (litellm proxy/management_endpoints/key_management_endpoints.py, v1.88):
# POST /v2/key/info {"keys": [...]} lists the keys that exist (admin only); POST /key/generate
# takes a caller-chosen `key` (must start with "sk-"), `key_alias`, `models` ([] = every model)
# and `key_type`: "llm_api" sets `allowed_routes` to ["llm_api_routes"] (handle_key_type), the
# LLM calls (chat, completions, embeddings, ...) and no management, key or admin route; POST
# /key/update sets `allowed_routes` on a key that exists.
KEY_ALIAS = "open-webui"
KEY_TYPE = "llm_api"
KEY_ROUTES = ["llm_api_routes"]
# Inside the LiteLLM container: its own port on loopback.
KEY_API = f"http://127.0.0.1:{LITELLM_PORT}"
# LiteLLM answers /health/liveliness (its healthcheck) before it has reached its database.
KEY_API_ATTEMPTS = 60
KEY_API_WAIT_S = 5

# Runs in the LiteLLM container with its python3; reads {"master_key", "key"} from stdin and
# prints nothing secret (error replies from LiteLLM are not echoed).
_KEY_PROGRAM = """\
import json, sys, time, urllib.error, urllib.request
BASE, ALIAS, KEY_TYPE, ROUTES, ATTEMPTS, WAIT_S = json.loads(sys.argv[1])
given = json.load(sys.stdin)
headers = {"Authorization": "Bearer " + given["master_key"], "Content-Type": "application/json"}


def post(path, body):
    request = urllib.request.Request(BASE + path, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as refused:
        return refused.code, {}


for attempt in range(ATTEMPTS):
    try:
        status, known = post("/v2/key/info", {"keys": [given["key"]]})
    except OSError:
        status, known = None, {}
    if status == 200:
        break
    time.sleep(WAIT_S)
else:
    sys.exit("LiteLLM's key API did not answer /v2/key/info with 200")
if known.get("info"):
    action = "updated"
    body = {"key": given["key"], "key_alias": ALIAS, "allowed_routes": ROUTES}
    status, _ = post("/key/update", body)
else:
    action = "created"
    body = {"key": given["key"], "key_alias": ALIAS, "key_type": KEY_TYPE, "models": []}
    status, _ = post("/key/generate", body)
if status != 200:
    sys.exit(f"virtual key {ALIAS}: LiteLLM answered {status} when it was to be {action}")
print(f"virtual key {ALIAS} {action}")
"""


def key_program_args() -> list[Any]:
    """The program's one argument (JSON): where the key API is and what the key may do."""
    return [KEY_API, KEY_ALIAS, KEY_TYPE, KEY_ROUTES, KEY_API_ATTEMPTS, KEY_API_WAIT_S]


def key_script(container: str) -> str:
    """The host command: the program in the LiteLLM container, its stdin passed through."""
    argv = ["docker", "exec", "-i", container, "python3", "-c", _KEY_PROGRAM]
    return "set -eu\n" + shlex.join([*argv, json.dumps(key_program_args())]) + "\n"


class OpenWebUI(Service):
    key = "openWebui"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        postgres, redis = args.peer(Postgres), args.peer(Redis)
        litellm, pipelines = args.peer(LiteLLM), args.optional_peer(Pipelines)
        # Its own LiteLLM key: `sk-` as LiteLLM requires of a key it is given.
        self.litellm_key: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat("sk-", self.generated_secret("litellm-key"))
        )
        self._register_litellm_key(litellm)
        backend_keys = [self.litellm_key, *([pipelines.api_key] if pipelines else [])]
        backend_urls = [litellm.url, *([pipelines.url] if pipelines else [])]
        # Straight to the master as its own user: it cannot authenticate to the Sentinel (see
        # components/services/redis.py), so no REDIS_/WEBSOCKET_SENTINEL_* is set.
        redis_url = redis.direct_url(redis_service.OPENWEBUI_USER)
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
                    "OPENAI_API_BASE_URLS": LIST_SEPARATOR.join(backend_urls),
                    # Without this, env changes after the first start would be ignored.
                    "ENABLE_PERSISTENT_CONFIG": "false",
                    "ENABLE_WEBSOCKET_SUPPORT": "true",
                    "WEBSOCKET_MANAGER": "redis",
                },
                secret_env={
                    "OPENAI_API_KEYS": pulumi.Output.all(*backend_keys).apply(LIST_SEPARATOR.join),
                    # Protected: Open WebUI signs its sessions with it, and its env.py makes it
                    # the default key of what it encrypts in its database (OAuth tokens).
                    "WEBUI_SECRET_KEY": self.generated_secret("secret-key", protect=True),
                    "DATABASE_URL": postgres.database_url(DATABASE),
                    "REDIS_URL": redis_url,
                    "WEBSOCKET_REDIS_URL": redis_url,
                },
                data=[DataDir("open-webui", "/app/backend/data")],
                published_port=PORT,
            )
        )
        self.finish()

    def _register_litellm_key(self, litellm: LiteLLM) -> command.remote.Command:
        """Registers `litellm_key` with LiteLLM after its container is healthy (`wait=True`),
        again on a new instance, a new LiteLLM container or new keys (it is idempotent: an
        existing key gets its routes set again). The keys travel on stdin only: never in the
        command line or environment of the remote command, and nothing is logged."""
        [container] = litellm.containers
        keys = pulumi.Output.json_dumps({"master_key": litellm.api_key, "key": self.litellm_key})
        secret_keys: pulumi.Output[str] = pulumi.Output.secret(keys)
        script = key_script(litellm.entry.containers[0])
        return command.remote.Command(
            f"{self.name}-register-litellm-key",
            connection=self.context.connection,
            create=script,
            # A new master key (or key value) registers again with the new one.
            update=script,
            stdin=secret_keys,
            logging=command.remote.Logging.NONE,
            triggers=[self.context.instance_id, container.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
