"""The picture of each stack (diagram.md): nodes and traffic paths derived from what the program
registered, the same text for the same plan, and README's prod copy current."""

from __future__ import annotations

import random
import re

import pulumi
import pulumi_kubernetes as k8s
import pytest
from support import run_component

from deploy import diagram, mockrun
from deploy.project import PROJECT_DIR


def edges(text: str) -> set[tuple[str, str]]:
    """(from, to) of every edge line, labels and arrow styles aside."""
    found = set()
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\S+) (?:-->|-- .*? -->|-\.->|-\. .*? \.->) (\S+)", line)
        if match:
            found.add((match.group(1), match.group(2)))
    return found


def web_and_database(p: k8s.Provider) -> None:
    opts = pulumi.ResourceOptions(provider=p)
    labels = {"app": "web", "tier": "front"}
    k8s.core.v1.Service(
        "web-lb",
        metadata={"name": "web", "namespace": "shop"},
        spec={"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443}]},
        opts=opts,
    )
    k8s.apps.v1.Deployment(
        "web",
        metadata={"name": "web", "namespace": "shop"},
        spec={
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "web:1",
                            "env": [
                                {"name": "DB_URL", "value": "postgres://db.data.svc.cluster.local:5432/shop"},
                                {"name": "CACHE_HOST", "value": "cache"},
                                {"name": "BUCKET", "value": "db"},
                            ],
                        }
                    ]
                },
            },
        },
        opts=opts,
    )
    for name, namespace in (("db", "data"), ("cache", "shop")):
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": name, "namespace": namespace},
            spec={"selector": {"app": name}, "ports": [{"port": 1}]},
            opts=opts,
        )
        k8s.apps.v1.StatefulSet(
            name,
            metadata={"name": name, "namespace": namespace},
            spec={
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
                },
            },
            opts=opts,
        )


def test_paths_follow_selectors_exposure_and_service_names_in_env() -> None:
    text = diagram.mermaid(run_component(web_and_database))
    assert edges(text) == {
        ("internet", "svc_shop_web"),
        ("svc_shop_web", "wl_shop_web"),
        ("svc_data_db", "wl_data_db"),
        ("svc_shop_cache", "wl_shop_cache"),
        ("wl_shop_web", "svc_data_db"),  # by its full DNS name in a URL
        ("wl_shop_web", "svc_shop_cache"),  # by its bare name, same namespace
    }  # BUCKET=db names no Service: db is in another namespace
    assert "internet -- 443 --> svc_shop_web" in text
    assert 'svc_shop_web(["Service web (LoadBalancer)"])' in text


UI = {"name": "ui", "port": {"number": 80}}


def gateway_and_routes(p: k8s.Provider) -> None:
    opts = pulumi.ResourceOptions(provider=p)
    k8s.helm.v3.Release("ingress-chart", chart="gateway", namespace="edge", opts=opts)
    k8s.core.v1.Service(
        "edge-lb",
        metadata={"name": "gateway", "namespace": "edge"},
        spec={"type": "LoadBalancer", "selector": {"istio": "gw", "app": "gw"}, "ports": [{"port": 80}]},
        opts=opts,
    )
    custom = k8s.apiextensions.CustomResource
    custom(
        "gw",
        api_version="networking.istio.io/v1",
        kind="Gateway",
        metadata={"name": "public", "namespace": "shop"},
        spec={"selector": {"istio": "gw"}, "servers": []},
        opts=opts,
    )
    custom(
        "vs",
        api_version="networking.istio.io/v1",
        kind="VirtualService",
        metadata={"name": "shop", "namespace": "shop"},
        spec={"gateways": ["shop/public"], "hosts": ["*"], "http": [{"route": [{"destination": {"host": "api"}}]}]},
        opts=opts,
    )
    k8s.helm.v3.Release(
        "traefik-chart", chart="traefik", namespace="traefik", values={"ingressClass": {"name": "public"}}, opts=opts
    )
    k8s.networking.v1.Ingress(
        "dashboard",
        metadata={"name": "dashboard", "namespace": "tools"},
        spec={
            "ingressClassName": "public",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": UI}}]}}],
        },
        opts=opts,
    )
    custom(
        "route",
        api_version="traefik.io/v1alpha1",
        kind="IngressRoute",
        metadata={"name": "docs", "namespace": "tools"},
        spec={"routes": [{"match": "PathPrefix(`/`)", "services": [{"name": "docs", "namespace": "docs"}]}]},
        opts=opts,
    )


def test_gateways_and_ingress_routes_lead_to_their_services() -> None:
    text = diagram.mermaid(run_component(gateway_and_routes))
    assert edges(text) >= {
        ("internet", "svc_edge_gateway"),
        ("svc_edge_gateway", "chart_edge_ingress_chart"),  # selects no registered pods: the chart's
        ("svc_edge_gateway", "Gateway_shop_public"),  # the Gateway selects the same pods
        ("Gateway_shop_public", "VirtualService_shop_shop"),
        ("VirtualService_shop_shop", "svc_shop_api"),
        ("chart_traefik_traefik_chart", "Ingress_tools_dashboard"),  # its IngressClass
        ("Ingress_tools_dashboard", "svc_tools_ui"),
        ("chart_traefik_traefik_chart", "IngressRoute_tools_docs"),
        ("IngressRoute_tools_docs", "svc_docs_docs"),
    }
    # Services the program does not register are drawn dashed.
    assert 'svc_shop_api(["Service api"]):::external' in text
    assert "VirtualService_shop_shop -.-> svc_shop_api" in text


@pytest.mark.parametrize(
    ("text", "name", "namespace", "own", "expected"),
    [
        ("mongodb", "mongodb", "todo", "todo", True),
        ("mongodb", "mongodb", "todo", "other", False),
        ("mongodb:27017", "mongodb", "todo", "todo", True),
        ("mongodbx", "mongodb", "todo", "todo", False),
        ("web-svc.emojivoto:80", "web-svc", "emojivoto", "emojivoto", True),
        ("web-svc.emojivoto:80", "web-svc", "emojivoto", "elsewhere", True),
        ("http://minio-{0...3}.minio-headless.minio.svc.cluster.local/data", "minio-headless", "minio", "minio", True),
        ("http://minio-{0...3}.minio-headless.minio.svc.cluster.local/data", "minio", "minio", "minio", False),
        ("dist/index_bundle.js", "index_bundle", "x", "x", False),
    ],
)
def test_a_service_is_named_by_its_dns_name_only(
    text: str, name: str, namespace: str, own: str, expected: bool
) -> None:
    assert diagram.names_service(text, name, namespace, own) is expected


def test_the_same_plan_gives_the_same_text_whatever_the_registration_order(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    for result in stack_plans.values():
        shuffled = list(result.resources)
        random.Random(7).shuffle(shuffled)
        again = mockrun.PlanResult(result.stack, shuffled, result.outputs, result.secret_outputs)
        assert diagram.mermaid(again) == diagram.mermaid(result)


def test_every_stack_shows_its_cluster_namespaces_and_exposed_endpoints(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    for stack, result in stack_plans.items():
        text = diagram.markdown(result)
        assert text.startswith(f"# Stack {stack}\n") and "```mermaid\nflowchart LR\n" in text
        cluster = next(r for r in result.resources if r.type.startswith("scaleplane:cluster:"))
        assert f'subgraph cluster["{cluster.type.rsplit(":", 1)[-1]} {cluster.name}"]' in text
        for resource in result.resources:
            obj = resource.inputs
            if resource.is_kubernetes_object and obj.get("kind") == "Namespace":
                assert f"namespace {obj['metadata']['name']}" in text
            exposed = obj.get("kind") == "Service" and obj["spec"].get("type") == "LoadBalancer"
            if resource.is_kubernetes_object and exposed:
                namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
                assert ("internet", diagram._id("svc", namespace, name)) in edges(text), f"{stack}: {name}"


def test_readme_shows_the_current_prod_diagram(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    current = diagram.replace_readme_block(readme, stack_plans[diagram.README_STACK])
    assert readme == current, "README's prod diagram is stale: run `venv/bin/python -m deploy.diagram`"
