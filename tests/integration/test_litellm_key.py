"""Open WebUI's LiteLLM virtual key: the registration program, run by python3 as the host command
runs it, against a stand-in of LiteLLM's key API; its requests checked by LiteLLM's own code.

LiteLLM keeps virtual keys in its database, and its database part cannot run here (the Prisma
query engine it needs is downloaded at first use), so the key API is a stand-in that answers as
`proxy/management_endpoints/key_management_endpoints.py` does (v1.88: /v2/key/info lists the
keys that exist, /key/generate creates one with the caller's `key`, /key/update changes one).
What the program sends is then parsed by the real proxy's request models and its route check
(`GenerateKeyRequest`, `handle_key_type`, `RouteChecks.is_virtual_key_allowed_to_call_route`)
from the LiteLLM virtual environment.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.services import open_webui
from dryrun.engine import ProgramRun
from tests.integration import daemons

MASTER_KEY = "sk-master-0123456789abcdefghijklmnopqrstu"
VIRTUAL_KEY = "sk-virtual-0123456789abcdefghijklmnopqrs"
PYTHON_WITH_LITELLM = daemons.LITELLM_EXECUTABLE.parent / "python"


@dataclass
class KeyApi:
    """What the stand-in saw and holds: requests (path, body) and the keys that exist."""

    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Answers 503 to this many first requests, as LiteLLM does before its database is up.
    unavailable: int = 0


Answer = tuple[int, dict[str, Any]]


def _info(api: KeyApi, body: dict[str, Any]) -> Answer:
    return 200, {"key": body["keys"], "info": [api.keys[k] for k in body["keys"] if k in api.keys]}


def _generate(api: KeyApi, body: dict[str, Any]) -> Answer:
    if body["key"] in api.keys or not body["key"].startswith("sk-"):
        return 400, {"error": "refused"}
    api.keys[body["key"]] = dict(body)
    return 200, {"key": body["key"]}


def _update(api: KeyApi, body: dict[str, Any]) -> Answer:
    if body["key"] not in api.keys:
        return 404, {"error": "no such key"}
    api.keys[body["key"]].update(body)
    return 200, {"key": body["key"]}


ROUTES = {"/v2/key/info": _info, "/key/generate": _generate, "/key/update": _update}


def _answer(api: KeyApi, path: str, authorization: str | None, body: dict[str, Any]) -> Answer:
    api.requests.append((path, body))
    if api.unavailable > 0:
        api.unavailable -= 1
        return 503, {"error": "database not connected"}
    if authorization != f"Bearer {MASTER_KEY}":
        return 401, {"error": "not the master key"}
    route = ROUTES.get(path)
    return route(api, body) if route else (404, {"error": "no such route"})


def _handler(api: KeyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, document = _answer(api, self.path, self.headers.get("Authorization"), body)
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def key_api() -> Iterator[tuple[KeyApi, str]]:
    api = KeyApi()
    server = ThreadingHTTPServer((daemons.LOOPBACK, 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://{daemons.LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def rendered_program(program_run: ProgramRun) -> tuple[str, list[Any]]:
    """The program and its argument, from the registered host command."""
    [registered] = [
        r for r in program_run.registrations if r.name == "openWebui-register-litellm-key"
    ]
    argv = shlex.split(registered.inputs["create"].split("\n", 1)[1])
    assert argv[:6] == ["docker", "exec", "-i", "litellm", "python3", "-c"]
    return argv[6], json.loads(argv[7])


def run_program(rendered: tuple[str, list[Any]], base_url: str) -> subprocess.CompletedProcess[str]:
    """As `docker exec -i litellm python3 -c ...` runs it, but against the stand-in and without
    waiting between attempts; the keys on stdin only."""
    program, args = rendered
    base, alias, key_type, routes, attempts, _ = args
    assert base == open_webui.KEY_API
    local_args = [base_url, alias, key_type, routes, attempts, 0]
    return subprocess.run(
        [sys.executable, "-c", program, json.dumps(local_args)],
        input=json.dumps({"master_key": MASTER_KEY, "key": VIRTUAL_KEY}),
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )


def test_first_run_creates_the_key_once_litellm_answers(
    rendered_program: tuple[str, list[Any]], key_api: tuple[KeyApi, str]
) -> None:
    api, url = key_api
    api.unavailable = 3
    done = run_program(rendered_program, url)
    assert done.returncode == 0, done.stderr
    paths = [path for path, _ in api.requests]
    assert paths == ["/v2/key/info"] * 4 + ["/key/generate"]
    assert api.requests[-1][1] == {
        "key": VIRTUAL_KEY,
        "key_alias": "open-webui",
        "key_type": "llm_api",
        "models": [],
    }
    assert MASTER_KEY not in done.stdout + done.stderr
    assert VIRTUAL_KEY not in done.stdout + done.stderr


def test_a_second_run_keeps_the_key_and_sets_its_routes_again(
    rendered_program: tuple[str, list[Any]], key_api: tuple[KeyApi, str]
) -> None:
    api, url = key_api
    assert run_program(rendered_program, url).returncode == 0
    api.requests.clear()
    done = run_program(rendered_program, url)
    assert done.returncode == 0, done.stderr
    assert [path for path, _ in api.requests] == ["/v2/key/info", "/key/update"]
    assert api.requests[-1][1] == {
        "key": VIRTUAL_KEY,
        "key_alias": "open-webui",
        "allowed_routes": ["llm_api_routes"],
    }
    assert list(api.keys) == [VIRTUAL_KEY]


def test_a_refusal_fails_the_command(
    rendered_program: tuple[str, list[Any]], key_api: tuple[KeyApi, str]
) -> None:
    api, url = key_api
    api.keys["other"] = {}
    program, args = rendered_program
    wrong = subprocess.run(
        [sys.executable, "-c", program, json.dumps([url, *args[1:5], 0])],
        input=json.dumps({"master_key": "sk-not-the-master", "key": VIRTUAL_KEY}),
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )
    assert wrong.returncode != 0
    assert "sk-not-the-master" not in wrong.stdout + wrong.stderr


_LITELLM_CHECK = """
import json, sys
from litellm.proxy._types import GenerateKeyRequest, UpdateKeyRequest, UserAPIKeyAuth
from litellm.proxy.auth.route_checks import RouteChecks
from litellm.proxy.management_endpoints.key_management_endpoints import handle_key_type

generate, update, routes = json.loads(sys.argv[1])
request = GenerateKeyRequest(**generate)
allowed = handle_key_type(request, request.model_dump())["allowed_routes"]
assert UpdateKeyRequest(**update).allowed_routes == allowed, (update, allowed)
token = UserAPIKeyAuth(api_key="hashed", allowed_routes=allowed)
answers = {}
for route in routes:
    try:
        answers[route] = bool(RouteChecks.is_virtual_key_allowed_to_call_route(route, token))
    except Exception:
        answers[route] = False
print(json.dumps({"allowed_routes": allowed, "answers": answers, "models": request.models}))
"""

MODEL_ROUTES = ["/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/v1/models"]
ADMIN_ROUTES = [
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/info",
    "/user/new",
    "/team/new",
    "/model/new",
    "/config/update",
    "/global/spend/reset",
]


def test_litellm_reads_the_key_as_one_that_may_call_models_only(
    rendered_program: tuple[str, list[Any]], key_api: tuple[KeyApi, str]
) -> None:
    api, url = key_api
    assert run_program(rendered_program, url).returncode == 0
    generate = api.requests[-1][1]
    assert run_program(rendered_program, url).returncode == 0
    update = api.requests[-1][1]
    python = daemons.require_program(PYTHON_WITH_LITELLM)
    done = subprocess.run(
        [python, "-c", _LITELLM_CHECK, json.dumps([generate, update, MODEL_ROUTES + ADMIN_ROUTES])],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    assert verdict["allowed_routes"] == ["llm_api_routes"]
    assert verdict["models"] == []  # every model the proxy routes
    assert {route: verdict["answers"][route] for route in MODEL_ROUTES} == dict.fromkeys(
        MODEL_ROUTES, True
    )
    assert {route: verdict["answers"][route] for route in ADMIN_ROUTES} == dict.fromkeys(
        ADMIN_ROUTES, False
    )
