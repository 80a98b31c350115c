"""tests/fakestack.py's FakeStack holds to what pulumi.automation.Stack does where the drivers rely on it."""

from __future__ import annotations

import inspect
import warnings

import pytest
from fakestack import FakeStack, Step
from pulumi import automation as auto

#: Test-only helpers of the fake; every other public method must be one of auto.Stack's.
FAKE_ONLY = {"factory", "calls_to"}
STEP = Step("update", "kubernetes:core/v1:Service", "database-service", parent="scaleplane:database:BlueGreenDatabase")


def public_methods(cls: type) -> list[str]:
    return sorted(n for n, v in vars(cls).items() if callable(v) and not n.startswith("_"))


@pytest.mark.parametrize("method", sorted(set(public_methods(FakeStack)) - FAKE_ONLY))
def test_every_public_method_takes_the_real_stacks_parameters(method: str) -> None:
    assert hasattr(auto.Stack, method), f"auto.Stack has no {method}: the fake invents an API"
    real = inspect.signature(getattr(auto.Stack, method)).parameters
    fake = inspect.signature(getattr(FakeStack, method)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in fake.values()):
        # **kwargs, checked by name against the real signature on every call.
        stack = FakeStack("dev")
        for name in real:
            if name != "self" and name not in ("program", "plan"):
                getattr(stack, method)(**{name: None})
        with pytest.raises(TypeError, match="takes no"):
            getattr(stack, method)(no_such_parameter=1)
        return
    assert [(p.name, p.kind, p.default) for p in fake.values()] == [(p.name, p.kind, p.default) for p in real.values()]


def test_an_exception_in_on_event_is_a_warning_and_the_command_goes_on() -> None:
    stack = FakeStack("dev", plan=[STEP, Step("create", "kubernetes:core/v1:ConfigMap", "cm")])
    seen: list[auto.EngineEvent] = []

    def callback(event: auto.EngineEvent) -> None:
        seen.append(event)
        raise RuntimeError("callback bug")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stack.up(on_event=callback)
    assert result.summary.result == "succeeded"
    assert len(seen) > 2, "events after the first failing callback are still delivered"
    assert caught and all("Failed to parse engine event" in str(w.message) for w in caught)
    assert "callback bug" in str(caught[0].message)


@pytest.mark.parametrize("method", ["preview", "up"])
def test_a_preview_or_up_fails_when_asked_with_the_engines_error(method: str) -> None:
    stack = FakeStack("dev", plan=[STEP])
    setattr(stack, f"fail_{method}", "kubernetes:core/v1:Service database-service: timed out")
    errors: list[str] = []

    def collect(event: auto.EngineEvent) -> None:
        if event.diagnostic_event is not None:
            errors.append(event.diagnostic_event.message)

    with pytest.raises(auto.CommandError):
        getattr(stack, method)(on_event=collect)
    assert errors and "timed out" in errors[0]
    assert stack.resources == [], "a failed up deploys nothing"


def test_a_targeted_up_changes_only_its_targets() -> None:
    other = Step("update", "kubernetes:apps/v1:StatefulSet", "database-blue")
    stack = FakeStack("dev", plan=[STEP, other], resources=[Step("same", other.type, other.name)])
    result = stack.up(target=[STEP.urn("dev")])
    assert result.summary.resource_changes == {"update": 1}
    assert {s.name for s in stack.resources} == {"database-service", "database-blue"}


def test_config_paths_behave_like_pulumi_config_set_path() -> None:
    stack = FakeStack("dev")
    stack.set_config("scaleplane:database", auto.ConfigValue(value='{"active": "blue"}'))
    stack.set_config('scaleplane:database.snapshots["blue-1"].source', auto.ConfigValue(value="data"), path=True)
    stack.set_config("scaleplane:database.colours.green.retired", auto.ConfigValue(value="true"), path=True)
    assert stack.get_config("scaleplane:database.colours.green.retired", path=True).value == "true"
    stack.remove_config('scaleplane:database.snapshots["blue-1"]', path=True)
    assert stack.get_config("scaleplane:database").value == (
        '{"active": "blue", "snapshots": {}, "colours": {"green": {"retired": true}}}'
    )
    with pytest.raises(auto.CommandError, match="invalid configuration key path"):
        stack.set_config("scaleplane:database.snapshots.blue-1", auto.ConfigValue(value="x"), path=True)
