"""Images pinned to a version: no `:latest`, no untagged names (which mean latest).

A reference is [registry[:port]/]path[:tag][@digest]. The tag is what follows the last colon
after the last slash, so `localhost:5000/app` has no tag, and a digest pins an image whatever
its tag says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from ..kube import KubeObject
from ..values import get, is_unknown


def split_image(image: str) -> tuple[str, Optional[str], Optional[str]]:
    """(name, tag, digest) of an image reference."""
    name, _, digest = image.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    tag: Optional[str] = None
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest or None


def image_problem(image: Any, require_digest: bool = False) -> Optional[str]:
    if is_unknown(image):
        return None
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    name, tag, digest = split_image(image)
    if digest:
        return None if digest.startswith("sha256:") and len(digest) == 71 else f'image "{image}" has a malformed digest'
    if require_digest:
        return f'image "{image}" is not pinned by digest (@sha256:...)'
    if tag is None or tag == "":
        return f'image "{image}" has no tag, which means latest; pin a version'
    if tag == "latest":
        return f'image "{image}" uses the tag latest; pin a version'
    return None


def check_image_tags(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """image-tags: every container's image names a version."""
    if not obj.is_workload:
        return
    require_digest = options.get("requireDigest", False)
    for container in obj.containers():
        problem = image_problem(get(container.spec, "image"), require_digest)
        if problem:
            yield f"{obj.describe()}: {container.describe()} {problem}"
