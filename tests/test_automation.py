"""The Automation API driver (`python -m deploy preview|up|refresh|destroy|outputs`).

The driver's logic runs against tests/fakestack.py's FakeStack, an in-process stand-in for
auto.Stack that emits the engine events the CLI would. The real path (a LocalWorkspace through
the Pulumi CLI) runs at the end of this file where a `pulumi` binary exists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakestack import FakeStack, Finding, Step
from pulumi import automation as auto

from deploy import automation, cli, project
from deploy.automation import workspace

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
SNAPSHOT = "kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshot"
BUCKET = "aws:s3/bucket:Bucket"


def copy_project(target: Path) -> Path:
    """What a workspace reads: Pulumi.yaml and the stack files, plus a policy pack directory."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(project.PROJECT_DIR / "Pulumi.yaml", target / "Pulumi.yaml")
    shutil.copytree(project.PROJECT_DIR / "stacks", target / "stacks")
    (target / "policy").mkdir()
    (target / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\ndescription: scaleplane policies\n")
    return target


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = copy_project(tmp_path / "project")
    monkeypatch.setattr(workspace, "PROJECT_DIR", directory)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct horse battery staple")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return directory


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch, project_dir: Path):
    """Make `stack` the one the driver opens."""

    def install(stack: FakeStack) -> FakeStack:
        monkeypatch.setattr(workspace, "stack_factory", stack.factory)
        return stack

    return install


def run(*argv: str) -> int:
    return cli.main(list(argv))


def json_result(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = run(*argv, "--json")
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


WEB_PLAN = [
    Step("create", DEPLOYMENT, "todo-node"),
    Step("create", DEPLOYMENT, "todo-mongodb"),
    Step("create", SERVICE, "todo-node"),
    Step("update", CONFIG_MAP, "todo-settings"),
    Step("replace", CONFIG_MAP, "todo-env"),
    Step("delete", SERVICE, "legacy"),
    Step("same", "pulumi:providers:kubernetes", "dev-cluster"),
]


# --- the command line ----------------------------------------------------------------------------


def test_help_lists_every_command_with_a_description_and_the_exit_codes() -> None:
    text = cli.build_parser().format_help()
    for command in ("plan", *automation.COMMANDS):
        line = next((line for line in text.splitlines() if line.strip().startswith(command + " ")), None)
        assert line is not None and len(line.split()) > 2, f"{command} has no one-line description in --help"
    for code in (
        automation.EXIT_OK,
        automation.EXIT_FAILED,
        automation.EXIT_POLICY_VIOLATION,
        automation.EXIT_CHANGES_PENDING,
        automation.EXIT_REFUSED,
        automation.EXIT_SETUP,
    ):
        assert f"\n  {code}  " in text
    assert (
        len(
            {
                automation.EXIT_OK,
                automation.EXIT_FAILED,
                automation.EXIT_USAGE,
                automation.EXIT_POLICY_VIOLATION,
                automation.EXIT_CHANGES_PENDING,
                automation.EXIT_REFUSED,
                automation.EXIT_SETUP,
            }
        )
        == 7
    )


def test_stack_is_required() -> None:
    with pytest.raises(SystemExit) as exit_:
        run("preview")
    assert exit_.value.code == automation.EXIT_USAGE


@pytest.mark.parametrize(
    ("command", "create"), [("preview", True), ("up", True), ("refresh", False), ("destroy", False), ("outputs", False)]
)
def test_only_preview_and_up_create_the_stack(use, command: str, create: bool) -> None:
    stack = use(FakeStack("dev"))
    assert run(command, "--stack", "dev") == automation.EXIT_OK
    assert stack.opened[0]["create"] is create


def test_backend_defaults_to_a_file_backend_in_the_project(use, project_dir: Path) -> None:
    stack = use(FakeStack("dev"))
    run("outputs", "--stack", "dev")
    assert stack.opened[0]["backend_url"] == f"file://{project_dir}/.pulumi-state"
    assert stack.opened[0]["work_dir"] == project_dir


def test_backend_comes_from_pulumi_backend_url(use, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://scaleplane-state?region=us-east-1")
    stack = use(FakeStack("dev"))
    run("outputs", "--stack", "dev")
    assert stack.opened[0]["backend_url"] == "s3://scaleplane-state?region=us-east-1"


# --- the policy pack -----------------------------------------------------------------------------


def test_preview_attaches_the_policy_pack(use, project_dir: Path) -> None:
    stack = use(FakeStack("dev"))
    assert run("preview", "--stack", "dev") == automation.EXIT_OK
    [call] = stack.calls_to("preview")
    assert call["policy_packs"] == [str(project_dir / "policy")]
    assert "policy_pack_configs" not in call


def test_the_stacks_policy_config_goes_with_the_pack(use, project_dir: Path) -> None:
    config = project_dir / "policy" / "config" / "prod.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"all": "mandatory"}))
    stack = use(FakeStack("prod"))
    assert run("up", "--stack", "prod") == automation.EXIT_OK
    for call in stack.calls_to("preview") + stack.calls_to("up"):
        assert call["policy_packs"] == [str(project_dir / "policy")]
        assert call["policy_pack_configs"] == [str(config)]


def test_no_policy_drops_the_pack(use) -> None:
    stack = use(FakeStack("dev"))
    assert run("up", "--stack", "dev", "--no-policy") == automation.EXIT_OK
    assert all("policy_packs" not in call for _, call in stack.calls)


def test_refresh_and_destroy_take_no_policy_pack(use) -> None:
    stack = use(FakeStack("dev", resources=[Step("same", DEPLOYMENT, "todo-node")]))
    assert run("refresh", "--stack", "dev") == automation.EXIT_OK
    assert run("destroy", "--stack", "dev") == automation.EXIT_OK
    assert [name for name, _ in stack.calls] == ["refresh", "destroy"]


def test_a_missing_policy_pack_is_one_line_and_opens_nothing(use, project_dir: Path, capsys) -> None:
    (project_dir / "policy" / "PulumiPolicy.yaml").unlink()
    stack = use(FakeStack("dev"))
    assert run("preview", "--stack", "dev") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-policy" in err
    assert stack.opened == []


def test_a_mandatory_violation_is_its_own_exit_code(use, capsys) -> None:
    use(
        FakeStack(
            "dev",
            plan=WEB_PLAN,
            findings=[
                Finding("workload-cpu-requests", "mandatory", "todo-node", "containers must request CPU"),
                Finding("workload-probes", "advisory", "todo-mongodb", "no readiness probe"),
            ],
        )
    )
    code, result, _ = json_result(capsys, "preview", "--stack", "dev")
    assert code == automation.EXIT_POLICY_VIOLATION
    assert result["result"] == "policy-violation"
    assert {(f["policy"], f["level"], f["resource"]) for f in result["policy"]} == {
        ("workload-cpu-requests", "mandatory", "todo-node"),
        ("workload-probes", "advisory", "todo-mongodb"),
    }


def test_up_with_a_violation_never_updates(use) -> None:
    stack = use(
        FakeStack(
            "dev",
            plan=WEB_PLAN,
            findings=[
                Finding("workload-probes", "mandatory", "todo-node", "containers need liveness and readiness probes")
            ],
        )
    )
    assert run("up", "--stack", "dev") == automation.EXIT_POLICY_VIOLATION
    assert [name for name, _ in stack.calls] == ["preview"]


def test_advisory_findings_do_not_fail(use, capsys) -> None:
    use(FakeStack("dev", plan=WEB_PLAN, findings=[Finding("workload-probes", "advisory", "todo-node", "no probe")]))
    assert run("up", "--stack", "dev") == automation.EXIT_OK
    assert "policy [advisory] scaleplane/workload-probes on todo-node: no probe" in capsys.readouterr().out


# --- summaries, streaming and JSON ---------------------------------------------------------------


def test_summary_counts_changes_by_type_from_engine_events(use, capsys) -> None:
    use(FakeStack("dev", plan=WEB_PLAN))
    code, result, _ = json_result(capsys, "preview", "--stack", "dev")
    assert code == automation.EXIT_OK
    assert result["changesByType"] == {
        DEPLOYMENT: {"create": 2},
        CONFIG_MAP: {"update": 1, "replace": 1},
        SERVICE: {"create": 1, "delete": 1},
    }
    assert result["changes"] == {"create": 3, "update": 1, "replace": 1, "delete": 1}
    assert result["engineChanges"] == {"create": 3, "delete": 1, "replace": 1, "same": 1, "update": 1}


def test_progress_streams_before_the_summary(use, capsys) -> None:
    use(FakeStack("dev", plan=WEB_PLAN))
    run("preview", "--stack", "dev")
    out = capsys.readouterr().out
    assert out.index(f"+ {DEPLOYMENT} todo-node create") < out.index("== preview dev: succeeded (exit 0)")
    table = out[out.index("== preview dev") :]
    assert f"{CONFIG_MAP}" in table and "total" in table


def test_json_keeps_stdout_machine_readable(use, capsys) -> None:
    use(FakeStack("dev", plan=WEB_PLAN))
    code, result, err = json_result(capsys, "up", "--stack", "dev")
    assert code == automation.EXIT_OK and result["command"] == "up" and result["stack"] == "dev"
    assert "Updating (dev):" in err and "== up dev" in err


def test_up_reports_outputs_with_secrets_masked(use, capsys) -> None:
    use(
        FakeStack(
            "dev",
            plan=WEB_PLAN,
            outputs={"todoUrl": "http://203.0.113.7:80", "dashboardPassword": "s3cr3t-Pw"},
            secret_outputs=["dashboardPassword"],
        )
    )
    code = run("up", "--stack", "dev", "--json")
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == automation.EXIT_OK
    assert result["outputs"] == {"dashboardPassword": "[secret]", "todoUrl": "http://203.0.113.7:80"}
    assert result["secretOutputs"] == ["dashboardPassword"]
    assert "s3cr3t-Pw" not in captured.out + captured.err


def test_outputs_command_masks_secrets(use, capsys) -> None:
    use(
        FakeStack(
            "dev",
            outputs={"minioUrl": "http://198.51.100.4:9000", "minioRootPassword": "hunter2-xyz"},
            secret_outputs=["minioRootPassword"],
        )
    )
    assert run("outputs", "--stack", "dev") == automation.EXIT_OK
    out = capsys.readouterr().out
    assert "minioUrl: http://198.51.100.4:9000" in out and "minioRootPassword: [secret]" in out
    assert "hunter2-xyz" not in out


def test_expect_no_changes(use, capsys) -> None:
    use(FakeStack("dev", plan=[Step("same", DEPLOYMENT, "todo-node")]))
    assert run("preview", "--stack", "dev", "--expect-no-changes") == automation.EXIT_OK
    use(FakeStack("dev", plan=[Step("same", DEPLOYMENT, "todo-node"), Step("update", SERVICE, "todo-node")]))
    assert run("preview", "--stack", "dev", "--expect-no-changes") == automation.EXIT_CHANGES_PENDING
    assert run("preview", "--stack", "dev") == automation.EXIT_OK


def test_preview_refresh_reads_the_live_resources_first(use, capsys) -> None:
    stack = use(FakeStack("dev", plan=[Step("same", DEPLOYMENT, "todo-node")]))
    assert run("preview", "--stack", "dev", "--refresh", "--expect-no-changes") == automation.EXIT_OK
    assert run("preview", "--stack", "dev") == automation.EXIT_OK
    refreshed, plain = stack.calls_to("preview")
    assert refreshed.get("refresh") is True
    assert "refresh" not in plain
    # `up` keeps its own preview plain: --refresh is a preview flag only.
    with pytest.raises(SystemExit):
        run("up", "--stack", "dev", "--refresh")


def test_refresh_counts_drift_and_can_expect_none(use, capsys) -> None:
    drift = [
        Step("same", DEPLOYMENT, "todo-node"),
        Step("update", SERVICE, "todo-node"),
        Step("delete", CONFIG_MAP, "todo-env"),
    ]
    use(FakeStack("dev", drift=drift))
    code, result, _ = json_result(capsys, "refresh", "--stack", "dev", "--expect-no-changes")
    assert code == automation.EXIT_CHANGES_PENDING
    assert result["changesByType"] == {SERVICE: {"update": 1}, CONFIG_MAP: {"delete": 1}}
    use(FakeStack("dev", drift=[Step("same", DEPLOYMENT, "todo-node")]))
    assert run("refresh", "--stack", "dev", "--expect-no-changes") == automation.EXIT_OK


def test_a_failed_step_fails_the_run_with_its_reason(use, capsys) -> None:
    plan = [Step("create", DEPLOYMENT, "todo-node"), Step("create", SERVICE, "todo-node", fails=True)]
    use(FakeStack("dev", plan=plan))
    code, result, _ = json_result(capsys, "up", "--stack", "dev")
    assert code == automation.EXIT_FAILED and result["result"] == "failed"
    assert result["message"] == f"{SERVICE} todo-node: create failed: timed out"
    assert result["failed"] == ["todo-node"]
    assert result["changesByType"] == {DEPLOYMENT: {"create": 1}}


def test_a_backend_error_is_one_line(use, capsys) -> None:
    use(FakeStack("dev", error="the stack is currently locked by 1 lock(s)"))
    code, result, err = json_result(capsys, "refresh", "--stack", "dev")
    assert code == automation.EXIT_FAILED
    assert result["message"] == "the stack is currently locked by 1 lock(s)"
    assert "Traceback" not in err


# --- guards --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        Step("replace", PVC, "minio-data-0"),
        Step("delete", PVC, "percona-blue-data"),
        Step("replace", STATEFUL_SET, "minio"),
        Step("delete", SNAPSHOT, "percona-blue-snapshot"),
        Step("delete", BUCKET, "state"),
        Step("delete", CONFIG_MAP, "todo-settings", protect=True),
        Step("replace", CONFIG_MAP, "todo-env", protect=True),
        # The program drops `protect` in the same update: the engine allows the replacement, the guard does not.
        Step("replace", CONFIG_MAP, "todo-env", protect=True, unprotect=True),
    ],
    ids=lambda step: (
        f"{step.op}-{step.type.rsplit(':', 1)[-1]}{'-protected' if step.protect else ''}"
        f"{'-unprotected' if step.unprotect else ''}"
    ),
)
def test_up_refuses_to_lose_data(use, capsys, step: Step) -> None:
    stack = use(FakeStack("dev", plan=[Step("create", DEPLOYMENT, "todo-node"), step]))
    code, result, _ = json_result(capsys, "up", "--stack", "dev")
    assert code == automation.EXIT_REFUSED and result["result"] == "refused"
    assert [(risk["type"], risk["name"], risk["change"]) for risk in result["dataLossRisks"]] == [
        (step.type, step.name, step.op)
    ]
    assert "--allow-data-loss" in result["message"]
    assert stack.calls_to("up") == []


@pytest.mark.parametrize(
    "step",
    [Step("replace", PVC, "minio-data-0"), Step("replace", CONFIG_MAP, "todo-env", protect=True, unprotect=True)],
)
def test_allow_data_loss_lets_the_update_run(use, step: Step) -> None:
    stack = use(FakeStack("dev", plan=[step]))
    assert run("up", "--stack", "dev", "--allow-data-loss") == automation.EXIT_OK
    assert len(stack.calls_to("up")) == 1


@pytest.mark.parametrize("op", ["delete", "replace"])
def test_a_resource_still_protected_is_refused_by_the_engine_whatever_the_flags(use, capsys, op: str) -> None:
    """The engine fails the preview itself: --allow-data-loss cannot help, and the run says so (exit 5)."""
    plan = [Step("create", DEPLOYMENT, "todo-node"), Step(op, PVC, "minio-data-0", protect=True)]
    stack = use(FakeStack("dev", plan=plan))
    for command in (("preview",), ("up",), ("up", "--allow-data-loss")):
        code, result, _ = json_result(capsys, *command, "--stack", "dev")
        assert code == automation.EXIT_REFUSED and result["result"] == "refused", command
        assert [(risk["type"], risk["name"], risk["change"], risk["reason"]) for risk in result["dataLossRisks"]] == [
            (PVC, "minio-data-0", op, "stateful, protected")
        ]
        assert "protect" in result["message"] and "does not override" in result["message"]
    assert stack.calls_to("up") == []


def test_updating_stateful_resources_in_place_is_allowed(use) -> None:
    stack = use(
        FakeStack(
            "dev",
            plan=[
                Step("update", STATEFUL_SET, "minio"),
                Step("create", PVC, "percona-green"),
                Step("delete", DEPLOYMENT, "legacy"),
            ],
        )
    )
    assert run("up", "--stack", "dev") == automation.EXIT_OK
    assert len(stack.calls_to("up")) == 1


def test_destroying_prod_is_refused(use, capsys) -> None:
    stack = use(FakeStack("prod", resources=[Step("same", DEPLOYMENT, "todo-prod")]))
    assert run("destroy", "--stack", "prod") == automation.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-destroy-production" in err
    assert stack.opened == [] and stack.calls == []
    assert run("destroy", "--stack", "prod", "--allow-destroy-production") == automation.EXIT_OK
    assert stack.calls_to("destroy") and stack.resources == []


def test_a_stack_named_prod_is_production_whatever_its_config(use, project_dir: Path) -> None:
    (project_dir / "stacks" / "Pulumi.prod.yaml").write_text("config:\n  scaleplane:environment: prod\n")
    stack = use(FakeStack("prod"))
    assert run("destroy", "--stack", "prod") == automation.EXIT_REFUSED
    assert stack.calls == []


def test_any_stack_marked_production_is_protected(use, project_dir: Path) -> None:
    (project_dir / "stacks" / "Pulumi.prod-eu.yaml").write_text(
        "config:\n  scaleplane:environment: prod-eu\n  scaleplane:production: true\n"
    )
    use(FakeStack("prod-eu"))
    assert run("destroy", "--stack", "prod-eu") == automation.EXIT_REFUSED
    use(FakeStack("staging", resources=[Step("same", DEPLOYMENT, "todo-staging")]))
    assert run("destroy", "--stack", "staging") == automation.EXIT_OK


def test_a_protected_resource_fails_a_destroy(use, capsys) -> None:
    use(FakeStack("dev", resources=[Step("same", PVC, "minio-data-0", protect=True)]))
    code, result, _ = json_result(capsys, "destroy", "--stack", "dev")
    assert code == automation.EXIT_FAILED
    assert result["message"] == f"unable to delete urn:pulumi:dev::scaleplane::{PVC}::minio-data-0: it is protected"


# --- setup errors: one line, no traceback --------------------------------------------------------


def test_an_unknown_stack_is_one_line(use, capsys) -> None:
    stack = use(FakeStack("qa"))
    assert run("preview", "--stack", "qa") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err == "deploy preview: unknown stack 'qa': no stacks/Pulumi.qa.yaml (stacks: dev, local, prod, staging)\n"
    assert stack.opened == []


def test_a_stack_missing_from_the_backend_is_one_line(use, capsys) -> None:
    use(FakeStack("staging"))  # the backend has staging only
    assert run("destroy", "--stack", "dev") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stack 'dev' does not exist in file://" in err


def test_a_missing_passphrase_is_one_line(use, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    stack = use(FakeStack("dev"))
    assert run("preview", "--stack", "dev") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PULUMI_CONFIG_PASSPHRASE" in err
    assert stack.opened == []


def test_a_passphrase_file_must_be_readable(use, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "absent"))
    use(FakeStack("dev"))
    assert run("preview", "--stack", "dev") == automation.EXIT_SETUP
    assert "is not a readable file" in capsys.readouterr().err
    (tmp_path / "absent").write_text("from a file\n")
    assert run("preview", "--stack", "dev") == automation.EXIT_OK


def test_other_secrets_providers_need_no_passphrase(use, monkeypatch: pytest.MonkeyPatch, project_dir: Path) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    stack = use(FakeStack("dev"))
    assert run("preview", "--stack", "dev", "--secrets-provider", "awskms://alias/scaleplane") == automation.EXIT_OK
    assert stack.opened[0]["secrets_provider"] == "awskms://alias/scaleplane"
    stack_file = project_dir / "stacks" / "Pulumi.dev.yaml"
    stack_file.write_text("secretsprovider: awskms://alias/scaleplane\n" + stack_file.read_text())
    assert run("preview", "--stack", "dev") == automation.EXIT_OK
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")  # Pulumi Cloud: its own secrets provider
    use(FakeStack("staging"))
    assert run("preview", "--stack", "staging") == automation.EXIT_OK


def test_a_passphrase_stack_needs_its_passphrase_whatever_secrets_provider_says(
    use, monkeypatch: pytest.MonkeyPatch, project_dir: Path, capsys
) -> None:
    """--secrets-provider is for a stack this run creates; a stack file with an encryptionsalt keeps the passphrase."""
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    stack_file = project_dir / "stacks" / "Pulumi.dev.yaml"
    stack_file.write_text("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n" + stack_file.read_text())
    stack = use(FakeStack("dev"))
    assert run("preview", "--stack", "dev", "--secrets-provider", "awskms://alias/scaleplane") == automation.EXIT_SETUP
    assert "PULUMI_CONFIG_PASSPHRASE" in capsys.readouterr().err and stack.opened == []


def test_a_missing_pulumi_cli_is_one_line(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert run("up", "--stack", "dev") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the Pulumi CLI is not on PATH" in err


# --- the pieces other drivers reuse --------------------------------------------------------------


def extra_pack(tmp_path: Path) -> str:
    """Another policy pack, beside the project's."""
    directory = tmp_path / "extra-pack"
    directory.mkdir()
    (directory / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (directory / "extra.json").write_text("{}")
    return str(directory)


def test_open_stack_wires_the_policy_pack_into_preview_and_up(use, project_dir: Path, tmp_path: Path) -> None:
    fake = use(FakeStack("staging"))
    stack = automation.open_stack("staging")
    extra = extra_pack(tmp_path)
    stack.preview(on_event=automation.EventTally())
    stack.up(policy_packs=[extra])
    stack.set_config("scaleplane:activeColour", auto.ConfigValue("green"))
    assert stack.get_config("scaleplane:activeColour").value == "green"
    assert fake.calls_to("preview")[0]["policy_packs"] == [str(project_dir / "policy")]
    assert fake.calls_to("up")[0]["policy_packs"] == [extra, str(project_dir / "policy")]
    assert automation.open_stack("staging", policy=False).policy is None


def test_extra_policy_packs_pair_with_configs_as_the_cli_requires(use, project_dir: Path, tmp_path: Path) -> None:
    config = project_dir / "policy" / "config" / "staging.json"
    config.parent.mkdir()
    config.write_text("{}")
    fake = use(FakeStack("staging"))
    stack = automation.open_stack("staging")
    extra = extra_pack(tmp_path)
    stack.preview(policy_packs=[extra], policy_pack_configs=[f"{extra}/extra.json"])
    assert fake.calls_to("preview")[0]["policy_pack_configs"] == [f"{extra}/extra.json", str(config)]
    with pytest.raises(ValueError, match="one config per pack"):
        stack.up(policy_packs=[extra])
    assert fake.calls_to("up") == []


def test_the_fake_rejects_what_auto_stack_would_not_take() -> None:
    with pytest.raises(TypeError, match="policy_packs"):
        FakeStack("dev").refresh(policy_packs=["policy"])


def test_the_fake_fails_where_the_cli_would(tmp_path: Path) -> None:
    pack = extra_pack(tmp_path)
    config = f"{pack}/extra.json"
    with pytest.raises(auto.CommandError, match="number of --policy-pack-config"):
        FakeStack("dev").preview(policy_packs=[pack, pack], policy_pack_configs=[config])
    with pytest.raises(auto.CommandError, match="no policy pack at"):
        FakeStack("dev").preview(policy_packs=[str(tmp_path / "absent")])
    with pytest.raises(auto.CommandError, match="policy pack config"):
        FakeStack("dev").preview(policy_packs=[pack], policy_pack_configs=[str(tmp_path / "absent.json")])
    with pytest.raises(auto.CommandError, match="color"):
        FakeStack("dev").preview(color="yes")
    changing = FakeStack("dev", plan=[Step("update", SERVICE, "todo-node")], drift=[Step("update", SERVICE, "todo")])
    for method in (changing.preview, changing.up, changing.refresh):
        with pytest.raises(auto.CommandError, match="no changes were expected"):
            method(expect_no_changes=True)
    assert FakeStack("dev", plan=[Step("same", SERVICE, "todo-node")]).preview(expect_no_changes=True)


def test_bluegreen_refuses_an_up_the_engine_fails_for_a_protected_resource() -> None:
    """Even the retiring colour's own volume: the engine will not delete it while it is protected."""
    from deploy import bluegreen

    # The URN's type names its parent: urn:...::scaleplane:database:BlueGreenDatabase$kubernetes:...::name
    volume = Step("delete", f"{bluegreen.COMPONENT_TYPE}${PVC}", "percona-blue-data", protect=True)
    stack = FakeStack("dev", plan=[volume])
    workflow = bluegreen.Workflow(stack, probe=None, out=lambda line: None)  # type: ignore[arg-type]
    with pytest.raises(bluegreen.DataLossRefusedError, match="percona-blue-data .*protected") as error:
        workflow._up("retire blue", retiring="blue")
    assert error.value.exit_code == automation.EXIT_REFUSED
    assert stack.calls_to("up") == []
    stack.error = "the stack is currently locked by 1 lock(s)"
    with pytest.raises(auto.CommandError):  # any other failure still propagates
        workflow._up("retire blue", retiring="blue")


def test_tally_folds_a_replacement_into_one_replace() -> None:
    tally = automation.EventTally()
    FakeStack("dev", plan=[Step("replace", PVC, "data", protect=True, unprotect=True)]).preview(on_event=tally)
    assert tally.by_type() == {PVC: {"replace": 1}}
    [risk] = tally.data_loss_risks
    assert risk.reason == "stateful, protected" and risk.name == "data"


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (
            "error: getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE",
            "getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE",
        ),
        (
            "warning: A new version of Pulumi is available\nerror: no stack named 'dev' found",
            "no stack named 'dev' found",
        ),
        ("something odd happened", "something odd happened"),
    ],
)
def test_error_line_picks_the_clis_error(stderr: str, line: str) -> None:
    err = auto.CommandError(auto.CommandResult(stdout="Updating (dev):\n error: not this one", stderr=stderr, code=255))
    assert automation.error_line(err) == line


# --- the real path -------------------------------------------------------------------------------

needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None, reason="no Pulumi CLI on PATH: the real Automation API path is not exercised"
)


@needs_cli
def test_real_stack_in_a_file_backend(project_dir: Path, capsys) -> None:
    assert run("outputs", "--stack", "dev") == automation.EXIT_SETUP
    assert "does not exist in file://" in capsys.readouterr().err
    stack = automation.open_stack("dev", create=True, policy=False)
    assert isinstance(stack.stack, auto.Stack) and stack.name == "dev"
    assert (project_dir / ".pulumi-state").is_dir()
    code, result, _ = json_result(capsys, "outputs", "--stack", "dev")
    assert code == automation.EXIT_OK and result["outputs"] == {}


def test_a_program_error_is_reported_by_its_exception_line() -> None:
    tally = automation.EventTally()
    tally(
        auto.EngineEvent.from_json(
            {
                "sequence": 1,
                "timestamp": 0,
                "diagnosticEvent": {
                    "severity": "error",
                    "color": "raw",
                    "message": (
                        "Program failed with an unhandled exception:\nTraceback (most recent call last):\n"
                        '  File "__main__.py", line 7, in <module>\n'
                        "<{%fg 1%}>settings.base.SettingsError: "
                        "scaleplane:todo.replicas: must be at least 1<{%reset%}>\n"
                    ),
                },
            }
        )
    )
    tally(
        auto.EngineEvent.from_json(
            {
                "sequence": 2,
                "timestamp": 0,
                "diagnosticEvent": {"severity": "warning", "color": "raw", "message": "a warning is not an error"},
            }
        )
    )
    assert tally.errors == ["settings.base.SettingsError: scaleplane:todo.replicas: must be at least 1"]


def test_a_stack_file_no_config_can_hold_is_one_line_naming_the_key(use, project_dir: Path, capsys) -> None:
    """The driver reads stack files as the plan does: a tag Pulumi cannot pass is a setup error
    naming the key, not a Python traceback."""
    path = project_dir / "stacks" / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  scaleplane:blob: !!binary aGVsbG8=\n")
    assert run("preview", "--stack", "dev") == automation.EXIT_SETUP
    err = capsys.readouterr().err
    assert err.startswith("deploy preview: stacks/Pulumi.dev.yaml:") and "Traceback" not in err, err
    assert "scaleplane:blob: YAML tag !!binary is not a config value" in err, err
