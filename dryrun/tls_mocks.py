"""What pulumi-tls reports for ECDSA keys, certificate requests and certificates, made for real.

The mocked cloud answers with genuine PEM: an ECDSA key derived from the resource's name, and
certificates built from the resource's inputs (subject, IP addresses, CA flag, uses, validity),
signed by the key the inputs name. Signatures are deterministic (RFC 6979) and validity starts
at the current UTC day, so two runs of the same program on the same day report the same text,
and a test can hand the files to a real server and client (`sslmode=verify-full`).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
CERTIFICATE_TYPES = (SELF_SIGNED_CERT, CERT_REQUEST, LOCALLY_SIGNED_CERT)
_CURVE_ORDER_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_PEM = serialization.Encoding.PEM
_SIGNED_WITH = hashes.SHA256()


def ecdsa_key(name: str) -> dict[str, str]:
    """A P-256 key as pulumi-tls reports it (SEC 1 and PKCS#8 PEM, public PEM), the same for
    the same name."""
    seed = int.from_bytes(hashlib.sha256(f"ecdsa-key/{name}".encode()).digest(), "big")
    key = ec.derive_private_key(seed % (_CURVE_ORDER_P256 - 1) + 1, ec.SECP256R1())
    no_password = serialization.NoEncryption()
    return {
        "privateKeyPem": key.private_bytes(
            _PEM, serialization.PrivateFormat.TraditionalOpenSSL, no_password
        ).decode(),
        "privateKeyPemPkcs8": key.private_bytes(
            _PEM, serialization.PrivateFormat.PKCS8, no_password
        ).decode(),
        "publicKeyPem": key.public_key()
        .public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    }


def certificate_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    if type_ == CERT_REQUEST:
        return {"certRequestPem": _request(inputs)}
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=int(inputs["validityPeriodHours"]))
    if type_ == SELF_SIGNED_CERT:
        key = _private_key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject") or {})
        pem = _certificate(
            name,
            inputs,
            subject=subject,
            public_key=key.public_key(),
            issuer=subject,
            signer=key,
            validity=(start, end),
        )
    else:
        request = x509.load_pem_x509_csr(str(inputs["certRequestPem"]).encode())
        issuer = x509.load_pem_x509_certificate(str(inputs["caCertPem"]).encode())
        ca_key = _private_key(inputs["caPrivateKeyPem"])
        public_key = request.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TypeError("the mocked certificates carry ECDSA keys only")
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ip_addresses = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        pem = _certificate(
            name,
            {**inputs, "ipAddresses": ip_addresses},
            subject=request.subject,
            public_key=public_key,
            issuer=issuer.subject,
            signer=ca_key,
            validity=(start, end),
        )
    return {
        "certPem": pem,
        "validityStartTime": start.isoformat().replace("+00:00", "Z"),
        "validityEndTime": end.isoformat().replace("+00:00", "Z"),
        "readyForRenewal": False,
    }


def _private_key(pem: Any) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(str(pem).encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the mocked certificates are signed with ECDSA keys only")
    return key


def _name(subject: Mapping[str, Any]) -> x509.Name:
    fields = (("commonName", NameOID.COMMON_NAME), ("organization", NameOID.ORGANIZATION_NAME))
    attributes = [
        x509.NameAttribute(oid, str(subject[field])) for field, oid in fields if subject.get(field)
    ]
    return x509.Name(attributes)


def _ip_names(addresses: Sequence[Any]) -> list[x509.GeneralName]:
    return [x509.IPAddress(ipaddress.ip_address(str(address))) for address in addresses]


def _request(inputs: Mapping[str, Any]) -> str:
    key = _private_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(inputs.get("subject") or {})
    )
    names = _ip_names(inputs.get("ipAddresses") or [])
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, _SIGNED_WITH, ecdsa_deterministic=True).public_bytes(_PEM).decode()


_EXTENDED_USAGES = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}


def _certificate(
    name: str,
    inputs: Mapping[str, Any],
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    validity: tuple[datetime, datetime],
) -> str:
    uses = set(inputs.get("allowedUses") or [])
    serial = int.from_bytes(hashlib.sha256(f"serial/{name}".encode()).digest()[:16], "big") >> 1
    is_ca = bool(inputs.get("isCaCertificate"))
    path_length = inputs.get("maxPathLength")
    ca_path_length = int(path_length) if is_ca and path_length is not None else None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=ca_path_length),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature="digital_signature" in uses,
                content_commitment=False,
                key_encipherment="key_encipherment" in uses,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign="cert_signing" in uses,
                crl_sign="crl_signing" in uses,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    extended = [oid for use, oid in _EXTENDED_USAGES.items() if use in uses]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    names = _ip_names(inputs.get("ipAddresses") or [])
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if inputs.get("setSubjectKeyId"):
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    certificate = builder.sign(signer, _SIGNED_WITH, ecdsa_deterministic=True)
    return certificate.public_bytes(_PEM).decode()
