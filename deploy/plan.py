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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

import yaml

import settings as settings_module
from deploy import diagram, mockrun, reference
from deploy import validate as schema
from deploy.project import PROJECT_DIR, STACKS, StackConfigError, stack_config

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_CONFIG = 2
SECRET = "<secret>"
#: The C YAML emitter when PyYAML has libyaml (the same documents, several times faster).
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="offline plan under mocks: resource tree, manifests, schema and policy checks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stack",
        "-s",
        default="local",
        help=f"stack name ({', '.join(STACKS)}), or {ALL} for every stack in one run and one summary table; "
        "default: local",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: .scaleplane/plan/<stack>/ in the project; with --stack all, <out>/<stack>/)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the summary lines")
    parser.set_defaults(handler=run)


@dataclass
class PlanReport:
    result: mockrun.PlanResult
    kubernetes_version: str
    invalid: dict[str, list[str]] = field(default_factory=dict)
    #: Kind.group -> objects not checked: their pinned CRD is in neither the reference set nor the cache.
    unchecked: Unchecked = field(default_factory=lambda: Unchecked())
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
            (out / "manifests" / filename).write_text(yaml.dump(body, Dumper=YAML_DUMPER, sort_keys=False))
        elif resource.type.startswith("kubernetes:helm.sh/"):
            (out / "charts" / f"{_slug(resource.name)}.yaml").write_text(
                yaml.dump({"type": resource.type, **manifest(resource)}, Dumper=YAML_DUMPER, sort_keys=False)
            )
    document = {
        "stack": report.result.stack,
        "kubernetesVersion": report.kubernetes_version,
        "resources": records,
        "outputs": {k: (SECRET if k in report.result.secret_outputs else v) for k, v in report.result.outputs.items()},
        "invalidObjects": report.invalid,
        "uncheckedObjects": report.unchecked.objects,
        "chartsWithoutWorkloadDeclaration": report.uncovered_charts,
        "policyViolations": [
            {"policy": v.policy, "enforcement": v.enforcement, "urn": v.urn, "message": v.message}
            for v in report.violations
        ],
    }
    (out / "resources.json").write_text(json.dumps(document, indent=2, default=str))
    (out / "diagram.md").write_text(diagram.markdown(report.result))


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


def validate_objects(result: mockrun.PlanResult, kubernetes_version: str) -> tuple[dict[str, list[str]], Unchecked]:
    """Schema problems of every Kubernetes object (object -> problems), and the objects whose pinned
    CRD is unavailable (not checked, which is not invalid)."""
    invalid: dict[str, list[str]] = {}
    unchecked = Unchecked()
    for resource in result.resources:
        if resource.is_kubernetes_object:
            try:
                problems = list(schema.errors(resource.inputs, kubernetes_version))
            except schema.SchemaUnavailableError as error:
                unchecked.add(f"{error.kind}.{error.group}", f"{resource.type} {resource.name}", error.reason)
                continue
            if problems:
                invalid[f"{resource.type} {resource.name}"] = problems
    return invalid, unchecked


def object_key(obj: dict[str, Any]) -> Optional[tuple[str, str, str, str]]:
    """(API group, kind, namespace, name) of a Kubernetes object: what the API server keys it by.
    None when the name is left to Pulumi (auto-named, never a collision) or known only after deploy."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name or name == mockrun.UNKNOWN:
        return None
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group, str(obj.get("kind", "")), str(metadata.get("namespace") or ""), name


def duplicate_objects(result: mockrun.PlanResult) -> dict[str, list[str]]:
    """Pulumi resources that would write the same Kubernetes object (one API group, kind, namespace
    and name) as an earlier one: the second `up` step would fail, or two owners would overwrite each
    other. Patches (`...Patch` types) are meant to touch an existing object and are left out."""
    first: dict[tuple[str, str, str, str], mockrun.PlannedResource] = {}
    duplicates: dict[str, list[str]] = {}
    for resource in sorted(result.resources, key=lambda r: r.urn):
        if not resource.is_kubernetes_object or resource.type.endswith("Patch"):
            continue
        key = object_key(resource.inputs)
        if key is None:
            continue
        if key not in first:
            first[key] = resource
            continue
        group, kind, namespace, name = key
        where = f"{namespace}/{name}" if namespace else name
        other = first[key]
        duplicates.setdefault(f"{resource.type} {resource.name}", []).append(
            f"the same Kubernetes object as {other.type} {other.name}: {kind}{'.' + group if group else ''} {where}"
        )
    return duplicates


@dataclass
class Unchecked:
    """Custom resources the plan could not check: Kind.group -> objects, and why."""

    objects: dict[str, list[str]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def add(self, kind: str, name: str, reason: str) -> None:
        self.objects.setdefault(kind, []).append(name)
        if reason not in self.reasons:
            self.reasons.append(reason)

    def __bool__(self) -> bool:
        return bool(self.objects)

    def line(self) -> str:
        """One line: which custom resources were not checked, why, and how to check them."""
        kinds = ", ".join(f"{kind} ({len(names)})" for kind, names in sorted(self.objects.items()))
        return f"not checked, pinned CRD unavailable ({'; '.join(self.reasons)}): {kinds}; {reference.HOW_TO_GET}"


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
    config = settings_module.from_config(stack_config(stack), require_provider_guard=True)
    result = mockrun.run_stack(stack, preview=True)
    report = PlanReport(result=result, kubernetes_version=config.kubernetes_version)
    report.invalid, report.unchecked = validate_objects(result, config.kubernetes_version)
    for name, problems in duplicate_objects(result).items():
        report.invalid.setdefault(name, []).extend(problems)
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


ALL = "all"


@dataclass(frozen=True)
class StackSummary:
    """One row of the `--stack all` table; counts are None when the stack's configuration is refused."""

    stack: str
    exit_code: int
    resources: Optional[int] = None
    objects: Optional[int] = None
    invalid: Optional[int] = None
    mandatory: Optional[int] = None
    advisory: Optional[int] = None


SUMMARY_COLUMNS = ("stack", "resources", "Kubernetes objects", "invalid", "mandatory", "advisory", "exit")


def summary_table(rows: list[StackSummary]) -> str:
    """The one table `--stack all` ends with: a row per stack, and the exit code of the whole run."""
    cells = [
        [
            row.stack,
            *("-" if value is None else str(value) for value in (row.resources, row.objects, row.invalid)),
            *("-" if value is None else str(value) for value in (row.mandatory, row.advisory)),
            str(row.exit_code),
        ]
        for row in rows
    ]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(SUMMARY_COLUMNS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if i == 0 else value.rjust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(SUMMARY_COLUMNS), *(line(values) for values in cells)])


def run(args: argparse.Namespace) -> int:
    if args.stack != ALL:
        out = args.out or PROJECT_DIR / ".scaleplane" / "plan" / args.stack
        return plan_stack(args.stack, out, args.quiet).exit_code
    rows = []
    for stack in STACKS:
        out = (args.out / stack) if args.out else PROJECT_DIR / ".scaleplane" / "plan" / stack
        rows.append(plan_stack(stack, out, args.quiet))
        sys.stdout.write("\n")
    worst = max(row.exit_code for row in rows)
    sys.stdout.write(f"plan all ({len(rows)} stacks): exit {worst}\n{summary_table(rows)}\n")
    sys.stdout.flush()
    return worst


def plan_stack(stack: str, out: Path, quiet: bool) -> StackSummary:
    """Plan one stack: print its report (the tree and tables unless quiet), write it to `out`."""
    stream = sys.stdout
    try:
        report = build_report(stack)
    except (settings_module.SettingsError, StackConfigError) as error:
        stream.flush()
        print(f"plan {stack}: {error}", file=sys.stderr, flush=True)
        return StackSummary(stack, EXIT_CONFIG)
    except ValueError as error:
        # A component refused arguments that settings/ let through: still a configuration error,
        # reported in one line with where it was raised.
        stream.flush()
        print(f"plan {stack}: {error} ({_raised_at(error)})", file=sys.stderr, flush=True)
        return StackSummary(stack, EXIT_CONFIG)
    result = report.result
    if not quiet:
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
        f"\nplan {stack}: {len(result.resources)} resources, {objects} Kubernetes objects "
        f"validated against Kubernetes {report.kubernetes_version}: {len(report.invalid)} invalid\n"
    )
    for name, problems in sorted(report.invalid.items()):
        for problem in problems:
            stream.write(f"  INVALID {name}: {problem}\n")
    if report.unchecked:
        stream.write(f"  {report.unchecked.line()}\n")
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
    exit_code = EXIT_INVALID if report.invalid or report.mandatory else EXIT_OK
    return StackSummary(
        stack,
        exit_code,
        resources=len(result.resources),
        objects=objects,
        invalid=len(report.invalid),
        mandatory=by_level.get("mandatory", 0),
        advisory=by_level.get("advisory", 0),
    )
