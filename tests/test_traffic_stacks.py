"""Each stack's traffic shape end to end: its URLs, the wiring into the apps, and no plain credentials."""

from __future__ import annotations

import json
import runpy

import pytest
from test_mesh_linkerd import CREDENTIALS, fake_provider_outputs
from traffic_support import covered, plain_occurrences

from deploy import mockrun
from deploy.project import PROJECT_DIR, STACKS, stack_config

#: The URLs (and ingress facts) each stack exports.
EXPORTED = {
    "local": {"minioUrl", "linkerdDashboardUrl", "emojivotoUrl"},
    "dev": {"minioUrl", "linkerdDashboardUrl", "emojivotoUrl"},
    "staging": {"minioUrl", "istioIngressHost", "istioIngressHttpPort", "istioIngressHttpsPort"},
    "prod": {"minioUrl", "istioIngressHost", "istioIngressHttpPort", "istioIngressHttpsPort"},
}
ADDRESS = "172.18.255.201"


@pytest.fixture(scope="module")
def previews() -> dict[str, mockrun.PlanResult]:
    return {stack: mockrun.run_stack(stack, preview=True) for stack in STACKS}


def update(stack: str) -> mockrun.PlanResult:
    """The stack's program as `pulumi up` runs it (not a preview), on an existing cluster.

    Creating EKS or kops clusters needs their own tools' answers; the traffic layer does not
    depend on how the cluster came to be, so these runs keep the stack's traffic settings and
    swap the cluster for a kubeconfig context.
    """
    config = {k: v for k, v in stack_config(stack).items() if k not in ("scaleplane:eks", "scaleplane:kops")}
    config["scaleplane:cluster"] = "existing"
    config["scaleplane:existingCluster"] = json.dumps({"context": stack})
    main = str(PROJECT_DIR / "__main__.py")
    return mockrun.run(stack, config, lambda: runpy.run_path(main, run_name="__pulumi_main__"), preview=False)


@pytest.fixture(scope="module")
def updates() -> dict[str, mockrun.PlanResult]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_provider_outputs(monkeypatch)
        return {stack: update(stack) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_exports_its_urls_unknown_until_deployed(previews: dict[str, mockrun.PlanResult], stack: str) -> None:
    outputs = previews[stack].outputs
    assert EXPORTED[stack] <= set(outputs)
    for key in EXPORTED[stack]:
        if key.endswith("Port"):
            continue
        assert outputs[key] == mockrun.UNKNOWN, f"{stack}: {key} invented before the balancer answered"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_urls_come_from_the_balancers_address(updates: dict[str, mockrun.PlanResult], stack: str) -> None:
    outputs = updates[stack].outputs
    assert outputs["minioUrl"] == f"http://{ADDRESS}:9000"
    if "linkerdDashboardUrl" in EXPORTED[stack]:
        assert outputs["linkerdDashboardUrl"] == f"https://{ADDRESS}:443"  # HTTPS only
        assert outputs["emojivotoUrl"] == f"http://{ADDRESS}:80"
        assert "linkerdDashboardPassword" in updates[stack].secret_outputs
    else:
        assert outputs["istioIngressHost"] == ADDRESS
        assert (outputs["istioIngressHttpPort"], outputs["istioIngressHttpsPort"]) == (80, 443)


@pytest.mark.parametrize("stack", STACKS)
def test_no_credential_in_plain_text_anywhere(updates: dict[str, mockrun.PlanResult], stack: str) -> None:
    plan = updates[stack]
    for resource in plan.resources:
        for path in plain_occurrences(resource.inputs, CREDENTIALS):
            assert covered(path, resource.secret_paths), f"{stack}: {resource.name}.{path} is plain"
    assert list(plain_occurrences(plan.outputs, CREDENTIALS)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_load_balancer_service_goes_through_the_balancer(
    previews: dict[str, mockrun.PlanResult], stack: str
) -> None:
    plan = previews[stack]
    services = [
        r
        for r in plan.resources
        if r.inputs.get("kind") == "Service" and r.inputs["spec"].get("type") == "LoadBalancer"
    ]
    assert services
    balancer = plan.outputs["balancer"]
    for service in services:
        annotations = service.inputs["metadata"].get("annotations", {})
        scheme = annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme")
        if balancer == "aws-nlb":
            assert annotations.get("service.beta.kubernetes.io/aws-load-balancer-type") == "external", service.name
            # prod: the Istio gateway is the one internet-facing balancer; the rest are internal.
            gateway = service.inputs["metadata"]["name"] == "istio-ingressgateway"
            assert scheme == ("internet-facing" if stack == "prod" and gateway else "internal"), service.name
            assert service.inputs["spec"].get("loadBalancerClass") == "service.k8s.aws/nlb", service.name
        else:
            assert scheme is None, service.name
        if balancer == "cloud":
            assert annotations.get("service.beta.kubernetes.io/aws-load-balancer-internal") == "true", service.name
        if balancer == "metallb":
            pool = next(r for r in plan.resources if r.type == "kubernetes:metallb.io/v1beta1:IPAddressPool")
            assert pool.urn in service.dependencies, f"{service.name} does not wait for the address pool"


@pytest.mark.parametrize("stack", STACKS)
def test_application_namespaces_join_the_mesh(previews: dict[str, mockrun.PlanResult], stack: str) -> None:
    plan = previews[stack]
    by_name = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]
        for r in plan.resources
        if r.inputs.get("kind") == "Namespace"
    }
    for app in ("todo", "minio"):
        metadata = by_name[app]
        if plan.outputs["mesh"] == "istio":
            assert metadata["labels"].get("istio-injection") == "enabled", app
        else:
            assert metadata.get("annotations", {}).get("linkerd.io/inject") == "enabled", app


def test_istio_stacks_route_minio_through_the_gateway(previews: dict[str, mockrun.PlanResult]) -> None:
    for stack in ("staging", "prod"):
        resources = previews[stack].resources
        routes = {r.inputs["kind"]: r for r in resources if r.type.startswith("kubernetes:networking.istio.io")}
        assert set(routes) == {"Gateway", "VirtualService"}
        namespace = next(
            r for r in resources if r.type == "kubernetes:core/v1:Namespace" and r.name.endswith("-minio-namespace")
        )
        for route in routes.values():
            assert namespace.urn in route.dependencies, "routes must wait for MinIO's namespace"
            assert route.inputs["metadata"]["namespace"] == namespace.inputs["metadata"]["name"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_nlb_services_wait_for_the_aws_load_balancer_controller(
    previews: dict[str, mockrun.PlanResult], stack: str
) -> None:
    plan = previews[stack]
    controller = plan.named("kubernetes:helm.sh/v4:Chart", f"{stack}-cluster-load-balancer-controller")
    services = [r for r in plan.resources if r.type == "kubernetes:core/v1:Service"]
    exposed = [r for r in services if r.inputs["spec"].get("type") == "LoadBalancer"]
    assert exposed
    for service in exposed:
        assert controller.urn in service.dependencies, f"{service.name}: only the controller serves its class"


@pytest.mark.parametrize("stack", STACKS)
def test_meshes_run_zero_trust_for_the_applications(previews: dict[str, mockrun.PlanResult], stack: str) -> None:
    plan = previews[stack]
    namespaces = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]
        for r in plan.resources
        if r.inputs.get("kind") == "Namespace"
    }
    custom = [
        r.inputs for r in plan.resources if r.type.startswith("kubernetes:") and "/" in r.inputs.get("apiVersion", "")
    ]
    if plan.outputs["mesh"] == "istio":
        strict = [c for c in custom if c["kind"] == "PeerAuthentication" and c["metadata"]["name"] == "default"]
        assert [(c["metadata"]["namespace"], c["spec"]) for c in strict] == [
            ("istio-system", {"mtls": {"mode": "STRICT"}})
        ]
        policies = {
            (c["metadata"]["namespace"], c["metadata"]["name"]) for c in custom if c["kind"] == "AuthorizationPolicy"
        }
        expected = "policy.istio"
    else:
        for app in ("todo", "minio"):
            annotations = namespaces[app].get("annotations", {})
            assert annotations["config.linkerd.io/default-inbound-policy"] == "all-authenticated", app
        policies = {
            (c["metadata"]["namespace"], c["spec"]["targetRef"]["name"])
            for c in custom
            if c["kind"] == "AuthorizationPolicy"
        }
        expected = "policy.linkerd"
    assert {("todo", "todo-web"), ("todo", "mongodb"), ("minio", "minio-api")} <= policies, expected


@pytest.mark.parametrize("stack", STACKS)
def test_the_load_test_would_run_meshed_with_a_native_sidecar(stack: str) -> None:
    config = dict(stack_config(stack))
    config["scaleplane:loadTest"] = json.dumps({"enabled": True})
    plan = mockrun.run(
        stack,
        config,
        lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__pulumi_main__"),
        preview=True,
    )
    job = next(
        r
        for r in plan.resources
        if r.type == "kubernetes:batch/v1:Job" and r.inputs["metadata"]["name"] == "load-generator"
    )
    annotations = job.inputs["spec"]["template"]["metadata"]["annotations"]
    key = (
        "sidecar.istio.io/nativeSidecar"
        if plan.outputs["mesh"] == "istio"
        else "config.linkerd.io/proxy-enable-native-sidecar"
    )
    assert annotations[key] == "true"
    assert job.inputs["metadata"]["namespace"] == "todo"  # a meshed namespace: its clients are todo's
