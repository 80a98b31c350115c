"""The project carries no upstream file: the pinned CRDs and chart values come from the reference set
beside it, or from upstream into a sha256-checked cache, and without either the plan still runs."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import urllib.error
from pathlib import Path

import pytest

from deploy import mockrun, plan, reference
from deploy import validate as schema
from deploy.project import PROJECT_DIR

MANIFEST = reference.manifest()
CRD = "crds/metallb.io/IPAddressPool.yaml"
#: The reference set of this checkout, if any (found before a test hides it).
REFERENCE_SET = reference.reference_set()


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """No reference set, an empty cache, a fresh fetcher and an in-memory upstream (url -> bytes)."""
    served: dict[str, bytes] = {}
    calls: list[str] = []

    def opener(url: str, timeout: float) -> bytes:
        calls.append(url)
        assert timeout <= 10, "a fetch must fail fast"
        if url not in served:
            raise urllib.error.URLError("Name or service not known")
        return served[url]

    monkeypatch.setattr(reference, "reference_set", lambda project_dir=None: None)
    monkeypatch.setattr(reference, "cache_dir", lambda project_dir=None: tmp_path / "cache")
    monkeypatch.setattr(reference, "opener", opener)
    monkeypatch.setattr(reference, "fetcher", reference.Fetcher())
    monkeypatch.setattr(reference, "_unavailable", {})
    served["calls"] = calls  # type: ignore[assignment]
    return served


def reference_set() -> Path:
    found = REFERENCE_SET
    if found is None:
        pytest.skip(f"needs the reference set: {reference.HOW_TO_GET}")
    return found


def test_the_manifest_pins_every_file_of_the_reference_set_by_its_sha256() -> None:
    found = reference_set()
    files = {str(p.relative_to(found)) for p in found.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    held = {name: entry for name, entry in MANIFEST.items() if not entry.beyond_reference_set}
    assert set(held) == files
    assert not files & {name for name, entry in MANIFEST.items() if entry.beyond_reference_set}
    for entry in held.values():
        assert hashlib.sha256((found / entry.file).read_bytes()).hexdigest() == entry.sha256, entry.file
        assert entry.url.startswith("https://raw.githubusercontent.com/"), entry.file


def test_files_beyond_the_reference_set_come_from_an_upstream_file_it_vouches_for() -> None:
    """A CRD the reference set does not hold yet (security.istio.io) is cut from the same pinned
    upstream file, with the same whole-file sha256, as CRDs it does hold: the pin is as good."""
    beyond = [entry for entry in MANIFEST.values() if entry.beyond_reference_set]
    assert beyond, "expected the Istio security CRDs to be pinned beyond the reference set"
    held_sources = {
        (entry.url, entry.source_sha256)
        for entry in MANIFEST.values()
        if not entry.beyond_reference_set and entry.source_sha256
    }
    for entry in beyond:
        assert entry.crd is not None and entry.source_sha256 is not None, entry.file
        assert (entry.url, entry.source_sha256) in held_sources, entry.file


def test_no_file_of_the_project_is_a_copy_of_an_upstream_file() -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    pinned = {entry.sha256: entry.file for entry in MANIFEST.values()}
    for name in filter(None, tracked.decode().split("\0")):
        path = PROJECT_DIR / name
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest not in pinned, f"{name} is a copy of the upstream {pinned.get(digest)}"


def test_every_rendered_custom_resource_has_a_pinned_crd(stack_plan: mockrun.PlanResult) -> None:
    for resource in stack_plan.resources:
        if not resource.is_kubernetes_object:
            continue
        api_version, kind = resource.inputs["apiVersion"], resource.inputs["kind"]
        if schema.builtin_validator(api_version, kind, "1.34") is None:
            group = api_version.rpartition("/")[0]
            assert f"crds/{group}/{kind}.yaml" in MANIFEST, f"no pinned CRD for {kind} {api_version}"


CRD_TEXT = b"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"""
OTHER_TEXT = b"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
"""
BUNDLE = b"# generated\n---\n" + OTHER_TEXT + b"---\n" + CRD_TEXT
SYNTHETIC = {
    "crds/example.com/Widget.yaml": reference.Entry(
        file="crds/example.com/Widget.yaml",
        url="https://raw.githubusercontent.com/example/widgets/v1.0.0/crds/widget.yaml",
        sha256=hashlib.sha256(CRD_TEXT).hexdigest(),
    ),
    "crds/example.com/Bundled.yaml": reference.Entry(
        file="crds/example.com/Bundled.yaml",
        url="https://raw.githubusercontent.com/example/widgets/v1.0.0/crds/all.yaml",
        sha256=hashlib.sha256(CRD_TEXT).hexdigest(),
        source_sha256=hashlib.sha256(BUNDLE).hexdigest(),
        crd="widgets.example.com",
    ),
}
WIDGET, BUNDLED = SYNTHETIC


def test_extract_crd_picks_the_document_by_metadata_name() -> None:
    assert reference.extract_crd(BUNDLE, "widgets.example.com") == CRD_TEXT
    assert reference.extract_crd(BUNDLE, "gadgets.example.com") == OTHER_TEXT
    with pytest.raises(ValueError, match="no document"):
        reference.extract_crd(BUNDLE, "nothing.example.com")


@pytest.fixture
def synthetic(upstream: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The upstream fixture, with a manifest of two made-up files (one whole, one extracted)."""
    monkeypatch.setattr(reference, "manifest", lambda path=None: SYNTHETIC)
    return upstream


def test_a_fetched_file_is_kept_only_when_its_sha256_matches(
    synthetic: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic[SYNTHETIC[WIDGET].url] = CRD_TEXT.replace(b"integer", b"string")
    assert reference.file(WIDGET) is None
    assert "the manifest pins" in reference.unavailable_reason(WIDGET)
    assert not (reference.cache_dir() / WIDGET).exists()
    synthetic[SYNTHETIC[WIDGET].url] = CRD_TEXT
    monkeypatch.setattr(reference, "fetcher", reference.Fetcher())  # a later run, upstream fixed
    path = reference.file(WIDGET)
    assert path == reference.cache_dir() / WIDGET and path.read_bytes() == CRD_TEXT


def test_an_extracted_crd_is_cut_from_its_whole_upstream_file_checked_first(
    synthetic: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic[SYNTHETIC[BUNDLED].url] = BUNDLE + b"# changed upstream\n"
    assert reference.file(BUNDLED) is None
    assert SYNTHETIC[BUNDLED].url in reference.unavailable_reason(BUNDLED)
    synthetic[SYNTHETIC[BUNDLED].url] = BUNDLE
    monkeypatch.setattr(reference, "fetcher", reference.Fetcher())
    path = reference.file(BUNDLED)
    assert path is not None and path.read_bytes() == CRD_TEXT


def test_a_cached_file_is_used_without_the_network_and_a_corrupt_one_is_not(synthetic: dict[str, bytes]) -> None:
    target = reference.cache_dir() / WIDGET
    target.parent.mkdir(parents=True)
    target.write_bytes(CRD_TEXT)
    assert reference.file(WIDGET) == target
    assert synthetic["calls"] == []
    target.write_bytes(b"tampered")
    assert reference.file(WIDGET) is None


def test_a_fetched_crd_validates_custom_resources(synthetic: dict[str, bytes]) -> None:
    synthetic[SYNTHETIC[WIDGET].url] = CRD_TEXT
    schema._crd_validator.cache_clear()
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    assert list(schema.errors(widget, "1.34")) == []
    assert list(schema.errors({**widget, "spec": {"size": "3"}}, "1.34")) == ["spec.size: '3' is not of type 'integer'"]
    assert list(schema.errors({**widget, "spec": {"colour": "red"}}, "1.34"))
    schema._crd_validator.cache_clear()


def test_without_network_the_first_failure_stops_every_later_fetch(upstream: dict[str, bytes]) -> None:
    for relative in list(MANIFEST)[:5]:
        assert reference.file(relative) is None
    assert len(upstream["calls"]) == 1
    assert "cannot fetch from raw.githubusercontent.com" in reference.unavailable_reason(list(MANIFEST)[4])


def test_without_reference_data_the_plan_checks_built_in_kinds_and_names_the_unchecked_in_one_line(
    upstream: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema._crd_documents.cache_clear()
    schema._crd_validator.cache_clear()
    code = plan.run(argparse.Namespace(stack="prod", out=tmp_path / "out", quiet=True))
    lines = capsys.readouterr().out.splitlines()
    assert code == plan.EXIT_OK
    unchecked = [line for line in lines if "not checked" in line]
    assert len(unchecked) == 1
    assert "VirtualService.networking.istio.io (1)" in unchecked[0] and "make reference" in unchecked[0]
    assert any(line.startswith("plan prod:") and line.endswith(": 0 invalid") for line in lines)


def test_without_reference_data_a_built_in_kind_is_still_refused(upstream: dict[str, bytes]) -> None:
    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": "80"}}
    assert list(schema.errors(broken, "1.34"))
    custom = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(schema.SchemaUnavailableError, match="IPAddressPool.metallb.io"):
        list(schema.errors(custom, "1.34"))


def test_make_reference_fills_the_cache_and_names_what_it_could_not_get(
    synthetic: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic[SYNTHETIC[WIDGET].url] = CRD_TEXT
    synthetic[SYNTHETIC[BUNDLED].url] = CRD_TEXT  # not the whole upstream file the manifest pins
    assert reference.run(argparse.Namespace()) == 1
    err = capsys.readouterr().err
    assert f"{BUNDLED}: " in err and "make reference" in err and WIDGET not in err
    assert (reference.cache_dir() / WIDGET).read_bytes() == CRD_TEXT
    synthetic[SYNTHETIC[BUNDLED].url] = BUNDLE
    reference.fetcher = reference.Fetcher()
    assert reference.run(argparse.Namespace()) == 0
    assert "2 pinned files ok" in capsys.readouterr().out


def test_make_reference_checks_a_reference_set_against_the_manifest(
    synthetic: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = tmp_path / "shared" / "reference"
    for relative in SYNTHETIC:
        (found / relative).parent.mkdir(parents=True, exist_ok=True)
        (found / relative).write_bytes(CRD_TEXT)
    monkeypatch.setattr(reference, "reference_set", lambda project_dir=None: found)
    assert reference.run(argparse.Namespace()) == 0
    (found / WIDGET).write_bytes(b"edited")
    assert reference.run(argparse.Namespace()) == 1
    assert f"{WIDGET}: the reference set's copy differs" in capsys.readouterr().err
    assert synthetic["calls"] == []


def test_the_extraction_rule_reproduces_the_reference_set_copy_of_every_extracted_crd() -> None:
    """The upstream files are not here; what is: each extracted CRD, cut again out of a bundle of them."""
    found = reference_set()
    for url in {entry.url for entry in MANIFEST.values() if entry.crd}:
        entries = [entry for entry in MANIFEST.values() if entry.url == url and not entry.beyond_reference_set]
        documents = [(found / entry.file).read_bytes() for entry in entries]
        bundle = b"---\n".join([b"# a generated file\nkind: ConfigMap\n", *documents, b""])
        for entry, document in zip(entries, documents, strict=True):
            assert reference.extract_crd(bundle, entry.crd or "") == document
