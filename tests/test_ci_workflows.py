"""The GitHub workflows: what pull requests, deploys and drift checks may see and do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else key): value for key, value in document.items()}


CI = _load("ci.yml")
STACK = _load("stack.yml")
JOBS = CI["jobs"]


def test_pull_request_previews_get_no_repository_secrets_and_never_prod() -> None:
    preview = JOBS["preview"]
    assert "pull_request" in preview["if"]
    assert "secrets" not in preview, "a pull request's code must not receive the repository's secrets"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "staging"]
    assert preview["with"]["command"] == "preview"


def test_previews_and_drift_checks_run_in_the_stacks_preview_environment_with_a_read_only_role() -> None:
    job = STACK["jobs"]["run"]
    assert job["environment"] == "${{ inputs.command == 'up' && inputs.stack || format('{0}-preview', inputs.stack) }}"
    steps = {step.get("name"): step for step in job["steps"]}
    read_only = steps["AWS credentials (read-only role)"]
    assert read_only["if"].startswith("inputs.command != 'up'")
    assert read_only["with"]["role-to-assume"] == "${{ vars.AWS_READONLY_ROLE_ARN }}"
    for name in ("AWS credentials (deploy role)", "AWS credentials (access keys)"):
        assert steps[name]["if"].startswith("inputs.command == 'up'"), name


def test_drift_checks_refresh_and_queue_apart_from_deploys() -> None:
    drift = JOBS["drift"]
    assert drift["with"] == {
        "command": "preview",
        "stack": "${{ matrix.stack }}",
        "expect-no-changes": True,
        "refresh": True,
    }
    assert "secrets" not in drift
    group = STACK["jobs"]["run"]["concurrency"]["group"]
    assert "'up'" in group and "'drift'" in group and "inputs.refresh" in group
    assert STACK["jobs"]["run"]["concurrency"]["cancel-in-progress"] is False
    assert "github.event_name == 'schedule' && 'drift'" in CI["concurrency"]["group"]
    run_step = next(step for step in STACK["jobs"]["run"]["steps"] if "python -m deploy" in step.get("run", ""))
    assert "args+=(--refresh)" in run_step["run"]


def test_deploys_run_in_the_stacks_own_environment_one_after_the_other() -> None:
    assert [JOBS[job]["with"]["stack"] for job in ("up-dev", "up-staging", "up-prod")] == ["dev", "staging", "prod"]
    assert JOBS["up-prod"]["needs"] == ["up-staging"]
    assert all(JOBS[job]["with"]["command"] == "up" for job in ("up-dev", "up-staging", "up-prod"))


def test_stack_jobs_can_run_where_the_private_cluster_apis_are_reachable() -> None:
    """staging and prod ship private API endpoints: the stack jobs' runner is a setting."""
    job = _load("stack.yml")["jobs"]["run"]
    assert job["runs-on"] == "${{ vars.STACK_RUNNER || 'ubuntu-latest' }}"
    assert "STACK_RUNNER" in (WORKFLOWS.parent.parent / "docs" / "ci.md").read_text()
