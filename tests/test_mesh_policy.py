"""The mesh charts' workloads under the stacks' own policy configs: exempt by name, with the reason.

Under mocks charts are not rendered, so these are the chart-installed workloads as the pinned
charts render them (only the fields the rules read), judged with policy/config/<stack>.json.
"""

from __future__ import annotations

import json

import pytest
from policy_support import MISSING, container, evaluate, pod_spec, workload

from deploy.project import PROJECT_DIR

#: What the exemptions are for: workloads whose missing probes or image tags are upstream's.
CNI = {
    # linkerd2-cni templates/cni-plugin.yaml (edge-26.8.3): install-cni has no probes at all.
    "linkerd": workload(
        "DaemonSet",
        "linkerd-cni",
        "linkerd-cni",
        pod=pod_spec(
            container("install-cni", "cr.l5d.io/linkerd/cni-plugin:v1.7.0", liveness=MISSING, readiness=MISSING)
        ),
    ),
    # istio-cni templates/daemonset.yaml (1.30.3): a readiness probe on /readyz, no liveness probe.
    "istio": workload(
        "DaemonSet",
        "istio-cni-node",
        "istio-cni",
        pod=pod_spec(container("install-cni", "docker.io/istio/install-cni:1.30.3", liveness=MISSING)),
    ),
}
#: The gateway chart's Deployment before injection: image "auto" and no probes (both injected).
GATEWAY = workload(
    "Deployment",
    "istio-ingressgateway",
    "istio-ingress",
    pod=pod_spec(container("istio-proxy", "auto", liveness=MISSING, readiness=MISSING)),
)
MESH = {"local": "linkerd", "dev": "linkerd", "staging": "istio", "prod": "istio"}


def config(stack: str) -> dict[str, object]:
    return json.loads((PROJECT_DIR / "policy" / "config" / f"{stack}.json").read_text())


@pytest.mark.parametrize("stack", sorted(MESH))
def test_chart_workloads_pass_their_stacks_policy_by_named_exemption(stack: str) -> None:
    resources = [CNI[MESH[stack]], *([GATEWAY] if MESH[stack] == "istio" else [])]
    violations = evaluate(resources, config(stack), production=stack == "prod")
    # Their NetworkPolicies are in the stack, not in this list: test_security checks the plans.
    assert [v for v in violations if v.enforcement == "mandatory" and v.policy != "network-policies"] == []
    # The same workloads under another name are reported: the exemption is by name, not a hole.
    renamed = [
        workload(r["props"]["kind"], "other", "apps", pod=r["props"]["spec"]["template"]["spec"]) for r in resources
    ]
    assert any(v.policy == "workload-probes" and v.enforcement == "mandatory" for v in evaluate(renamed, config(stack)))


def test_prod_exempts_only_the_gateways_injected_image_from_its_mandatory_image_tags() -> None:
    tags = [v for v in evaluate([GATEWAY], config("prod"), production=True) if v.policy == "image-tags"]
    assert tags == []
    other = workload("Deployment", "web", "todo", pod=pod_spec(container("web", "auto")))
    assert [v.enforcement for v in evaluate([other], config("prod"), production=True) if v.policy == "image-tags"] == [
        "mandatory"
    ]


def test_mesh_chart_declarations_name_the_workloads_the_exemptions_cover() -> None:
    from components.chart_workloads import ChartRelease, declaration
    from components.mesh.istio import IstioMesh, IstioMeshArgs
    from components.mesh.linkerd import LinkerdMesh, LinkerdMeshArgs

    args = IstioMeshArgs()
    declared = {
        chart: declaration(chart)(ChartRelease(name, values))  # type: ignore[misc]
        for chart, name, values in (
            ("istiod", "istiod", IstioMesh.istiod_values(args)),
            ("cni", "istio-cni", IstioMesh.cni_values(args)),
            ("gateway", "istio-ingressgateway", IstioMesh.gateway_values(args)),
            ("linkerd2-cni", "linkerd2-cni", LinkerdMesh.cni_values(LinkerdMeshArgs())),
        )
    }
    names = {chart: [w.name for w in workloads] for chart, workloads in declared.items()}
    assert names == {
        "istiod": ["istiod"],
        "cni": ["istio-cni-node"],
        "gateway": ["istio-ingressgateway"],
        "linkerd2-cni": ["linkerd-cni"],
    }
    # What the values give each container is what the declaration states.
    (cni,) = declared["linkerd2-cni"][0].containers
    assert cni.resources == {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    (discovery,) = declared["istiod"][0].containers
    assert discovery.liveness_probe is None and discovery.readiness_probe is not None
    assert discovery.resources == IstioMesh.istiod_values(args)["resources"]
    for stack in ("staging", "prod"):
        exempt = config(stack)["workload-probes"]["exemptResources"]  # type: ignore[index]
        assert {"istio-system/istiod", "istio-cni/istio-cni-node", "istio-ingress/istio-ingressgateway"} <= set(exempt)
