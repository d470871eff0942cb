"""The pack: every policy, in the order the analyzer runs and reports them."""

from __future__ import annotations

from typing import Final

from pulumi_policy import Policy

from .allowance import allowance_policies
from .baseline import (
    container_limits_policy,
    pinned_images_policy,
    protected_data_policy,
)
from .digests import digest_pinned_policy
from .hardening import container_hardening_policy
from .host_budget import host_budget_policies
from .ingress import postgres_bind_policy, public_ingress_policy
from .object_storage import object_storage_policies
from .platforms import image_platforms_policy

PACK_NAME: Final = "ai-swarm"


def build_policies() -> list[Policy]:
    """Every policy of the pack, with its default enforcement level and config schema."""
    return [
        *allowance_policies(),
        *host_budget_policies(),
        container_limits_policy(),
        image_platforms_policy(),
        public_ingress_policy(),
        postgres_bind_policy(),
        container_hardening_policy(),
        protected_data_policy(),
        pinned_images_policy(),
        digest_pinned_policy(),
        *object_storage_policies(),
    ]
