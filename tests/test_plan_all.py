"""`python -m deploy plan --stack all`: every stack in one process, one summary table, the worst exit;
schemas loaded once (the cached validators answer as kubernetes_validate does)."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes_validate import utils

from deploy import mockrun, plan
from deploy import validate as schema
from deploy.project import STACKS


def kubernetes_validate_says(obj: dict, version: str) -> list[str] | None:
    """What the library itself reports (its first error), or None for a kind it has no schema for."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return None
    except kubernetes_validate.ValidationError as error:
        return [f"{schema._where(error.path)}: {error.message}"]
    return []


def broken_variants(obj: dict) -> list[dict]:
    unknown_field = copy.deepcopy(obj)
    unknown_field.setdefault("spec", {})["notAField"] = 1
    wrong_type = copy.deepcopy(obj)
    wrong_type["metadata"]["labels"] = ["not", "a", "map"]
    return [unknown_field, wrong_type]


def test_the_cached_validator_answers_as_kubernetes_validate_on_every_object(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    compared, seen = 0, set()
    for result in stack_plans.values():
        for resource in result.resources:
            # One object of each kind: the library takes ~20 ms an object.
            key = (resource.inputs.get("apiVersion"), resource.inputs.get("kind"))
            if not resource.is_kubernetes_object or key in seen:
                continue
            seen.add(key)
            obj = schema.without_unknowns(resource.inputs)
            for variant in [obj, *broken_variants(obj)]:
                expected = kubernetes_validate_says(variant, "1.34")
                if expected is None:
                    continue
                assert list(schema.errors(variant, "1.34")) == expected, resource.name
                compared += 1
    assert compared > 40


def test_schemas_are_read_once_for_all_stacks(
    stack_plans: dict[str, mockrun.PlanResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = utils.schema_contents

    def counting(filename: str, version: str) -> object:
        reads.append(filename)
        return real(filename, version)

    monkeypatch.setattr(utils, "schema_contents", counting)
    schema.builtin_validator.cache_clear()
    schema._definitions.cache_clear()
    for result in stack_plans.values():
        plan.validate_objects(result, "1.34")
    definitions = [name for name in reads if name.endswith("/_definitions.json")]
    assert len(definitions) == 1
    assert len(reads) == len(set(reads)), "a schema file was read twice"
    schema.builtin_validator.cache_clear()
    schema._definitions.cache_clear()


def test_the_summary_table_has_a_row_per_stack_and_dashes_for_a_refused_one() -> None:
    rows = [
        plan.StackSummary("local", 0, resources=75, objects=45, invalid=0, mandatory=0, advisory=1),
        plan.StackSummary("dev", 2),
    ]
    lines = plan.summary_table(rows).splitlines()
    assert lines[0].split() == "stack resources Kubernetes objects invalid mandatory advisory exit".split()
    assert lines[1].split() == ["local", "75", "45", "0", "0", "1", "0"]
    assert lines[2].split() == ["dev", "-", "-", "-", "-", "-", "2"]


def test_all_exits_with_the_worst_stack(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    codes = {"local": plan.EXIT_OK, "dev": plan.EXIT_INVALID, "staging": plan.EXIT_OK, "prod": plan.EXIT_OK}
    planned: list[tuple[str, Path]] = []

    def fake(stack: str, out: Path, quiet: bool) -> plan.StackSummary:
        planned.append((stack, out))
        return plan.StackSummary(stack, codes[stack], 1, 1, 0, 0, 0)

    monkeypatch.setattr(plan, "plan_stack", fake)
    assert plan.run(argparse.Namespace(stack="all", out=Path("/tmp/x"), quiet=True)) == plan.EXIT_INVALID
    assert planned == [(stack, Path("/tmp/x") / stack) for stack in STACKS]
    codes["staging"] = plan.EXIT_CONFIG
    assert plan.run(argparse.Namespace(stack="all", out=None, quiet=True)) == plan.EXIT_CONFIG
    assert "plan all (4 stacks): exit 2" in capsys.readouterr().out


def test_all_plans_every_stack_in_one_process_with_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan.run(argparse.Namespace(stack="all", out=tmp_path, quiet=True)) == plan.EXIT_OK
    out = capsys.readouterr().out
    table = out[out.index("plan all (") :].splitlines()[2:]
    assert [line.split()[0] for line in table] == list(STACKS)
    for line in table:
        stack, resources, objects, invalid, mandatory, advisory, exit_code = line.split()
        document = json.loads((tmp_path / stack / "resources.json").read_text())
        assert "```mermaid\nflowchart LR\n" in (tmp_path / stack / "diagram.md").read_text()
        assert int(resources) == len(document["resources"])
        assert f"plan {stack}: {resources} resources, {objects} Kubernetes objects validated" in out
        assert int(invalid) == len(document["invalidObjects"]) and exit_code == "0"
        levels = [v["enforcement"] for v in document["policyViolations"]]
        assert (int(mandatory), int(advisory)) == (levels.count("mandatory"), levels.count("advisory"))
