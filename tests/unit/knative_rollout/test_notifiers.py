"""Rollout notifiers: every notifier gets the rollout payload, a failing one never changes the outcome."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from knative_rollout.notifiers import KnativeRolloutWebhookNotifier, notify_all


class _Ti:
    dag_id, run_id, task_id = "d", "r", "canary"


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint keeping what is posted to it."""
    posted: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", posted
    server.shutdown()


def test_webhook_posts_the_rollout_payload_with_the_task_ids(
    endpoint: tuple[str, list[dict[str, Any]]],
) -> None:
    url, posted = endpoint
    notifier = KnativeRolloutWebhookNotifier(url=url, events=["rolled_back"])
    errors = notify_all(
        [notifier], {"ti": _Ti()}, {"event": "rolled_back", "service": "iris", "reason": "p99"}
    )
    assert errors == []
    notify_all([notifier], {"ti": _Ti()}, {"event": "promoted", "service": "iris"})  # filtered out
    assert posted == [
        {
            "event": "rolled_back",
            "service": "iris",
            "reason": "p99",
            "dag_id": "d",
            "run_id": "r",
            "task_id": "canary",
        }
    ]


def test_a_failing_notifier_is_reported_not_raised(endpoint: tuple[str, list[dict[str, Any]]]) -> None:
    url, posted = endpoint

    def broken(_: Any) -> None:
        raise RuntimeError("slack is down")

    errors = notify_all(
        [broken, KnativeRolloutWebhookNotifier(url=url)], {"ti": _Ti()}, {"event": "promoted"}
    )
    assert len(errors) == 1 and "slack is down" in errors[0]
    assert [body["event"] for body in posted] == ["promoted"], "the others still ran"


def test_unknown_events_are_refused() -> None:
    with pytest.raises(ValueError, match="not rollout events"):
        KnativeRolloutWebhookNotifier(url="http://x", events=["deployed"])
    with pytest.raises(ValueError, match="unknown rollout event"):
        notify_all([], {}, {"event": "deployed"})
