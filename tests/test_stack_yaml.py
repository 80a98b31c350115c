"""Stack files are read as the Pulumi CLI reads them; whatever YAML they hold, the plan exits 2
with one line naming the key, never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import settings
from deploy.cli import main
from deploy.plan import EXIT_CONFIG
from deploy.project import PROJECT_DIR, StackConfigError, stack_config

LOCAL = (PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_bytes()


#: Five levels of ten aliases each: 10**5 values from a few lines (a "billion laughs").
LAUGHS = b"    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"    a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n".encode() for n in range(1, 6)
)


def _project(root: Path, stack: bytes) -> Path:
    (root / "stacks").mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_bytes((PROJECT_DIR / "Pulumi.yaml").read_bytes())
    (root / "stacks" / "Pulumi.local.yaml").write_bytes(stack)
    return root


def _with(text: bytes) -> bytes:
    """The local stack with `text` appended under config (later keys are new ones)."""
    return LOCAL.rstrip(b"\n") + b"\n" + text


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: bytes) -> int:
    from deploy import plan as plan_module
    from deploy import project as project_module

    project = _project(tmp_path / "project", stack)
    monkeypatch.setattr(plan_module, "stack_config", lambda name: project_module.stack_config(name, project))
    return main(["plan", "--stack", "local", "--quiet", "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        (
            _with(b"  scaleplane:loadTest:\n    image: !!binary aGVsbG8=\n"),
            "scaleplane:loadTest.image: YAML tag !!binary",
        ),
        (_with(b"  scaleplane:loadTest:\n    image: !!set {a, b}\n"), "scaleplane:loadTest.image: YAML tag !!set"),
        (_with(b"  scaleplane:loadTest: !!python/name:os.system\n"), "scaleplane:loadTest: YAML tag !!python/name"),
        (_with(b"  scaleplane:loadTest: &a\n    image: [*a]\n"), "scaleplane:loadTest.image[0]: a recursive alias"),
        (_with(b"  scaleplane:loadTest: &a [*a]\n"), "scaleplane:loadTest[0]: a recursive alias"),
        (_with(b"  scaleplane:loadTest: *nowhere\n"), "in scaleplane:loadTest): found undefined alias 'nowhere'"),
        (
            _with(b"  scaleplane:loadTest:\n    image: bu\x00sybox\n"),
            "in scaleplane:loadTest.image): the character U+0000",
        ),
        (
            _with(b"  scaleplane:loadTest:\n    image: bu\xffsybox\n"),
            "in scaleplane:loadTest.image): byte 0xff is not UTF-8",
        ),
        (
            _with(b'  scaleplane:loadTest:\n    image: "bu\\0sybox"\n'),
            "scaleplane:loadTest.image: holds a control character",
        ),
        (
            _with(b"  scaleplane:loadTest:\n    workers: 2\n    workers: 3\n"),
            "scaleplane:loadTest.workers: given twice",
        ),
        (_with(b"  scaleplane:loadTest:\n    workers: .nan\n"), "scaleplane:loadTest.workers: .nan is not a number"),
        (_with(b"  scaleplane:loadTest: " + b"[" * 3000 + b"]" * 3000 + b"\n"), "nested more than 32 levels deep"),
        (
            _with(b"  scaleplane:loadTest:\n" + LAUGHS),
            "scaleplane:loadTest: aliases expand to more than 100000 values",
        ),
        (_with(b"\tscaleplane:loadTest: {}\n"), "is not valid YAML (line"),
    ],
    ids=[
        "binary",
        "set",
        "python-tag",
        "recursive-alias-in-mapping",
        "recursive-alias-list",
        "undefined-alias",
        "nul-byte",
        "invalid-utf8",
        "escaped-nul",
        "duplicate-key",
        "nan",
        "deep-nesting",
        "alias-expansion",
        "tab",
    ],
)
def test_odd_yaml_exits_2_in_one_line_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: bytes,
    expected: str,
) -> None:
    assert _plan(tmp_path, monkeypatch, stack) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 2 and len(err) < 400, err


def test_a_huge_value_is_shortened_in_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _with(b"  scaleplane:loadTest:\n    image: " + b"x" * 100_000 + b"\n")
    assert _plan(tmp_path, monkeypatch, stack) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "scaleplane:loadTest.image:" in err and "…" in err and "(100000 characters)" in err
    assert len(err) < 400, err


def test_dates_reach_the_program_as_written_like_the_pulumi_cli_passes_them(tmp_path: Path) -> None:
    """Go yaml decodes a timestamp into interface{} as its text, and a top-level scalar is passed as written."""
    stack = _with(
        b"  scaleplane:kubernetesVersion: 1.30\n"
        b"  scaleplane:loadTest:\n    image: docker.io/library/busybox:2024-01-02\n"
        b"  kubernetes:note: 2024-01-02T10:00:00Z\n"
    ).replace(b"scaleplane:environment: local", b"scaleplane:environment: 2024-01-02")
    raw = stack_config("local", _project(tmp_path, stack))
    assert raw["scaleplane:environment"] == "2024-01-02"
    assert raw["scaleplane:kubernetesVersion"] == "1.30"
    assert raw["kubernetes:note"] == "2024-01-02T10:00:00Z"
    assert json.loads(raw["scaleplane:loadTest"]) == {"image": "docker.io/library/busybox:2024-01-02"}
    config = settings.from_config(raw)
    assert config.environment == "2024-01-02" and config.kubernetes_version == "1.30"


def test_a_nested_date_is_a_string_and_settings_judge_it(tmp_path: Path) -> None:
    stack = _with(b"  scaleplane:loadTest:\n    workers: 2024-01-02\n")
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_config(stack_config("local", _project(tmp_path, stack)))
    assert caught.value.problems == ['scaleplane:loadTest.workers: Input should be a valid integer (got "2024-01-02")']


# -- property: any YAML-typed value anywhere in a real stack file names its key or is accepted --------

_SCALARS = st.one_of(
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
    st.frozensets(st.text(max_size=3), max_size=3).map(set),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["1Gi", "0", "kube-system", "todo", "registry:5000/a:1", "latest", "1e400", "0x1F", "1:30"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _leaf_paths(value, (*path, index))
    return found


_DOCUMENT = yaml.safe_load(LOCAL)
_PATHS = [p for p in _leaf_paths(_DOCUMENT["config"]) if p]


def _recursive(kind: str) -> Any:
    if kind == "list":
        looped: list[Any] = []
        looped.append(looped)
        return looped
    mapping: dict[str, Any] = {}
    mapping["self"] = {"inner": mapping}
    return mapping


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(_PATHS),
    value=_VALUES | st.sampled_from(["list", "mapping"]).map(_recursive),
    shared=st.booleans(),
)
def test_any_yaml_value_anywhere_names_its_key_or_is_accepted(path: tuple[Any, ...], value: Any, shared: bool) -> None:
    document = json.loads(json.dumps(_DOCUMENT))
    target = document["config"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    if shared:  # the same object twice: safe_dump writes an anchor and an alias
        document["config"]["scaleplane:shared"] = value
    try:
        text = yaml.safe_dump(document, allow_unicode=True).encode()
    except (yaml.YAMLError, ValueError):
        return  # not writable as YAML at all
    with tempfile.TemporaryDirectory() as directory:
        project = _project(Path(directory), text)
        try:
            settings.from_config(stack_config("local", project))
        except (StackConfigError, settings.SettingsError) as error:
            message = str(error)
            top = path[0]
            assert top in message or "scaleplane:shared" in message, message
            assert len(message) < 4000, message


def test_the_loader_builds_only_json_types() -> None:
    from deploy import stackyaml

    value = stackyaml.load(b"a: 2024-01-02\nb: 2001-12-14 21:59:43.10 -5\nc: [1, 2.5, true, null]\n", "t.yaml")
    assert value == {"a": "2024-01-02", "b": "2001-12-14 21:59:43.10 -5", "c": [1, 2.5, True, None]}
    assert json.loads(json.dumps(value)) == value
