"""Test setup: Pulumi mocks before any program module is imported, and shared fixtures.

The mocks are deploy.mockrun's recording mocks, the same ones the offline plan uses: each test
runs a program (the whole stack, or a component built by the test) and inspects what it
registered. Nothing here talks to a cloud, a cluster or the Pulumi CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import pulumi  # noqa: E402

from deploy import mockrun  # noqa: E402

# Set before the program's modules are imported, as pulumi/examples' testing-unit-py does.
pulumi.runtime.set_mocks(mockrun.RecordingMocks(), project="scaleplane", stack="test", preview=False)

import pytest  # noqa: E402

from deploy.project import STACKS  # noqa: E402


@pytest.fixture(scope="session")
def stack_plans() -> dict[str, mockrun.PlanResult]:
    """Every stack's program, run once per test session in preview mode (as the offline plan)."""
    return {stack: mockrun.run_stack(stack, preview=True) for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack_plan(request: pytest.FixtureRequest, stack_plans: dict[str, mockrun.PlanResult]) -> mockrun.PlanResult:
    return stack_plans[request.param]


@pytest.fixture(autouse=True)
def _no_config_left_from_earlier_programs() -> None:
    """mockrun.run sets the process-wide Pulumi config of the stack it ran; start each test without it.

    (Code that reads config at call time, such as the policy pack, would otherwise judge by
    whichever stack an earlier test happened to run last.)
    """
    from pulumi.runtime.config import set_all_config

    set_all_config({}, [])
