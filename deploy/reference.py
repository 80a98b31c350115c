"""The pinned upstream files the plan and the tests read (CRDs, chart values), found or fetched.

The project carries no upstream file. It keeps a manifest (deploy/reference.json): for each file of
the reference set (`crds/<group>/<Kind>.yaml`, `charts/<chart>/values.yaml`, ...) the raw GitHub
URL at its pinned tag and the sha256 of the file. A file is read from, in order:

1. the reference set beside the project: $SCALEPLANE_REFERENCE_DIR, else the nearest
   `shared/reference` above the project (`../shared/reference` of a checkout);
2. the cache, `.scaleplane/reference/<file>` in the project, when its sha256 matches;
3. its URL, fetched once (short timeout), kept in the cache only if its sha256 matches.

"Extracted" entries are one CRD cut out of a multi-document upstream file: the whole file must match
`sourceSha256`, then it is split on lines that are exactly `---` and the document whose
`metadata.name` is `extract.crd` is kept (for every such entry this reproduces the reference set's
copy byte for byte: `reproduces`). After the first failed fetch the process stops trying (no
network: every later file is unavailable at once), and `file()` answers None; the callers say
which data they could not check and how to get it (`HOW_TO_GET`).

`python -m deploy reference` (`make reference`) fills the cache up front, or checks the reference
set against the manifest.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from deploy.project import PROJECT_DIR

MANIFEST_PATH = Path(__file__).resolve().parent / "reference.json"
#: Seconds a fetch may take to connect or to stall: no network must fail fast, not hang the plan.
FETCH_TIMEOUT = 10.0
HOW_TO_GET = "run `make reference` (needs network) or set SCALEPLANE_REFERENCE_DIR to the reference set"


@dataclass(frozen=True)
class Entry:
    """One pinned upstream file of the manifest."""

    file: str
    url: str
    sha256: str
    #: For an extracted CRD: the sha256 of the whole upstream file, and the CRD's metadata.name.
    source_sha256: Optional[str] = None
    crd: Optional[str] = None
    #: Pinned upstream, but not (yet) in the shared reference set: only the cache or its url has it.
    beyond_reference_set: bool = False


@functools.cache
def manifest(path: Path = MANIFEST_PATH) -> dict[str, Entry]:
    """file -> Entry, from the manifest the project keeps."""
    entries = {}
    for file, fields in json.loads(path.read_text())["files"].items():
        extract = fields.get("extract") or {}
        entries[file] = Entry(
            file=file,
            url=fields["url"],
            sha256=fields["sha256"],
            source_sha256=fields.get("sourceSha256"),
            crd=extract.get("crd"),
            beyond_reference_set=bool(fields.get("beyondReferenceSet", False)),
        )
    return entries


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reference_set(project_dir: Optional[Path] = None) -> Optional[Path]:
    """$SCALEPLANE_REFERENCE_DIR, else the nearest shared/reference above the project; None if neither."""
    configured = os.environ.get("SCALEPLANE_REFERENCE_DIR")
    if configured:
        return Path(configured) if Path(configured).is_dir() else None
    for ancestor in (project_dir or PROJECT_DIR).resolve().parents:
        candidate = ancestor / "shared" / "reference"
        if candidate.is_dir():
            return candidate
    return None


def cache_dir(project_dir: Optional[Path] = None) -> Path:
    return (project_dir or PROJECT_DIR) / ".scaleplane" / "reference"


def extract_crd(source: bytes, name: str) -> bytes:
    """The document of a multi-document YAML file whose metadata.name is `name`, as its bytes."""
    documents: list[list[bytes]] = [[]]
    for line in source.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == b"---":
            documents.append([])
        else:
            documents[-1].append(line)
    for lines in documents:
        text = b"".join(lines)
        if name.encode() not in text:
            continue  # cannot be it; parsing every large CRD would cost seconds
        parsed = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if isinstance(parsed, dict) and (parsed.get("metadata") or {}).get("name") == name:
            return text
    raise ValueError(f"no document with metadata.name {name!r}")


class UnavailableError(Exception):
    """A pinned file can be had from neither the reference set, the cache nor upstream."""


#: How URLs are read (url, timeout) -> bytes; tests put an in-memory upstream here.
Opener = Callable[[str, float], bytes]


def _urlopen(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https URLs of the manifest)
        return response.read()


opener: Opener = _urlopen


class Fetcher:
    """Fetches manifest entries into the cache; after one failure to reach upstream it stops trying."""

    def __init__(self) -> None:
        self.offline_reason: Optional[str] = None
        self._sources: dict[str, bytes] = {}

    def _download(self, url: str) -> bytes:
        if self.offline_reason is not None:
            raise UnavailableError(self.offline_reason)
        if url not in self._sources:
            try:
                self._sources[url] = opener(url, FETCH_TIMEOUT)
            except (urllib.error.URLError, OSError, ValueError) as error:
                reason = getattr(error, "reason", error)
                self.offline_reason = f"cannot fetch from {urllib.parse.urlsplit(url).netloc}: {reason}"
                raise UnavailableError(self.offline_reason) from error
        return self._sources[url]

    def content(self, entry: Entry) -> bytes:
        """The entry's bytes from upstream, checked against the manifest (UnavailableError if they differ)."""
        data = self._download(entry.url)
        if entry.crd is not None:
            if sha256(data) != entry.source_sha256:
                raise UnavailableError(
                    f"{entry.url} has sha256 {sha256(data)}, the manifest pins {entry.source_sha256}"
                )
            try:
                data = extract_crd(data, entry.crd)
            except (ValueError, yaml.YAMLError) as error:
                raise UnavailableError(f"{entry.url}: cannot extract {entry.crd}: {error}") from error
        if sha256(data) != entry.sha256:
            raise UnavailableError(
                f"{entry.file} from {entry.url} has sha256 {sha256(data)}, the manifest pins {entry.sha256}"
            )
        return data

    def into_cache(self, entry: Entry, cache: Path) -> Path:
        target = cache / entry.file
        data = self.content(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        partial.replace(target)
        return target


#: One fetcher per process, so an absent network is found out once.
fetcher = Fetcher()


def cached(entry: Entry, cache: Path) -> Optional[Path]:
    """The cached copy of an entry, if it is there and intact."""
    path = cache / entry.file
    if path.is_file() and sha256(path.read_bytes()) == entry.sha256:
        return path
    return None


def file(relative: str, project_dir: Optional[Path] = None) -> Optional[Path]:
    """The pinned file `relative` (e.g. `crds/metallb.io/IPAddressPool.yaml`), found or fetched;
    None when it cannot be had (why: `unavailable_reason()`). KeyError if the manifest has no such file."""
    entry = manifest()[relative]
    found = reference_set(project_dir)
    if found is not None and (found / relative).is_file():
        return found / relative
    cache = cache_dir(project_dir)
    path = cached(entry, cache)
    if path is not None:
        return path
    try:
        return fetcher.into_cache(entry, cache)
    except UnavailableError as error:
        _unavailable[relative] = str(error)
        return None


_unavailable: dict[str, str] = {}


def unavailable_reason(relative: str) -> str:
    return _unavailable.get(relative, "not fetched")


def read_text(relative: str, project_dir: Optional[Path] = None) -> Optional[str]:
    path = file(relative, project_dir)
    return path.read_text() if path is not None else None


# --- python -m deploy reference -----------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reference",
        help="fetch the pinned upstream files (CRDs, chart values) into .scaleplane/reference, sha256-checked",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run)


def check(project_dir: Optional[Path] = None) -> tuple[str, list[str]]:
    """Where the files come from, and every problem: a reference-set file that differs from the
    manifest, or one the cache lacks and upstream cannot give."""
    entries = manifest()
    found = reference_set(project_dir)
    problems: list[str] = []
    if found is not None:
        for entry in entries.values():
            path = found / entry.file
            if entry.beyond_reference_set:
                continue  # not the reference set's to hold: the cache or upstream has it
            if not path.is_file():
                problems.append(f"{entry.file}: missing from the reference set {found}")
            elif sha256(path.read_bytes()) != entry.sha256:
                problems.append(f"{entry.file}: the reference set's copy differs from the manifest's sha256")
        return f"reference set {found}", problems
    cache = cache_dir(project_dir)
    fetched = 0
    for entry in entries.values():
        if cached(entry, cache) is not None:
            continue
        try:
            fetcher.into_cache(entry, cache)
            fetched += 1
        except UnavailableError as error:
            problems.append(f"{entry.file}: {error}")
            if fetcher.offline_reason is not None:
                problems.append(f"(stopped: {len(entries)} files pinned, upstream unreachable)")
                break
    return f"cache {cache} ({fetched} fetched)", problems


def run(args: Any) -> int:
    where, problems = check()
    for problem in problems:
        print(f"reference: {problem}", file=sys.stderr)
    count = len(manifest())
    if problems:
        print(f"reference: {where}: {len(problems)} problem(s); {HOW_TO_GET}", file=sys.stderr)
        return 1
    print(f"reference: {count} pinned files ok in {where}")
    return 0
