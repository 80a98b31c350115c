"""Secure by default: Pod Security, NetworkPolicies and exposure, on every stack's plan and per rule."""

from __future__ import annotations

import json
from typing import Any

import pss
import pytest
from policy_support import found, k8s, service, workload
from support import objects, run_component

import settings
from components.loadtest import LoadTest, LoadTestArgs
from components.network import Peer, ProxyTraffic
from components.todo import TodoApp, TodoAppArgs
from deploy import mockrun
from policy.scaleplane_policy.kube import KubeObject
from policy.scaleplane_policy.rules.network import check_network_policies, internet_facing
from settings.base import parse
from settings.workloads import LoadTestSettings, TodoSettings

ENFORCE = "pod-security.kubernetes.io/enforce"
#: Application namespaces whose pod templates must meet restricted whatever their namespace
#: enforces (a mesh without its CNI plugin still needs privileged for the injected init container).
APPLICATION_NAMESPACES = ("todo", "minio")


def _objects(plan: mockrun.PlanResult) -> list[KubeObject]:
    return [
        KubeObject.of({"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs})
        for r in plan.resources
        if r.is_kubernetes_object
    ]


def _levels(plan: mockrun.PlanResult) -> dict[str, str]:
    return {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"].get(ENFORCE)
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs.get("kind") == "Namespace"
    }


# --- every stack's plan --------------------------------------------------------------------------


def test_every_namespace_enforces_audits_and_warns_a_level(stack_plan: mockrun.PlanResult) -> None:
    for r in stack_plan.resources:
        if r.is_kubernetes_object and r.inputs.get("kind") == "Namespace":
            labels = r.inputs["metadata"]["labels"]
            level = labels.get(ENFORCE)
            assert level in ("privileged", "baseline", "restricted"), r.name
            assert labels["pod-security.kubernetes.io/audit"] == level, r.name
            assert labels["pod-security.kubernetes.io/warn"] == level, r.name


def test_every_pod_template_meets_its_namespaces_level(stack_plan: mockrun.PlanResult) -> None:
    levels = _levels(stack_plan)
    for obj in _objects(stack_plan):
        if obj.is_workload and obj.namespace in levels:
            assert pss.violations(obj.pod_spec, levels[obj.namespace]) == [], obj.describe()


def test_application_pod_templates_meet_restricted(stack_plan: mockrun.PlanResult) -> None:
    apps = [obj for obj in _objects(stack_plan) if obj.is_workload and obj.namespace in APPLICATION_NAMESPACES]
    assert len(apps) >= 2  # the web Deployment and MongoDB at least
    for obj in apps:
        assert pss.violations(obj.pod_spec, "restricted") == [], obj.describe()
        # None of them calls the Kubernetes API.
        assert obj.pod_spec["automountServiceAccountToken"] is False, obj.describe()


def test_every_pod_is_selected_by_a_network_policy_of_its_namespace(stack_plan: mockrun.PlanResult) -> None:
    uncovered = [obj.describe() for obj, _ in check_network_policies(_objects(stack_plan), {})]
    assert uncovered == [], f"pods outside every NetworkPolicy of their namespace: {uncovered}"


def test_data_stores_reach_only_dns_their_peers_and_the_mesh(stack_plan: mockrun.PlanResult) -> None:
    egress = {
        (o.namespace, o.metadata_name): o.props["spec"]
        for o in _objects(stack_plan)
        if o.is_kind("NetworkPolicy") and "Egress" in o.props["spec"]["policyTypes"]
    }
    mongodb = egress[("todo", "mongodb-egress")]
    assert mongodb["podSelector"] == {"matchLabels": {"app": "mongodb"}}
    dns, *rest = mongodb["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    mesh = stack_plan.outputs["mesh"]
    # Only the injected proxy's control plane beyond DNS, and nothing at all without a mesh.
    assert len(rest) == (0 if mesh == "none" else 1)
    assert ("minio", "minio-egress") in egress


def test_production_opens_one_balancer_to_the_world(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    plan = stack_plans["prod"]
    open_to_all = [
        o.describe()
        for o in _objects(plan)
        if o.is_kind("Service")
        and o.props["spec"].get("type") == "LoadBalancer"
        and not o.props["spec"].get("loadBalancerSourceRanges")
        and internet_facing(o, plan.outputs["balancer"])
    ]
    assert open_to_all == ["Service istio-ingress/istio-ingressgateway"]


def test_dev_balancers_are_internal_by_default(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    plan = stack_plans["dev"]
    balancers = [o for o in _objects(plan) if o.is_kind("Service") and o.props["spec"].get("type") == "LoadBalancer"]
    assert balancers
    assert [o.describe() for o in balancers if internet_facing(o, "cloud")] == []


# --- settings: exposure ---------------------------------------------------------------------------

BASE = {"scaleplane:environment": "test", "scaleplane:existingCluster": json.dumps({"context": "kind-test"})}
NLB = {"scaleplane:balancer": "aws-nlb", "scaleplane:nlb": json.dumps({"scheme": "internet-facing"})}


def _config(**sections: Any) -> dict[str, str]:
    raw = {**BASE, **NLB}
    for key, value in sections.items():
        raw[f"scaleplane:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return raw


def _problems(**sections: Any) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(_config(**sections))
    return caught.value.problems


def test_production_refuses_an_internet_facing_balancer_without_source_ranges() -> None:
    [problem] = _problems(production="true", minio={"exposure": {"scheme": "internal"}})
    assert "scaleplane:todo.exposure is internet-facing without sourceRanges" in problem
    assert "scaleplane:minio" not in problem
    # Outside production, or with source ranges, or internal, it is accepted.
    settings.from_config(_config(minio={"exposure": {"scheme": "internal"}}))
    settings.from_config(
        _config(
            production="true",
            todo={"exposure": {"sourceRanges": ["203.0.113.0/24"]}},
            minio={"exposure": {"scheme": "internal"}},
        )
    )


def test_the_gateway_may_be_the_one_open_balancer_in_production() -> None:
    config = settings.from_config(
        _config(
            production="true",
            mesh="istio",
            todo={"exposure": {"scheme": "internal"}},
            minio={"exposure": {"scheme": "internal"}},
        )
    )
    assert config.scheme_of(config.istio_settings.gateway.exposure) == "internet-facing"


def test_source_ranges_are_cidrs_and_the_web_port_is_unprivileged() -> None:
    [problem] = _problems(todo={"exposure": {"sourceRanges": ["10.0.0.1/8"]}})
    assert problem.startswith("scaleplane:todo.exposure.sourceRanges[0]:") and "is not a CIDR" in problem
    [problem] = _problems(todo={"port": 80})
    assert problem.startswith("scaleplane:todo.port:")


# --- the policy rules ---------------------------------------------------------------------------

DENY_ALL = k8s("NetworkPolicy", "default-deny-ingress", spec={"podSelector": {}, "policyTypes": ["Ingress"]})


def test_a_pod_outside_every_network_policy_is_reported() -> None:
    web = workload()
    [message] = found([web], "network-policies")
    assert "Deployment apps/web: no NetworkPolicy of namespace apps selects its pods" in message
    assert found([web, DENY_ALL], "network-policies") == []


def test_only_an_ingress_policy_of_the_pods_own_namespace_counts() -> None:
    web = workload()
    elsewhere = k8s("NetworkPolicy", "deny", "other", spec={"podSelector": {}, "policyTypes": ["Ingress"]})
    egress_only = k8s("NetworkPolicy", "egress", spec={"podSelector": {}, "policyTypes": ["Egress"]})
    other_pods = k8s("NetworkPolicy", "db", spec={"podSelector": {"matchLabels": {"app": "db"}}})
    for unrelated in (elsewhere, egress_only, other_pods):
        assert len(found([web, unrelated], "network-policies")) == 1, unrelated["name"]
    # policyTypes left out means Ingress.
    web_only = k8s("NetworkPolicy", "web", spec={"podSelector": {"matchLabels": {"app": "web"}}})
    assert found([web, web_only], "network-policies") == []


def test_production_balancers_open_to_the_internet_need_source_ranges() -> None:
    public = service(annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"})
    [message] = found([public], "open-load-balancers", production=True)
    assert "Service apps/web is an internet-facing balancer without loadBalancerSourceRanges" in message
    assert found([public], "open-load-balancers") == []  # not production
    ranged = json.loads(json.dumps(public))
    ranged["props"]["spec"]["loadBalancerSourceRanges"] = ["203.0.113.0/24"]
    assert found([ranged], "open-load-balancers", production=True) == []
    exempt = {"open-load-balancers": {"exemptResources": ["apps/web"]}}
    assert found([public], "open-load-balancers", exempt, production=True) == []


def test_the_in_tree_controller_is_internet_facing_unless_marked_internal() -> None:
    in_tree = service()
    assert len(found([in_tree], "open-load-balancers", production=True, balancer="cloud")) == 1
    internal = service(annotations={"service.beta.kubernetes.io/aws-load-balancer-internal": "true"})
    assert found([internal], "open-load-balancers", production=True, balancer="cloud") == []
    # The AWS Load Balancer Controller's default scheme is internal; MetalLB's is its pool.
    controller = service(load_balancer_class="service.k8s.aws/nlb")
    assert found([controller], "open-load-balancers", production=True, balancer="aws-nlb") == []
    assert found([in_tree], "open-load-balancers", production=True, balancer="metallb") == []


# --- components -----------------------------------------------------------------------------------


def test_a_meshed_todo_app_lets_its_proxies_through() -> None:
    proxy = ProxyTraffic(
        ingress=((Peer.anywhere(), (4143,)), (Peer.namespace_of("linkerd-viz"), (4191,))),
        egress=((Peer.namespace_of("linkerd"), (8080, 8086, 8090)),),
    )
    todo = parse(TodoSettings, {})
    result = run_component(
        lambda provider: TodoApp("t", TodoAppArgs(settings=todo, environment="test", proxy=proxy), provider)
    )
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(result, "NetworkPolicy")}
    assert policies["mesh-proxy"]["podSelector"] == {}
    assert policies["mesh-proxy"]["ingress"][0] == {"ports": [{"port": 4143, "protocol": "TCP"}]}
    assert policies["mongodb-egress"]["egress"][1] == {
        "ports": [{"port": port, "protocol": "TCP"} for port in (8080, 8086, 8090)],
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "linkerd"}}}],
    }
    assert policies["mongodb-from-web"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "todo-dev"}}}]
    assert policies["web-from-clients"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_the_web_container_writes_only_its_scratch_paths() -> None:
    todo = parse(TodoSettings, {"writablePaths": ["/tmp", "/var/cache/nginx"]})
    result = run_component(lambda provider: TodoApp("t", TodoAppArgs(settings=todo, environment="test"), provider))
    web = next(o for o in objects(result, "Deployment") if o["metadata"]["name"] == "todo-dev")
    spec = web["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsUser"] == 101
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/var/cache/nginx"]
    assert all("emptyDir" in volume for volume in spec["volumes"])
    assert pss.violations(spec, "restricted") == []


def test_the_load_test_runs_restricted_without_a_token() -> None:
    load = parse(LoadTestSettings, {"enabled": True})
    result = run_component(
        lambda provider: LoadTest(
            "l", LoadTestArgs(settings=load, target_url="http://web/", namespace="todo"), provider
        )
    )
    [job] = objects(result, "Job")
    spec = job["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert pss.violations(spec, "restricted") == []


def test_the_pss_checker_catches_what_the_old_web_container_did() -> None:
    root_nginx = {
        "containers": [
            {
                "name": "web",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        ]
    }
    problems = pss.violations(root_nginx, "restricted")
    assert "web: runAsNonRoot is not true" in problems
    assert "web: adds ['CHOWN', 'SETGID', 'SETUID']" in problems
    assert pss.violations(root_nginx, "baseline") == []
    host = {
        "hostNetwork": True,
        "containers": [{"name": "speaker", "securityContext": {"capabilities": {"add": ["NET_RAW", "NET_ADMIN"]}}}],
    }
    assert pss.violations(host, "baseline") == ["hostNetwork: true", "speaker: adds ['NET_ADMIN', 'NET_RAW']"]


def test_accepted_static_analysis_findings_name_their_check_and_reason(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    """Where a pod must keep what checkov flags (an API token, a privileged CSI driver), the object
    says so with the check and the reason, and only for checks this project measures."""
    measured = {"CKV2_K8S_6", "CKV_K8S_23", "CKV_K8S_25", "CKV_K8S_29", "CKV_K8S_38"}
    seen = set()
    for plan in stack_plans.values():
        for resource in plan.resources:
            if not resource.is_kubernetes_object:
                continue
            annotations = (resource.inputs.get("metadata") or {}).get("annotations") or {}
            for key, value in annotations.items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check in measured and len(reason) > 20, f"{resource.name}: {key}: {value}"
                    seen.add((resource.inputs["kind"], resource.inputs["metadata"]["name"], check))
    assert ("Job", "metallb-webhook-ready", "CKV_K8S_38") in seen
    assert ("StatefulSet", "csi-hostpathplugin", "CKV_K8S_23") in seen
