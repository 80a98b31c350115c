"""Production availability: at least N replicas, and a PodDisruptionBudget that lets nodes drain.

Applies only when the stack is a production one (the `production` property). A workload scaled
by an HPA is judged by the HPA's minReplicas, since the HPA owns the replica count. A budget that
allows no disruption at all (maxUnavailable 0, or minAvailable at or above the replica count)
blocks every node drain and upgrade, which is as bad as none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from ..kube import KubeObject, selector_matches
from ..values import get, is_unknown
from .autoscaling import is_hpa, target_of

REPLICATED = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")


def _replicas(workload: KubeObject, hpas: Sequence[KubeObject], objects: Sequence[KubeObject]) -> tuple[Any, str]:
    for hpa in hpas:
        target, _ = target_of(hpa, objects)
        if target is workload:
            minimum = get(hpa.props, "spec", "minReplicas")
            return (1 if minimum is None else minimum), f"{hpa.describe()} minReplicas"
    replicas = get(workload.props, "spec", "replicas")
    return (1 if replicas is None else replicas), "replicas"


def _blocks_drains(pdb: KubeObject, replicas: Any) -> Optional[str]:
    max_unavailable = get(pdb.props, "spec", "maxUnavailable")
    min_available = get(pdb.props, "spec", "minAvailable")
    if max_unavailable in (0, "0", "0%"):
        return "maxUnavailable 0"
    if min_available == "100%":
        return "minAvailable 100%"
    if isinstance(min_available, int) and isinstance(replicas, int) and min_available >= replicas:
        return f"minAvailable {min_available} with {replicas} replicas"
    return None


def check_availability(objects: Sequence[KubeObject], options: Mapping[str, Any]) -> Iterator[tuple[KubeObject, str]]:
    """production-availability: replicated production workloads survive a node drain."""
    if options.get("production") is not True:
        return
    minimum = options.get("minReplicas", 2)
    require_pdb = options.get("requireDisruptionBudget", True)
    hpas = [o for o in objects if is_hpa(o)]
    pdbs = [o for o in objects if o.kind == "PodDisruptionBudget" and o.group == "policy"]
    for workload in objects:
        if workload.kind not in REPLICATED or not workload.is_workload:
            continue
        where = workload.describe()
        replicas, source = _replicas(workload, hpas, objects)
        if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas < minimum:
            yield workload, f"{where} runs {replicas} replica(s) ({source}); production needs at least {minimum}"
        if not require_pdb:
            continue
        labels = workload.pod_labels
        covering: list[KubeObject] = []
        undecided = False
        for pdb in pdbs:
            if pdb.namespace != workload.namespace:
                continue
            matches = selector_matches(get(pdb.props, "spec", "selector"), labels)
            if matches is None:
                undecided = True
            elif matches:
                covering.append(pdb)
        if not covering:
            if not undecided:
                yield workload, f"{where} has no PodDisruptionBudget selecting its pods"
            continue
        for pdb in covering:
            reason = _blocks_drains(pdb, replicas if not is_unknown(replicas) else None)
            if reason:
                yield workload, f"{where}: {pdb.describe()} allows no disruption ({reason}), so nodes cannot drain"
