"""Privileged and root containers.

The container's securityContext overrides the pod's for runAsUser and runAsNonRoot. A container
"may run as root" when nothing says otherwise: runAsNonRoot is not true and no non-zero
runAsUser is set (the image's own USER then decides, which is often root).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..kube import KubeObject
from ..values import get, is_unknown


def _effective(container: Mapping[str, Any], pod: Any, key: str) -> Any:
    value = get(container, "securityContext", key)
    return value if value is not None else get(pod, "securityContext", key)


def check_container_security(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """container-security: no privileged containers and none running as root."""
    if not obj.is_workload:
        return
    pod = obj.pod_spec
    if is_unknown(pod):
        return
    require_non_root = options.get("requireRunAsNonRoot", True)
    for container in obj.containers():
        where = f"{obj.describe()}: {container.describe()}"
        if get(container.spec, "securityContext", "privileged") is True:
            yield f"{where} is privileged"
        user = _effective(container.spec, pod, "runAsUser")
        non_root = _effective(container.spec, pod, "runAsNonRoot")
        if is_unknown(user) or is_unknown(non_root):
            continue
        if user == 0:
            yield f"{where} runs as root (runAsUser: 0)"
        elif non_root is False and user is None:
            yield f"{where} sets runAsNonRoot: false and no runAsUser, so it may run as root"
        elif require_non_root and non_root is not True and user is None:
            yield f"{where} may run as root: set runAsNonRoot: true or a non-zero runAsUser"
