"""The pack on the real stacks: their settings reach it, and the program passes every mandatory rule."""

from __future__ import annotations

import json

import pytest
from policy_support import ROOT

from deploy import mockrun
from deploy.project import STACKS, stack_config
from policy.scaleplane_policy import MOCKRUN_UNKNOWN, evaluate, validate_config
from settings import from_config


def test_the_pack_spells_unknown_values_as_the_mock_run_does():
    assert MOCKRUN_UNKNOWN == mockrun.UNKNOWN


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_a_policy_config_that_leaves_the_stack_settings_to_the_stack(stack):
    path = ROOT / "policy" / "config" / f"{stack}.json"
    config = json.loads(path.read_text())
    validate_config(config)
    # balancer and production come from the stack's own config; a copy here could drift from it.
    assert "balancer" not in (config.get("load-balancer-services") or {})
    assert "production" not in (config.get("production-availability") or {})


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_has_no_mandatory_violation_on_any_stack(stack):
    settings = from_config(stack_config(stack))
    plan = mockrun.run_stack(stack)
    config = json.loads((ROOT / "policy" / "config" / f"{stack}.json").read_text())
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in plan.resources]
    violations = evaluate(resources, config, balancer=settings.balancer, production=settings.production)
    mandatory = [f"{v.policy}: {v.message}" for v in violations if v.enforcement == "mandatory"]
    assert mandatory == []
