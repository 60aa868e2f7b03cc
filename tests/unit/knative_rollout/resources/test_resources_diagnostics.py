"""Table tests of a failed candidate's diagnostics: which revision, which pods, bounded log tails, text."""

from __future__ import annotations

from typing import Any

import pytest

from knative_rollout.policy import RolloutPhase, RolloutState
from knative_rollout.resources import apply_state
from knative_rollout.resources.diagnostics import (
    ConditionView,
    PodLog,
    RevisionDiagnostics,
    conditions_of,
    container_state,
    failed_candidate,
    newest_pods,
    pod_container,
    tail,
    user_container,
)


def service(state: RolloutState, latest_created: str = "s-3", latest_ready: str = "s-2") -> dict[str, Any]:
    return {
        "metadata": {"annotations": apply_state({}, state)},
        "status": {"latestCreatedRevisionName": latest_created, "latestReadyRevisionName": latest_ready},
    }


ROLLED_BACK = RolloutState(
    stable="s-1", phase=RolloutPhase.ROLLED_BACK, rollout_id="d/r/rollout", rollout_revision="s-2"
)


@pytest.mark.parametrize(
    ("state", "rollout_id", "latest", "expected"),
    [
        (ROLLED_BACK, None, ("s-2", "s-2"), "s-2"),  # the page: the rolled-back candidate
        (ROLLED_BACK, "d/r/rollout", ("s-2", "s-2"), "s-2"),  # its own outcome task
        (ROLLED_BACK, "d/other/rollout", ("s-2", "s-2"), None),  # another rollout's record is not evidence
        # A rollout whose rollback did not happen yet (phase Canary): its outcome still looks at it.
        (
            RolloutState(stable="s-1", phase=RolloutPhase.CANARY, rollout_id="d/r/g", rollout_revision="s-2"),
            "d/r/g",
            ("s-2", "s-2"),
            "s-2",
        ),
        # Promoted: nothing failed, for the page and for the outcome.
        (
            RolloutState(
                stable="s-2", phase=RolloutPhase.PROMOTED, rollout_id="d/r/g", rollout_revision="s-2"
            ),
            "d/r/g",
            ("s-2", "s-2"),
            None,
        ),
        (
            RolloutState(
                stable="s-2", phase=RolloutPhase.PROMOTED, rollout_id="d/r/g", rollout_revision="s-2"
            ),
            None,
            ("s-2", "s-2"),
            None,
        ),
        # A deploy outside any rollout failed: the latest created revision, which never became ready.
        (RolloutState(stable="s-1", phase=RolloutPhase.FAILED), None, ("s-3", "s-1"), "s-3"),
        (RolloutState(stable="s-1", phase=RolloutPhase.FAILED), None, ("s-1", "s-1"), None),
        # The very first revision of a Service failed: nothing is ready at all.
        (RolloutState(phase=RolloutPhase.FAILED), None, ("s-1", None), "s-1"),
        # A canary in progress is nobody's failure on the page.
        (RolloutState(stable="s-1", candidate="s-2", phase=RolloutPhase.CANARY), None, ("s-2", "s-2"), None),
    ],
)
def test_failed_candidate_is_the_revision_the_record_names(
    state: RolloutState, rollout_id: str | None, latest: tuple[str, str | None], expected: str | None
) -> None:
    assert failed_candidate(service(state, *latest), rollout_id) == expected


def test_failed_candidate_of_an_unmanaged_or_empty_service_is_none() -> None:
    assert failed_candidate({}) is None
    assert failed_candidate({}, "d/r/g") is None


@pytest.mark.parametrize(
    ("text", "lines", "max_chars", "expected"),
    [
        ("a\nb\nc\n", 2, 10, ("b", "c")),
        ("a\n\n  \nb   \n", 5, 10, ("a", "b")),  # blank lines and trailing spaces say nothing
        ("", 5, 10, ()),
        ("a\nb\n", 0, 10, ()),
        ("x" * 15, 1, 10, ("xxxxxxxxxx... (5 more characters)",)),
        ("one\r\ntwo\r\n", 5, 10, ("one", "two")),
    ],
)
def test_tail_keeps_the_last_lines_each_cut_to_a_bound(
    text: str, lines: int, max_chars: int, expected: tuple[str, ...]
) -> None:
    assert tail(text, lines, max_chars) == expected


def pod(name: str, created: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"containers": [{"name": "user-container"}, {"name": "queue-proxy"}]},
        "status": status,
    }


def test_newest_pods_come_first_and_are_bounded() -> None:
    pods = [
        pod("a", "2026-01-01T00:00:01Z"),
        pod("c", "2026-01-01T00:00:03Z"),
        pod("b", "2026-01-01T00:00:02Z"),
    ]
    assert [item["metadata"]["name"] for item in newest_pods(pods, 2)] == ["c", "b"]
    assert newest_pods(pods, 0) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "phase": "Failed",
                "containerStatuses": [{"name": "user-container", "state": {"terminated": {"exitCode": 1}}}],
            },
            "Failed, exited with code 1",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "user-container",
                        "state": {"waiting": {"reason": "ErrImagePull"}},
                        "restartCount": 3,
                    }
                ],
            },
            "Pending, waiting: ErrImagePull, 3 restarts",
        ),
        # Another container's state (Knative's queue-proxy) is not the model's.
        (
            {
                "phase": "Running",
                "containerStatuses": [{"name": "queue-proxy", "state": {"terminated": {"exitCode": 2}}}],
            },
            "Running",
        ),
        ({}, "Unknown"),
    ],
)
def test_container_state_in_words(status: dict[str, Any], expected: str) -> None:
    assert container_state(pod("p", "t", **status), "user-container") == expected


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ({"spec": {"containers": [{"name": "model", "image": "x"}]}}, "model"),
        ({"spec": {"containers": [{"image": "x"}]}}, "user-container"),
        (None, "user-container"),
    ],
)
def test_user_container_is_the_specs_name_or_knatives_default(revision: Any, expected: str) -> None:
    assert user_container(revision) == expected


def test_pod_container_falls_back_to_the_pods_first_container() -> None:
    assert pod_container(pod("p", "t"), "user-container") == "user-container"
    assert pod_container(pod("p", "t"), "model") == "user-container"
    assert pod_container({"spec": {}}, "model") == "model"


def test_conditions_put_ready_first() -> None:
    revision = {
        "status": {
            "conditions": [
                {"type": "Active", "status": "Unknown"},
                {"type": "ContainerHealthy", "status": "False", "reason": "ExitCode1", "message": "boom"},
                {"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "boom"},
            ]
        }
    }
    conditions = conditions_of(revision)
    assert [str(item) for item in conditions] == [
        "Ready=False (ExitCode1: boom)",
        "Active=Unknown",
        "ContainerHealthy=False (ExitCode1: boom)",
    ]
    assert conditions_of({}) == ()


DIAGNOSTICS = RevisionDiagnostics(
    "s-2",
    "ns",
    (ConditionView("Ready", "False", "ExitCode1", "failed with: token abc"),),
    (
        PodLog(
            "s-2-pod-b", "user-container", "Failed, exited with code 1", ("starting", "token abc refused")
        ),
        PodLog("s-2-pod-a", "user-container", "Failed", error="log not readable: HTTP 403: forbidden"),
    ),
    ("listing events failed: abc",),
)


def test_text_lists_conditions_each_pods_lines_and_what_could_not_be_read() -> None:
    assert DIAGNOSTICS.text() == [
        "Diagnostics of revision ns/s-2: Ready=False (ExitCode1: failed with: token abc)",
        "  pod s-2-pod-b (Failed, exited with code 1), container user-container, last 2 log lines:",
        "    | starting",
        "    | token abc refused",
        "  pod s-2-pod-a (Failed): log not readable: HTTP 403: forbidden",
        "  listing events failed: abc",
    ]
    assert RevisionDiagnostics("s-2", "ns").text() == [
        "Diagnostics of revision ns/s-2: no conditions",
        "  no pod of revision ns/s-2 exists now (scaled to zero or never started), so no logs",
    ]


def test_redacted_masks_every_message_and_line() -> None:
    masked = DIAGNOSTICS.redacted(lambda text: text.replace("abc", "***"))
    assert "abc" not in repr(masked.to_dict()) and "abc" not in "\n".join(masked.text())
    assert masked.pods[0].lines == ("starting", "token *** refused")
    assert masked.to_dict()["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ExitCode1",
            "message": "failed with: token ***",
            "text": "Ready=False (ExitCode1: failed with: token ***)",
        }
    ]
