"""IstioMesh: base -> istiod -> gateway, the playbook's minio Gateway and VirtualService, outputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pulumi
import pytest
from traffic_support import (
    depends_on,
    named,
    object_errors,
    run_on_cluster,
    schema_errors,
    unknown_value_paths,
    value_paths,
)

from components.balancer import Balancer
from components.mesh.istio import IstioMesh, IstioMeshArgs, resource_names
from deploy import mockrun

#: Value paths set that the pinned values.yaml does not list, each with its reason. None so far.
ALLOWED: dict[str, str] = {}


DEFAULT_ARGS = IstioMeshArgs()


def build(provider: Any, args: IstioMeshArgs = DEFAULT_ARGS, balancer: Balancer | None = None) -> IstioMesh:
    mesh = IstioMesh("mesh", args, provider, balancer or Balancer.aws_nlb("internet-facing"))
    mesh.route_http("minio", namespace="minio", port=9000)
    pulumi.export("ingressHost", mesh.ingress_host)
    pulumi.export("httpPort", mesh.ingress_http_port)
    pulumi.export("httpsPort", mesh.ingress_https_port)
    return mesh


@pytest.fixture(scope="module")
def plan() -> mockrun.PlanResult:
    return run_on_cluster(build)


def test_charts_install_in_order_at_one_pinned_version(plan: mockrun.PlanResult) -> None:
    crds, base, istiod, gateway = (named(plan, f"mesh-{role}") for role in ("crds", "base", "istiod", "gateway"))
    for release, chart in ((base, "base"), (istiod, "istiod"), (gateway, "gateway")):
        assert release.type == "kubernetes:helm.sh/v3:Release"
        assert release.inputs["chart"] == chart
        assert release.inputs["version"] == "1.30.3"
        assert release.inputs["repositoryOpts"]["repo"] == "https://istio-release.storage.googleapis.com/charts"
    assert depends_on(base, crds) and depends_on(istiod, base) and depends_on(gateway, istiod)
    assert base.inputs["namespace"] == istiod.inputs["namespace"] == "istio-system"
    assert gateway.inputs["namespace"] == "istio-ingress"


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
        "servers": [{"port": {"number": 80.0, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
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
