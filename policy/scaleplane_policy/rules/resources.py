"""CPU requests (what the scheduler and the HPA need) and memory requests and limits.

Every container that runs, init containers included, counts: an init container without requests
still has to be scheduled. Ephemeral containers are left out, as the API refuses resources on
them. When a container sets a limit but no request, Kubernetes defaults the request to the limit,
so the request exists; `acceptLimitAsRequest: false` refuses that shortcut.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Optional

from ..kube import Container, KubeObject
from ..values import UNKNOWN, get, is_unknown, parse_quantity


def requested(container: Container, resource: str, limit_counts: bool = True) -> Any:
    """The container's effective request for `resource`: a Decimal, UNKNOWN, or None when unset.

    Raises ValueError when the quantity is malformed.
    """
    request = get(container.spec, "resources", "requests", resource)
    if request is None and limit_counts:
        request = get(container.spec, "resources", "limits", resource)
    if is_unknown(request):
        return UNKNOWN
    if request is None:
        return None
    return parse_quantity(request)


def request_problem(container: Container, resource: str, limit_counts: bool = True) -> Optional[str]:
    """Why the container has no usable request for `resource`, or None."""
    try:
        amount = requested(container, resource, limit_counts)
    except ValueError as error:
        return f"resources.requests.{resource} is invalid: {error}"
    if amount is UNKNOWN:
        return None
    if amount is None:
        hint = "" if limit_counts else " (a limit alone does not count here)"
        return f"sets no {resource} request{hint}"
    if amount <= 0:
        return f"requests {resource} {get(container.spec, 'resources', 'requests', resource)!r}, which is no request"
    return None


def _running(obj: KubeObject) -> Iterator[Container]:
    for container in obj.containers():
        if container.kind != "ephemeral container":
            yield container


def check_cpu_requests(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """cpu-requests: every container and init container of every workload requests CPU."""
    if not obj.is_workload:
        return
    limit_counts = options.get("acceptLimitAsRequest", True)
    for container in _running(obj):
        problem = request_problem(container, "cpu", limit_counts)
        if problem:
            yield f"{obj.describe()}: {container.describe()} {problem}"


def check_memory(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """memory-requests-limits: every container requests memory and (by default) caps it."""
    if not obj.is_workload:
        return
    require_limit = options.get("requireLimit", True)
    for container in _running(obj):
        where = f"{obj.describe()}: {container.describe()}"
        problem = request_problem(container, "memory", limit_counts=True)
        if problem:
            yield f"{where} {problem}"
        limit_value = get(container.spec, "resources", "limits", "memory")
        if is_unknown(limit_value):
            continue
        if limit_value is None:
            if require_limit:
                yield f"{where} sets no memory limit"
            continue
        try:
            limit = parse_quantity(limit_value)
        except ValueError as error:
            yield f"{where} resources.limits.memory is invalid: {error}"
            continue
        try:
            request = requested(container, "memory")
        except ValueError:
            continue
        if isinstance(request, Decimal) and limit < request:
            yield f"{where} limits memory to {limit_value} but requests more"
