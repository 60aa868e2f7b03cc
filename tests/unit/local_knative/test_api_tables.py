"""API server Table answers: kubectl's age format, Accept negotiation and the Knative revision columns."""

from __future__ import annotations

import pytest

from local_knative import kinds
from local_knative.apiserver.tables import human_duration, table, wants_table


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (240, "4m"),
        (3000, "50m"),
        (4 * 3600 + 60 * 5, "4h5m"),
        (20 * 3600, "20h"),
        (3 * 86400 + 3600 * 2, "3d2h"),
        (30 * 86400, "30d"),
        (-1, "<invalid>"),
    ],
)
def test_human_duration_matches_kubectl(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", True),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False),
        ("application/json", False),
        ("", False),
    ],
)
def test_wants_table(accept: str, expected: bool) -> None:
    assert wants_table(accept) is expected


def test_revision_rows_use_labels_conditions_and_replicas() -> None:
    revision = {
        "metadata": {
            "name": "iris-00002",
            "resourceVersion": "7",
            "labels": {
                "serving.knative.dev/configuration": "iris",
                "serving.knative.dev/configurationGeneration": "2",
            },
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "ExitCode1"}],
            "actualReplicas": 0,
            "desiredReplicas": 1,
        },
    }
    answer = table(kinds.REVISION, [revision], "9", include_object="None")
    assert [c["name"] for c in answer["columnDefinitions"]] == [
        "Name",
        "Config Name",
        "Generation",
        "Ready",
        "Reason",
        "Actual Replicas",
        "Desired Replicas",
    ]
    assert answer["rows"] == [{"cells": ["iris-00002", "iris", "2", "False", "ExitCode1", 0, 1]}]
    assert answer["metadata"] == {"resourceVersion": "9"}
