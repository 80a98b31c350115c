"""Liveness and readiness probes, and probe timings that make sense.

A probe counts when it has exactly one working handler: exec (a non-empty command), httpGet,
tcpSocket (a port number or the name of one of the container's ports) or grpc (a port number).
Init containers never take liveness/readiness probes (the API refuses them), except native
sidecars (restartPolicy: Always), which run beside the app and so need them like any container.
Ephemeral containers may not have probes at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from ..kube import LONG_RUNNING, Container, KubeObject
from ..values import get, is_mapping, is_unknown, items

HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
#: Kubernetes' defaults for a probe's timing fields (a 0 is defaulted the same way).
DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
            "failureThreshold": 3}


def _port_problem(port: Any, container: Mapping[str, Any], where: str, named_ok: bool) -> Optional[str]:
    if is_unknown(port):
        return None
    if isinstance(port, bool) or port is None:
        return f"{where}.port is not set"
    if isinstance(port, int):
        return None if 1 <= port <= 65535 else f"{where}.port {port} is not a port number (1-65535)"
    if isinstance(port, str) and named_ok:
        if port.isdigit():
            return f'{where}.port "{port}" is a string: Kubernetes takes a port number or a port name, so write {port}'
        declared = [get(p, "name") for p in items(get(container, "ports"))]
        if any(is_unknown(name) for name in declared) or is_unknown(get(container, "ports")):
            return None
        if port in declared:
            return None
        known = ", ".join(map(str, declared)) or "none"
        return f'{where}.port "{port}" names no port of the container (its ports: {known})'
    return f"{where}.port {port!r} must be a port number"


def probe_problem(probe: Any, container: Mapping[str, Any], field: str) -> Optional[str]:
    """Why `probe` does not work, or None when it does (or cannot be judged yet)."""
    if is_unknown(probe):
        return None
    if probe is None:
        return f"has no {field}"
    if not is_mapping(probe):
        return f"{field} is not an object"
    handlers = [h for h in HANDLERS if probe.get(h) is not None]
    if not handlers:
        return f"{field} has no handler (one of {', '.join(HANDLERS)})"
    if len(handlers) > 1:
        return f"{field} has more than one handler ({', '.join(handlers)}); Kubernetes takes exactly one"
    handler = handlers[0]
    spec = probe.get(handler)
    if is_unknown(spec):
        return None
    if not is_mapping(spec):
        return f"{field}.{handler} is not an object"
    where = f"{field}.{handler}"
    if handler == "exec":
        command = spec.get("command")
        if is_unknown(command):
            return None
        if not items(command):
            return f"{where}.command is empty"
        return None
    return _port_problem(spec.get("port"), container, where, named_ok=handler != "grpc")


def _containers_needing_probes(obj: KubeObject) -> Iterator[Container]:
    for container in obj.containers():
        if container.runs_with_the_pod:
            yield container


def check_probes(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """workload-probes: every long-running container has a working liveness and readiness probe."""
    if obj.kind not in LONG_RUNNING or not obj.is_workload:
        return
    spec = obj.pod_spec
    if spec is None or is_unknown(spec):
        return
    if not items(get(spec, "containers")) and not is_unknown(get(spec, "containers")):
        yield f"{obj.describe()}: the pod template has no containers"
        return
    for container in _containers_needing_probes(obj):
        for field in ("livenessProbe", "readinessProbe"):
            problem = probe_problem(container.spec.get(field), container.spec, field)
            if problem:
                yield f"{obj.describe()}: {container.describe()} {problem}"


def _timing(probe: Mapping[str, Any], key: str) -> Any:
    value = probe.get(key)
    if is_unknown(value):
        return None
    if value is None or value == 0:
        return DEFAULTS[key]
    return value


def check_probe_timings(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """probe-timings: timeouts shorter than periods, liveness slower to give up than readiness."""
    if not obj.is_workload:
        return
    min_window = options.get("minLivenessFailureSeconds", 10)
    for container in obj.containers():
        if not container.runs_with_the_pod:
            continue
        probes = {f: container.spec.get(f) for f in ("livenessProbe", "readinessProbe", "startupProbe")}
        for field, probe in probes.items():
            if not is_mapping(probe):
                continue
            timeout, period = _timing(probe, "timeoutSeconds"), _timing(probe, "periodSeconds")
            prefix = f"{obj.describe()}: {container.describe()} {field}"
            if isinstance(timeout, int) and isinstance(period, int) and timeout >= period:
                yield (f"{prefix}: timeoutSeconds ({timeout}) must be shorter than periodSeconds ({period}), "
                       "or probes overlap")
            success = _timing(probe, "successThreshold")
            if field != "readinessProbe" and isinstance(success, int) and success != 1:
                yield f"{prefix}: successThreshold must be 1 for a {field} (is {success})"
        liveness, readiness = probes["livenessProbe"], probes["readinessProbe"]
        if is_mapping(liveness):
            window = _window(liveness)
            prefix = f"{obj.describe()}: {container.describe()}"
            if window is not None and window < min_window:
                yield (f"{prefix} livenessProbe restarts the container after {window}s of failures "
                       f"(failureThreshold x periodSeconds); allow at least {min_window}s")
            ready_window = _window(readiness) if is_mapping(readiness) else None
            if window is not None and ready_window is not None and window < ready_window:
                yield (f"{prefix} livenessProbe gives up after {window}s but readinessProbe only after "
                       f"{ready_window}s: the container is restarted before it is taken out of service")


def _window(probe: Mapping[str, Any]) -> Optional[int]:
    failures, period = _timing(probe, "failureThreshold"), _timing(probe, "periodSeconds")
    if isinstance(failures, int) and isinstance(period, int):
        return failures * period
    return None
