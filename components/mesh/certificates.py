"""A self-signed server certificate for a balancer's address, as a kubernetes.io/tls Secret.

For entry points that have no DNS name or certificate of the user's yet: HTTPS works from the
first `up` (clients must accept the certificate on first use), and the key never leaves the
stack's state and the Secret (both secret).
"""

from __future__ import annotations

import ipaddress
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.kube import MANAGED_BY, child_opts

SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]


def is_ip_address(text: str) -> bool:
    """Whether a balancer's address is an IP (MetalLB) rather than a DNS name (AWS)."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def self_signed_tls_secret(
    name: str,
    *,
    secret_name: str,
    namespace: str,
    common_name: str,
    host: pulumi.Output[Optional[str]],
    validity_hours: int,
    early_renewal_hours: int,
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    depends_on: Optional[list[pulumi.Resource]] = None,
) -> k8s.core.v1.Secret:
    """An ECDSA P-256 key and a self-signed certificate naming `host` (a DNS SAN or an IP SAN).

    Children `<name>-key`, `<name>-certificate` and the Secret `<name>`. Renewed by the `up`
    that runs within `early_renewal_hours` of expiry; a new balancer address re-issues it.
    """
    key = tls.PrivateKey(
        f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=pulumi.ResourceOptions(parent=parent)
    )
    certificate = tls.SelfSignedCert(
        f"{name}-certificate",
        private_key_pem=key.private_key_pem,
        subject={"common_name": common_name, "organization": "scaleplane"},
        dns_names=host.apply(lambda h: [h] if h and not is_ip_address(h) else []),
        ip_addresses=host.apply(lambda h: [h.strip("[]")] if h and is_ip_address(h) else []),
        allowed_uses=SERVER_USES,
        validity_period_hours=validity_hours,
        early_renewal_hours=early_renewal_hours,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return k8s.core.v1.Secret(
        name,
        metadata={"name": secret_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        type="kubernetes.io/tls",
        string_data={"tls.crt": certificate.cert_pem, "tls.key": pulumi.Output.secret(key.private_key_pem)},
        opts=child_opts(parent, provider, depends_on=depends_on or []),
    )
