"""image-tags: images pinned to a version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import container, found, init_container, pod_spec, workload

from policy.scaleplane_policy.references import parse_image

DIGEST = "sha256:" + "a" * 64


def images(*resources, config=None):
    return found(resources, "image-tags", config)


@pytest.mark.parametrize(
    "image",
    [
        "nginx:1.27.3",
        "docker.io/library/mongo:7.0.14",
        "localhost:5000/app:2.0",
        "quay.io/minio/minio:RELEASE.2025",
        f"app@{DIGEST}",
        f"app:latest@{DIGEST}",
        f"registry:5000/team/app@{DIGEST}",
        "registry:5000/team/app:1.0",
        f"docker.io/library/mongo:7.0.14@{DIGEST}",
        "[::1]:5000/app:1.0",
        "192.168.1.10:5000/a__b/c-d.e:v1",
        f"app@sha512:{'b' * 128}",
    ],
)
def test_pinned_images_pass(image):
    assert images(workload(pod=pod_spec(container(image=image)))) == []


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("nginx", "has no tag"),
        ("nginx:latest", "uses the tag latest"),
        ("localhost:5000/app", "has no tag"),
        ("registry.example.com:443/team/app", "has no tag"),
        ("nginx:", "is not a valid reference"),
        ("", "has no image"),
        ("app@sha256:abc", "the digest must be"),
        (f"app@sha256:{'A' * 64}", "64 lowercase hexadecimal digits"),
        ("Team/App:1.0", "must be lowercase"),
    ],
)
def test_unpinned_images_are_reported(image, reason):
    [message] = images(workload(pod=pod_spec(container("web", image=image))))
    assert reason in message and 'container "web"' in message


def test_every_container_list_is_checked():
    pod = pod_spec(
        container(),
        init=[init_container("setup", image="busybox")],
        ephemeral=[{"name": "debug", "image": "busybox:latest"}],
    )
    messages = images(workload("Job", pod=pod))
    assert [m.split('"')[1] for m in messages] == ["setup", "debug"]


def test_digests_can_be_required():
    config = {"image-tags": {"requireDigest": True}}
    assert images(workload(pod=pod_spec(container(image=f"app:1.0@{DIGEST}"))), config=config) == []
    [message] = images(workload(pod=pod_spec(container(image="app:1.0"))), config=config)
    assert "not pinned by digest" in message


names = st.from_regex(r"[a-z][a-z0-9]{0,8}(/[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
hosts = st.one_of(st.just(""), st.from_regex(r"[a-z]{1,8}(\.[a-z]{2,4})?(:[0-9]{2,5})?/", fullmatch=True))
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(hosts, names, st.one_of(st.none(), tags))
def test_the_tag_is_what_follows_the_last_colon_after_the_last_slash(host, name, tag):
    image = f"{host}{name}" + (f":{tag}" if tag is not None else "")
    reference = parse_image(image)
    assert (reference.name, reference.tag, reference.digest) == (f"{host}{name}".removesuffix("/"), tag, None)
    assert reference.pinned == (tag is not None and tag != "latest")
