"""The CRDs the offline plan ships are the pinned upstream ones, and cover every custom resource."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REFERENCE_DIR

from deploy import mockrun
from deploy.validate import CRD_DIR, crd_schema

VENDORED = sorted(p.relative_to(CRD_DIR) for p in CRD_DIR.rglob("*.yaml"))


@pytest.mark.parametrize("relative", VENDORED, ids=str)
def test_vendored_crd_is_byte_identical_to_the_pinned_reference(relative: Path) -> None:
    assert (CRD_DIR / relative).read_bytes() == (REFERENCE_DIR / "crds" / relative).read_bytes()


def test_every_rendered_custom_resource_has_a_shipped_crd(stack_plan: mockrun.PlanResult) -> None:
    import kubernetes_validate

    for resource in stack_plan.resources:
        if not resource.is_kubernetes_object:
            continue
        api_version, kind = resource.inputs["apiVersion"], resource.inputs["kind"]
        try:
            kubernetes_validate.validate({"apiVersion": api_version, "kind": kind}, "1.34")
        except kubernetes_validate.SchemaNotFoundError:
            assert crd_schema(api_version, kind) is not None, f"no shipped CRD for {kind} {api_version}"
        except kubernetes_validate.ValidationError:
            pass  # a built-in kind: its schema exists (the stub object is simply incomplete)
