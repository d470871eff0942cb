"""TLS for PostgreSQL replication: a CA of the stack's own and the primary's server certificate.

The replica on the Micro connects to the A1's private address, an off-cloud peer to its
reserved public address (OCI's 1:1 NAT hands that traffic to the private one): the server
certificate names both as IP subject alternative names, so `sslmode=verify-full` holds for
either. Every key is made by pulumi-tls and kept in the state; its PEM is a secret Output.

Renewal. pulumi-tls plans a replacement of a certificate once it is within its
`early_renewal_hours` of the end of its `validity_period_hours` (hashicorp/terraform-provider-tls
internal/provider/common_cert.go @ 1f1283d7, `modifyPlanIfCertificateReadyForRenewal`, run by
every plan). Nothing renews between two `pulumi up`s: an `up` inside the window makes the new
certificate, the primary's container is replaced with the new files (a changed upload forces
a replacement) and the subscriptions reconnect. The CA's renewal keeps its key (the key is a
resource of its own), so the new CA certificate has the same subject and key: a server
certificate verifies against the old and the new one alike, and a peer's old CA file keeps
working until that old certificate's own end. The server certificate follows any CA change
(a changed `ca_cert_pem` replaces it). A new address (a new reserved IP) makes a new request
and so a new certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
HOURS_PER_DAY = 24
# The CA: ten years, renewed by any `up` in its last year.
CA_VALIDITY_HOURS = 10 * 365 * HOURS_PER_DAY
CA_EARLY_RENEWAL_HOURS = 365 * HOURS_PER_DAY
# The server certificate: two years, renewed by any `up` in its last 60 days.
SERVER_VALIDITY_HOURS = 2 * 365 * HOURS_PER_DAY
SERVER_EARLY_RENEWAL_HOURS = 60 * HOURS_PER_DAY
CA_COMMON_NAME = "ai-swarm PostgreSQL CA"
ORGANIZATION = "ai-swarm"
CA_USES = ("cert_signing", "crl_signing", "digital_signature")
SERVER_USES = ("digital_signature", "key_encipherment", "server_auth")


@dataclass(frozen=True)
class PostgresTlsArgs:
    # The A1's fixed private address (what the Micro connects to) and its reserved public one
    # (what an off-cloud peer connects to).
    private_ip: str
    public_ip: pulumi.Input[str]


class PostgresTls(pulumi.ComponentResource):
    """`ai-swarm:postgres:Tls`: the CA and the primary's server certificate and key."""

    ca_cert_pem: pulumi.Output[str]
    server_cert_pem: pulumi.Output[str]
    server_key_pem: pulumi.Output[str]  # secret

    def __init__(
        self, name: str, args: PostgresTlsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:postgres:Tls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(
            f"{name}-ca-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child
        )
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            set_subject_key_id=True,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=CA_COMMON_NAME, organization=ORGANIZATION
            ),
            allowed_uses=list(CA_USES),
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        server_key = tls.PrivateKey(
            f"{name}-server-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child
        )
        request = tls.CertRequest(
            f"{name}-server-request",
            private_key_pem=server_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                common_name=args.private_ip, organization=ORGANIZATION
            ),
            ip_addresses=[args.private_ip, args.public_ip],
            opts=child,
        )
        server = tls.LocallySignedCert(
            f"{name}-server",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=list(SERVER_USES),
            validity_period_hours=SERVER_VALIDITY_HOURS,
            early_renewal_hours=SERVER_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        self.ca_cert_pem = ca.cert_pem
        self.server_cert_pem = server.cert_pem
        self.server_key_pem = pulumi.Output.secret(server_key.private_key_pem)
        self.register_outputs(
            {"caCertPem": self.ca_cert_pem, "serverCertPem": self.server_cert_pem}
        )
