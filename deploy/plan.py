"""`python -m deploy plan --stack S`: the whole program, offline, with the stack's real config.

No Pulumi CLI, cloud or cluster: the program runs under recording mocks (deploy.mockrun) in
preview mode, so values only a real deploy knows stay unknown. The plan prints the resource
tree and counts by type, writes resources.json and the rendered manifests, validates every
Kubernetes object against the schema of the stack's Kubernetes version and every custom
resource against its pinned CRD, runs the policy pack, and exits non-zero on a config error, an
invalid object or a mandatory policy violation.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

import yaml

import settings as settings_module
from deploy import mockrun
from deploy import validate as schema
from deploy.project import PROJECT_DIR, STACKS, StackConfigError, stack_config

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_CONFIG = 2
SECRET = "<secret>"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="offline plan under mocks: resource tree, manifests, schema and policy checks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", "-s", default="local", help=f"stack name ({', '.join(STACKS)}); default: local")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: .scaleplane/plan/<stack>/ in the project)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary lines")
    parser.set_defaults(handler=run)


@dataclass
class PlanReport:
    result: mockrun.PlanResult
    kubernetes_version: str
    invalid: dict[str, list[str]] = field(default_factory=dict)
    violations: list[Any] = field(default_factory=list)
    #: Helm resources whose chart declares no workloads: the policy run does not see inside them.
    uncovered_charts: list[str] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Any]:
        return [v for v in self.violations if v.enforcement == "mandatory"]


def redacted(value: Any, secret_paths: list[str], path: str = "") -> Any:
    """A copy of `value` with every secret path (and anything below it) replaced by SECRET."""
    if path and path in secret_paths or "<root>" in secret_paths:
        return SECRET
    if isinstance(value, dict):
        return {k: redacted(v, secret_paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, secret_paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def manifest(resource: mockrun.PlannedResource) -> dict[str, Any]:
    return redacted(resource.inputs, resource.secret_paths)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def write_outputs(report: PlanReport, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    (out / "charts").mkdir()
    records = []
    for index, resource in enumerate(report.result.resources):
        records.append(
            {
                "urn": resource.urn,
                "type": resource.type,
                "name": resource.name,
                "parent": resource.parent,
                "provider": resource.provider,
                "protect": resource.protect,
                "retainOnDelete": resource.retain_on_delete,
                "dependencies": resource.dependencies,
                "secretInputs": resource.secret_paths,
                "inputs": manifest(resource),
            }
        )
        if resource.is_kubernetes_object:
            body = manifest(resource)
            meta = body.get("metadata") or {}
            where = _slug(str(meta.get("namespace", "cluster")))
            what = _slug(str(meta.get("name", resource.name)))
            filename = f"{index:03d}-{_slug(body.get('kind', 'object'))}-{where}-{what}.yaml"
            (out / "manifests" / filename).write_text(yaml.safe_dump(body, sort_keys=False))
        elif resource.type.startswith("kubernetes:helm.sh/"):
            (out / "charts" / f"{_slug(resource.name)}.yaml").write_text(
                yaml.safe_dump({"type": resource.type, **manifest(resource)}, sort_keys=False)
            )
    document = {
        "stack": report.result.stack,
        "kubernetesVersion": report.kubernetes_version,
        "resources": records,
        "outputs": {k: (SECRET if k in report.result.secret_outputs else v) for k, v in report.result.outputs.items()},
        "invalidObjects": report.invalid,
        "chartsWithoutWorkloadDeclaration": report.uncovered_charts,
        "policyViolations": [
            {"policy": v.policy, "enforcement": v.enforcement, "urn": v.urn, "message": v.message}
            for v in report.violations
        ],
    }
    (out / "resources.json").write_text(json.dumps(document, indent=2, default=str))


def print_tree(result: mockrun.PlanResult, stream: TextIO) -> None:
    children: dict[str, list[mockrun.PlannedResource]] = defaultdict(list)
    urns = {r.urn for r in result.resources}
    for resource in result.resources:
        children[resource.parent if resource.parent in urns else ""].append(resource)

    def walk(parent: str, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda r: (r.type, r.name))
        for i, resource in enumerate(kids):
            last = i == len(kids) - 1
            flags = "".join(
                [
                    " [protected]" if resource.protect else "",
                    " [retained on delete]" if resource.retain_on_delete else "",
                ]
            )
            stream.write(f"{prefix}{'└─ ' if last else '├─ '}{resource.name}  ({resource.type}){flags}\n")
            walk(resource.urn, prefix + ("   " if last else "│  "))

    stream.write(f"{result.stack} (pulumi:pulumi:Stack)\n")
    walk("", "")


def validate_objects(result: mockrun.PlanResult, kubernetes_version: str) -> dict[str, list[str]]:
    invalid: dict[str, list[str]] = {}
    for resource in result.resources:
        if resource.is_kubernetes_object:
            problems = list(schema.errors(resource.inputs, kubernetes_version))
            if problems:
                invalid[f"{resource.type} {resource.name}"] = problems
    return invalid


POLICY_CONFIG_DIR = PROJECT_DIR / "policy" / "config"


def policy_config(stack: str) -> Optional[dict[str, Any]]:
    """The stack's policy config (policy/config/<stack>.json), as `--policy-pack-config` passes it."""
    path = POLICY_CONFIG_DIR / f"{stack}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _policy_resources(result: mockrun.PlanResult) -> list[dict[str, Any]]:
    return [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in result.resources]


def uncovered_charts(result: mockrun.PlanResult) -> list[str]:
    """Helm resources whose chart declares no workloads (components.chart_workloads)."""
    from components.chart_workloads import chart_objects

    return chart_objects(_policy_resources(result)).uncovered


def run_policies(result: mockrun.PlanResult, config: settings_module.Settings) -> list[Any]:
    """The policy pack's own rules (policy/scaleplane_policy) over every registered resource, and
    over the workloads each Helm chart runs as its component declares them (components.chart_workloads:
    a pack never sees a helm.v3.Release's objects, and the plan renders no chart)."""
    from components.chart_workloads import DECLARED_POLICIES, chart_objects
    from policy.scaleplane_policy import evaluate

    resources = _policy_resources(result)
    coverage = chart_objects(resources)
    violations = evaluate(
        resources,
        policy_config(result.stack),
        balancer=config.balancer,
        production=config.production,
        declared=coverage.objects,
        declared_policies=DECLARED_POLICIES,
    )
    return list(violations)


def build_report(stack: str) -> PlanReport:
    """Run and check one stack. Raises SettingsError / StackConfigError on bad configuration."""
    config = settings_module.from_config(stack_config(stack))
    result = mockrun.run_stack(stack, preview=True)
    report = PlanReport(result=result, kubernetes_version=config.kubernetes_version)
    report.invalid = validate_objects(result, config.kubernetes_version)
    report.violations = run_policies(result, config)
    report.uncovered_charts = uncovered_charts(result)
    return report


def _raised_at(error: BaseException) -> str:
    """file:line of the innermost frame of this project that the error passed through."""
    ours = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(PROJECT_DIR)
    ]
    frame = (ours or traceback.extract_tb(error.__traceback__))[-1]
    where = Path(frame.filename).resolve()
    return f"raised at {where.relative_to(PROJECT_DIR) if where.is_relative_to(PROJECT_DIR) else where}:{frame.lineno}"


def run(args: argparse.Namespace) -> int:
    out: Path = args.out or PROJECT_DIR / ".scaleplane" / "plan" / args.stack
    stream = sys.stdout
    try:
        report = build_report(args.stack)
    except (settings_module.SettingsError, StackConfigError) as error:
        print(f"plan {args.stack}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as error:
        # A component refused arguments that settings/ let through: still a configuration error,
        # reported in one line with where it was raised.
        print(f"plan {args.stack}: {error} ({_raised_at(error)})", file=sys.stderr)
        return EXIT_CONFIG
    result = report.result
    if not args.quiet:
        print_tree(result, stream)
        stream.write("\nResources by type:\n")
        for type_, count in sorted(Counter(r.type for r in result.resources).items()):
            stream.write(f"  {count:4d}  {type_}\n")
        stream.write("\nStack outputs:\n")
        for key, value in sorted(result.outputs.items()):
            shown = SECRET if key in result.secret_outputs else value
            stream.write(f"  {key}: {shown}\n")
    write_outputs(report, out)
    objects = sum(1 for r in result.resources if r.is_kubernetes_object)
    stream.write(
        f"\nplan {args.stack}: {len(result.resources)} resources, {objects} Kubernetes objects "
        f"validated against Kubernetes {report.kubernetes_version}: {len(report.invalid)} invalid\n"
    )
    for name, problems in sorted(report.invalid.items()):
        for problem in problems:
            stream.write(f"  INVALID {name}: {problem}\n")
    by_level = Counter(v.enforcement for v in report.violations)
    stream.write(
        f"policy: {by_level.get('mandatory', 0)} mandatory, {by_level.get('advisory', 0)} advisory violations\n"
    )
    for violation in sorted(report.violations, key=lambda v: (v.enforcement, v.policy, v.urn)):
        target = violation.urn.rsplit("::", 1)[-1]
        stream.write(f"  [{violation.enforcement}] {violation.policy}: {target}: {violation.message}\n")
    if report.uncovered_charts:
        stream.write(
            f"charts the policy run cannot see into (no workload declaration): {', '.join(report.uncovered_charts)}\n"
        )
    stream.write(f"written: {out}\n")
    if report.invalid or report.mandatory:
        return EXIT_INVALID
    return EXIT_OK
