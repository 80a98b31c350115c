"""LinkerdMesh: generated identity PKI, the three charts, the dashboard behind Traefik, emojivoto."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest
from traffic_support import (
    covered,
    depends_on,
    kinds,
    named,
    object_errors,
    plain_occurrences,
    run_on_cluster,
    schema_errors,
    unknown_value_paths,
)

from components.balancer import Balancer
from components.ingress.traefik import TraefikArgs
from components.mesh.emojivoto import EmojivotoArgs
from components.mesh.linkerd import CertificateValidity, LinkerdMesh, LinkerdMeshArgs, dashboard_host_regexp
from deploy import mockrun

#: Value paths set that the pinned values.yaml does not list, each with its reason.
ALLOWED: dict[str, str] = {
    "heartbeatResources": (
        "read by linkerd-control-plane's templates/heartbeat.yaml (edge-26.8.3) like its siblings "
        "destinationResources etc., which values.yaml documents in comments; this one it leaves out"
    ),
}

FAKE_PASSWORD = "fake-generated-password-0123456789"
FAKE_BCRYPT = "$2a$10$fakebcrypthashfakebcrypthashfakebcrypthashfakeb"
FAKE_KEY = "-----BEGIN EC PRIVATE KEY-----fake-{name}-----END EC PRIVATE KEY-----"
CREDENTIALS = (FAKE_PASSWORD, FAKE_BCRYPT, "BEGIN EC PRIVATE KEY")


def fake_provider_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """What pulumi-random and pulumi-tls compute, with recognisable fake values."""
    outputs = {
        "random:index/randomPassword:RandomPassword": lambda name, inputs: {
            "result": FAKE_PASSWORD,
            "bcryptHash": FAKE_BCRYPT,
        },
        "tls:index/privateKey:PrivateKey": lambda name, inputs: {"privateKeyPem": FAKE_KEY.format(name=name)},
        "tls:index/selfSignedCert:SelfSignedCert": lambda name, inputs: {"certPem": f"CERT({name})"},
        "tls:index/certRequest:CertRequest": lambda name, inputs: {"certRequestPem": f"CSR({name})"},
        "tls:index/locallySignedCert:LocallySignedCert": lambda name, inputs: {"certPem": f"CERT({name})"},
        "kubernetes:core/v1:Service": lambda name, inputs: (
            {"status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.201"}]}}}
            if inputs.get("spec", {}).get("type") == "LoadBalancer"
            else {}
        ),
    }
    for type_, fake in outputs.items():
        monkeypatch.setitem(mockrun.MOCK_OUTPUTS, type_, fake)


def build(provider: Any, args: LinkerdMeshArgs | None = None) -> LinkerdMesh:
    args = args or LinkerdMeshArgs(emojivoto=EmojivotoArgs())
    mesh = LinkerdMesh("mesh", args, provider, Balancer.cloud())
    pulumi.export("dashboardUrl", mesh.dashboard_url)
    pulumi.export("dashboardUser", mesh.dashboard_user)
    pulumi.export("dashboardPassword", mesh.dashboard_password)
    pulumi.export("emojivotoUrl", mesh.emojivoto_url)
    pulumi.export("trustAnchor", mesh.trust_anchor_pem)
    return mesh


@pytest.fixture(scope="module")
def plan() -> mockrun.PlanResult:
    """The preview: everything providers compute is unknown."""
    return run_on_cluster(build, preview=True)


@pytest.fixture(scope="module")
def deployed() -> mockrun.PlanResult:
    """An update: providers answer with recognisable fake values."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_provider_outputs(monkeypatch)
        return run_on_cluster(build)


# --- identity PKI ----------------------------------------------------------------------------------


def test_keys_are_ecdsa_p256(plan: mockrun.PlanResult) -> None:
    keys = [r for r in plan.resources if r.type == "tls:index/privateKey:PrivateKey"]
    assert {k.name for k in keys} == {"mesh-trust-anchor-key", "mesh-issuer-key", "mesh-dashboard-tls-key"}
    for key in keys:
        assert key.inputs == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}, key.name


def test_trust_anchor_is_a_self_signed_ca(plan: mockrun.PlanResult) -> None:
    anchor = named(plan, "mesh-trust-anchor")
    assert anchor.type == "tls:index/selfSignedCert:SelfSignedCert"
    assert anchor.inputs["isCaCertificate"] is True
    assert sorted(anchor.inputs["allowedUses"]) == ["cert_signing", "crl_signing"]
    assert anchor.inputs["validityPeriodHours"] == 87_600
    assert anchor.inputs["earlyRenewalHours"] == 2_160
    assert anchor.inputs["subject"]["commonName"] == "root.linkerd.cluster.local"
    assert depends_on(anchor, named(plan, "mesh-trust-anchor-key"))
    assert "privateKeyPem" in anchor.secret_paths


def test_issuer_is_an_intermediate_ca_signed_by_the_anchor(plan: mockrun.PlanResult) -> None:
    issuer = named(plan, "mesh-issuer")
    request = named(plan, "mesh-issuer-request")
    assert issuer.type == "tls:index/locallySignedCert:LocallySignedCert"
    assert issuer.inputs["isCaCertificate"] is True
    assert issuer.inputs["maxPathLength"] == 0
    assert sorted(issuer.inputs["allowedUses"]) == ["cert_signing", "crl_signing"]
    assert issuer.inputs["validityPeriodHours"] == 8_760 and issuer.inputs["earlyRenewalHours"] == 720
    assert request.inputs["subject"]["commonName"] == "identity.linkerd.cluster.local"
    # The identity service verifies the issuer with x509 DNSName: the SAN, not the CN, is checked.
    assert request.inputs["dnsNames"] == ["identity.linkerd.cluster.local"]
    assert "privateKeyPem" in request.secret_paths
    assert depends_on(issuer, named(plan, "mesh-trust-anchor"))
    assert depends_on(issuer, named(plan, "mesh-trust-anchor-key"))
    assert depends_on(request, named(plan, "mesh-issuer-key"))
    assert "caPrivateKeyPem" in issuer.secret_paths


def test_validity_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="early_renewal_hours"):
        run_on_cluster(lambda p: build(p, LinkerdMeshArgs(issuer=CertificateValidity(100, 100))), preview=True)
    short_anchor = LinkerdMeshArgs(trust_anchor=CertificateValidity(100, 1), issuer=CertificateValidity(200, 1))
    with pytest.raises(ValueError, match="must not outlive trust_anchor"):
        run_on_cluster(lambda p: build(p, short_anchor), preview=True)


# --- charts ----------------------------------------------------------------------------------------


def test_charts_install_in_order_from_the_edge_repository(plan: mockrun.PlanResult) -> None:
    crds, control_plane, viz = (named(plan, f"mesh-{role}") for role in ("crds", "control-plane", "viz"))
    assert crds.type == "kubernetes:helm.sh/v4:Chart"
    assert control_plane.type == viz.type == "kubernetes:helm.sh/v3:Release"
    for chart, name in ((crds, "linkerd-crds"), (control_plane, "linkerd-control-plane"), (viz, "linkerd-viz")):
        assert chart.inputs["chart"] == name
        assert chart.inputs["version"] == "2026.8.3"
        assert chart.inputs["repositoryOpts"]["repo"] == "https://helm.linkerd.io/edge"
    assert depends_on(control_plane, crds) and depends_on(viz, control_plane)
    assert control_plane.inputs["namespace"] == "linkerd" and viz.inputs["namespace"] == "linkerd-viz"


@pytest.mark.parametrize(
    "role, chart",
    [("crds", "linkerd-crds"), ("control-plane", "linkerd-control-plane"), ("viz", "linkerd-viz")],
)
def test_values_exist_in_the_pinned_charts(plan: mockrun.PlanResult, role: str, chart: str) -> None:
    assert unknown_value_paths(named(plan, f"mesh-{role}").inputs["values"], chart, ALLOWED) == []


def test_control_plane_gets_the_generated_pki(deployed: mockrun.PlanResult) -> None:
    values = named(deployed, "mesh-control-plane").inputs["values"]
    assert values["identityTrustAnchorsPEM"] == "CERT(mesh-trust-anchor)"
    tls = values["identity"]["issuer"]["tls"]
    assert tls["crtPEM"] == "CERT(mesh-issuer)"
    assert tls["keyPEM"] == FAKE_KEY.format(name="mesh-issuer-key")
    assert values["identity"]["issuer"]["scheme"] == "linkerd.io/tls"
    assert covered("values.identity.issuer.tls.keyPEM", named(deployed, "mesh-control-plane").secret_paths)


def test_namespaces_carry_what_linkerd_install_would_put_there(plan: mockrun.PlanResult) -> None:
    control = named(plan, "mesh-namespace").inputs["metadata"]
    assert control["name"] == "linkerd"
    assert control["labels"]["config.linkerd.io/admission-webhooks"] == "disabled"
    assert control["labels"]["linkerd.io/is-control-plane"] == "true"
    viz = named(plan, "mesh-viz-namespace").inputs["metadata"]
    assert viz["labels"]["linkerd.io/extension"] == "viz"
    assert viz["annotations"]["linkerd.io/inject"] == "enabled"
    # That metadata is ours, so the chart's post-install hook Job is switched off.
    assert named(plan, "mesh-viz").inputs["values"]["createNamespaceMetadataJob"] is False


def test_meshed_namespaces_inject_and_default_to_authenticated_clients_only() -> None:
    assert LinkerdMesh.namespace_annotations() == {
        "linkerd.io/inject": "enabled",
        "config.linkerd.io/default-inbound-policy": "all-authenticated",
    }
    # With linkerd-cni the mesh asks no Pod Security level of application namespaces.
    assert LinkerdMesh.namespace_labels() == {}


# --- dashboard -------------------------------------------------------------------------------------


def test_traefik_chart_values_exist_and_pass_its_schema(plan: mockrun.PlanResult) -> None:
    chart = named(plan, "mesh-traefik-chart")
    assert chart.type == "kubernetes:helm.sh/v4:Chart"
    assert chart.inputs["version"] == "41.3.0"
    values = chart.inputs["values"]
    assert unknown_value_paths(values, "traefik", ALLOWED) == []
    assert schema_errors(values, "traefik") == []
    assert schema_errors({**values, "service": {"enabled": "no"}}, "traefik"), "the schema check must be able to fail"


def test_traefik_is_exposed_by_the_balancer_on_its_web_entry_point(plan: mockrun.PlanResult) -> None:
    service = named(plan, "mesh-traefik-service")
    values = named(plan, "mesh-traefik-chart").inputs["values"]
    assert object_errors(service) == []
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert service.inputs["spec"]["selector"] == {
        "app.kubernetes.io/name": "traefik",
        "app.kubernetes.io/instance": values["instanceLabelOverride"],
    }
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service.inputs["spec"]["ports"]}
    assert ports == {"websecure": (443, 8443), "web": (80, 8000)}  # the chart's entry points
    redirect = values["ports"]["web"]["http"]["redirections"]["entryPoint"]
    assert redirect == {"to": "websecure", "scheme": "https", "permanent": True}
    published = values["providers"]["kubernetesIngress"]["publishedService"]["pathOverride"]
    assert published == f"{service.inputs['metadata']['namespace']}/{service.inputs['metadata']['name']}"


def test_dashboard_middlewares_match_the_traefik_crd(plan: mockrun.PlanResult) -> None:
    middlewares = {r.inputs["metadata"]["name"]: r for r in kinds(plan, "Middleware")}
    assert set(middlewares) == {"dashboard-auth"}  # nothing rewrites Host or Origin any more
    for middleware in middlewares.values():
        assert object_errors(middleware) == [], middleware.inputs["metadata"]["name"]
        assert depends_on(middleware, named(plan, "mesh-traefik-chart")), "the chart installs the Middleware CRD"
    auth = middlewares["dashboard-auth"].inputs["spec"]["basicAuth"]
    assert auth["secret"] == named(plan, "mesh-dashboard-auth").inputs["metadata"]["name"]
    assert auth["removeHeader"] is True


def test_dashboard_keeps_its_host_check_for_the_balancers_address(deployed: mockrun.PlanResult) -> None:
    pattern = named(deployed, "mesh-viz").inputs["values"]["dashboard"]["enforcedHostRegexp"]
    assert pattern == dashboard_host_regexp("linkerd-viz", "172.18.255.201")
    for host in ("172.18.255.201", "172.18.255.201:443", "web.linkerd-viz.svc.cluster.local:8084", "localhost:50750"):
        assert re.match(pattern, host), host
    for host in ("172.18.255.2011", "evil.example", "172x18.255.201"):
        assert not re.match(pattern, host), host
    assert re.match(dashboard_host_regexp("linkerd-viz", "a1b2.elb.amazonaws.com"), "a1b2.elb.amazonaws.com:443")


def test_dashboard_ingress_is_https_only_with_basic_auth(plan: mockrun.PlanResult) -> None:
    ingress = named(plan, "mesh-dashboard-ingress")
    assert object_errors(ingress) == []
    assert ingress.inputs["spec"]["ingressClassName"] == "traefik"
    annotations = ingress.inputs["metadata"]["annotations"]
    assert annotations["traefik.ingress.kubernetes.io/router.middlewares"] == "linkerd-viz-dashboard-auth@kubernetescrd"
    assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
    assert annotations["traefik.ingress.kubernetes.io/router.tls"] == "true"
    assert ingress.inputs["spec"]["tls"] == [{"secretName": "dashboard-tls"}]
    backend = ingress.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "web", "port": {"number": 8084}}
    assert depends_on(ingress, named(plan, "mesh-viz"))
    assert depends_on(ingress, named(plan, "mesh-dashboard-tls"))


def test_dashboard_certificate_names_the_balancers_address(deployed: mockrun.PlanResult) -> None:
    certificate = named(deployed, "mesh-dashboard-tls-certificate")
    assert certificate.inputs["ipAddresses"] == ["172.18.255.201"] and certificate.inputs["dnsNames"] == []
    secret = named(deployed, "mesh-dashboard-tls")
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert secret.inputs["metadata"]["namespace"] == "linkerd-viz"  # the Ingress's namespace
    assert covered("stringData.tls.key", secret.secret_paths)
    assert object_errors(secret) == []


def test_basic_auth_secret_holds_a_bcrypt_htpasswd_line(deployed: mockrun.PlanResult) -> None:
    secret = named(deployed, "mesh-dashboard-auth")
    assert secret.inputs["stringData"]["users"] == f"admin:{FAKE_BCRYPT}"
    assert covered("stringData.users", secret.secret_paths)
    assert object_errors(secret) == []


def test_dashboard_url_user_and_secret_password_are_exported(deployed: mockrun.PlanResult) -> None:
    assert deployed.outputs["dashboardUrl"] == "https://172.18.255.201:443"
    assert deployed.outputs["dashboardUser"] == "admin"
    assert "dashboardPassword" in deployed.secret_outputs
    assert isinstance(deployed.outputs["dashboardPassword"], mockrun.SecretOutput)


def test_no_credential_appears_in_plain_text(deployed: mockrun.PlanResult) -> None:
    for resource in deployed.resources:
        for path in plain_occurrences(resource.inputs, CREDENTIALS):
            assert covered(path, resource.secret_paths), f"{resource.name}.{path} holds a credential in plain text"
    assert list(plain_occurrences(deployed.outputs, CREDENTIALS)) == []
    # The check sees credentials where they are meant to be (it can fail).
    assert any(plain_occurrences(named(deployed, "mesh-dashboard-auth").inputs, CREDENTIALS))


# --- emojivoto -------------------------------------------------------------------------------------


def test_emojivoto_runs_meshed_with_pinned_images(plan: mockrun.PlanResult) -> None:
    namespace = named(plan, "mesh-emojivoto-namespace").inputs["metadata"]
    assert namespace["name"] == "emojivoto"
    assert namespace["annotations"]["linkerd.io/inject"] == "enabled"
    deployments = {r.inputs["metadata"]["name"]: r for r in kinds(plan, "Deployment")}
    assert set(deployments) == {"emoji", "voting", "web", "vote-bot"}
    images = {name: d.inputs["spec"]["template"]["spec"]["containers"][0]["image"] for name, d in deployments.items()}
    assert images == {
        "emoji": "docker.l5d.io/buoyantio/emojivoto-emoji-svc:v11",
        "voting": "docker.l5d.io/buoyantio/emojivoto-voting-svc:v11",
        "web": "docker.l5d.io/buoyantio/emojivoto-web:v11",
        "vote-bot": "docker.l5d.io/buoyantio/emojivoto-web:v11",
    }
    for name, deployment in deployments.items():
        assert object_errors(deployment) == [], name
        assert depends_on(deployment, named(plan, "mesh-control-plane")), f"{name} must start after the injector"
        container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"] and container["readinessProbe"], name
        assert container["resources"]["requests"]["cpu"], name
        assert container["securityContext"]["runAsNonRoot"] is True, name


def test_emojivoto_services_and_exposed_web(plan: mockrun.PlanResult) -> None:
    services = {r.inputs["metadata"]["name"]: r for r in kinds(plan, "Service") if r.name.startswith("mesh-emojivoto")}
    assert set(services) == {"emoji-svc", "voting-svc", "web-svc"}
    for name, service in services.items():
        assert object_errors(service) == [], name
    web = services["web-svc"].inputs["spec"]
    assert web["type"] == "LoadBalancer"
    assert web["ports"][0]["port"] == 80 and web["ports"][0]["targetPort"] == 8080
    web_pods = named(plan, "mesh-emojivoto-web").inputs["spec"]["template"]["metadata"]["labels"]
    assert web["selector"].items() <= web_pods.items()


def test_emojivoto_url_is_exported_when_enabled(deployed: mockrun.PlanResult) -> None:
    assert deployed.outputs["emojivotoUrl"] == "http://172.18.255.201:80"


def test_emojivoto_is_optional() -> None:
    plan = run_on_cluster(lambda p: build(p, LinkerdMeshArgs(traefik=TraefikArgs(namespace="ingress"))), preview=True)
    assert not kinds(plan, "Deployment")
    assert plan.outputs["emojivotoUrl"] is None
    assert named(plan, "mesh-traefik-chart").inputs["namespace"] == "ingress"


# --- CNI, Pod Security and chart resources ----------------------------------------------------------


def test_linkerd_cni_is_installed_before_the_control_plane_which_uses_it(plan: mockrun.PlanResult) -> None:
    cni = named(plan, "mesh-cni")
    assert cni.type == "kubernetes:helm.sh/v4:Chart"  # a plain DaemonSet: the policy pack sees it
    assert (cni.inputs["chart"], cni.inputs["version"]) == ("linkerd2-cni", "2026.8.3")
    assert cni.inputs["namespace"] == "linkerd-cni"
    # Not in the reference set: linkerd2-cni's values.yaml at edge-26.8.3 has resources.cpu/memory
    # request/limit, and templates/cni-plugin.yaml renders them through partials.resources.
    assert cni.inputs["values"] == {
        "resources": {"cpu": {"request": "50m"}, "memory": {"request": "32Mi", "limit": "128Mi"}}
    }
    control_plane = named(plan, "mesh-control-plane")
    assert depends_on(control_plane, cni)
    assert control_plane.inputs["values"]["cniEnabled"] is True


def test_every_linkerd_namespace_enforces_a_pod_security_level(plan: mockrun.PlanResult) -> None:
    levels = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"].get("pod-security.kubernetes.io/enforce")
        for r in plan.resources
        if r.type == "kubernetes:core/v1:Namespace"
    }
    assert levels == {
        "linkerd": "restricted",
        "linkerd-viz": "restricted",
        "linkerd-cni": "privileged",  # hostPath mounts of the node's CNI directories
        "traefik": "restricted",
        "emojivoto": "restricted",
    }


def test_injected_proxies_meet_the_restricted_level(plan: mockrun.PlanResult) -> None:
    context = named(plan, "mesh-control-plane").inputs["values"]["proxy"]["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}  # the chart's default context leaves this out
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 2102  # the chart's proxy.uid
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def requests_cpu_and_memory(resources: dict[str, Any]) -> bool:
    return bool(resources["cpu"]["request"]) and bool(resources["memory"]["request"])


def test_every_control_plane_and_viz_container_requests_cpu_and_memory(plan: mockrun.PlanResult) -> None:
    control = named(plan, "mesh-control-plane").inputs["values"]
    # destination (and sp-validator, policy controller in its pod), identity, proxy-injector,
    # heartbeat, and every proxy (incl. their own) and the network-validator (proxy.resources).
    for key in (
        "destinationResources",
        "destinationProxyResources",
        "spValidatorResources",
        "identityResources",
        "identityProxyResources",
        "proxyInjectorResources",
        "proxyInjectorProxyResources",
        "heartbeatResources",
    ):
        assert requests_cpu_and_memory(control[key]), key
    assert requests_cpu_and_memory(control["policyController"]["resources"])
    assert requests_cpu_and_memory(control["proxy"]["resources"])
    viz = named(plan, "mesh-viz").inputs["values"]
    for component in ("metricsAPI", "tap", "tapInjector", "prometheus", "dashboard"):
        assert requests_cpu_and_memory(viz[component]["resources"]), component


def test_commented_chart_keys_count_but_misspelt_ones_do_not() -> None:
    assert unknown_value_paths({"destinationResources": {"cpu": {}}}, "linkerd-control-plane", {}) == []
    assert unknown_value_paths({"destinationResourcez": {}}, "linkerd-control-plane", {}) == ["destinationResourcez"]
    assert unknown_value_paths({"heartbeatResources": {}}, "linkerd-control-plane", {}) == ["heartbeatResources"]


# --- authorization -----------------------------------------------------------------------------------


def policy_objects(plan: mockrun.PlanResult) -> dict[tuple[str, str, str], mockrun.PlannedResource]:
    return {
        (r.inputs["kind"], r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r
        for r in plan.resources
        if str(r.inputs.get("apiVersion", "")).startswith("policy.linkerd.io/")
    }


def test_policy_objects_match_the_pinned_crds_and_wait_for_the_policy_validator(plan: mockrun.PlanResult) -> None:
    objects = policy_objects(plan)
    assert objects
    for key, resource in objects.items():
        assert object_errors(resource) == [], key
        assert depends_on(resource, named(plan, "mesh-crds")) and depends_on(
            resource, named(plan, "mesh-control-plane")
        )


def test_every_served_port_admits_only_its_clients(plan: mockrun.PlanResult) -> None:
    objects = policy_objects(plan)
    servers = {(ns, name): r.inputs["spec"] for (kind, ns, name), r in objects.items() if kind == "Server"}
    assert servers == {
        ("linkerd-viz", "web"): {
            "podSelector": {"matchLabels": {"linkerd.io/extension": "viz", "component": "web"}},
            "port": 8084,
            "proxyProtocol": "unknown",
        },
        ("traefik", "traefik-websecure"): {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik"}
            },
            "port": 8443,
            "proxyProtocol": "unknown",
        },
        ("traefik", "traefik-web"): {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik"}
            },
            "port": 8000,
            "proxyProtocol": "unknown",
        },
        ("emojivoto", "web-svc"): {
            "podSelector": {"matchLabels": {"app": "web-svc"}},
            "port": 8080,
            "proxyProtocol": "unknown",
        },
        ("emojivoto", "emoji-svc"): {
            "podSelector": {"matchLabels": {"app": "emoji-svc"}},
            "port": 8080,
            "proxyProtocol": "gRPC",
        },
        ("emojivoto", "voting-svc"): {
            "podSelector": {"matchLabels": {"app": "voting-svc"}},
            "port": 8080,
            "proxyProtocol": "gRPC",
        },
    }
    # The dashboard: only Traefik's mTLS identity (no network-wide grant).
    dashboard = objects[("MeshTLSAuthentication", "linkerd-viz", "web-clients")].inputs["spec"]
    assert dashboard == {"identityRefs": [{"kind": "Namespace", "name": "traefik"}]}
    assert ("NetworkAuthentication", "linkerd-viz", "web-anywhere") not in objects
    policy = objects[("AuthorizationPolicy", "linkerd-viz", "web-clients")].inputs["spec"]
    assert policy == {
        "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web"},
        "requiredAuthenticationRefs": [
            {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "web-clients"}
        ],
    }
    # emoji and voting: only emojivoto's own meshed workloads.
    for name in ("emoji-svc", "voting-svc"):
        assert objects[("MeshTLSAuthentication", "emojivoto", f"{name}-clients")].inputs["spec"] == {
            "identityRefs": [{"kind": "Namespace", "name": "emojivoto"}]
        }
        assert ("NetworkAuthentication", "emojivoto", f"{name}-anywhere") not in objects
    # web-svc and Traefik are the balancer's targets: clients outside the mesh too.
    for namespace, name in (("emojivoto", "web-svc"), ("traefik", "traefik-websecure"), ("traefik", "traefik-web")):
        network = objects[("NetworkAuthentication", namespace, f"{name}-anywhere")].inputs["spec"]
        assert network == {"networks": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]}
        assert ("AuthorizationPolicy", namespace, f"{name}-anywhere") in objects


def test_traefik_is_meshed_and_starts_after_the_injector(plan: mockrun.PlanResult) -> None:
    namespace = named(plan, "mesh-traefik-namespace").inputs["metadata"]
    assert namespace["annotations"]["linkerd.io/inject"] == "enabled"
    assert depends_on(named(plan, "mesh-traefik-chart"), named(plan, "mesh-control-plane"))


def test_emojivoto_pods_mount_no_token_and_run_restricted(plan: mockrun.PlanResult) -> None:
    for deployment in kinds(plan, "Deployment"):
        spec = deployment.inputs["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False, deployment.name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, deployment.name
        container = spec["containers"][0]["securityContext"]
        assert container["capabilities"] == {"drop": ["ALL"]} and container["allowPrivilegeEscalation"] is False
    for account in [r for r in plan.resources if r.type == "kubernetes:core/v1:ServiceAccount"]:
        assert account.inputs["automountServiceAccountToken"] is False, account.name


# --- network policies ------------------------------------------------------------------------------


def network_policies(plan: mockrun.PlanResult) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in plan.resources
        if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    }


def ports_from(spec: dict[str, Any]) -> dict[int, Any]:
    return {int(port["port"]): rule.get("from") for rule in spec["ingress"] for port in rule["ports"]}


def test_every_linkerd_namespace_denies_ingress_by_default(plan: mockrun.PlanResult) -> None:
    names = [
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        for r in plan.resources
        if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    ]
    assert len(names) == len(set(names)), "two NetworkPolicies share a name"
    policies = network_policies(plan)
    for namespace in ("linkerd", "linkerd-viz", "linkerd-cni", "traefik", "emojivoto"):
        assert policies[(namespace, "default-deny-ingress")] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for resource in plan.resources:
        if resource.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            assert object_errors(resource) == [], resource.name


def test_control_plane_ports_are_open_to_proxies_and_the_api_server(plan: mockrun.PlanResult) -> None:
    policies = network_policies(plan)
    destination = ports_from(policies[("linkerd", "destination")])
    # destination 8086, policy 8090, the sp-validator (8443) and policy-validator (9443) webhooks,
    # all from any source: proxies everywhere, the API server outside the pod network.
    assert destination == {8086: None, 8090: None, 8443: None, 9443: None}
    assert ports_from(policies[("linkerd", "identity")]) == {8080: None}
    assert ports_from(policies[("linkerd", "proxy-injector")]) == {8443: None}
    assert ports_from(policies[("linkerd-viz", "tap")]) == {8089: None}  # the APIService
    assert ports_from(policies[("linkerd-viz", "tap-injector")]) == {8443: None}


def test_admin_ports_and_the_dashboard_have_their_one_client(plan: mockrun.PlanResult) -> None:
    policies = network_policies(plan)
    prometheus = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "linkerd-viz"}},
            "podSelector": {"matchLabels": {"component": "prometheus"}},
        }
    ]
    scrape = policies[("linkerd", "destination-scrape")]
    assert set(ports_from(scrape)) == {4191, 9990, 9996, 9997} and all(
        source == prometheus for source in ports_from(scrape).values()
    )
    assert set(ports_from(policies[("linkerd", "proxy-injector-scrape")])) == {4191, 9995}
    assert set(ports_from(policies[("traefik", "scrape")])) == {4191}
    assert set(ports_from(policies[("emojivoto", "scrape")])) == {4191}
    dashboard = ports_from(policies[("linkerd-viz", "web-from-traefik")])
    assert dashboard == {8084: [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]}
    assert ports_from(policies[("traefik", "traefik")]) == {8443: None, 8000: None}
    assert ports_from(policies[("emojivoto", "emoji-svc")]) == {
        8080: [{"podSelector": {"matchLabels": {"app": "web-svc"}}}]
    }
    assert ports_from(policies[("emojivoto", "web-svc")]) == {8080: None}
