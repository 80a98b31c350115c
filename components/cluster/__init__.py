"""The stack's cluster, whichever kind the settings choose, and its Kubernetes provider."""

from __future__ import annotations

from typing import Union

from components.cluster.existing import ExistingCluster, ExistingClusterArgs
from settings import Settings

Cluster = Union[ExistingCluster]


def cluster_for(name: str, settings: Settings) -> Cluster:
    """Build the cluster component the stack's `cluster` setting names."""
    if settings.cluster == "existing":
        assert settings.existing_cluster is not None  # settings validation guarantees it
        section = settings.existing_cluster
        return ExistingCluster(name, ExistingClusterArgs(context=section.context, kubeconfig=section.kubeconfig))
    raise ValueError(f"cluster kind {settings.cluster!r} has no component yet")
