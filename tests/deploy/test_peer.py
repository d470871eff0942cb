"""`peer-subscription`: the CA and the statements an off-cloud subscriber runs, the password
only on request, and a clear refusal when the stack has no peer."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from deploy import cli
from deploy.peer import DEFAULT_CA_PATH, PASSWORD_PLACEHOLDER, peer_text
from deploy.ports import OperatorError
from tests.deploy.test_cli import run_module

CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUstand+in\n-----END CERTIFICATE-----\n"
PASSWORD = "peer-Pa55-with'quote"
OUTPUTS: Mapping[str, Any] = {
    "postgresCaCert": CA,
    "postgresPeer": {
        "host": "203.0.113.10",
        "port": 5432,
        "user": "peer",
        "databases": ["litellm", "openwebui"],
        "publication": "ai_swarm",
    },
    "postgresPeerPassword": PASSWORD,
}


def _statements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("CREATE SUBSCRIPTION")]


def test_without_show_secrets_a_placeholder_stands_for_the_password() -> None:
    text = peer_text(OUTPUTS, show_secrets=False, ca_path=DEFAULT_CA_PATH)
    assert "Pa55" not in text
    statements = _statements(text)
    assert len(statements) == 2
    first = statements[0]
    assert first.startswith('CREATE SUBSCRIPTION "ai_swarm_peer_litellm" CONNECTION ')
    for part in (
        "host=''203.0.113.10''",
        "port=''5432''",
        "dbname=''litellm''",
        "user=''peer''",
        "sslmode=''verify-full''",
        f"sslrootcert=''{DEFAULT_CA_PATH}''",
        f"password=''{PASSWORD_PLACEHOLDER}''",
    ):
        assert part in first
    assert first.endswith('PUBLICATION "ai_swarm" WITH (disable_on_error = true);')
    assert "ai_swarm_peer_openwebui" in statements[1] and "dbname=''openwebui''" in statements[1]


def test_show_secrets_puts_the_password_in_the_connection() -> None:
    text = peer_text(OUTPUTS, show_secrets=True, ca_path="/data/ca.pem")
    assert PASSWORD_PLACEHOLDER not in text
    # libpq quoting (\') inside an SQL literal ('')
    assert "password=''peer-Pa55-with\\''quote''" in _statements(text)[0]
    assert "sslrootcert=''/data/ca.pem''" in text


def test_the_ca_certificate_is_printed_whole_as_comments() -> None:
    text = peer_text(OUTPUTS, show_secrets=False, ca_path=DEFAULT_CA_PATH)
    commented = [line.removeprefix("-- ") for line in text.splitlines() if line.startswith("-- ")]
    start = commented.index("-----BEGIN CERTIFICATE-----")
    assert "\n".join(commented[start : start + 3]) + "\n" == CA


@pytest.mark.parametrize("peer", [None, {}])
def test_no_peer_is_refused_naming_the_setting(peer: object) -> None:
    with pytest.raises(
        OperatorError, match=r"no off-cloud peer: set ai-swarm:replica\.externalCidrs"
    ):
        peer_text({**OUTPUTS, "postgresPeer": peer}, show_secrets=False, ca_path=DEFAULT_CA_PATH)


class OutputsStack:
    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def outputs(self) -> Mapping[str, Any]:
        return self._outputs

    def config(self) -> Mapping[str, str]:
        return {}

    def deployed_containers(self, host: str | None = None) -> Sequence[str]:
        return []


def _main(
    monkeypatch: pytest.MonkeyPatch, outputs: Mapping[str, Any], *argv: str
) -> tuple[int, str]:
    monkeypatch.setattr("deploy.peer.open_stack", lambda name, create: OutputsStack(outputs))
    out = io.StringIO()
    code = cli.main(["peer-subscription", *argv], console=Console(file=out, width=300))
    return code, out.getvalue()


def test_the_verb_exits_0_with_the_statements_and_1_without_a_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, text = _main(monkeypatch, OUTPUTS)
    assert code == 0 and len(_statements(text)) == 2 and PASSWORD not in text
    code, text = _main(monkeypatch, {**OUTPUTS, "postgresPeer": None})
    assert code == 1
    assert text.startswith("error: this stack has no off-cloud peer")


def test_the_verb_has_help(tmp_path: Path) -> None:
    shown = run_module("peer-subscription", "--help", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for flag in ("--show-secrets", "--ca-path", "--stack"):
        assert flag in shown.stdout
