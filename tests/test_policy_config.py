"""The pack's configuration: levels, exemptions, properties and their schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import ROOT, container, found, pod_spec, with_, workload

from policy.scaleplane_policy import (
    BY_NAME,
    POLICIES,
    UNKNOWN,
    PolicyConfigError,
    evaluate,
    has_mandatory,
    report,
    summarize,
    validate_config,
)
from policy.scaleplane_policy.config import check_value

CONFIG_DIR = ROOT / "policy" / "config"
BAD = workload("Deployment", "web", pod=pod_spec(container("web", image="nginx", cpu=None)))


def test_every_policy_has_its_documented_default_level():
    levels = {name: settings.level for name, settings in validate_config().policies.items()}
    assert levels == {
        "workload-probes": "mandatory",
        "cpu-requests": "mandatory",
        "hpa-targets": "mandatory",
        "memory-requests-limits": "advisory",
        "image-tags": "advisory",
        "production-availability": "advisory",
        "load-balancer-services": "advisory",
        "probe-timings": "advisory",
        "container-security": "advisory",
        "network-policies": "advisory",
        "open-load-balancers": "advisory",
        "helm-chart-versions": "advisory",
    }


def test_defaults_are_filled_in():
    effective = validate_config()
    assert effective.options("production-availability")["minReplicas"] == 2
    assert effective.policies["image-tags"].exempt_namespaces == frozenset()
    assert "balancer" not in effective.options("load-balancer-services")


def test_a_level_alone_or_in_an_object_sets_the_level():
    effective = validate_config({"image-tags": "mandatory", "cpu-requests": {"enforcementLevel": "advisory"}})
    assert effective.level("image-tags") == "mandatory"
    assert effective.level("cpu-requests") == "advisory"


def test_all_sets_every_level_and_a_policys_own_entry_wins():
    effective = validate_config({"all": "disabled", "cpu-requests": "mandatory"})
    assert effective.level("workload-probes") == "disabled"
    assert effective.level("cpu-requests") == "mandatory"
    assert validate_config({"all": {"enforcementLevel": "advisory"}}).level("hpa-targets") == "advisory"


def test_violations_carry_the_effective_level_and_disabled_policies_report_nothing():
    by_policy = {v.policy: v.enforcement for v in evaluate([BAD], {"image-tags": "mandatory"})}
    assert by_policy["image-tags"] == "mandatory"
    assert by_policy["cpu-requests"] == "mandatory"
    assert "cpu-requests" not in {v.policy for v in evaluate([BAD], {"cpu-requests": "disabled"})}


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"no-such-policy": "advisory"}, "no-such-policy: unknown policy"),
        ({"image-tags": "strict"}, "image-tags: 'strict' is not an enforcement level"),
        ({"image-tags": {"enforcementLevel": "loud"}}, "image-tags.enforcementLevel: 'loud'"),
        ({"image-tags": "remediate"}, "image-tags: 'remediate' is not supported"),
        ({"image-tags": {"requireDigest": "yes"}}, "image-tags.requireDigest: expected a boolean, got 'yes'"),
        ({"image-tags": {"pinned": True}}, "image-tags.pinned: unknown property; image-tags takes enforcementLevel"),
        ({"production-availability": {"minReplicas": 0}}, "production-availability.minReplicas: must be at least 1"),
        ({"production-availability": {"minReplicas": 2.5}}, "minReplicas: expected an integer, got 2.5"),
        ({"load-balancer-services": {"balancer": "f5"}}, "load-balancer-services.balancer: 'f5' is not one of"),
        ({"cpu-requests": {"exemptNamespaces": "kube-system"}}, "cpu-requests.exemptNamespaces: expected a list"),
        ({"cpu-requests": {"exemptResources": [""]}}, "cpu-requests.exemptResources[0]: must not be empty"),
        ({"all": {"enforcementLevel": "advisory", "exemptNamespaces": []}}, "all.exemptNamespaces: 'all' takes only"),
        ({"image-tags": 3}, "image-tags: expected an enforcement level or a mapping"),
        (["image-tags"], "must be a mapping of policy names"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(config, named):
    with pytest.raises(PolicyConfigError) as error:
        validate_config(config)
    assert named in str(error.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(PolicyConfigError) as error:
        validate_config({"image-tags": {"requireDigest": 1}, "nope": "advisory"})
    assert len(error.value.problems) == 2


def test_whole_floats_from_the_engine_are_integers():
    assert (
        validate_config({"production-availability": {"minReplicas": 3.0}}).options("production-availability")[
            "minReplicas"
        ]
        == 3
    )


@pytest.mark.parametrize("name", ["web-deployment", "web", "apps/web"])
def test_a_resource_is_exempt_by_pulumi_name_metadata_name_or_namespace_slash_name(name):
    assert found([BAD], "cpu-requests", {"cpu-requests": {"exemptResources": [name]}}) == []
    assert len(found([BAD], "image-tags", {"cpu-requests": {"exemptResources": [name]}})) == 1


def test_a_namespace_exemption_skips_only_that_namespace():
    config = {"cpu-requests": {"exemptNamespaces": ["apps"]}}
    other = workload("Deployment", "api", "other", pod=pod_spec(container(cpu=None)))
    assert [m.split(":")[0] for m in found([BAD, other], "cpu-requests", config)] == ["Deployment other/api"]


def test_an_object_whose_namespace_is_not_known_yet_is_not_judged_when_namespaces_are_exempt():
    unknown_namespace = with_(BAD, "props.metadata.namespace", UNKNOWN)
    config = {"cpu-requests": {"exemptNamespaces": ["apps"]}}
    assert found([unknown_namespace], "cpu-requests", config) == []
    assert len(found([unknown_namespace], "cpu-requests")) == 1


def test_a_similar_name_is_not_an_exemption():
    assert len(found([BAD], "cpu-requests", {"cpu-requests": {"exemptResources": ["we", "other/web"]}})) == 1


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_stack_config_file_is_valid(path: Path):
    effective = validate_config(json.loads(path.read_text()))
    assert effective.level("workload-probes") == "mandatory"
    assert effective.level("cpu-requests") == "mandatory"
    assert effective.level("hpa-targets") == "mandatory"


def test_prod_is_the_strictest_stack():
    prod = validate_config(json.loads((CONFIG_DIR / "prod.json").read_text()))
    for path in CONFIG_DIR.glob("*.json"):
        other = validate_config(json.loads(path.read_text()))
        for policy in BY_NAME:
            if other.level(policy) == "mandatory":
                assert prod.level(policy) == "mandatory", (path.name, policy)
    assert prod.level("image-tags") == "mandatory"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_every_property_schema_is_valid_json_schema(policy):
    schema = {"type": "object", "properties": policy.properties, "additionalProperties": False}
    jsonschema.Draft7Validator.check_schema(schema)
    for prop in policy.properties.values():
        assert prop.get("description")
        if "default" in prop:
            jsonschema.validate(prop["default"], prop)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(-5, 5000, allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)


@given(st.sampled_from([(p.name, key, schema) for p in POLICIES for key, schema in p.properties.items()]), json_values)
def test_the_validator_agrees_with_json_schema(entry, value):
    _, _, schema = entry
    problems: list[str] = []
    check_value(value, schema, "x", problems)
    # jsonschema takes 2.0 as an integer too, as the engine's numbers are doubles.
    assert (not problems) == jsonschema.Draft7Validator(schema).is_valid(value)


def test_the_report_groups_by_policy_and_level_and_counts():
    other = workload("Deployment", "api", pod=pod_spec(container("api", cpu=None)))
    found_violations = evaluate([BAD, other], {"image-tags": "mandatory"})
    lines = report(found_violations)
    assert lines[0] == "cpu-requests [mandatory] (2)"
    assert lines[1] == '  Deployment apps/web: container "web" sets no cpu request'
    assert "image-tags [mandatory] (1)" in lines
    assert summarize(found_violations)["cpu-requests"] == {"mandatory": 2}
    assert has_mandatory(found_violations)
    assert not has_mandatory(evaluate([BAD], {"all": "advisory"}))
    assert report([]) == []
