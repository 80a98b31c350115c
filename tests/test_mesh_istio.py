"""IstioMesh: base -> istiod -> gateway, the playbook's minio Gateway and VirtualService, outputs."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest
from traffic_support import (
    covered,
    depends_on,
    named,
    object_errors,
    run_on_cluster,
    schema_errors,
    unknown_value_paths,
    value_paths,
)

from components.balancer import Balancer
from components.mesh.flows import Flow
from components.mesh.istio import GatewayTls, IstioMesh, IstioMeshArgs, resource_names
from deploy import mockrun

#: Value paths set that the pinned values.yaml does not list, each with its reason.
ALLOWED: dict[str, str] = {
    "resources.limits": (
        "istiod's values.yaml lists only requests, but its Deployment renders both keys of `resources` "
        '(templates/_helpers.tpl "istiod.resources" ranges over limits and requests, 1.30.3)'
    ),
}


DEFAULT_ARGS = IstioMeshArgs()
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
FLOWS = [
    Flow("todo-web", "todo", {"app": "todo-prod"}, 3000, clients=["todo"], from_ingress=True, from_outside=True),
    Flow("mongodb", "todo", {"app": "mongodb"}, 27017, clients=["todo"]),
]


def build(provider: Any, args: IstioMeshArgs = DEFAULT_ARGS, balancer: Balancer | None = None) -> IstioMesh:
    mesh = IstioMesh("mesh", args, provider, balancer or Balancer.aws_nlb("internet-facing"))
    mesh.route_http("minio", namespace="minio", port=9000)
    for flow in FLOWS:
        mesh.authorize(flow)
    pulumi.export("ingressHost", mesh.ingress_host)
    pulumi.export("httpPort", mesh.ingress_http_port)
    pulumi.export("httpsPort", mesh.ingress_https_port)
    return mesh


@pytest.fixture(scope="module")
def plan() -> mockrun.PlanResult:
    return run_on_cluster(build)


def test_charts_install_in_order_at_one_pinned_version(plan: mockrun.PlanResult) -> None:
    crds, base, cni, istiod, gateway = (
        named(plan, f"mesh-{role}") for role in ("crds", "base", "cni", "istiod", "gateway")
    )
    for release, chart in ((base, "base"), (cni, "cni"), (istiod, "istiod"), (gateway, "gateway")):
        assert release.inputs["chart"] == chart
        assert release.inputs["version"] == "1.30.3"
        assert release.inputs["repositoryOpts"]["repo"] == "https://istio-release.storage.googleapis.com/charts"
    # base and istiod ship webhooks istiod rewrites at runtime: Releases. The CNI agent and the
    # gateway render deterministically: v4 Charts, whose objects the policy pack sees.
    assert base.type == istiod.type == "kubernetes:helm.sh/v3:Release"
    assert cni.type == gateway.type == "kubernetes:helm.sh/v4:Chart"
    assert depends_on(base, crds) and depends_on(cni, base) and depends_on(istiod, cni)
    assert depends_on(gateway, istiod)
    assert base.inputs["namespace"] == istiod.inputs["namespace"] == "istio-system"
    assert gateway.inputs["namespace"] == "istio-ingress"
    assert cni.inputs["namespace"] == "istio-cni"


def test_namespaces_enforce_pod_security_and_only_the_cni_one_is_privileged(plan: mockrun.PlanResult) -> None:
    levels = {
        named(plan, f"mesh-{role}").inputs["metadata"]["name"]: named(plan, f"mesh-{role}").inputs["metadata"][
            "labels"
        ]["pod-security.kubernetes.io/enforce"]
        for role in ("namespace", "gateway-namespace", "cni-namespace")
    }
    assert levels == {"istio-system": "restricted", "istio-ingress": "restricted", "istio-cni": "privileged"}


def test_cni_plugin_replaces_the_net_admin_init_container(plan: mockrun.PlanResult) -> None:
    istiod = named(plan, "mesh-istiod").inputs["values"]
    # The injector adds istio-validation (UID 1337, no capabilities) instead of istio-init.
    assert istiod["cni"] == {"enabled": True}
    assert istiod["global"]["proxy"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert istiod["seccompProfile"] == {"type": "RuntimeDefault"}
    # The cni chart is not in the reference set; these keys were read from istio/istio at 1.30.3
    # (manifests/charts/istio-cni/values.yaml and templates/daemonset.yaml read each of them).
    assert named(plan, "mesh-cni").inputs["values"] == {
        "global": {"hub": "docker.io/istio", "tag": "1.30.3"},
        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"memory": "256Mi"}},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # Application namespaces only opt in: the mesh no longer asks them for `privileged`.
    assert IstioMesh.namespace_labels() == {"istio-injection": "enabled"}


@pytest.mark.parametrize("role", ["istiod", "gateway"])
def test_chart_pods_request_cpu_and_memory(plan: mockrun.PlanResult, role: str) -> None:
    values = named(plan, f"mesh-{role}").inputs["values"]
    for resources in (values["resources"], *([values["global"]["proxy"]["resources"]] if role == "istiod" else [])):
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], role
        assert resources["limits"]["memory"], role


def test_crds_are_pulumi_resources_of_the_same_release_so_destroy_removes_them(plan: mockrun.PlanResult) -> None:
    crds = named(plan, "mesh-crds")
    assert crds.type == "kubernetes:yaml/v2:ConfigFile"
    assert crds.inputs["file"] == (
        "https://raw.githubusercontent.com/istio/istio/1.30.3/manifests/charts/base/files/crd-all.gen.yaml"
    )
    base = named(plan, "mesh-base")
    # The chart's CRDs carry helm.sh/resource-policy: keep; the chart must not install them. Its
    # templates render them even with enableCRDTemplates false: only excludedCRDs (which needs it
    # true) leaves them out, and it lists what the ConfigFile created.
    assert base.inputs["values"]["base"]["enableCRDTemplates"] is True
    assert "excludedCRDs" in base.inputs["values"]["base"]
    assert base.inputs["skipCrds"] is True
    for resource in plan.resources:
        assert not resource.retain_on_delete and not resource.protect, resource.name


@pytest.mark.parametrize("role, chart", [("base", "base"), ("istiod", "istiod"), ("gateway", "gateway")])
def test_values_are_top_level_paths_of_the_pinned_charts(plan: mockrun.PlanResult, role: str, chart: str) -> None:
    values = named(plan, f"mesh-{role}").inputs["values"]
    assert "_internal_defaults_do_not_set" not in values
    assert unknown_value_paths(values, chart, ALLOWED) == []


def test_gateway_values_pass_the_charts_schema(plan: mockrun.PlanResult) -> None:
    values = named(plan, "mesh-gateway").inputs["values"]
    assert schema_errors(values, "gateway") == []
    assert schema_errors({**values, "replicas": 3}, "gateway"), "the schema check must be able to fail"


def test_the_path_check_can_fail() -> None:
    assert unknown_value_paths({"pilot": {"replicaCount": 2}}, "istiod", ALLOWED) == ["pilot"]
    assert unknown_value_paths({"global": {"hubs": "x"}}, "istiod", ALLOWED) == ["global.hubs"]
    assert dict(value_paths({"resources": {"requests": {"cpu": "1"}}}, {"resources": {}})) == {"resources": True}


def test_istiod_uses_the_released_images_and_a_fixed_replica_count(plan: mockrun.PlanResult) -> None:
    values = named(plan, "mesh-istiod").inputs["values"]
    assert values["global"]["hub"] == "docker.io/istio" and values["global"]["tag"] == "1.30.3"
    assert (values["autoscaleEnabled"], values["replicaCount"]) == (False, 1)


@pytest.mark.parametrize("replicas, budget", [(1, False), (2, True)])
def test_istiod_disruption_budget_only_where_it_allows_an_eviction(replicas: int, budget: bool) -> None:
    values = IstioMesh.istiod_values(IstioMeshArgs(pilot_replicas=replicas))
    assert values["global"]["defaultPodDisruptionBudget"] == {"enabled": budget}


def test_gateway_pods_match_the_gateway_selector_and_the_balancer_exposes_them(plan: mockrun.PlanResult) -> None:
    gateway = named(plan, "mesh-gateway")
    # The chart labels pods istio=<name without "istio-">: istio=ingressgateway.
    assert gateway.inputs["name"] == gateway.inputs["values"]["name"] == "istio-ingressgateway"
    assert gateway.inputs["values"]["service"]["type"] == "None"
    service = named(plan, "mesh-gateway-service")
    assert object_errors(service) == []
    assert depends_on(service, gateway)
    assert service.inputs["metadata"]["namespace"] == "istio-ingress"
    assert service.inputs["spec"]["selector"]["istio"] == "ingressgateway"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service.inputs["spec"]["ports"]}
    assert ports == {"http2": (80, 80), "https": (443, 443)}
    assert service.inputs["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == (
        "internet-facing"
    )


def test_minio_gateway_and_virtual_service_are_the_playbooks(plan: mockrun.PlanResult) -> None:
    gateway = named(plan, "mesh-minio-gateway")
    virtual_service = named(plan, "mesh-minio-virtual-service")
    for resource in (gateway, virtual_service):
        assert object_errors(resource) == [], resource.name
        assert resource.inputs["apiVersion"] == "networking.istio.io/v1"
        assert resource.inputs["metadata"]["namespace"] == "minio"
        assert depends_on(resource, named(plan, "mesh-crds")) and depends_on(resource, named(plan, "mesh-istiod"))
    assert gateway.inputs["metadata"]["name"] == "minio-gateway"
    assert gateway.inputs["spec"] == {
        "selector": {"istio": "ingressgateway"},
        "servers": [
            {
                "port": {"number": 80.0, "name": "http", "protocol": "HTTP"},
                "hosts": ["*"],
                "tls": {"httpsRedirect": True},
            },
            {
                "port": {"number": 443.0, "name": "https", "protocol": "HTTPS"},
                "tls": {"mode": "SIMPLE", "credentialName": "istio-ingressgateway-tls"},
                "hosts": ["*"],
            },
        ],
    }
    assert virtual_service.inputs["metadata"]["name"] == "minio"
    assert virtual_service.inputs["spec"] == {
        "hosts": ["*"],
        "gateways": ["minio-gateway.minio"],
        "http": [
            {
                "match": [{"uri": {"prefix": "/"}}],
                "route": [{"destination": {"host": "minio", "port": {"number": 9000.0}}}],
            }
        ],
    }
    assert depends_on(virtual_service, gateway)


def test_a_wrong_route_fails_the_crd_schema(plan: mockrun.PlanResult) -> None:
    virtual_service = named(plan, "mesh-minio-virtual-service")
    broken = mockrun.PlannedResource(**{**virtual_service.__dict__})
    broken.inputs = {**virtual_service.inputs, "spec": {"hosts": ["*"], "http": [{"route": "minio"}]}}
    assert object_errors(broken)


def test_outputs_are_the_ingress_host_and_ports(plan: mockrun.PlanResult) -> None:
    assert plan.outputs["httpPort"] == 80 and plan.outputs["httpsPort"] == 443
    preview = run_on_cluster(build, preview=True)
    assert preview.outputs["ingressHost"] == mockrun.UNKNOWN


def test_ingress_host_comes_from_the_balancer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        mockrun.MOCK_OUTPUTS,
        "kubernetes:core/v1:Service",
        lambda name, inputs: {"status": {"loadBalancer": {"ingress": [{"hostname": "nlb.example.aws"}]}}},
    )
    assert run_on_cluster(build).outputs["ingressHost"] == "nlb.example.aws"


def test_namespaces_opt_in_with_the_injection_label() -> None:
    assert IstioMesh.namespace_labels()["istio-injection"] == "enabled"
    assert IstioMesh.namespace_annotations() == {}


def test_args_are_validated_before_anything_is_created() -> None:
    with pytest.raises(ValueError, match="gateway_min_replicas"):
        run_on_cluster(lambda p: build(p, IstioMeshArgs(gateway_min_replicas=6, gateway_max_replicas=5)))
    with pytest.raises(ValueError, match="gateway_namespace must differ"):
        run_on_cluster(lambda p: build(p, IstioMeshArgs(gateway_namespace="istio-system")))
    with pytest.raises(ValueError, match="cni_namespace must be a namespace of its own"):
        run_on_cluster(lambda p: build(p, IstioMeshArgs(cni_namespace="istio-system")))
    with pytest.raises(ValueError, match="certificate_arn needs the aws-nlb balancer"):
        run_on_cluster(lambda p: build(p, IstioMeshArgs(gateway_tls=GatewayTls(certificate_arn=ARN)), Balancer.cloud()))


def test_replicas_and_gateway_scaling_come_from_args() -> None:
    plan = run_on_cluster(
        lambda p: build(p, IstioMeshArgs(pilot_replicas=2, gateway_min_replicas=2, gateway_max_replicas=4))
    )
    assert named(plan, "mesh-istiod").inputs["values"]["replicaCount"] == 2
    assert named(plan, "mesh-gateway").inputs["values"]["autoscaling"] == {
        "enabled": True,
        "minReplicas": 2.0,
        "maxReplicas": 4.0,
    }


def test_excluded_crds_are_the_names_of_what_the_config_file_created() -> None:
    """The base chart's excludedCRDs come from the ConfigFile's resources, whatever the version holds."""
    names = ["gateways.networking.istio.io", "virtualservices.networking.istio.io"]

    class Created:
        def __init__(self, name: str) -> None:
            self.metadata = pulumi.Output.from_input(SimpleNamespace(name=name))

    def program() -> None:
        pulumi.export("names", resource_names([Created(n) for n in names]))
        # A reference the SDK cannot rebuild as a resource arrives as its ID (the name, for a CRD).
        pulumi.export("ids", resource_names([Created(names[0]), names[1]]))
        pulumi.export("none", resource_names(None))

    outputs = mockrun.run("test", {}, program, preview=False, project="scaleplane").outputs
    assert outputs["names"] == outputs["ids"] == names
    assert outputs["none"] == []


# --- zero trust ------------------------------------------------------------------------------------


def security_objects(plan: mockrun.PlanResult) -> dict[tuple[str, str, str], mockrun.PlannedResource]:
    return {
        (r.inputs["kind"], r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r
        for r in plan.resources
        if r.inputs.get("apiVersion") == "security.istio.io/v1"
    }


def test_mtls_is_strict_mesh_wide_and_the_root_policy_allows_nothing(plan: mockrun.PlanResult) -> None:
    objects = security_objects(plan)
    strict = objects[("PeerAuthentication", "istio-system", "default")]
    assert strict.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    # An ALLOW policy without rules in the root namespace matches every workload and allows nothing.
    assert objects[("AuthorizationPolicy", "istio-system", "allow-nothing")].inputs["spec"] == {}
    for resource in objects.values():
        assert depends_on(resource, named(plan, "mesh-crds")) and depends_on(resource, named(plan, "mesh-istiod"))


def test_each_flow_admits_exactly_its_clients(plan: mockrun.PlanResult) -> None:
    objects = security_objects(plan)
    web = objects[("AuthorizationPolicy", "todo", "todo-web")].inputs["spec"]
    assert web["selector"] == {"matchLabels": {"app": "todo-prod"}} and web["action"] == "ALLOW"
    to = [{"operation": {"ports": ["3000"]}}]
    assert web["rules"] == [
        {"from": [{"source": {"namespaces": ["todo"]}}], "to": to},
        {"from": [{"source": {"principals": ["cluster.local/ns/istio-ingress/sa/istio-ingressgateway"]}}], "to": to},
        {"to": to},  # clients outside the mesh: its LoadBalancer Service
    ]
    mongodb = objects[("AuthorizationPolicy", "todo", "mongodb")].inputs["spec"]
    assert mongodb["rules"] == [
        {"from": [{"source": {"namespaces": ["todo"]}}], "to": [{"operation": {"ports": ["27017"]}}]}
    ]
    # Plain text only where clients outside the mesh arrive: one port of those pods.
    assert objects[("PeerAuthentication", "todo", "todo-web")].inputs["spec"] == {
        "selector": {"matchLabels": {"app": "todo-prod"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {"3000": {"mode": "PERMISSIVE"}},
    }
    assert ("PeerAuthentication", "todo", "mongodb") not in objects


def test_gateway_listeners_accept_any_source(plan: mockrun.PlanResult) -> None:
    policy = security_objects(plan)[("AuthorizationPolicy", "istio-ingress", "istio-ingressgateway")].inputs["spec"]
    assert policy["selector"]["matchLabels"]["istio"] == "ingressgateway"
    assert policy["rules"] == [{"to": [{"operation": {"ports": ["80", "443"]}}]}]


def test_security_objects_fit_the_istio_crd_by_its_rules() -> None:
    """security.istio.io is not in the pinned reference set (the plan lists what it cannot check):
    these are the CRD's CEL rules and enums at 1.30.3 (crd-all.gen.yaml), checked here instead."""
    plan = run_on_cluster(build)
    for (kind, _, name), resource in security_objects(plan).items():
        spec = resource.inputs["spec"]
        assert set(spec) <= {"selector", "mtls", "portLevelMtls", "action", "rules", "targetRef", "targetRefs"}, name
        if kind == "PeerAuthentication":
            assert spec["mtls"]["mode"] in ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
            if "portLevelMtls" in spec:  # "portLevelMtls requires selector", ports 1-65535
                assert spec["selector"]["matchLabels"]
                assert all(0 < int(port) <= 65535 for port in spec["portLevelMtls"])
        else:
            assert spec.get("action", "ALLOW") in ("ALLOW", "DENY", "AUDIT", "CUSTOM")
            for rule in spec.get("rules", []):
                assert set(rule) <= {"from", "to", "when"}
                for source in rule.get("from", []):
                    assert set(source["source"]) <= {"namespaces", "principals", "ipBlocks"}
                for target in rule.get("to", []):
                    assert all(isinstance(port, str) for port in target["operation"]["ports"])


# --- the gateway's TLS -----------------------------------------------------------------------------


def test_default_tls_is_a_generated_certificate_for_the_balancers_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        mockrun.MOCK_OUTPUTS,
        "kubernetes:core/v1:Service",
        lambda name, inputs: {"status": {"loadBalancer": {"ingress": [{"hostname": "nlb.example.aws"}]}}},
    )
    plan = run_on_cluster(build)
    secret = named(plan, "mesh-gateway-tls")
    assert object_errors(secret) == []
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert secret.inputs["metadata"] == {
        "name": "istio-ingressgateway-tls",
        "namespace": "istio-ingress",  # credentialName Secrets live beside the gateway's pods
        "labels": {"app.kubernetes.io/managed-by": "scaleplane"},
    }
    assert covered("stringData.tls.key", secret.secret_paths)
    certificate = named(plan, "mesh-gateway-tls-certificate")
    assert certificate.inputs["dnsNames"] == ["nlb.example.aws"] and certificate.inputs["ipAddresses"] == []
    assert "server_auth" in certificate.inputs["allowedUses"]
    assert named(plan, "mesh-gateway-tls-key").inputs == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}


def test_an_acm_certificate_terminates_tls_at_the_nlb() -> None:
    plan = run_on_cluster(lambda p: build(p, IstioMeshArgs(gateway_tls=GatewayTls(certificate_arn=ARN))))
    service = named(plan, "mesh-gateway-service")
    annotations = service.inputs["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == ARN
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "https"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service.inputs["spec"]["ports"]}
    assert ports == {"http2": (80, 80), "https": (443, 8443)}
    servers = named(plan, "mesh-minio-gateway").inputs["spec"]["servers"]
    assert servers[0]["tls"] == {"httpsRedirect": True}
    # Decrypted by the NLB: plain HTTP on a port of its own, never redirected (no loop).
    assert servers[1]["port"] == {"number": 8443.0, "name": "http-tls-terminated", "protocol": "HTTP"}
    assert "tls" not in servers[1]
    assert not [r for r in plan.resources if r.type == "kubernetes:core/v1:Secret"]
    policy = security_objects(plan)[("AuthorizationPolicy", "istio-ingress", "istio-ingressgateway")]
    assert policy.inputs["spec"]["rules"] == [{"to": [{"operation": {"ports": ["80", "8443"]}}]}]


def test_a_secret_of_the_users_is_served_by_the_gateway() -> None:
    plan = run_on_cluster(lambda p: build(p, IstioMeshArgs(gateway_tls=GatewayTls(credential_name="shop-tls"))))
    servers = named(plan, "mesh-minio-gateway").inputs["spec"]["servers"]
    assert servers[1]["tls"] == {"mode": "SIMPLE", "credentialName": "shop-tls"}
    assert not [r for r in plan.resources if r.type.startswith("tls:")]
    annotations = named(plan, "mesh-gateway-service").inputs["metadata"]["annotations"]
    assert "service.beta.kubernetes.io/aws-load-balancer-ssl-cert" not in annotations


# --- network policies ------------------------------------------------------------------------------


def network_policies(plan: mockrun.PlanResult) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in plan.resources
        if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    }


def ingress_ports(spec: dict[str, Any]) -> set[int]:
    return {int(port["port"]) for rule in spec["ingress"] for port in rule["ports"]}


def test_istio_namespaces_deny_ingress_but_the_control_planes_flows(plan: mockrun.PlanResult) -> None:
    policies = network_policies(plan)
    for namespace in ("istio-system", "istio-ingress", "istio-cni"):
        assert policies[(namespace, "default-deny-ingress")] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    istiod = policies[("istio-system", "istiod")]
    assert istiod["podSelector"] == {"matchLabels": {"app": "istiod"}}
    assert ingress_ports(istiod) == {15012, 15017}  # xDS over TLS, the webhooks (Service 443 -> 15017)
    # The API server calling the webhook is outside the pod network: a rule without `from`.
    assert all("from" not in rule for rule in istiod["ingress"])
    gateway = policies[("istio-ingress", "istio-ingressgateway")]
    assert ingress_ports(gateway) == {80, 443, 15021}
    for resource in plan.resources:
        if resource.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            assert object_errors(resource) == [], resource.name


def test_injected_pods_wait_until_the_injector_answers(plan: mockrun.PlanResult) -> None:
    job = named(plan, "mesh-injector-ready-job")
    assert job.inputs["metadata"]["namespace"] == "istio-system"
    probes = named(plan, "mesh-injector-ready-probes").inputs["data"]
    (manifest,) = [json.loads(text) for key, text in probes.items() if key.endswith(".json")]
    assert manifest["kind"] == "Pod" and manifest["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert "{.spec.initContainers[*].name}" in probes.values()
    assert depends_on(named(plan, "mesh-gateway"), job)  # its image is "auto" until injected
    assert depends_on(job, named(plan, "mesh-istiod"))
