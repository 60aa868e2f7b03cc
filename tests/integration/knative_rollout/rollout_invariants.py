"""What must hold on the cluster after any rollout, however it ended (shared by soak, chaos and crash tests).

Read once with the real kubectl (an independent client) into a :class:`ClusterView`, then each check
returns the invariants it finds broken, as sentences (an empty list when all hold):

- :func:`check_serving`: traffic (spec and status) sums to 100 and only Ready revisions serve;
- :func:`check_way_back`: a stable revision is recorded, exists and is Ready, and no rollout is mid-way;
- :func:`check_production`: production is 100% on one expected revision, tagged ``stable``;
- :func:`check_kept`: the revisions that served (or must stay as a rollback target) still exist, Ready;
- :func:`check_no_duplicate_specs`: no spec is deployed as two revisions;
- :func:`check_history`: every history entry names a run of the given DAG(s);
- :func:`check_promoted_once`: no revision was promoted twice (a resumed promotion wrote it once);
- :func:`check_lock`: the rollout Lease is free (or, when allowed, held but expiring within its duration).

Run with faults cleared: the checks read the cluster as it is, not through injected errors.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def kubectl_json(kubeconfig: str, *args: str) -> Any:
    """Return kubectl's JSON output (the real kubectl, against the test's cluster)."""
    output = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output)


def is_ready(item: dict[str, Any] | None) -> bool:
    """Return whether a Knative object has condition Ready=True."""
    conditions = ((item or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def revision_spec_key(revision: dict[str, Any]) -> str:
    """Return what makes two revisions the same deployment: containers and rollout-relevant annotations."""
    annotations = {
        key: value
        for key, value in (revision["metadata"].get("annotations") or {}).items()
        if key.startswith(("autoscaling.knative.dev/", "rollout.knative-rollout.dev/"))
    }
    containers = [
        {"image": container.get("image"), "env": container.get("env")}
        for container in revision["spec"].get("containers") or []
    ]
    return json.dumps([containers, annotations], sort_keys=True)


@dataclass
class ClusterView:
    """One Service, its revisions and its rollout Lease, read at one moment."""

    service_name: str
    service: dict[str, Any] | None
    revisions: dict[str, dict[str, Any]]
    lease: dict[str, Any] | None

    @classmethod
    def read(cls, kubeconfig: str, namespace: str, service_name: str) -> ClusterView:
        """Read the Service, its revisions and its Lease with kubectl."""
        from knative_rollout.resources import lease_name

        items = kubectl_json(kubeconfig, "-n", namespace, "get", "ksvc")["items"]
        service = next((item for item in items if item["metadata"]["name"] == service_name), None)
        selector = f"serving.knative.dev/service={service_name}"
        revisions = kubectl_json(kubeconfig, "-n", namespace, "get", "revisions", "-l", selector)["items"]
        leases = kubectl_json(kubeconfig, "-n", namespace, "get", "leases.coordination.k8s.io")["items"]
        lease = next((item for item in leases if item["metadata"]["name"] == lease_name(service_name)), None)
        return cls(service_name, service, {item["metadata"]["name"]: item for item in revisions}, lease)

    @property
    def state(self) -> Any:
        """Return the rollout state recorded on the Service."""
        from knative_rollout.resources import state_from_annotations

        return state_from_annotations(((self.service or {}).get("metadata") or {}).get("annotations"))

    def served(self) -> dict[str, int]:
        """Return the percent per revision in the Service's status (what users get now)."""
        return _split((self.service or {}).get("status", {}).get("traffic"))

    def routed(self) -> dict[str, int]:
        """Return the percent per revision in the Service's spec (what the provider wrote)."""
        return _split((self.service or {}).get("spec", {}).get("traffic"))


def _split(traffic: list[dict[str, Any]] | None) -> dict[str, int]:
    split: dict[str, int] = {}
    for target in traffic or []:
        if target.get("percent"):
            name = str(target.get("revisionName") or "(latest)")
            split[name] = split.get(name, 0) + int(target["percent"])
    return split


def check_serving(view: ClusterView) -> list[str]:
    """Traffic in spec and status sums to 100, names revisions, and only Ready revisions serve."""
    if view.service is None:
        return [f"Service {view.service_name} is gone"]
    problems = []
    for what, split in (("status", view.served()), ("spec", view.routed())):
        if sum(split.values()) != 100:
            problems.append(f"{what} traffic sums to {sum(split.values())}: {split}")
        for name in split:
            if not is_ready(view.revisions.get(name)):
                problems.append(f"{what} traffic goes to {name}, which is missing or not Ready")
    if view.served() != view.routed():
        problems.append(f"status serves {view.served()} but the spec routes {view.routed()}")
    return problems


def check_way_back(view: ClusterView) -> list[str]:
    """A stable revision is recorded and Ready, and the record shows no rollout stuck mid-way."""
    state = view.state
    problems = []
    if not state.stable:
        problems.append("no stable revision is recorded: a rollback would have nowhere to go")
    elif not is_ready(view.revisions.get(state.stable)):
        problems.append(f"the recorded stable revision {state.stable} is missing or not Ready")
    if state.is_active():
        problems.append(
            f"the record is left mid-rollout: phase {state.phase.value}, candidate {state.candidate}, "
            f"by {state.rollout_id}"
        )
    return problems


def check_production(view: ClusterView, expected: str) -> list[str]:
    """Production is 100% on ``expected`` (tagged stable), and the record names it as stable."""
    if view.service is None:
        return [f"Service {view.service_name} is gone"]
    problems = []
    served = {
        (target["revisionName"], target["percent"], target.get("tag"))
        for target in view.service["status"].get("traffic") or []
        if target.get("percent")
    }
    if served != {(expected, 100, "stable")}:
        problems.append(f"production serves {sorted(served)}, expected {expected} at 100% tagged stable")
    if set(view.routed()) != {expected}:
        problems.append(f"spec routes traffic to {sorted(view.routed())}, expected only {expected}")
    state = view.state
    if state.stable != expected or state.is_active():
        problems.append(f"record says stable {state.stable}, phase {state.phase.value}; expected {expected}")
    return problems


def check_kept(view: ClusterView, keep: Iterable[str]) -> list[str]:
    """Every revision in ``keep`` (it served, or is the way back) still exists and is Ready."""
    return [
        f"revision {name}, which served production, is gone or not Ready"
        for name in sorted(set(keep))
        if not is_ready(view.revisions.get(name))
    ]


def check_no_duplicate_specs(view: ClusterView) -> list[str]:
    """No spec is deployed as more than one revision (a retry or rerun wrote nothing twice)."""
    specs = Counter(revision_spec_key(item) for item in view.revisions.values())
    duplicated = [key for key, count in specs.items() if count > 1]
    return [f"{len(duplicated)} specs are deployed as more than one revision"] if duplicated else []


def check_history(view: ClusterView, dag_ids: Iterable[str], run_ids: set[str] | None = None) -> list[str]:
    """Every history entry names its writer as ``dag_id/run_id/task_id/try`` of a known DAG (and run)."""
    dags = set(dag_ids)
    problems = []
    for entry in view.state.history:
        parts = entry.by.split("/")
        if len(parts) < 4 or parts[0] not in dags or (run_ids is not None and parts[1] not in run_ids):
            problems.append(f"history entry {entry.action} at {entry.time} names no known run: {entry.by!r}")
    return problems


def check_promoted_once(view: ClusterView) -> list[str]:
    """No revision has more than one ``Promoted`` entry in the history (within its last entries)."""
    promoted = Counter(
        entry.detail.split(" ", 1)[0] for entry in view.state.history if entry.action == "Promoted"
    )
    return [f"{name} was promoted {count} times" for name, count in sorted(promoted.items()) if count > 1]


def check_lock(view: ClusterView, *, allow_expiring: bool = False) -> list[str]:
    """The rollout Lease is free; with ``allow_expiring``, a holder is allowed if it expires by itself."""
    from knative_rollout.resources import holding_of

    holding = holding_of(view.lease, datetime.now(UTC))
    if holding.holder is None or holding.expired:
        return []
    if not allow_expiring:
        return [f"the rollout lock is still held by {holding.holder}"]
    duration = ((view.lease or {}).get("spec") or {}).get("leaseDurationSeconds")
    left = holding.seconds_left(datetime.now(UTC))
    if not isinstance(duration, int) or left > duration:
        return [f"the rollout lock held by {holding.holder} does not expire by itself ({left:.0f}s left)"]
    return []
