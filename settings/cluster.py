"""Which cluster a stack deploys to. Each cluster kind has its own section."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from settings.base import settings

ClusterKind = Literal["existing", "eks", "kops"]


@settings
class ExistingClusterSettings:
    """An existing cluster reached through a kubeconfig file (kind, k3d, minikube, ...)."""

    #: Path of the kubeconfig file; `~` is expanded. None: the KUBECONFIG default chain.
    #: The kubeconfig context to use. Required so a stack never deploys to whatever is current.
    context: Annotated[str, Field(min_length=1)]
    #: Path of the kubeconfig file; `~` is expanded. None: the KUBECONFIG default chain.
    kubeconfig: Optional[str] = None
