"""EksCluster under mocks: network, node groups, IMDSv2, IRSA scoping, add-ons and charts."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from policy_support import MISSING, ROOT, container, found, pod_spec, workload
from support import reference_file

from components.cluster import eks as eks_module
from deploy import mockrun
from deploy.project import stack_config
from settings.cluster import is_arm

ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
ENDPOINT = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com"
OIDC_ARN = (
    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
)


def _fake_outputs() -> dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]]:
    """What AWS would compute for the resources whose outputs feed IRSA and the kubeconfig."""
    return {
        "aws:eks/cluster:Cluster": lambda name, inputs: {
            "endpoint": ENDPOINT,
            "certificateAuthority": {"data": "Q0EgZGF0YQ=="},
            "identities": [{"oidcs": [{"issuer": ISSUER}]}],
            "arn": f"arn:aws:eks:us-east-1:111122223333:cluster/{inputs['name']}",
        },
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda name, inputs: {"arn": OIDC_ARN},
        "aws:iam/role:Role": lambda name, inputs: {"arn": f"arn:aws:iam::111122223333:role/{name}", "name": name},
        "aws:ec2/launchTemplate:LaunchTemplate": lambda name, inputs: {"latestVersion": 1},
        "tls:index/privateKey:PrivateKey": lambda name, inputs: {"privateKeyPem": f"KEY OF {name}"},
        "tls:index/selfSignedCert:SelfSignedCert": lambda name, inputs: {"certPem": f"CERT OF {name}"},
        "tls:index/locallySignedCert:LocallySignedCert": lambda name, inputs: {"certPem": f"CERT OF {name}"},
    }


@pytest.fixture(scope="module")
def prod() -> mockrun.PlanResult:
    return mockrun.run_stack("prod")


@pytest.fixture(scope="module")
def deployed() -> Iterator[mockrun.PlanResult]:
    """prod with provider-computed values filled in (preview=False), and the AWS NLB balancer."""
    saved = dict(mockrun.MOCK_OUTPUTS)
    mockrun.MOCK_OUTPUTS.update(_fake_outputs())
    try:
        config = {**stack_config("prod"), "scaleplane:balancer": "aws-nlb"}
        yield mockrun.run("prod", config, _program, preview=False)
    finally:
        mockrun.MOCK_OUTPUTS.clear()
        mockrun.MOCK_OUTPUTS.update(saved)


def _program() -> None:
    import settings
    from components.cluster import cluster_for

    config = settings.load()
    cluster_for(f"{config.environment}-cluster", config)


def _by_name(plan: mockrun.PlanResult, type_: str) -> dict[str, mockrun.PlannedResource]:
    return {r.name: r for r in plan.of_type(type_)}


def test_vpc_spans_the_configured_zones_with_tagged_public_and_private_subnets(prod: mockrun.PlanResult) -> None:
    subnets = prod.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) + len(private) == len(subnets)
    assert {s.inputs["availabilityZone"] for s in public} == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert {s.inputs["availabilityZone"] for s in private} == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert all(s.inputs["tags"]["kubernetes.io/cluster/scaleplane-prod"] == "shared" for s in subnets)
    cidrs = [s.inputs["cidrBlock"] for s in subnets]
    assert len(set(cidrs)) == len(cidrs)
    # prod runs one NAT gateway per zone, each in that zone's public subnet.
    nats = prod.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3


def test_private_subnets_route_through_nat_and_public_through_the_gateway(prod: mockrun.PlanResult) -> None:
    tables = _by_name(prod, "aws:ec2/routeTable:RouteTable")
    public = tables["prod-cluster-public-routes"].inputs["routes"]
    assert public == [{"cidrBlock": "0.0.0.0/0", "gatewayId": "prod-cluster-igw-id"}]
    for zone in ("us-east-1a", "us-east-1b", "us-east-1c"):
        routes = tables[f"prod-cluster-private-routes-{zone}"].inputs["routes"]
        assert routes == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": f"prod-cluster-nat-{zone}-id"}]


def test_cluster_uses_access_entries_the_settings_version_and_encrypted_secrets(prod: mockrun.PlanResult) -> None:
    (cluster,) = prod.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["name"] == "scaleplane-prod"
    assert cluster.inputs["version"] == "1.34"
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    assert cluster.inputs["bootstrapSelfManagedAddons"] is False
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    vpc = cluster.inputs["vpcConfig"]
    # prod ships a private endpoint: nothing on the internet reaches its API.
    assert vpc["endpointPrivateAccess"] is True and vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc
    assert len(vpc["subnetIds"]) == 6
    # The control-plane log group is created (bounded, and deleted on destroy) before EKS would make its own.
    (logs,) = prod.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert logs.inputs["name"] == "/aws/eks/scaleplane-prod/cluster" and logs.inputs["retentionInDays"] == 90
    assert logs.urn in cluster.dependencies


def test_a_public_endpoint_is_open_only_to_the_listed_cidrs() -> None:
    eks = json.loads(stack_config("prod")["scaleplane:eks"])
    eks["endpointAccess"] = "public-and-private"
    eks["publicAccessCidrs"] = ["198.51.100.0/24"]
    config = {**stack_config("prod"), "scaleplane:eks": json.dumps(eks)}
    plan = mockrun.run("prod", config, _program)
    (cluster,) = plan.of_type("aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["198.51.100.0/24"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_shipped_eks_stacks_keep_the_api_off_the_internet(stack: str) -> None:
    (cluster,) = mockrun.run("prod", stack_config(stack), _program).of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False


def test_node_groups_carry_labels_taints_sizes_and_zones(prod: mockrun.PlanResult) -> None:
    groups = {g.inputs["nodeGroupNamePrefix"]: g.inputs for g in prod.of_type("aws:eks/nodeGroup:NodeGroup")}
    # Prefixed names, so a replaced group can be created before the old one goes.
    assert all("nodeGroupName" not in g for g in groups.values())
    production, development = groups["production-"], groups["development-"]
    assert production["labels"] == {"environment": "production"}
    assert production["scalingConfig"] == {"minSize": 2, "desiredSize": 2, "maxSize": 6}
    assert production["subnetIds"] == ["prod-cluster-private-us-east-1a-id", "prod-cluster-private-us-east-1b-id"]
    assert production["instanceTypes"] == ["m6i.large", "m5.large"]
    assert production["taints"] == []
    assert development["labels"] == {"environment": "development"}
    assert development["scalingConfig"]["desiredSize"] == 1
    assert development["taints"] == [{"key": "environment", "value": "development", "effect": "PREFER_NO_SCHEDULE"}]
    for group in groups.values():
        assert group["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert group["tags"]["k8s.io/cluster-autoscaler/scaleplane-prod"] == "owned"


def test_every_node_group_launches_from_a_template_that_requires_imdsv2(prod: mockrun.PlanResult) -> None:
    templates = _by_name(prod, "aws:ec2/launchTemplate:LaunchTemplate")
    for group in prod.of_type("aws:eks/nodeGroup:NodeGroup"):
        template_id = group.inputs["launchTemplate"]["id"]
        template = templates[template_id.removesuffix("-id")]
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpEndpoint"] == "enabled"
        assert metadata["httpPutResponseHopLimit"] == 1
        (disk,) = template.inputs["blockDeviceMappings"]
        assert disk["ebs"]["encrypted"] == "true" and disk["ebs"]["volumeType"] == "gp3"


def test_networking_addons_come_before_nodes_and_the_rest_after(prod: mockrun.PlanResult) -> None:
    addons = {a.inputs["addonName"]: a for a in prod.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "snapshot-controller"}
    groups = prod.of_type("aws:eks/nodeGroup:NodeGroup")
    for group in groups:
        assert addons["vpc-cni"].urn in group.dependencies and addons["kube-proxy"].urn in group.dependencies
    for late in ("coredns", "aws-ebs-csi-driver", "snapshot-controller"):
        assert {g.urn for g in groups} <= set(addons[late].dependencies)
    assert "serviceAccountRoleArn" in addons["aws-ebs-csi-driver"].inputs
    assert "serviceAccountRoleArn" in addons["vpc-cni"].inputs
    assert "serviceAccountRoleArn" not in addons["coredns"].inputs


def test_node_role_has_no_cni_policy_since_the_cni_has_its_own_role(deployed: mockrun.PlanResult) -> None:
    attachments = deployed.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    by_role: dict[str, set[str]] = {}
    for attachment in attachments:
        by_role.setdefault(attachment.inputs["role"], set()).add(attachment.inputs["policyArn"].rsplit("/", 1)[-1])
    assert by_role["prod-cluster-node-role"] == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}
    assert by_role["prod-cluster-vpc-cni-irsa"] == {"AmazonEKS_CNI_Policy"}
    assert by_role["prod-cluster-ebs-csi-irsa"] == {"AmazonEBSCSIDriverPolicy"}


def _trusted_subjects(role: mockrun.PlannedResource) -> dict[str, str]:
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert set(statement["Condition"]) == {"StringEquals"}
    return statement["Condition"]["StringEquals"]


def test_irsa_roles_trust_exactly_their_service_account(deployed: mockrun.PlanResult) -> None:
    host = ISSUER.removeprefix("https://")
    roles = {r.name: r for r in deployed.of_type("aws:iam/role:Role") if r.name.endswith("-irsa")}
    subjects = {name: _trusted_subjects(role) for name, role in roles.items()}
    assert subjects == {
        f"prod-cluster-{role}-irsa": {
            f"{host}:sub": f"system:serviceaccount:kube-system:{account}",
            f"{host}:aud": "sts.amazonaws.com",
        }
        for role, account in (
            ("vpc-cni", "aws-node"),
            ("ebs-csi", "ebs-csi-controller-sa"),
            ("cluster-autoscaler", "cluster-autoscaler"),
            ("load-balancer-controller", "aws-load-balancer-controller"),
        )
    }


def test_charts_run_as_the_service_accounts_their_roles_trust(deployed: mockrun.PlanResult) -> None:
    releases = _by_name(deployed, "kubernetes:helm.sh/v4:Chart")
    autoscaler = releases["prod-cluster-cluster-autoscaler"].inputs
    account = autoscaler["values"]["rbac"]["serviceAccount"]
    assert (autoscaler["namespace"], account["name"]) == ("kube-system", "cluster-autoscaler")
    assert account["annotations"]["eks.amazonaws.com/role-arn"].endswith("/prod-cluster-cluster-autoscaler-irsa")
    controller = releases["prod-cluster-load-balancer-controller"].inputs
    account = controller["values"]["serviceAccount"]
    assert (controller["namespace"], account["name"]) == ("kube-system", "aws-load-balancer-controller")
    assert account["annotations"]["eks.amazonaws.com/role-arn"].endswith("/prod-cluster-load-balancer-controller-irsa")


def test_autoscaler_may_resize_only_this_clusters_groups(deployed: mockrun.PlanResult) -> None:
    policy = _by_name(deployed, "aws:iam/rolePolicy:RolePolicy")["prod-cluster-cluster-autoscaler-irsa"]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    resize = statements["ResizeOwnGroups"]
    assert "autoscaling:SetDesiredCapacity" in resize["Action"]
    assert resize["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/scaleplane-prod": "owned"}
    }
    assert not any(a.startswith("autoscaling:Set") for a in statements["Discover"]["Action"])


def test_load_balancer_controller_may_change_only_what_a_controller_owns(deployed: mockrun.PlanResult) -> None:
    policy = _by_name(deployed, "aws:iam/rolePolicy:RolePolicy")["prod-cluster-load-balancer-controller-irsa"]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    owned = "aws:ResourceTag/elbv2.k8s.aws/cluster"
    claim = "aws:RequestTag/elbv2.k8s.aws/cluster"
    for statement in statements:
        actions = {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        nulls = statement.get("Condition", {}).get("Null", {})
        destructive = actions & {
            "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:DeleteTargetGroup",
            "ec2:DeleteSecurityGroup",
        }
        if destructive:
            assert nulls.get(owned) == "false", statement["Sid"]
        retags = actions & {"elasticloadbalancing:RemoveTags", "ec2:DeleteTags"}
        balancers_or_groups = [
            r for r in resources if ":loadbalancer/" in r or ":targetgroup/" in r or "security-group" in r
        ]
        if retags and balancers_or_groups:
            # Retagging an owned resource must not touch (add or drop) the ownership tag itself.
            assert nulls == {claim: "true", owned: "false"}, statement["Sid"]


def test_kubeconfig_is_secret_and_authenticates_with_short_lived_tokens(deployed: mockrun.PlanResult) -> None:
    (provider,) = deployed.of_type("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_paths
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == ENDPOINT
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:4] == ["eks", "get-token", "--cluster-name", "scaleplane-prod"]
    assert "--region" in exec_["args"] and "us-east-1" in exec_["args"]


def test_kubeconfig_stays_unknown_in_preview(prod: mockrun.PlanResult) -> None:
    (provider,) = prod.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == mockrun.UNKNOWN


def test_load_balancer_controller_only_with_the_aws_nlb_balancer(
    prod: mockrun.PlanResult, deployed: mockrun.PlanResult
) -> None:
    cloud = {k: v for k, v in stack_config("prod").items() if k != "scaleplane:nlb"}
    cloud["scaleplane:balancer"] = "cloud"
    without = mockrun.run("prod", cloud, _program)
    assert "prod-cluster-load-balancer-controller" not in _by_name(without, "kubernetes:helm.sh/v4:Chart")
    controller = _by_name(deployed, "kubernetes:helm.sh/v4:Chart")["prod-cluster-load-balancer-controller"].inputs
    assert controller["values"]["clusterName"] == "scaleplane-prod"
    assert controller["values"]["region"] == "us-east-1"
    assert controller["values"]["vpcId"] == "prod-cluster-vpc-id"


def test_default_storage_class_is_encrypted_gp3_on_the_csi_driver(prod: mockrun.PlanResult) -> None:
    (storage,) = prod.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage.inputs["provisioner"] == "ebs.csi.aws.com"
    assert storage.inputs["parameters"]["encrypted"] == "true"
    assert storage.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage.inputs["volumeBindingMode"] == "WaitForFirstConsumer"


def _chart(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    chart = yaml.safe_load(reference_file("charts", name, "Chart.yaml").read_text())
    values = yaml.safe_load(reference_file("charts", name, "values.yaml").read_text())
    return chart, values


#: Chart values that are free-form maps (any command-line flag, any annotation, a whole probe the
#: template copies with toYaml).
OPEN_MAPS = {"extraArgs", "annotations", "livenessProbe", "readinessProbe"}


def _assert_keys_exist(values: dict[str, Any], reference: dict[str, Any], path: str = "") -> None:
    """Every key we set is a key the chart declares (a typo would be silently ignored by Helm)."""
    for key, value in values.items():
        assert key in reference, f"{path}{key} is not a value of the chart"
        if isinstance(value, dict) and isinstance(reference[key], dict) and reference[key] and key not in OPEN_MAPS:
            _assert_keys_exist(value, reference[key], f"{path}{key}.")


def test_cluster_autoscaler_matches_the_reference_chart(deployed: mockrun.PlanResult) -> None:
    chart, reference = _chart("cluster-autoscaler")
    release = _by_name(deployed, "kubernetes:helm.sh/v4:Chart")["prod-cluster-cluster-autoscaler"].inputs
    assert release["chart"] == chart["name"]
    assert release["version"] == chart["version"]
    _assert_keys_exist(release["values"], reference)
    assert release["values"]["cloudProvider"] == "aws"
    assert release["values"]["autoDiscovery"]["clusterName"] == "scaleplane-prod"
    # The chart's own image is for its appVersion; we pin the cluster's minor instead.
    assert release["values"]["image"]["tag"] == "v1.34.0"


def test_load_balancer_controller_matches_the_reference_chart(deployed: mockrun.PlanResult) -> None:
    chart, reference = _chart("aws-load-balancer-controller")
    release = _by_name(deployed, "kubernetes:helm.sh/v4:Chart")["prod-cluster-load-balancer-controller"].inputs
    assert release["chart"] == chart["name"]
    assert release["version"] == chart["version"]
    _assert_keys_exist(release["values"], reference)


def test_autoscaler_image_must_match_the_cluster_minor() -> None:
    eks = json.loads(stack_config("prod")["scaleplane:eks"])
    eks["clusterAutoscaler"] = {"imageTag": "v1.35.0"}
    config = {**stack_config("prod"), "scaleplane:eks": json.dumps(eks)}
    with pytest.raises(Exception, match="imageTag v1.35.0 is for Kubernetes 1.35"):
        mockrun.run("prod", config, _program)


def _exporting_program() -> None:
    import pulumi

    import settings
    from components.cluster import cluster_for

    config = settings.load()
    cluster = cluster_for(f"{config.environment}-cluster", config)
    pulumi.export("name", cluster.name)
    pulumi.export("endpoint", cluster.endpoint)
    pulumi.export("oidcIssuer", cluster.oidc_issuer)
    pulumi.export("kubeconfig", cluster.kubeconfig)


def test_component_outputs() -> None:
    saved = dict(mockrun.MOCK_OUTPUTS)
    mockrun.MOCK_OUTPUTS.update(_fake_outputs())
    try:
        plan = mockrun.run("staging", stack_config("staging"), _exporting_program, preview=False)
    finally:
        mockrun.MOCK_OUTPUTS.clear()
        mockrun.MOCK_OUTPUTS.update(saved)
    assert plan.outputs["name"] == "scaleplane-staging"
    assert plan.outputs["endpoint"] == ENDPOINT
    assert plan.outputs["oidcIssuer"] == ISSUER
    assert plan.secret_outputs == {"kubeconfig"}


def test_admin_principals_get_cluster_admin_through_access_entries() -> None:
    eks = json.loads(stack_config("prod")["scaleplane:eks"])
    admin = "arn:aws:iam::111122223333:role/platform-admins"
    eks["adminPrincipalArns"] = [admin]
    plan = mockrun.run("prod", {**stack_config("prod"), "scaleplane:eks": json.dumps(eks)}, _program)
    (entry,) = plan.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["principalArn"] == admin and entry.inputs["type"] == "STANDARD"
    (association,) = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert association.inputs["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert association.inputs["accessScope"] == {"type": "cluster"}
    assert not mockrun.run_stack("prod").of_type("aws:eks/accessEntry:AccessEntry")


@pytest.mark.parametrize(
    ("instance_type", "arm"),
    [("t3.medium", False), ("m6i.large", False), ("t4g.medium", True), ("c7gn.xlarge", True), ("g5.xlarge", False)],
)
def test_graviton_groups_get_the_arm_image(instance_type: str, arm: bool) -> None:
    assert is_arm(instance_type) is arm


@given(
    prefix=st.integers(min_value=16, max_value=20),
    zones=st.integers(min_value=2, max_value=4),
)
def test_subnets_fit_the_vpc_without_overlapping(prefix: int, zones: int) -> None:
    vpc = ipaddress.ip_network(f"10.0.0.0/{prefix}")
    names = tuple(f"us-east-1{letter}" for letter in "abcd"[:zones])
    private, public = eks_module._subnet_cidrs(str(vpc), names)
    networks = [ipaddress.ip_network(c) for c in [*private.values(), *public.values()]]
    assert len(networks) == 2 * zones
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


def _controller(plan: mockrun.PlanResult) -> mockrun.PlannedResource:
    return _by_name(plan, "kubernetes:helm.sh/v4:Chart")["prod-cluster-load-balancer-controller"]


def test_load_balancer_controller_runs_no_webhook_that_refuses_unrelated_objects(
    deployed: mockrun.PlanResult,
) -> None:
    _, reference = _chart("aws-load-balancer-controller")
    values = _controller(deployed).inputs["values"]
    # Upstream's default is on (a fail-closed mutator of every Service CREATE); ours is off.
    assert reference["enableServiceMutatorWebhook"] is True
    assert values["enableServiceMutatorWebhook"] is False
    # The Ingress validator sees every Ingress and fails closed by default: off, with no ALB
    # IngressClass (nor its IngressClassParams) for it to guard.
    assert reference["webhookConfig"]["ingressValdationFailurePolicy"] == "Fail"
    assert values["webhookConfig"] == {"disableIngressValidation": True}
    assert values["createIngressClassResource"] is False and values["ingressClassParams"] == {"create": False}
    assert values["podMutatorWebhookConfig"] == {"failurePolicy": "Ignore"}


def test_the_service_mutator_is_not_needed_every_load_balancer_names_its_class() -> None:
    for stack in ("staging", "prod"):
        plan = mockrun.run_stack(stack)
        exposed = [
            r
            for r in plan.of_type("kubernetes:core/v1:Service")
            if r.inputs.get("spec", {}).get("type") == "LoadBalancer"
        ]
        assert exposed, stack
        for service in exposed:
            assert service.inputs["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb", (stack, service.name)


def test_load_balancer_controller_requests_cpu_and_memory_and_keeps_upstream_probes(
    deployed: mockrun.PlanResult,
) -> None:
    _, reference = _chart("aws-load-balancer-controller")
    values = _controller(deployed).inputs["values"]
    assert reference["resources"] == {}
    assert set(values["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in values["resources"]["limits"]
    # The chart's own probes (the declaration's copy is the pinned values.yaml's), probed less
    # often than their timeout.
    for key in ("livenessProbe", "readinessProbe"):
        assert eks_module.LOAD_BALANCER_CONTROLLER_PROBES[key] == reference[key]
        assert values[key] == {**reference[key], "periodSeconds": 15}
        assert values[key]["timeoutSeconds"] < values[key]["periodSeconds"]


def test_chart_workload_declarations_follow_the_values(deployed: mockrun.PlanResult) -> None:
    from components.chart_workloads import chart_objects

    _, autoscaler_reference = _chart("cluster-autoscaler")
    # 9.59.0 has no value for either probe: the template's fixed livenessProbe is all there is.
    assert "readinessProbe" not in autoscaler_reference and "livenessProbe" not in autoscaler_reference
    charts = [
        {"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs}
        for r in deployed.of_type("kubernetes:helm.sh/v4:Chart")
    ]
    objects = {o["props"]["metadata"]["name"]: o["props"] for o in chart_objects(charts).objects}
    autoscaler = objects["cluster-autoscaler"]
    assert autoscaler["metadata"]["namespace"] == "kube-system"
    (container,) = autoscaler["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "aws-cluster-autoscaler"
    assert container["livenessProbe"] == {"httpGet": {"path": "/health-check", "port": 8085}}
    assert "readinessProbe" not in container
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    (controller,) = objects["aws-load-balancer-controller"]["spec"]["template"]["spec"]["containers"]
    assert controller["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(controller["resources"]["requests"]) == {"cpu", "memory"}


def test_load_balancer_controller_webhook_certificate_is_generated_once_and_secret(
    deployed: mockrun.PlanResult,
) -> None:
    controller = _controller(deployed)
    webhook = controller.inputs["values"]["webhookTLS"]
    name = "prod-cluster-load-balancer-controller-webhook"
    # All three set, so the chart's template neither generates (genCA) nor looks up a certificate.
    assert webhook == {"caCert": f"CERT OF {name}-ca", "cert": f"CERT OF {name}-cert", "key": f"KEY OF {name}-key"}
    # The key makes the values secret (in the state, and in any diff the engine prints).
    assert "values" in controller.secret_paths
    (request,) = deployed.of_type("tls:index/certRequest:CertRequest")
    assert request.inputs["dnsNames"] == [
        "aws-load-balancer-webhook-service.kube-system",
        "aws-load-balancer-webhook-service.kube-system.svc",
        "aws-load-balancer-webhook-service.kube-system.svc.cluster.local",
    ]


def test_cluster_autoscaler_requests_cpu_and_memory_under_a_stable_name(deployed: mockrun.PlanResult) -> None:
    _, reference = _chart("cluster-autoscaler")
    values = _by_name(deployed, "kubernetes:helm.sh/v4:Chart")["prod-cluster-cluster-autoscaler"].inputs["values"]
    assert reference["resources"] == {}
    assert set(values["resources"]["requests"]) == {"cpu", "memory"}
    assert values["fullnameOverride"] == "cluster-autoscaler"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_policy_exempts_only_the_autoscaler_from_readiness_probes(stack: str) -> None:
    config = json.loads((ROOT / "policy" / "config" / f"{stack}.json").read_text())
    # As the chart renders it: a livenessProbe and no readinessProbe.
    autoscaler = container("aws-cluster-autoscaler", readiness=MISSING)
    rendered = workload("Deployment", "cluster-autoscaler", "kube-system", pod=pod_spec(autoscaler))
    assert found([rendered], "workload-probes", config) == []
    other = workload("Deployment", "other-controller", "kube-system", pod=pod_spec(autoscaler))
    assert found([other], "workload-probes", config)
