"""What a failed or rolled-back candidate looked like: its Knative conditions and its pods' last log lines.

Pure: the hook reads the objects and the logs; this module picks the revision the record names, the
pods worth reading, and bounds and formats what is shown, so the outcome task's log and the Rollouts
page say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from knative_rollout.policy import RolloutPhase
from knative_rollout.resources.state_annotations import state_from_annotations

REVISION_LABEL = "serving.knative.dev/revision"
"""The label Knative puts on a Revision's pods."""
USER_CONTAINER = "user-container"
"""The name Knative gives the model's container when the Revision's spec names none."""
LOG_LINES = 20
"""How many of a pod's last log lines are shown."""
LOG_PODS = 2
"""How many of a revision's newest pods are read."""
MAX_LINE_CHARS = 400
"""Longer log lines are cut: one huge line must not fill a page or a task log."""
LOG_LIMIT_BYTES = 64 * 1024
"""Most bytes asked of the API per pod log, whatever the lines hold."""


@dataclass(frozen=True)
class ConditionView:
    """One Knative status condition."""

    type: str
    status: str
    reason: str = ""
    message: str = ""

    def __str__(self) -> str:
        why = ": ".join(part for part in (self.reason, self.message) if part)
        return f"{self.type}={self.status}" + (f" ({why})" if why else "")


@dataclass(frozen=True)
class PodLog:
    """The last log lines of one pod's model container, or why they could not be read."""

    pod: str
    container: str
    state: str = ""
    lines: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class RevisionDiagnostics:
    """A revision's conditions and its newest pods' last log lines; ``errors`` says what could not be read."""

    revision: str
    namespace: str
    conditions: tuple[ConditionView, ...] = ()
    pods: tuple[PodLog, ...] = ()
    errors: tuple[str, ...] = field(default=())

    def redacted(self, redact: Callable[[str], str]) -> RevisionDiagnostics:
        """Return a copy with every message and log line passed through ``redact`` (a secrets masker)."""
        return replace(
            self,
            conditions=tuple(replace(item, message=redact(item.message)) for item in self.conditions),
            pods=tuple(
                replace(pod, lines=tuple(redact(line) for line in pod.lines), error=redact(pod.error))
                for pod in self.pods
            ),
            errors=tuple(redact(error) for error in self.errors),
        )

    @property
    def note(self) -> str:
        """Return why no log is shown when no pod was found and nothing failed to be read, else ``""``."""
        if self.pods or self.errors:
            return ""
        where = f"{self.namespace}/{self.revision}"
        return f"no pod of revision {where} exists now (scaled to zero or never started)"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form the Rollouts page shows (each condition also as ``text``)."""
        return {
            "revision": self.revision,
            "namespace": self.namespace,
            "conditions": [{**vars(item), "text": str(item)} for item in self.conditions],
            "pods": [{**vars(pod), "lines": list(pod.lines)} for pod in self.pods],
            "errors": list(self.errors),
            "note": self.note,
        }

    def text(self) -> list[str]:
        """Return the diagnostics as log lines: conditions, then each pod's state and last lines."""
        where = f"revision {self.namespace}/{self.revision}"
        out = [f"Diagnostics of {where}: " + ("; ".join(map(str, self.conditions)) or "no conditions")]
        for pod in self.pods:
            state = f" ({pod.state})" if pod.state else ""
            if pod.error:
                out.append(f"  pod {pod.pod}{state}: {pod.error}")
                continue
            count = f"last {len(pod.lines)} log lines" if pod.lines else "no log output"
            out.append(f"  pod {pod.pod}{state}, container {pod.container}, {count}:")
            out.extend(f"    | {line}" for line in pod.lines)
        if self.note:
            out.append(f"  {self.note}, so no logs")
        out.extend(f"  {error}" for error in self.errors)
        return out


def conditions_of(obj: Mapping[str, Any]) -> tuple[ConditionView, ...]:
    """Return an object's status conditions, ``Ready`` first, the others in the order Knative lists them."""
    items = [
        ConditionView(
            type=str(item.get("type", "")),
            status=str(item.get("status", "Unknown")),
            reason=str(item.get("reason") or ""),
            message=str(item.get("message") or ""),
        )
        for item in (obj.get("status") or {}).get("conditions") or []
        if isinstance(item, Mapping)
    ]
    return tuple(sorted(items, key=lambda item: item.type != "Ready"))


def user_container(revision: Mapping[str, Any] | None) -> str:
    """Return the name of the Revision's model container (Knative's default when the spec names none)."""
    containers = ((revision or {}).get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name") or USER_CONTAINER)


def newest_pods(pods: Iterable[Mapping[str, Any]], count: int = LOG_PODS) -> list[Mapping[str, Any]]:
    """Return the ``count`` newest pods (a crash loop's latest attempt first)."""
    ordered = sorted(
        pods,
        key=lambda pod: (str(pod["metadata"].get("creationTimestamp", "")), str(pod["metadata"]["name"])),
        reverse=True,
    )
    return ordered[: max(count, 0)]


def container_state(pod: Mapping[str, Any], container: str) -> str:
    """Return a pod's phase and its container's state in words, e.g. ``Failed, exited with code 1``."""
    status = pod.get("status") or {}
    parts = [str(status.get("phase") or "Unknown")]
    for item in status.get("containerStatuses") or []:
        if item.get("name") != container:
            continue
        state = item.get("state") or {}
        if "terminated" in state:
            terminated = state["terminated"] or {}
            parts.append(f"exited with code {terminated.get('exitCode', '?')}")
        elif "waiting" in state:
            parts.append(f"waiting: {(state['waiting'] or {}).get('reason') or 'unknown reason'}")
        if item.get("restartCount"):
            parts.append(f"{item['restartCount']} restarts")
    return ", ".join(parts)


def tail(text: str, lines: int = LOG_LINES, max_chars: int = MAX_LINE_CHARS) -> tuple[str, ...]:
    """Return the last ``lines`` non-empty lines of ``text``, each cut to ``max_chars``."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:] if lines > 0 else []
    return tuple(
        line if len(line) <= max_chars else f"{line[:max_chars]}... ({len(line) - max_chars} more characters)"
        for line in kept
    )


def failed_candidate(service: Mapping[str, Any], rollout_id: str | None = None) -> str | None:
    """Return the revision whose failure the Service records, or ``None`` when none is.

    With ``rollout_id``: the revision that rollout deployed, unless it was promoted (what the outcome
    task of a rollout that was not promoted looks at, whatever the phase; another rollout's record is not
    this one's). Without: the last rollout's revision when the phase is ``Failed`` or ``RolledBack`` and it
    is not the stable one, or else, after a failed deploy outside any rollout, the latest created
    revision when it is not the latest ready one.
    """
    state = state_from_annotations((service.get("metadata") or {}).get("annotations"))
    if rollout_id is not None:
        if state.rollout_id != rollout_id or state.rollout_revision in (None, state.stable):
            return None
        return state.rollout_revision
    if state.phase not in (RolloutPhase.FAILED, RolloutPhase.ROLLED_BACK):
        return None
    if state.rollout_revision and state.rollout_revision != state.stable:
        return state.rollout_revision
    status = service.get("status") or {}
    latest = status.get("latestCreatedRevisionName")
    if state.phase is RolloutPhase.FAILED and latest and latest != status.get("latestReadyRevisionName"):
        return str(latest)
    return None


def pod_container(pod: Mapping[str, Any], wanted: str) -> str:
    """Return the pod's container to read: ``wanted`` if it has one of that name, else its first one."""
    names: Sequence[str] = [str(item.get("name")) for item in (pod.get("spec") or {}).get("containers") or []]
    return wanted if wanted in names or not names else names[0]
