"""Validation of the cluster sections: eks, kops, and the section-matches-kind rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from deploy.project import stack_config
from settings import SettingsError, from_config
from settings.cluster import EksSettings, KopsSettings, NodeGroupSettings


def _with(stack: str, **overrides: Any) -> dict[str, str]:
    config = stack_config(stack)
    for key, value in overrides.items():
        if value is None:
            config.pop(f"scaleplane:{key}", None)
        else:
            config[f"scaleplane:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return config


def _eks(**changes: Any) -> dict[str, Any]:
    section = json.loads(stack_config("prod")["scaleplane:eks"])
    section.update(changes)
    return section


def _kops(**changes: Any) -> dict[str, Any]:
    section = json.loads(stack_config("dev")["scaleplane:kops"])
    section.update(changes)
    return section


def _problems(config: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as error:
        from_config(config)
    return str(error.value)


def test_stacks_pick_their_cluster_kinds() -> None:
    kinds = {stack: from_config(stack_config(stack)).cluster for stack in ("local", "dev", "staging", "prod")}
    assert kinds == {"local": "existing", "dev": "kops", "staging": "eks", "prod": "eks"}


def test_prod_has_two_production_nodes_over_two_zones_and_one_development_node() -> None:
    eks = from_config(stack_config("prod")).eks
    assert eks is not None
    groups = {group.labels.get("environment"): group for group in eks.node_groups}
    production, development = groups["production"], groups["development"]
    assert production.min_size >= 2 and production.desired_size >= 2
    assert len(production.zones or eks.zones) >= 2
    assert development.desired_size == 1
    assert eks.region == "us-east-1"


def test_dev_kops_is_the_playbook_cluster() -> None:
    kops = from_config(stack_config("dev")).kops
    assert kops is not None
    assert kops.region == "us-east-1"
    assert len(kops.control_plane.zones or kops.zones[:1]) == 1
    names = [group.name for group in kops.instance_groups]
    assert "nodes" in names
    labels = {group.name: group.labels.get("environment") for group in kops.instance_groups}
    assert labels["production"] == "production" and labels["development"] == "development"


def test_sizes_out_of_order_are_refused_with_their_path() -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "minSize": 3, "desiredSize": 2}
    message = _problems(_with("prod", eks=_eks(nodeGroups=groups)))
    assert "scaleplane:eks.nodeGroups[0]" in message
    assert "minSize <= desiredSize <= maxSize" in message


def test_eks_needs_two_zones() -> None:
    message = _problems(_with("prod", eks=_eks(zones=["us-east-1a"], nodeGroups=[_eks()["nodeGroups"][1]])))
    assert "scaleplane:eks.zones" in message


def test_zones_must_be_in_the_region() -> None:
    message = _problems(
        _with("staging", eks={**json.loads(stack_config("staging")["scaleplane:eks"]), "region": "us-west-2"})
    )
    assert "not in region us-west-2" in message


@pytest.mark.parametrize("region", ["useast1", "us-east", "US-EAST-1", "us-east-1a", "xx-middle-1"])
def test_region_format_is_checked(region: str) -> None:
    message = _problems(_with("prod", eks=_eks(region=region)))
    assert "scaleplane:eks.region" in message


def test_node_group_zone_must_be_a_cluster_zone() -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "zones": ["us-east-1a", "us-east-1f"]}
    message = _problems(_with("prod", eks=_eks(nodeGroups=groups)))
    assert "us-east-1f" in message and "not among zones" in message


def test_node_group_names_are_unique() -> None:
    groups = _eks()["nodeGroups"]
    message = _problems(_with("prod", eks=_eks(nodeGroups=[groups[0], groups[0]])))
    assert "listed twice" in message


def test_a_group_has_one_architecture() -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "instanceTypes": ["m6i.large", "m7g.large"]}
    message = _problems(_with("prod", eks=_eks(nodeGroups=groups)))
    assert "scaleplane:eks.nodeGroups[0]" in message and "mix Arm (Graviton) and x86" in message
    groups[0] = {**groups[0], "instanceTypes": ["m7g.large", "c7gn.large"]}
    assert from_config(_with("prod", eks=_eks(nodeGroups=groups))).eks is not None


def test_eks_node_group_names_leave_room_for_the_unique_suffix() -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "name": "p" * 37}
    assert "longer than 36 characters" in _problems(_with("prod", eks=_eks(nodeGroups=groups)))
    groups[0] = {**groups[0], "name": "p" * 36}
    assert from_config(_with("prod", eks=_eks(nodeGroups=groups))).eks is not None


@pytest.mark.parametrize("key", ["kubernetes.io/role", "node-role.kubernetes.io/worker", "k8s.io/x", "foo.k8s.io/y"])
def test_labels_the_kubelet_may_not_set_are_refused(key: str) -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "labels": {key: "x"}}
    assert "may not set" in _problems(_with("prod", eks=_eks(nodeGroups=groups)))


def test_labels_in_the_node_namespace_are_allowed() -> None:
    groups = _eks()["nodeGroups"]
    groups[0] = {**groups[0], "labels": {"node.kubernetes.io/pool": "a", "environment": "production"}}
    assert from_config(_with("prod", eks=_eks(nodeGroups=groups))).eks is not None


def test_taint_effect_is_checked() -> None:
    groups = _eks()["nodeGroups"]
    groups[1] = {**groups[1], "taints": [{"key": "environment", "value": "development", "effect": "NoWay"}]}
    assert "scaleplane:eks.nodeGroups[1].taints[0].effect" in _problems(_with("prod", eks=_eks(nodeGroups=groups)))


def test_cluster_kind_needs_its_section() -> None:
    assert "scaleplane:eks is not set" in _problems(_with("prod", eks=None))
    assert "scaleplane:kops is not set" in _problems(_with("dev", kops=None))


def test_a_section_of_another_kind_is_refused() -> None:
    config = _with("prod", kops=_kops())
    assert "scaleplane:kops is set but cluster is 'eks'" in _problems(config)
    config = _with("local", eks=_eks())
    assert "scaleplane:eks is set but cluster is 'existing'" in _problems(config)


def test_kops_control_plane_needs_an_etcd_quorum() -> None:
    config = _with("dev", kops=_kops(controlPlane={"zones": ["us-east-1a", "us-east-1b"]}))
    assert "etcd needs 1 or 3 members" in _problems(config)


def test_kops_dns_zone_goes_with_dns() -> None:
    assert "dnsZone is set but dns is 'none'" in _problems(_with("dev", kops=_kops(dnsZone="example.com")))
    assert "set dnsZone" in _problems(_with("dev", kops=_kops(dns="public")))


def test_kops_state_store_bucket_name_is_checked() -> None:
    assert "scaleplane:kops.stateStoreBucket" in _problems(_with("dev", kops=_kops(stateStoreBucket="Bad_Bucket")))


def test_kops_group_may_not_take_a_control_plane_name() -> None:
    groups = _kops()["instanceGroups"]
    groups[0] = {**groups[0], "name": "control-plane-us-east-1a"}
    assert "reserved for the control plane" in _problems(_with("dev", kops=_kops(instanceGroups=groups)))


def test_vpc_cidr_must_be_a_network() -> None:
    assert "not a network" in _problems(_with("prod", eks=_eks(vpcCidr="10.0.0.1/16")))


_GROUP = TypeAdapter(NodeGroupSettings)


@given(
    low=st.integers(min_value=0, max_value=20),
    desired=st.integers(min_value=0, max_value=20),
    high=st.integers(min_value=1, max_value=20),
)
def test_sizes_are_accepted_exactly_when_ordered(low: int, desired: int, high: int) -> None:
    document = {"name": "g", "instanceTypes": ["t3.medium"], "minSize": low, "desiredSize": desired, "maxSize": high}
    if low <= desired <= high:
        group = _GROUP.validate_json(json.dumps(document))
        assert (group.min_size, group.desired_size, group.max_size) == (low, desired, high)
    else:
        with pytest.raises(ValidationError, match="minSize <= desiredSize <= maxSize"):
            _GROUP.validate_json(json.dumps(document))


@given(zones=st.lists(st.sampled_from(["us-east-1a", "us-east-1b", "us-east-1c", "us-west-2a"]), max_size=4))
def test_eks_zones_need_two_distinct_zones_of_the_region(zones: list[str]) -> None:
    group = {"name": "g", "instanceTypes": ["t3.medium"], "minSize": 1, "desiredSize": 1, "maxSize": 1}
    document = {"region": "us-east-1", "zones": zones, "nodeGroups": [group]}
    valid = len(zones) >= 2 and len(set(zones)) == len(zones) and all(z.startswith("us-east-1") for z in zones)
    if valid:
        assert TypeAdapter(EksSettings).validate_json(json.dumps(document)).zones == tuple(zones)
    else:
        with pytest.raises(ValidationError):
            TypeAdapter(EksSettings).validate_json(json.dumps(document))


def test_kops_settings_defaults_are_the_playbook() -> None:
    group = {"name": "nodes", "instanceTypes": ["t3.medium"], "minSize": 2, "desiredSize": 2, "maxSize": 2}
    kops = TypeAdapter(KopsSettings).validate_json(
        json.dumps({"name": "demo.k8s.local", "stateStoreBucket": "demo-state", "instanceGroups": [group]})
    )
    assert kops.region == "us-east-1" and kops.zones == ("us-east-1a",) and kops.kops_binary == "kops"


def test_eks_defaults_to_a_private_endpoint_open_to_nobody() -> None:
    section = {k: v for k, v in _eks().items() if k not in ("endpointAccess", "publicAccessCidrs")}
    eks = from_config(_with("prod", eks=section)).eks
    assert eks is not None
    assert eks.endpoint_access == "private" and eks.public_access_cidrs == ()


@pytest.mark.parametrize("access", ["public", "public-and-private"])
def test_a_public_eks_endpoint_needs_the_cidrs_only_the_user_knows(access: str) -> None:
    staging = {**json.loads(stack_config("staging")["scaleplane:eks"]), "endpointAccess": access}
    message = _problems(_with("staging", eks=staging))
    assert "scaleplane:eks" in message and "publicAccessCidrs is empty" in message


def test_cidrs_on_a_private_eks_endpoint_are_refused() -> None:
    message = _problems(_with("prod", eks=_eks(publicAccessCidrs=["198.51.100.0/24"])))
    assert "publicAccessCidrs has no effect when endpointAccess is private" in message


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_production_refuses_an_eks_endpoint_open_to_the_internet(cidr: str) -> None:
    eks = _eks(endpointAccess="public-and-private", publicAccessCidrs=["198.51.100.0/24", cidr])
    message = _problems(_with("prod", eks=eks))
    assert f"scaleplane:eks.publicAccessCidrs contains {cidr} in a production stack" in message
    # The CIDRs the user lists are fine in production.
    from_config(_with("prod", eks=_eks(endpointAccess="public-and-private", publicAccessCidrs=["198.51.100.0/24"])))


def test_outside_production_a_world_open_endpoint_is_the_users_explicit_choice() -> None:
    staging = {**json.loads(stack_config("staging")["scaleplane:eks"])}
    staging.update(endpointAccess="public", publicAccessCidrs=["0.0.0.0/0"])
    eks = from_config(_with("staging", eks=staging)).eks
    assert eks is not None and eks.public_access_cidrs == ("0.0.0.0/0",)


def test_kops_api_and_ssh_are_closed_by_default() -> None:
    section = {k: v for k, v in _kops().items() if k not in ("kubernetesApiAccess", "sshAccess")}
    kops = from_config(_with("dev", kops=section)).kops
    assert kops is not None
    assert kops.kubernetes_api_access == () and kops.ssh_access == ()


@pytest.mark.parametrize("key", ["kubernetesApiAccess", "sshAccess"])
def test_production_refuses_kops_access_open_to_the_internet(key: str) -> None:
    message = _problems(_with("dev", kops=_kops(**{key: ["0.0.0.0/0"]}), production="true"))
    assert f"scaleplane:kops.{key} contains 0.0.0.0/0 in a production stack" in message
    # Outside production it is allowed, as an explicit choice.
    assert from_config(_with("dev", kops=_kops(**{key: ["0.0.0.0/0"]})))


def test_duplicate_access_cidrs_are_refused() -> None:
    message = _problems(_with("dev", kops=_kops(kubernetesApiAccess=["198.51.100.0/24", "198.51.100.0/24"])))
    assert "scaleplane:kops" in message and "listed twice" in message
