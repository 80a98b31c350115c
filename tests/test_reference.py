"""The project carries no upstream file: the pinned CRDs and chart values come from the reference set
beside it, or from upstream into a sha256-checked cache, and without either the plan still runs."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import urllib.error
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from deploy import mockrun, plan, reference
from deploy import validate as schema
from deploy.project import PROJECT_DIR

MANIFEST = reference.manifest()
CRD = "crds/metallb.io/IPAddressPool.yaml"
EXTRACTED = "crds/networking.istio.io/Gateway.yaml"
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
    assert set(MANIFEST) == files
    for entry in MANIFEST.values():
        assert hashlib.sha256((found / entry.file).read_bytes()).hexdigest() == entry.sha256, entry.file
        assert entry.url.startswith("https://raw.githubusercontent.com/"), entry.file


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
        try:
            kubernetes_validate.validate({"apiVersion": api_version, "kind": kind}, "1.34")
        except kubernetes_validate.SchemaNotFoundError:
            group = api_version.rpartition("/")[0]
            assert f"crds/{group}/{kind}.yaml" in MANIFEST, f"no pinned CRD for {kind} {api_version}"
        except kubernetes_validate.ValidationError:
            pass  # a built-in kind: its schema exists (the stub object is simply incomplete)


def test_the_extraction_rule_gives_back_each_document_byte_for_byte() -> None:
    found = reference_set()
    names = [entry for entry in MANIFEST.values() if entry.crd and entry.url == MANIFEST[EXTRACTED].url]
    documents = [(found / entry.file).read_bytes() for entry in names]
    combined = b"---\n".join([b"# a generated file\nkind: ConfigMap\n", *documents, b""])
    for entry, document in zip(names, documents, strict=True):
        assert reference.extract_crd(combined, entry.crd) == document
    with pytest.raises(ValueError, match="no document"):
        reference.extract_crd(combined, "nothing.example.com")


def test_a_fetched_file_is_kept_only_when_its_sha256_matches(
    upstream: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = MANIFEST[CRD]
    good = (reference_set() / CRD).read_bytes()
    upstream[entry.url] = good.replace(b"IPAddressPool", b"IPAddressPoo1")
    assert reference.file(CRD) is None
    assert "the manifest pins" in reference.unavailable_reason(CRD)
    assert not (reference.cache_dir() / CRD).exists()
    upstream[entry.url] = good
    monkeypatch.setattr(reference, "fetcher", reference.Fetcher())  # a later run, upstream fixed
    path = reference.file(CRD)
    assert path == reference.cache_dir() / CRD and path.read_bytes() == good


def test_an_extracted_crd_is_cut_from_its_whole_upstream_file_checked_first(upstream: dict[str, bytes]) -> None:
    entry = MANIFEST[EXTRACTED]
    document = (reference_set() / EXTRACTED).read_bytes()
    upstream[entry.url] = b"other: document\n---\n" + document
    assert reference.file(EXTRACTED) is None
    assert entry.url in reference.unavailable_reason(EXTRACTED)


def test_a_cached_file_is_used_without_the_network_and_a_corrupt_one_is_not(upstream: dict[str, bytes]) -> None:
    target = reference.cache_dir() / CRD
    target.parent.mkdir(parents=True)
    target.write_bytes((reference_set() / CRD).read_bytes())
    assert reference.file(CRD) == target
    assert upstream["calls"] == []
    target.write_bytes(b"tampered")
    assert reference.file(CRD) is None


def test_without_network_the_first_failure_stops_every_later_fetch(upstream: dict[str, bytes]) -> None:
    for relative in list(MANIFEST)[:5]:
        assert reference.file(relative) is None
    assert len(upstream["calls"]) == 1
    assert "cannot fetch from raw.githubusercontent.com" in reference.unavailable_reason(list(MANIFEST)[4])


def test_without_reference_data_the_plan_checks_built_in_kinds_and_names_the_unchecked_in_one_line(
    upstream: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema._crd_documents.cache_clear()
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


def test_make_reference_reports_the_reference_set_or_fills_the_cache(
    upstream: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    found = reference_set()
    # Every upstream file as the reference set has it; for extracted CRDs that is only the extract,
    # not the whole upstream file the manifest pins, so those must be refused.
    for entry in MANIFEST.values():
        upstream[entry.url] = (found / entry.file).read_bytes()
    assert reference.run(argparse.Namespace()) == 1
    err = capsys.readouterr().err
    extracted = [entry.file for entry in MANIFEST.values() if entry.crd]
    assert all(f"{file}: " in err for file in extracted)
    plain = [entry for entry in MANIFEST.values() if entry.crd is None]
    assert all((reference.cache_dir() / entry.file).is_file() for entry in plain)


def test_chart_values_come_through_the_same_path(upstream: dict[str, bytes]) -> None:
    relative = "charts/metallb/values.yaml"
    upstream[MANIFEST[relative].url] = (reference_set() / relative).read_bytes()
    values = yaml.safe_load(reference.read_text(relative) or "")
    assert "controller" in values
