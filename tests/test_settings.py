"""Settings: every stack's real config validates; bad config fails naming the key, before anything."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import settings
from deploy.project import PROJECT_DIR, STACKS, stack_config

BASE = {"scaleplane:environment": "test", "scaleplane:existingCluster": json.dumps({"context": "kind-test"})}


def load(**sections: object) -> settings.Settings:
    raw = dict(BASE)
    for key, value in sections.items():
        raw[f"scaleplane:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return settings.from_config(raw)


def problems(**sections: object) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        load(**sections)
    return caught.value.problems


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_config_validates(stack: str) -> None:
    config = settings.from_config(stack_config(stack))
    assert config.environment == stack


def test_playbook_defaults() -> None:
    config = load()
    scaling = config.todo.autoscaling
    assert (scaling.min_replicas, scaling.max_replicas, scaling.target_cpu_utilization) == (1, 5, 50)
    assert scaling.target_memory_utilization is None
    assert config.load_test.enabled is False
    assert config.minio.replicas == 4


def test_project_defaults_match_settings_defaults() -> None:
    """Pulumi.yaml's declared defaults and the dataclass defaults must not drift apart."""
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    fields = settings.Settings.__dataclass_fields__
    for key, declaration in declared.items():
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        assert snake in fields, f"Pulumi.yaml declares {key}, which Settings does not have"
        if "default" in declaration:
            assert fields[snake].default == declaration["default"], key


def test_unknown_enum_value_names_key_and_choices() -> None:
    (message,) = problems(mesh="istioo")
    assert message.startswith("scaleplane:mesh:")
    assert "'istio'" in message and "'linkerd'" in message


def test_min_above_max_is_refused() -> None:
    (message,) = problems(todo={"autoscaling": {"minReplicas": 6, "maxReplicas": 5}})
    assert message.startswith("scaleplane:todo.autoscaling:")
    assert "minReplicas (6) must not exceed maxReplicas (5)" in message


def test_replicas_must_lie_within_the_autoscaling_range() -> None:
    (message,) = problems(todo={"replicas": 7})
    assert message == (
        "scaleplane:todo: replicas (7) must lie within the autoscaling range 1..5 "
        "(autoscaling.minReplicas..maxReplicas)"
    )
    assert load(todo={"replicas": 7, "autoscaling": {"enabled": False}}).todo.replicas == 7


def test_each_priority_class_is_created_once_and_never_a_system_one() -> None:
    shared = {"placement": {"priorityClass": {"name": "apps", "value": 1000}}}
    (message,) = problems(todo=shared, minio=shared)
    assert message.startswith("scaleplane: todo.placement.priorityClass and minio.placement.priorityClass")
    (message,) = problems(todo={"placement": {"priorityClass": {"name": "system-node-critical", "value": 1}}})
    assert message.startswith("scaleplane:todo.placement.priorityClass.name:")


def test_unknown_nested_key_lists_allowed_keys() -> None:
    (message,) = problems(todo={"replcas": 3})
    assert message.startswith("scaleplane:todo.replcas: unknown key")
    assert "replicas" in message


def test_unknown_top_level_key() -> None:
    (message,) = problems(meshh="istio")
    assert message.startswith("scaleplane:meshh: unknown key")


def test_wrong_types_are_not_coerced() -> None:
    found = problems(todo={"replicas": "3"}, production="yes")
    assert any(p.startswith("scaleplane:todo.replicas:") for p in found)
    assert any(p.startswith("scaleplane:production:") for p in found)


def test_metrics_server_chart_is_pinned_into_a_valid_namespace() -> None:
    found = problems(metricsServer={"chartVersion": "", "namespace": "Kube System"})
    assert [p.split(":")[1] for p in found] == ["metricsServer.chartVersion", "metricsServer.namespace"]


def test_latest_tag_is_refused() -> None:
    (message,) = problems(minio={"image": "quay.io/minio/minio:latest"})
    assert message.startswith("scaleplane:minio.image:") and "latest" in message


def test_minio_replica_count_must_form_an_erasure_set() -> None:
    (message,) = problems(minio={"replicas": 2})
    assert message.startswith("scaleplane:minio:") and "at least 4" in message


def test_cluster_section_must_match_kind() -> None:
    raw = {"scaleplane:environment": "test"}
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(raw)
    assert "existingCluster" in str(caught.value)


def test_secret_config_is_refused() -> None:
    raw = {**BASE, "scaleplane:todo": "{}"}
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(raw, frozenset({"scaleplane:todo"}))
    assert "scaleplane:todo: is a secret" in str(caught.value)


def test_a_misspelt_namespace_is_not_silently_ignored() -> None:
    raw = {**BASE, "scalepane:todo": json.dumps({"replicas": 3})}
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(raw)
    assert caught.value.problems == [
        "scalepane:todo: unknown config namespace 'scalepane' (did you mean scaleplane:todo?)"
    ]


def test_other_namespaces_are_left_alone() -> None:
    raw = {**BASE, "kubernetes:context": "x", "pulumi:disable-default-providers": '["kubernetes"]'}
    assert settings.from_config(raw).environment == "test"


# --- property tests ------------------------------------------------------------------------------

SECTION_KEYS = {
    "todo": ["name", "namespace", "image", "port", "replicas", "autoscaling", "placement", "resources", "bogus"],
    "minio": ["replicas", "image", "storageSize", "enabled", "namespace", "bogus"],
    "loadTest": ["enabled", "requests", "durationSeconds", "workers", "image", "bogus"],
    "metricsServer": ["enabled", "replicas", "kubeletInsecureTls", "chartVersion", "bogus"],
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=100_000),
    st.text(max_size=12),
    st.sampled_from(["1Gi", "100m", "latest", "docker.io/library/busybox:1.37.0", "x:latest", "istio", "cloud"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def raw_configs(draw: st.DrawFn) -> dict[str, str]:
    raw = dict(BASE)
    for section, keys in SECTION_KEYS.items():
        if draw(st.booleans()):
            body = draw(st.dictionaries(st.sampled_from(keys), values, max_size=4))
            raw[f"scaleplane:{section}"] = json.dumps(body)
    if draw(st.booleans()):
        raw["scaleplane:mesh"] = draw(st.sampled_from(["none", "istio", "linkerd", "istioo", ""]))
    if draw(st.booleans()):
        raw["scaleplane:production"] = draw(st.sampled_from(["true", "false", "yes", "1", "{}"]))
    return raw


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_configs())
def test_any_config_builds_or_names_the_offending_key(raw: dict[str, str]) -> None:
    try:
        settings.from_config(raw)
    except settings.SettingsError as error:
        assert error.problems
        for problem in error.problems:
            key = problem.split(":", 2)[:2]
            assert key[0] == "scaleplane", problem
            top = re.split(r"[.\[:]", key[1], maxsplit=1)[0].strip()
            assert f"scaleplane:{top}" in raw or top == "", problem


def test_pulumi_up_stops_on_bad_config_without_a_traceback() -> None:
    """Under the engine, load() raises pulumi.RunError: the CLI prints its message, not a stack trace."""
    import pulumi
    from pulumi.runtime.config import set_all_config

    set_all_config({**BASE, "scaleplane:todo": json.dumps({"replcas": 3})}, [])
    with pytest.raises(pulumi.RunError) as caught:
        settings.load()
    assert "scaleplane:todo.replcas: unknown key" in str(caught.value)
