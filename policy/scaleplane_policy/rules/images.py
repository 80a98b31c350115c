"""Images pinned to a version: no `:latest`, no untagged names (which mean latest).

What a reference is and what "pinned" means live in ..references, which settings/ uses too, so
the stack config and the policy pack never disagree about an image.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from ..kube import KubeObject
from ..references import pinning_problem
from ..values import get, is_unknown


def image_problem(image: Any, require_digest: bool = False) -> Optional[str]:
    if is_unknown(image):
        return None
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    return pinning_problem(image, require_digest)


def check_image_tags(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """image-tags: every container's image names a version."""
    if not obj.is_workload:
        return
    require_digest = options.get("requireDigest", False)
    for container in obj.containers():
        problem = image_problem(get(container.spec, "image"), require_digest)
        if problem:
            yield f"{obj.describe()}: {container.describe()} {problem}"
