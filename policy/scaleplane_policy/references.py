"""OCI image references, parsed by the grammar container runtimes use (distribution/reference).

    reference := name [":" tag] ["@" digest]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]          host: DNS name, IPv4, or [IPv6]
    tag       := [\\w][\\w.-]{0,127}
    digest    := algorithm ":" hex        sha256: 64, sha384: 96, sha512: 128 lowercase hex

So `registry:5000/team/app:1.0`, `[::1]:5000/app:1.0`, `localhost/app:1` and
`repo:tag@sha256:<64 hex>` are all references. The first path component is a registry domain
when it holds a "." or ":" or is "localhost" (as Docker and containerd split it), so
`localhost:5000/app` has no tag. The one definition of "pinned" both the policy pack and
settings/ use: a digest pins an image whatever its tag says; otherwise it needs a tag, and
not `latest`. Pure Python and no imports outside this package: the CrossGuard pack imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$",
    re.ASCII,
)
#: Digest algorithms registries and runtimes accept (OCI image-spec descriptor), by hex length.
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
#: The repository path may not exceed this (distribution's RepositoryNameTotalLengthMax).
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; `domain` is None where the runtime assumes docker.io."""

    domain: Optional[str]
    path: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def pinned(self) -> bool:
        """Pinned to one image: by digest, or by a tag other than `latest` (an untagged name means latest)."""
        return self.digest is not None or (self.tag is not None and self.tag != "latest")


def _split_domain(name: str) -> tuple[Optional[str], str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return None, name


def parse_image(text: str) -> ImageReference:
    """Parse an image reference; ValueError says what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise ValueError("an image reference must be a non-empty string")
    match = _REFERENCE.match(text)
    if match is None:
        if _REFERENCE.match(text.lower()):
            raise ValueError("the repository name must be lowercase")
        if text.count("@") == 1 and _REFERENCE.match(text.partition("@")[0]):
            raise ValueError("the digest must be <algorithm>:<hex>, e.g. sha256: and 64 hex digits")
        raise ValueError("not an image reference ([registry[:port]/]path[:tag][@digest])")
    domain, path = _split_domain(match["name"])
    if len(path) > MAX_NAME_LENGTH:
        raise ValueError(f"the repository name is longer than {MAX_NAME_LENGTH} characters")
    if re.fullmatch(r"[a-f0-9]{64}", path):
        raise ValueError("a 64-digit hexadecimal name is an image ID, not a repository name")
    digest = match["digest"]
    if digest is not None:
        algorithm, _, encoded = digest.partition(":")
        length = DIGEST_LENGTHS.get(algorithm)
        if length is None:
            raise ValueError(f"digest algorithm {algorithm!r} is not one of {', '.join(DIGEST_LENGTHS)}")
        if not re.fullmatch(rf"[a-f0-9]{{{length}}}", encoded):
            raise ValueError(f"a {algorithm} digest is {length} lowercase hexadecimal digits")
    return ImageReference(domain=domain, path=path, tag=match["tag"], digest=digest)


def pinning_problem(image: str, require_digest: bool = False) -> Optional[str]:
    """Why `image` does not name one fixed image (None when it does), in a policy message's words."""
    try:
        reference = parse_image(image)
    except ValueError as error:
        return f'image "{image}" is not a valid reference: {error}'
    if reference.digest is not None:
        return None
    if require_digest:
        return f'image "{image}" is not pinned by digest (@sha256:...)'
    if reference.tag is None:
        return f'image "{image}" has no tag, which means latest; pin a version'
    if reference.tag == "latest":
        return f'image "{image}" uses the tag latest; pin a version'
    return None
