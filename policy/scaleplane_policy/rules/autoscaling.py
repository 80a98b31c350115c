"""HorizontalPodAutoscalers that can work: a scalable target in the stack, with the requests it divides by.

The HPA computes utilisation as usage / request, so every container of the target's pods (the
regular containers and native sidecars, which run beside them) must request CPU, and memory when
the HPA scales on memory utilisation (an AverageValue target compares raw usage and needs no
request). A ContainerResource metric only needs its own container, which must exist. Kubernetes
defaults a request to the limit when only a limit is set, so a limit counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from ..kube import KubeObject
from ..values import get, is_unknown, items
from .resources import request_problem

HPA = "HorizontalPodAutoscaler"
SCALABLE = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")


def is_hpa(obj: KubeObject) -> bool:
    return obj.kind == HPA and obj.group == "autoscaling"


def target_of(hpa: KubeObject, objects: Sequence[KubeObject]) -> tuple[Optional[KubeObject], bool]:
    """(the object the HPA scales, whether that could be decided)."""
    ref = get(hpa.props, "spec", "scaleTargetRef")
    kind, name, api_version = get(ref, "kind"), get(ref, "name"), get(ref, "apiVersion")
    namespace = hpa.namespace
    if any(is_unknown(v) for v in (kind, name, api_version, namespace)):
        return None, False
    group = None
    if isinstance(api_version, str) and api_version:
        group = api_version.split("/")[0] if "/" in api_version else "core"
    undecided = False
    for obj in objects:
        if obj.kind != kind or (group is not None and obj.group != group):
            continue
        if obj.namespace != namespace and not is_unknown(obj.namespace):
            continue
        if obj.metadata_name == name and obj.namespace == namespace:
            return obj, True
        if obj.metadata_name is None or is_unknown(obj.metadata_name) or is_unknown(obj.namespace):
            undecided = True
    return None, not undecided


def divides_by_request(target: Any) -> bool:
    """Whether a metric target is a utilisation, which the HPA computes against the request.

    AverageValue and Value targets compare raw usage and need no request; an unknown type is not
    judged.
    """
    kind = get(target, "type")
    return kind is None or kind == "Utilization"


def resource_metrics(hpa: KubeObject) -> tuple[set[str], set[tuple[str, str, bool]], bool]:
    """(resources whose utilisation is scaled on across all containers, (resource, container,
    divides by its request) per ContainerResource metric, known).

    CPU is always in the first set: with no metrics the HPA scales on CPU utilisation, and this
    policy asks every target to request CPU whatever it scales on.
    """
    spec = get(hpa.props, "spec")
    if is_unknown(spec):
        return set(), set(), False
    whole: set[str] = {"cpu"}
    per_container: set[tuple[str, str, bool]] = set()
    metrics = get(spec, "metrics")
    if is_unknown(metrics):
        return whole, per_container, False
    for metric in items(metrics):
        kind = get(metric, "type")
        if kind == "Resource":
            name = get(metric, "resource", "name")
            if isinstance(name, str) and divides_by_request(get(metric, "resource", "target")):
                whole.add(name)
        elif kind == "ContainerResource":
            name = get(metric, "containerResource", "name")
            container = get(metric, "containerResource", "container")
            if isinstance(name, str) and isinstance(container, str):
                divides = divides_by_request(get(metric, "containerResource", "target"))
                per_container.add((name, container, divides))
    return whole, per_container, True


def check_hpa_targets(objects: Sequence[KubeObject], options: Mapping[str, Any]) -> Iterator[tuple[KubeObject, str]]:
    """hpa-targets: each HPA's target exists here and requests what the HPA divides by."""
    for hpa in objects:
        if not is_hpa(hpa):
            continue
        ref = get(hpa.props, "spec", "scaleTargetRef")
        target, decided = target_of(hpa, objects)
        where = hpa.describe()
        if target is None:
            if decided:
                yield (
                    hpa,
                    (
                        f"{where} scales {get(ref, 'kind')} {get(ref, 'name')}, which is not in this stack "
                        f"(namespace {hpa.namespace})"
                    ),
                )
            continue
        if target.is_workload and target.kind not in SCALABLE:
            yield (
                hpa,
                f"{where} scales {target.describe()}, which has no scale subresource: the HPA cannot change its size",
            )
            continue
        if target.kind not in SCALABLE or target.containers_unknown():
            continue
        whole, per_container, _ = resource_metrics(hpa)
        running = [c for c in target.containers() if c.runs_with_the_pod]
        for resource in sorted(whole & {"cpu", "memory"}):
            for container in running:
                problem = request_problem(container, resource)
                if problem:
                    yield (
                        hpa,
                        (
                            f"{where} scales on {resource}, but {target.describe()} {container.describe()} "
                            f"{problem}: the HPA cannot compute its utilisation"
                        ),
                    )
        names = {c.name: c for c in running}
        for resource, container_name, divides in sorted(per_container):
            container = names.get(container_name)
            if container is None:
                yield (
                    hpa,
                    (
                        f'{where} has a ContainerResource metric on container "{container_name}", which '
                        f"{target.describe()} does not run"
                    ),
                )
                continue
            if divides and resource in ("cpu", "memory") and resource not in whole:
                problem = request_problem(container, resource)
                if problem:
                    yield (
                        hpa,
                        (
                            f"{where} scales on {resource} of {container.describe()}, which {problem}: "
                            "the HPA cannot compute its utilisation"
                        ),
                    )
