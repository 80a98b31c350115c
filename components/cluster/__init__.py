"""The stack's cluster, whichever kind the settings choose, and its Kubernetes provider.

Every cluster component exposes `.provider` (the one pulumi_kubernetes Provider of the stack,
passed to every Kubernetes resource and chart) and `.name`. EKS and kops clusters also expose
`.endpoint`, `.oidc_issuer` and a secret `.kubeconfig`.
"""

from __future__ import annotations

from typing import Union

from components.cluster.eks import EksCluster, EksClusterArgs
from components.cluster.existing import ExistingCluster, ExistingClusterArgs
from components.cluster.kops import KopsCluster, KopsClusterArgs
from settings import Settings

Cluster = Union[ExistingCluster, EksCluster, KopsCluster]

__all__ = ["Cluster", "EksCluster", "ExistingCluster", "KopsCluster", "cluster_for"]


def cluster_for(name: str, settings: Settings) -> Cluster:
    """Build the cluster component the stack's `cluster` setting names."""
    # Settings validation guarantees the section of the chosen kind is present.
    if settings.cluster == "existing":
        assert settings.existing_cluster is not None
        section = settings.existing_cluster
        return ExistingCluster(name, ExistingClusterArgs(context=section.context, kubeconfig=section.kubeconfig))
    if settings.cluster == "eks":
        assert settings.eks is not None
        return EksCluster(
            name,
            EksClusterArgs(
                cluster_name=settings.eks.name or f"scaleplane-{settings.environment}",
                kubernetes_version=settings.kubernetes_version,
                eks=settings.eks,
                load_balancer_controller=settings.balancer == "aws-nlb",
            ),
        )
    if settings.cluster == "kops":
        assert settings.kops is not None
        return KopsCluster(
            name,
            KopsClusterArgs(
                kops=settings.kops,
                kubernetes_version=settings.kubernetes_version,
                load_balancer_controller=settings.balancer == "aws-nlb",
            ),
        )
    raise ValueError(f"unknown cluster kind {settings.cluster!r}; expected existing, eks or kops")
