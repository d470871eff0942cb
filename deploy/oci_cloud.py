"""The `Cloud` seam on Oracle's Python SDK, with the stack's own OCI credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import oci  # type: ignore[import-untyped]  # the SDK ships no type hints

from deploy.ports import (
    CloudError,
    InstanceFacts,
    MetricPoint,
    MetricSeries,
    OperatorError,
    VolumeBackupFact,
)

NAMESPACE: Final = "oci_computeagent"

# Pulumi's OCI provider keys and the SDK's config keys they correspond to.
_PROVIDER_KEYS: Final = {
    "oci:userOcid": "user",
    "oci:fingerprint": "fingerprint",
    "oci:tenancyOcid": "tenancy",
    "oci:region": "region",
    "oci:privateKeyPath": "key_file",
    "oci:privateKey": "key_content",
    "oci:privateKeyPassword": "pass_phrase",
}


def sdk_config_from_stack(config: Mapping[str, str]) -> dict[str, str]:
    """The SDK config the stack's provider settings describe (key content included: never print
    the result). Empty values are left out; `oci:configFileProfile` is handled by `connect`."""
    sdk = {sdk_key: config[key] for key, sdk_key in _PROVIDER_KEYS.items() if config.get(key)}
    if "key_file" in sdk and "key_content" in sdk:
        del sdk["key_file"]  # the provider prefers the inline key as well
    return sdk


def connect(config: Mapping[str, str]) -> OciCloud:
    """Clients for the stack's region and credentials (`sdk_config`)."""
    sdk = sdk_config(config)
    try:
        return OciCloud(
            identity=oci.identity.IdentityClient(sdk),
            compute=oci.core.ComputeClient(sdk),
            blockstorage=oci.core.BlockstorageClient(sdk),
            monitoring=oci.monitoring.MonitoringClient(sdk),
            tenancy_id=str(sdk["tenancy"]),
        )
    except oci.exceptions.ClientError as error:  # an unreadable key file or wrong passphrase
        raise OperatorError(f"the stack's OCI API key cannot be used: {error}") from None


def sdk_config(config: Mapping[str, str]) -> dict[str, Any]:
    """The SDK config for the stack's region and credentials: the provider keys in the stack
    config, else the `~/.oci/config` profile `oci:configFileProfile` (or DEFAULT) names."""
    sdk: dict[str, Any] = sdk_config_from_stack(config)
    if "region" not in sdk:
        raise OperatorError("oci:region is not set in the stack config")
    if not {"user", "fingerprint"} <= sdk.keys():
        try:
            from_file: dict[str, Any] = oci.config.from_file(
                profile_name=config.get("oci:configFileProfile") or "DEFAULT"
            )
        except (oci.exceptions.ConfigFileNotFound, oci.exceptions.ProfileNotFound) as error:
            raise OperatorError(
                "the stack config has no OCI API key (oci:userOcid, oci:fingerprint, "
                f"oci:privateKeyPath) and ~/.oci/config gives none: {error}"
            ) from None
        sdk = {**from_file, **sdk}
    try:
        oci.config.validate_config(sdk)
    except oci.exceptions.InvalidConfig as error:
        # InvalidConfig carries a dict of key name -> "missing"/"malformed", never values.
        raise OperatorError(f"the stack's OCI credentials are incomplete: {error}") from None
    return sdk


class OciCloud:
    """`deploy.ports.Cloud` on SDK clients (passed in, so tests can hand fakes that return the
    SDK's own model objects)."""

    def __init__(
        self, identity: Any, compute: Any, blockstorage: Any, monitoring: Any, tenancy_id: str
    ) -> None:
        self._identity = identity
        self._compute = compute
        self._blockstorage = blockstorage
        self._monitoring = monitoring
        self._tenancy_id = tenancy_id

    def availability_domains(self) -> Sequence[str]:
        response = call_sdk(
            "ListAvailabilityDomains", self._identity.list_availability_domains, self._tenancy_id
        )
        return [str(domain.name) for domain in response.data]

    def instance(self, instance_id: str) -> InstanceFacts:
        data = call_sdk("GetInstance", self._compute.get_instance, instance_id).data
        shape = data.shape_config
        bandwidth = getattr(shape, "networking_bandwidth_in_gbps", None)
        return InstanceFacts(
            compartment_id=str(data.compartment_id),
            ocpus=float(getattr(shape, "ocpus", 0) or 0),
            networking_bandwidth_gbps=float(bandwidth) if bandwidth else None,
            shape=str(data.shape or ""),
        )

    def volume_backups(self, volume_id: str) -> Sequence[VolumeBackupFact]:
        volume = call_sdk("GetVolume", self._blockstorage.get_volume, volume_id).data
        response = call_sdk(
            "ListVolumeBackups",
            self._blockstorage.list_volume_backups,
            volume.compartment_id,
            volume_id=volume_id,
            sort_by="TIMECREATED",
            sort_order="DESC",
        )
        return [
            VolumeBackupFact(
                display_name=str(backup.display_name),
                created=backup.time_created,
                lifecycle_state=str(backup.lifecycle_state),
                kind=str(backup.type),
            )
            for backup in response.data
        ]

    def metric_series(
        self, compartment_id: str, query: str, start: datetime, end: datetime
    ) -> Sequence[MetricSeries]:
        details = oci.monitoring.models.SummarizeMetricsDataDetails(
            namespace=NAMESPACE, query=query, start_time=start, end_time=end
        )
        response = call_sdk(
            "SummarizeMetricsData",
            self._monitoring.summarize_metrics_data,
            compartment_id,
            details,
        )
        return [
            MetricSeries(
                name=str(item.name),
                dimensions={str(k): str(v) for k, v in (item.dimensions or {}).items()},
                points=tuple(
                    MetricPoint(timestamp=point.timestamp, value=float(point.value))
                    for point in item.aggregated_datapoints or ()
                ),
            )
            for item in response.data
        ]


def call_sdk(operation: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an SDK method; its `ServiceError` (and transport errors) become `CloudError`."""
    try:
        return method(*args, **kwargs)
    except oci.exceptions.ServiceError as error:
        raise CloudError(f"{operation}: {error.status} {error.code}: {error.message}") from None
    except (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout) as error:
        raise CloudError(f"{operation}: {type(error).__name__}: {error}") from None
