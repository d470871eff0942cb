"""The replica's wiring under mocks: Postgres on the A1 and its replica on the Micro, TLS made by
pulumi-tls, the roles' passwords, the outputs; and nothing of it without `ai-swarm:replica`.

The mocked cloud makes real keys and certificates (dryrun/tls_mocks.py), so the checks below
read them with `cryptography` as a client would.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from components import replication
from components.config import ConfigError
from components.services.catalog import CATALOG
from dryrun import tls_mocks
from dryrun.engine import SECRET, ProgramRun, Registration, run_program
from dryrun.replacements import plan
from tests.services.readers import (
    COMMAND,
    CONTAINER,
    PASSWORD,
    REMOTE_IMAGE,
    container,
    directives,
    upload,
)

PEER_CIDR = "198.51.100.0/28"
A1_PRIVATE_IP = "10.0.1.10"
MICRO_PRIVATE_IP = "10.0.1.11"
WITH_PEER = {"enabled": True, "externalCidrs": [PEER_CIDR]}
# A replica needs a data volume of at most 100 GB on the A1 (the free 200 GB).
SMALL_VOLUME = {"dataVolumeGb": "100"}
SERVER_CERT = "tls:index/locallySignedCert:LocallySignedCert"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"


def replica_run(settings: dict[str, Any] | None = None) -> ProgramRun:
    return run_program(overrides={"replica": json.dumps(settings or WITH_PEER), **SMALL_VOLUME})


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return replica_run()


@pytest.fixture(scope="module")
def micro_only_run() -> ProgramRun:
    return replica_run({"enabled": True})


def server_settings(registration: Registration) -> dict[str, str]:
    command = registration.inputs["command"]
    assert command[0] == "postgres"
    assert command[1::2] == ["-c"] * (len(command) // 2)
    return dict(arg.split("=", 1) for arg in command[2::2])


def provider_name(registration: Registration) -> str:
    return registration.provider.rsplit("::", 1)[0].rsplit("::", 1)[1]


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


# --- the primary --------------------------------------------------------------------------------


def test_the_primary_runs_logical_wal_and_tls_with_the_files_it_is_given(run: ProgramRun) -> None:
    postgres = container(run, "postgres")
    settings = server_settings(postgres)
    assert settings["wal_level"] == "logical"
    assert settings["ssl"] == "on"
    # The server reads the certificate and key at the paths the container is given them.
    cert = certificate(upload(postgres, settings["ssl_cert_file"]))
    key = serialization.load_pem_private_key(
        upload(postgres, settings["ssl_key_file"]).encode(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()


def test_the_primarys_key_file_is_the_postgres_users_and_private(run: ProgramRun) -> None:
    postgres = container(run, "postgres")
    settings = server_settings(postgres)
    [key_upload] = [u for u in postgres.inputs["uploads"] if u["file"] == settings["ssl_key_file"]]
    # uid/gid 70: the postgres user of the alpine image, which the container runs as.
    assert (key_upload["owner"], key_upload["group"], key_upload["permissions"]) == (
        "70",
        "70",
        "0600",
    )
    assert postgres.inputs["user"] == "70:70"
    assert "uploads" in postgres.secret_paths


def test_postgres_is_published_on_the_a1s_private_address_only(run: ProgramRun) -> None:
    ports = container(run, "postgres").inputs["ports"]
    assert ports == [{"ip": A1_PRIVATE_IP, "internal": 5432, "external": 5432}]
    for registration in run.of_type(CONTAINER):
        for port in registration.inputs.get("ports", []):
            assert port["ip"] not in ("0.0.0.0", "", "::"), registration.name


def test_hba_admits_the_replicator_from_the_micro_and_the_peer_from_its_cidr_over_tls(
    run: ProgramRun,
) -> None:
    rules = directives(upload(container(run, "postgres"), "/etc/postgresql/pg_hba.conf"))
    subscribers = [rule for rule in rules if rule[2] in ("replicator", "peer")]
    assert sorted(subscribers) == sorted(
        [
            *(
                ["hostssl", db, "replicator", f"{MICRO_PRIVATE_IP}/32", "scram-sha-256"]
                for db in ("litellm", "openwebui")
            ),
            *(
                ["hostssl", db, "peer", PEER_CIDR, "scram-sha-256"]
                for db in ("litellm", "openwebui")
            ),
        ]
    )


def test_without_external_cidrs_no_peer_line_and_no_peer_password(
    micro_only_run: ProgramRun,
) -> None:
    rules = directives(upload(container(micro_only_run, "postgres"), "/etc/postgresql/pg_hba.conf"))
    assert [rule for rule in rules if rule[2] == "peer"] == []
    assert micro_only_run.outputs["postgresPeer"] is None
    assert micro_only_run.outputs["postgresPeerPassword"] is None
    assert {r.name for r in micro_only_run.of_type(PASSWORD)} >= {"postgres-replication-replicator"}
    assert "postgres-replication-peer" not in {r.name for r in micro_only_run.of_type(PASSWORD)}


# --- the replica --------------------------------------------------------------------------------


def test_the_replica_runs_postgres_image_on_the_micro_for_amd64(run: ProgramRun) -> None:
    replica = container(run, replication.REPLICA_CONTAINER)
    assert provider_name(replica) == "replica-docker"
    images = {r.name: r for r in run.of_type(REMOTE_IMAGE)}
    image = images["replica-postgresReplica-image"]
    assert provider_name(image) == "replica-docker"
    assert image.inputs["platform"] == "linux/amd64"
    assert image.inputs["name"] == images["postgres-image"].inputs["name"]
    assert images["postgres-image"].inputs["platform"] == "linux/arm64"
    assert replica.property_dependencies["image"] == (image.urn,)


def test_the_replica_follows_an_override_of_postgres_image() -> None:
    image = "postgres:15.15-alpine"
    run = run_program(
        overrides={
            "replica": json.dumps({"enabled": True}),
            "services": json.dumps({"postgres": {"image": image}}),
            **SMALL_VOLUME,
        }
    )
    pulled = {r.name: r.inputs["name"] for r in run.of_type(REMOTE_IMAGE)}
    assert pulled["replica-postgresReplica-image"] == pulled["postgres-image"] == image


def test_the_replica_is_small_publishes_nothing_and_keeps_its_data_on_the_micro(
    run: ProgramRun,
) -> None:
    replica = container(run, replication.REPLICA_CONTAINER)
    settings = server_settings(replica)
    assert settings["shared_buffers"] == "64MB"
    assert int(settings["max_connections"]) <= 20
    assert replica.inputs.get("ports", []) == []
    mounts = {m["target"]: m["source"] for m in replica.inputs["mounts"]}
    assert mounts == {"/var/lib/postgresql/data": "/mnt/data/postgres-replica"}
    # The Micro's allocation, within its 1 GB.
    assert replica.inputs["memory"] <= 512
    # It trusts the stack's CA, at the path its subscriptions name.
    ca = certificate(upload(replica, replication.SUBSCRIBER_CA_FILE))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_services_config_refuses_the_replica() -> None:
    with pytest.raises(Exception) as refused:
        run_program(overrides={"services": json.dumps({"postgresReplica": {"enabled": True}})})
    cause = getattr(refused.value, "cause", refused.value)
    assert isinstance(cause, ConfigError)
    assert cause.key == "ai-swarm:services.postgresReplica"
    assert "ai-swarm:replica.enabled" in str(cause)


def test_the_catalog_names_the_replica_container_as_the_replication_module_does() -> None:
    assert CATALOG["postgresReplica"].containers == (replication.REPLICA_CONTAINER,)


# --- TLS ----------------------------------------------------------------------------------------


def test_the_server_certificate_names_both_addresses_and_chains_to_the_ca(
    run: ProgramRun,
) -> None:
    cert = certificate(upload(container(run, "postgres"), replication.PRIMARY_TLS_CERT_FILE))
    ca = certificate(run.outputs["postgresCaCert"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(A1_PRIVATE_IP),
        ipaddress.ip_address(run.outputs["publicIp"]),
    }
    cert.verify_directly_issued_by(ca)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    # The replica trusts exactly the CA the outputs hand to an off-cloud peer.
    replica_ca = upload(
        container(run, replication.REPLICA_CONTAINER), replication.SUBSCRIBER_CA_FILE
    )
    assert replica_ca == run.outputs["postgresCaCert"]


def test_certificates_renew_well_before_they_end(run: ProgramRun) -> None:
    for type_, most in ((SERVER_CERT, 2 * 365), (CA_CERT, 10 * 365)):
        inputs = run.one(type_).inputs
        validity = timedelta(hours=inputs["validityPeriodHours"])
        early = timedelta(hours=inputs["earlyRenewalHours"])
        assert validity <= timedelta(days=most)
        # An `up` at least a month before the end renews; half the life is still used.
        assert timedelta(days=30) <= early <= validity / 2, type_


@pytest.fixture
def renewed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ProgramRun]]:
    """A second run in which the certificate of one type was made again (as pulumi-tls does
    within its early renewal window): a new serial and validity, the same inputs."""
    real = tls_mocks.certificate_outputs

    def rerun(renewed_type: str) -> ProgramRun:
        def renewing(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
            return real(type_, f"{name}-renewed" if type_ == renewed_type else name, inputs)

        monkeypatch.setattr(tls_mocks, "certificate_outputs", renewing)
        try:
            return replica_run()
        finally:
            monkeypatch.setattr(tls_mocks, "certificate_outputs", real)

    yield rerun


def _replaced_names(before: ProgramRun, after: ProgramRun) -> set[str]:
    urns = after.by_urn()
    return {urns[urn].name for urn in plan(before, after).replaced}


def test_a_renewed_server_certificate_replaces_the_primary_only(
    run: ProgramRun, renewed: Callable[[str], ProgramRun]
) -> None:
    after = renewed(SERVER_CERT)
    assert (
        container(after, "postgres").inputs["uploads"]
        != container(run, "postgres").inputs["uploads"]
    )
    replaced = _replaced_names(run, after)
    assert "postgres-postgres" in replaced
    assert "replica-postgresReplica-postgres-replica" not in replaced
    assert after.outputs["postgresCaCert"] == run.outputs["postgresCaCert"]


def test_a_renewed_ca_keeps_its_key_and_reaches_both_hosts(
    run: ProgramRun, renewed: Callable[[str], ProgramRun]
) -> None:
    after = renewed(CA_CERT)
    old_ca = certificate(run.outputs["postgresCaCert"])
    new_ca = certificate(after.outputs["postgresCaCert"])
    assert new_ca.serial_number != old_ca.serial_number
    assert new_ca.public_key() == old_ca.public_key()
    # The new server certificate verifies against the old CA file still held by a peer.
    new_server = certificate(
        upload(container(after, "postgres"), replication.PRIMARY_TLS_CERT_FILE)
    )
    new_server.verify_directly_issued_by(old_ca)
    replaced = _replaced_names(run, after)
    assert {
        "postgres-replication-tls-server",
        "postgres-postgres",
        "replica-postgresReplica-postgres-replica",
    } <= replaced


# --- secrets and outputs ------------------------------------------------------------------------


def test_keys_and_passwords_stay_secret(run: ProgramRun) -> None:
    assert run.outputs["postgresPeerPassword"] is SECRET
    server = run.one(SERVER_CERT)
    assert "caPrivateKeyPem" in server.secret_paths
    # The CA certificate is public: a peer needs it in the clear.
    assert run.outputs["postgresCaCert"].startswith("-----BEGIN CERTIFICATE-----")


def test_the_peer_output_names_the_public_address_and_the_publication(run: ProgramRun) -> None:
    assert run.outputs["postgresPeer"] == {
        "host": run.outputs["publicIp"],
        "port": 5432,
        "user": replication.PEER,
        "databases": list(replication.DATABASES),
        "publication": replication.PUBLICATION,
    }


def test_without_the_replica_nothing_is_added(always_free_run: ProgramRun) -> None:
    for name in ("postgresCaCert", "postgresPeer", "postgresPeerPassword"):
        assert always_free_run.outputs[name] is None
    postgres = container(always_free_run, "postgres")
    assert "wal_level" not in server_settings(postgres)
    assert postgres.inputs.get("ports", []) == []
    assert not [
        r
        for r in always_free_run.registrations
        if r.type.startswith("tls:index/") and r.type != "tls:index/privateKey:PrivateKey"
    ]


# --- the reconcile steps ------------------------------------------------------------------------


def _step(run: ProgramRun, name: str) -> Registration:
    return run.one(COMMAND, f"postgres-replication-{name}")


def _names(run: ProgramRun, urns: tuple[str, ...]) -> set[str]:
    by_urn = run.by_urn()
    return {by_urn[urn].name for urn in urns}


def test_the_primarys_step_runs_on_the_a1_after_postgres_and_the_migrating_applications(
    run: ProgramRun,
) -> None:
    step = _step(run, "primary")
    assert step.inputs["connection"]["host"] == run.outputs["publicIp"]
    assert {"postgres-postgres", "litellm-litellm", "openWebui-open-webui"} <= _names(
        run, step.dependencies
    )
    # A new container (an image bump that migrated a database) runs it again.
    ids = {run.ids[container(run, name).urn] for name in ("postgres", "litellm", "open-webui")}
    assert ids <= set(step.inputs["triggers"])


def test_the_subscribers_step_runs_on_the_micro_after_the_replica_and_the_primarys_step(
    run: ProgramRun,
) -> None:
    step = _step(run, "subscriber")
    assert step.inputs["connection"]["host"] == run.outputs["replica"]["publicIp"]
    assert {"replica-postgresReplica-postgres-replica", "postgres-replication-primary"} <= (
        _names(run, step.dependencies)
    )
    assert run.ids[_step(run, "primary").urn] in step.inputs["triggers"]


def test_the_passwords_travel_on_the_steps_stdin_only(run: ProgramRun) -> None:
    replicator, peer, rest = _step(run, "primary").inputs["stdin"].split("\n")
    assert rest == ""
    # Two values the generators made, one for each role.
    assert replicator != peer
    assert {replicator, peer} <= set(run.generated)
    assert _step(run, "subscriber").inputs["stdin"] == f"{replicator}\n"
    for name in ("primary", "subscriber"):
        assert "stdin" in _step(run, name).secret_paths
    for registration in run.registrations:
        for path, text in _leaves(registration.inputs, ""):
            if replicator in text or peer in text:
                assert (registration.type, path) == (COMMAND, "stdin"), registration.name
    assert run.outputs["postgresPeerPassword"] is SECRET


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)


def test_without_the_replica_no_step_and_no_timer(always_free_run: ProgramRun) -> None:
    names = {r.name for r in always_free_run.registrations}
    assert not {n for n in names if n.startswith("postgres-replication")}
    scripts = " ".join(str(c.inputs.get("create")) for c in always_free_run.of_type(COMMAND))
    assert "ai-swarm-pg-publication" not in scripts
    assert "ai-swarm-pg-subscription" not in scripts


def test_the_replicas_generated_values_and_what_protects_them(run: ProgramRun) -> None:
    """None is protected, so that turning the replica off deletes all of it: the replica's
    superuser password lives as long as the Micro's data directory, the roles' passwords are
    set again by every step, and a new key or certificate only replaces the containers that
    hold it."""
    added = {
        r.name: r.protect
        for r in run.registrations
        if r.type.startswith(("random:", "tls:"))
        and (r.name.startswith("postgres-replication") or r.name.startswith("replica-"))
    }
    assert added == {
        "replica-ssh-host-key": False,
        "replica-postgresReplica-superuser": False,
        "postgres-replication-replicator": False,
        "postgres-replication-peer": False,
        "postgres-replication-tls-ca-key": False,
        "postgres-replication-tls-ca": False,
        "postgres-replication-tls-server-key": False,
        "postgres-replication-tls-server-request": False,
        "postgres-replication-tls-server": False,
    }


def test_the_replica_needs_postgres() -> None:
    with pytest.raises(Exception) as refused:
        run_program(
            overrides={
                "replica": json.dumps({"enabled": True}),
                "services": json.dumps(
                    {name: {"enabled": False} for name in ("postgres", "litellm", "openWebui")}
                ),
                **SMALL_VOLUME,
            }
        )
    cause = getattr(refused.value, "cause", refused.value)
    assert isinstance(cause, ConfigError)
    assert cause.key == "ai-swarm:replica.enabled"
    assert "ai-swarm:services.postgres.enabled" in str(cause)
