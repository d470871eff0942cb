"""The OCI adapter on fake SDK clients that answer with the SDK's own model objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import oci  # type: ignore[import-untyped]
import pytest

from deploy.oci_cloud import OciCloud, connect, sdk_config_from_stack
from deploy.ports import CloudError, OperatorError
from tests.deploy.fakes import Response, fixture_text, sdk_models

VOLUME_ID = "ocid1.volume.oc1.eu-frankfurt-1.abthelvolume"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy"


class FakeIdentity:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def list_availability_domains(self, compartment_id: str) -> Response:
        self.asked.append(compartment_id)
        body = json.loads(fixture_text("monitoring/list_availability_domains.json"))
        return Response(sdk_models(body, "list[AvailabilityDomain]", "identity"))


class FakeBlockstorage:
    def __init__(self) -> None:
        self.list_kwargs: dict[str, Any] = {}

    def get_volume(self, volume_id: str) -> Response:
        return Response(
            sdk_models(json.loads(fixture_text("monitoring/get_volume.json")), "Volume")
        )

    def list_volume_backups(self, compartment_id: str, **kwargs: Any) -> Response:
        self.list_kwargs = {"compartment_id": compartment_id, **kwargs}
        body = json.loads(fixture_text("monitoring/list_volume_backups.json"))
        return Response(sdk_models(body, "list[VolumeBackup]"))


class RefusingCompute:
    def get_instance(self, instance_id: str) -> Response:
        raise oci.exceptions.ServiceError(
            404,
            "NotAuthorizedOrNotFound",
            {},
            "Authorization failed or requested resource not found.",
        )


def make(**clients: Any) -> OciCloud:
    parts: dict[str, Any] = {
        "identity": None,
        "compute": None,
        "blockstorage": None,
        "monitoring": None,
    }
    parts.update(clients)
    return OciCloud(tenancy_id=TENANCY, **parts)


def test_availability_domains_are_listed_for_the_tenancy_in_order() -> None:
    identity = FakeIdentity()
    names = make(identity=identity).availability_domains()
    assert names == [
        "Uocm:EU-FRANKFURT-1-AD-1",
        "Uocm:EU-FRANKFURT-1-AD-2",
        "Uocm:EU-FRANKFURT-1-AD-3",
    ]
    assert identity.asked == [TENANCY]


def test_volume_backups_are_listed_newest_first_in_the_volumes_compartment() -> None:
    blockstorage = FakeBlockstorage()
    backups = make(blockstorage=blockstorage).volume_backups(VOLUME_ID)
    assert blockstorage.list_kwargs == {
        "compartment_id": "ocid1.compartment.oc1..aaaaaaaacompartment",
        "volume_id": VOLUME_ID,
        "sort_by": "TIMECREATED",
        "sort_order": "DESC",
    }
    assert [b.display_name for b in backups][:2] == [
        "swarm-a1-data-weekly-20261129",
        "swarm-a1-data-weekly-20261122",
    ]
    assert backups[1].created == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert (backups[0].lifecycle_state, backups[2].kind) == ("CREATING", "FULL")


def test_a_service_error_names_the_operation_status_and_code() -> None:
    with pytest.raises(CloudError) as raised:
        make(compute=RefusingCompute()).instance("ocid1.instance.oc1..x")
    assert str(raised.value) == (
        "GetInstance: 404 NotAuthorizedOrNotFound: Authorization failed or requested resource "
        "not found."
    )


def test_stack_config_maps_to_sdk_config_preferring_the_inline_key() -> None:
    config = {
        "oci:region": "eu-frankfurt-1",
        "oci:tenancyOcid": TENANCY,
        "oci:userOcid": "ocid1.user.oc1..aaaaaaaauser",
        "oci:fingerprint": "12:34",
        "oci:privateKeyPath": "~/.oci/key.pem",
        "oci:privateKey": "-----BEGIN PRIVATE KEY-----",
        "ai-swarm:sshPrivateKey": "not an OCI key",
    }
    assert sdk_config_from_stack(config) == {
        "region": "eu-frankfurt-1",
        "tenancy": TENANCY,
        "user": "ocid1.user.oc1..aaaaaaaauser",
        "fingerprint": "12:34",
        "key_content": "-----BEGIN PRIVATE KEY-----",
    }


def test_connect_without_a_region_says_so() -> None:
    with pytest.raises(OperatorError, match="oci:region"):
        connect({"oci:tenancyOcid": TENANCY})


def test_incomplete_credentials_are_reported_without_their_values(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nMIIEsecretbody\n-----END PRIVATE KEY-----"
    config = {
        "oci:region": "eu-frankfurt-1",
        "oci:userOcid": "ocid1.user.oc1..aaaaaaaauser",
        "oci:fingerprint": "not-a-fingerprint",
        "oci:privateKey": secret,
    }
    with pytest.raises(OperatorError) as raised:
        connect(config)
    message = str(raised.value)
    assert "tenancy" in message
    assert "secretbody" not in message
