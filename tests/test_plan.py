"""The README's main command: `python -m deploy plan --stack <s>`, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

from deploy.cli import main
from deploy.plan import EXIT_CONFIG, EXIT_OK, SECRET, redacted

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_plan_writes_tree_resources_and_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "prod", "--out", str(tmp_path)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "prod (pulumi:pulumi:Stack)" in printed
    assert "kubernetes:apps/v1:Deployment" in printed
    assert "0 invalid" in printed
    document = json.loads((tmp_path / "resources.json").read_text())
    assert document["stack"] == "prod" and document["invalidObjects"] == {}
    assert document["outputs"]["todoUrl"].startswith("<unknown")
    manifests = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "manifests").glob("*.yaml"))]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "StatefulSet", "HorizontalPodAutoscaler", "Service"} <= kinds
    for m in manifests:
        if m["kind"] == "Secret":
            assert m["stringData"] == SECRET
    # Integers stay integers (Pulumi's wire format carries doubles; int32 fields refuse "80.0").
    web = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "todo-prod")
    assert all(type(p["port"]) is int for p in web["spec"]["ports"])
    assert list((tmp_path / "charts").glob("*.yaml"))


def test_plan_refuses_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "qa"]) == EXIT_CONFIG
    assert "unknown stack 'qa'" in capsys.readouterr().err


def test_plan_names_the_bad_key_without_a_traceback(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for item in ("Pulumi.yaml", "__main__.py"):
        (project / item).write_text((PROJECT_DIR / item).read_text())
    (project / "stacks").mkdir()
    bad = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    bad["config"]["scaleplane:mesh"] = "istioo"
    (project / "stacks" / "Pulumi.local.yaml").write_text(yaml.safe_dump(bad))
    from deploy import project as project_module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(project_module, "PROJECT_DIR", project)
        from deploy import plan as plan_module

        patch.setattr(plan_module, "stack_config", lambda stack: project_module.stack_config(stack, project))
        with pytest.raises(Exception) as caught:
            plan_module.build_report("local")
    assert "scaleplane:mesh" in str(caught.value)


def _project_with(tmp_path: Path, stack_text: str, project_text: str | None = None) -> Path:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(project_text or (PROJECT_DIR / "Pulumi.yaml").read_text())
    (project / "stacks" / "Pulumi.local.yaml").write_text(stack_text)
    return project


@pytest.mark.parametrize(
    ("stack_text", "project_text", "expected"),
    [
        ("config:\n  scaleplane:todo: {replicas: 1\n", None, "stacks/Pulumi.local.yaml is not valid YAML (line 3,"),
        ("- a list\n", None, "stacks/Pulumi.local.yaml: expected a mapping at the top level, found list"),
        ("config: 3\n", None, "Pulumi.local.yaml: 'config' must be a mapping of keys, found int"),
        ("config:\n  todo: {replicas: 2}\n", None, "config key 'todo' has no namespace; write scaleplane:todo"),
        ("config: {}\n", "name: scaleplane\nconfig: [\n", "Pulumi.yaml is not valid YAML (line 3,"),
        ("config: {}\n", "runtime: python\n", "Pulumi.yaml: 'name' (the project name and config namespace) is missing"),
    ],
    ids=[
        "stack-yaml-syntax",
        "stack-not-a-mapping",
        "config-not-a-mapping",
        "key-without-namespace",
        "project-yaml-syntax",
        "project-unnamed",
    ],
)
def test_a_broken_file_exits_2_naming_it_without_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack_text: str,
    project_text: str | None,
    expected: str,
) -> None:
    from deploy import plan as plan_module
    from deploy import project as project_module

    project = _project_with(tmp_path, stack_text, project_text)
    monkeypatch.setattr(plan_module, "stack_config", lambda stack: project_module.stack_config(stack, project))
    assert main(["plan", "--stack", "local", "--out", str(tmp_path / "out")]) == EXIT_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("plan local: ") and expected in line, line


def test_a_type_error_shows_the_value_given(tmp_path: Path) -> None:
    from deploy import project as project_module
    from settings import SettingsError, from_config

    stack = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    stack["config"]["scaleplane:todo"]["autoscaling"]["maxReplicas"] = "three"
    project = _project_with(tmp_path, yaml.safe_dump(stack))
    with pytest.raises(SettingsError) as caught:
        from_config(project_module.stack_config("local", project))
    assert caught.value.problems == [
        'scaleplane:todo.autoscaling.maxReplicas: Input should be a valid integer (got "three")'
    ]


def test_a_component_refusing_its_arguments_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arguments settings/ let through but a component refuses are still the stack's configuration."""
    import re

    from components.minio import Minio, MinioArgs
    from deploy import mockrun
    from deploy import plan as plan_module
    from settings.workloads import MinioSettings

    unchecked = MinioSettings.__new__(MinioSettings)  # as a gap in settings validation would let through
    object.__setattr__(unchecked, "replicas", 2)

    def program() -> None:
        Minio("m", MinioArgs(settings=unchecked, environment="t"), None)  # type: ignore[arg-type]

    monkeypatch.setattr(
        plan_module.mockrun, "run_stack", lambda stack, preview=True: mockrun.run(stack, {}, program, preview=preview)
    )
    assert main(["plan", "--stack", "local", "--out", str(tmp_path)]) == EXIT_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"plan local: MinioArgs\.settings\.replicas must be 1 or at least 4, got 2 "
        r"\(raised at components/minio\.py:\d+\)",
        line,
    ), line


def test_redaction_hides_secret_subtrees() -> None:
    value = {"stringData": {"password": "hunter2"}, "metadata": {"name": "x"}, "list": [{"a": "b"}]}
    assert redacted(value, ["stringData", "list[0].a"]) == {
        "stringData": SECRET,
        "metadata": {"name": "x"},
        "list": [{"a": SECRET}],
    }


def test_the_readme_command_runs_as_a_module() -> None:
    """Exactly what a new user types, in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-m", "deploy", "plan", "--stack", "local", "--quiet"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "plan local:" in completed.stdout and "0 invalid" in completed.stdout
    assert "Traceback" not in completed.stderr


def test_bad_config_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    stack_file = PROJECT_DIR / "stacks" / "Pulumi.badtest.yaml"
    bad = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    bad["config"]["scaleplane:todo"]["autoscaling"] = {"minReplicas": 6, "maxReplicas": 2}
    stack_file.write_text(yaml.safe_dump(bad))
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "deploy", "plan", "--stack", "badtest", "--out", str(tmp_path)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stack_file.unlink()
    assert completed.returncode == EXIT_CONFIG
    assert "scaleplane:todo.autoscaling: minReplicas (6) must not exceed maxReplicas (2)" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_plan_fails_on_a_deliberately_bad_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local program plus one Deployment without probes or CPU requests: the plan says no."""
    import runpy

    import pulumi_kubernetes as k8s

    from deploy import mockrun
    from deploy import plan as plan_module
    from deploy.project import stack_config

    def program() -> None:
        runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__pulumi_main__")
        provider = k8s.Provider("rogue-provider", context="kind-scaleplane")
        k8s.apps.v1.Deployment(
            "rogue",
            metadata={"name": "rogue", "namespace": "todo"},
            spec={
                "selector": {"matchLabels": {"app": "rogue"}},
                "template": {
                    "metadata": {"labels": {"app": "rogue"}},
                    "spec": {"containers": [{"name": "app", "image": "docker.io/library/nginx:1.27.3"}]},
                },
            },
            opts=pulumi.ResourceOptions(provider=provider),
        )

    monkeypatch.setattr(
        plan_module.mockrun,
        "run_stack",
        lambda stack, preview=True: mockrun.run(stack, stack_config(stack), program, preview=preview),
    )
    assert main(["plan", "--stack", "local", "--out", str(tmp_path)]) == plan_module.EXIT_INVALID
    printed = capsys.readouterr().out
    assert "[mandatory] workload-probes: rogue" in printed
    assert "[mandatory] cpu-requests: rogue" in printed
    document = json.loads((tmp_path / "resources.json").read_text())
    assert {v["policy"] for v in document["policyViolations"] if v["enforcement"] == "mandatory"} == {
        "workload-probes",
        "cpu-requests",
    }
