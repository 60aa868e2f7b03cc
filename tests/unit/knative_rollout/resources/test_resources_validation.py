"""Table tests of resources.validation: Kubernetes names, namespaces, image registries, templated values."""

from __future__ import annotations

import pytest

from knative_rollout.resources import (
    RolloutInputError,
    check_dns1035,
    check_image,
    check_namespace,
    check_percent,
    check_qualified_name,
    check_rollout_id,
    check_service_name,
    image_registry,
    parse_bool,
    parse_int,
)


@pytest.mark.parametrize("name", ["a", "iris", "iris-v2", "a" * 63, "x1-2-3"])
def test_dns1035_accepts(name: str) -> None:
    assert check_dns1035(name, "name") == name


@pytest.mark.parametrize(
    "name", ["", "1iris", "Iris", "iris_v2", "iris-", "-iris", "a" * 64, "ir.is", None, 3]
)
def test_dns1035_rejects_with_the_rule(name: object) -> None:
    with pytest.raises(RolloutInputError, match="name"):
        check_dns1035(name, "name")


def test_service_name_leaves_room_for_the_revision_hash() -> None:
    assert check_service_name("a" * 52) == "a" * 52
    with pytest.raises(RolloutInputError, match="at most 52"):
        check_service_name("a" * 53)


@pytest.mark.parametrize("namespace", ["default", "team-1", "0abc"])
def test_namespace_accepts_dns1123(namespace: str) -> None:
    assert check_namespace(namespace) == namespace


@pytest.mark.parametrize("namespace", ["", "Team", "a_b", "a" * 64])
def test_namespace_rejects(namespace: str) -> None:
    with pytest.raises(RolloutInputError, match="DNS-1123"):
        check_namespace(namespace)


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("registry.example.com/team/app:v1", "registry.example.com"),
        ("nginx:1", "docker.io"),
        ("library/nginx", "docker.io"),
        ("localhost/app", "localhost"),
        ("host:5000/app:v1", "host:5000"),
    ],
)
def test_image_registry(image: str, registry: str) -> None:
    assert image_registry(image) == registry


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("False", False),
        ("false", False),
        ("True", True),
        (" yes ", True),
        ("off", False),
        ("0", False),
        ("1", True),
    ],
)
def test_templated_booleans_are_parsed(value: object, expected: bool) -> None:
    assert parse_bool(value, "delete_service") is expected


@pytest.mark.parametrize("value", ["maybe", "", None, 0, 1, 2, 1.0, "Falsey", [True]])
def test_anything_else_is_not_a_boolean(value: object) -> None:
    with pytest.raises(RolloutInputError, match="delete_service must be true or false"):
        parse_bool(value, "delete_service")


@pytest.mark.parametrize(("value", "expected"), [(3, 3), ("3", 3), (" 12 ", 12), ("0", 0), (0, 0)])
def test_templated_integers_are_parsed(value: object, expected: int) -> None:
    assert parse_int(value, "keep", minimum=0) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("abc", "keep must be an integer of 0 or more, got 'abc'"),
        ("2.5", "got '2.5'"),
        (2.5, "got 2.5"),
        (True, "got True"),
        ("-1", "got -1"),
        (None, "got None"),
    ],
)
def test_anything_else_is_not_a_count(value: object, match: str) -> None:
    with pytest.raises(RolloutInputError, match=match):
        parse_int(value, "keep", minimum=0)


@pytest.mark.parametrize(("value", "expected"), [("10", 10), (50, 50), ("100", 100)])
def test_percents_may_be_templated_text(value: object, expected: int) -> None:
    assert check_percent(value, "traffic_percent") == expected


@pytest.mark.parametrize("value", ["iris\n", "default\n"])
def test_a_trailing_newline_is_not_a_name(value: str) -> None:
    with pytest.raises(RolloutInputError, match="not a valid DNS"):
        check_namespace(value)


def test_a_huge_name_is_not_echoed_whole() -> None:
    with pytest.raises(RolloutInputError, match="at most 52") as refused:
        check_service_name("e" * 100_000)
    assert len(str(refused.value)) < 400


@pytest.mark.parametrize(
    ("rollout_id", "valid"),
    [
        ("rollout_example/manual__2026-12-01T08:00:00.123+00:00/rollout", True),
        ("fleet/scheduled__2026-12-01T00:00:00+00:00/rollout/17", True),
        ("my-release-42", True),
        ("r1\nEvil: header", False),
        ("with space", False),
        ("r" * 254, False),
        ("", False),
    ],
)
def test_rollout_ids(rollout_id: str, valid: bool) -> None:
    if valid:
        assert check_rollout_id(rollout_id) == rollout_id
    else:
        with pytest.raises(RolloutInputError, match="rollout_id"):
            check_rollout_id(rollout_id)


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("team", True),
        ("example.com/team", True),
        ("nvidia.com/gpu", True),
        ("bad key", False),
        ("a\nb", False),
        ("/x", False),
        ("Example.com/x", False),
        ("cpu;rm", False),
        ("x" * 64, False),
    ],
)
def test_qualified_names(key: str, valid: bool) -> None:
    if valid:
        assert check_qualified_name(key, "annotation key") == key
    else:
        with pytest.raises(RolloutInputError, match="annotation key"):
            check_qualified_name(key, "annotation key")


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("registry.example.com/team/model:v2", True),
        ("registry.example.com/team/model@sha256:" + "a" * 64, True),
        ("registry.example.com/team/model@sha256:abc", False),
        ("registry.example.com/../other/model:v1", False),
        ("registry.example.com/team/model:" + "v" * 2000, False),
    ],
)
def test_image_references(image: str, valid: bool) -> None:
    if valid:
        assert check_image(image) == image
    else:
        with pytest.raises(RolloutInputError, match="not a valid image"):
            check_image(image)
