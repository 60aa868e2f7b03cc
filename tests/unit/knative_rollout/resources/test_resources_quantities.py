"""Table tests of resources.quantities: Kubernetes resource quantities parse or are refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from knative_rollout.resources import RolloutInputError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2", "2"),
        ("1.5", "1.5"),
        ("512Mi", str(512 * 2**20)),
        ("1G", "1000000000"),
        ("1Gi", str(2**30)),
        ("100k", "100000"),
        (3, "3"),
        ("1e3", "1000"),
    ],
)
def test_parse_quantity(text: object, value: str) -> None:
    assert parse_quantity(text, "q") == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "5 Gi", "1Xi", "-1", True, None, "1.2.3"])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(RolloutInputError, match="q"):
        parse_quantity(text, "q")
