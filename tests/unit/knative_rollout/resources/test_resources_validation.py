"""Table tests of resources.validation: Kubernetes names, namespaces, image registries, templated values."""

from __future__ import annotations

import pytest

from knative_rollout.resources import (
    RolloutInputError,
    check_dns1035,
    check_namespace,
    check_percent,
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
        (0, False),
        (1, True),
    ],
)
def test_templated_booleans_are_parsed(value: object, expected: bool) -> None:
    assert parse_bool(value, "delete_service") is expected


@pytest.mark.parametrize("value", ["maybe", "", None, 2, 1.0, "Falsey", [True]])
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
