"""Run Knative Revisions as local processes: one process per pod, written to the store as core v1 Pods.

The image catalog (:mod:`local_knative.images`) says how an image reference runs on this machine, and
:mod:`local_knative.processes` starts, probes and stops the processes. :class:`RevisionRuntime` follows
Revision events from the store, starts ``initial-scale`` pods per revision, probes them, reports every pod
as a ``Pod`` object (the contract in ``/work/team/CONTRACT.md``: phases, ``containerStatuses`` states and
the failure reasons ``ErrImagePull``, terminated and ``ProgressDeadlineExceeded``) and lets the autoscaler
(:mod:`local_knative.autoscaler`) add and remove pods. The ingress borrows pods through
:meth:`RevisionState.acquire`, which is also the activator: a request that finds no ready pod asks for one
and waits for it.

Local differences from a cluster, on purpose:

* ``containerPort`` is ignored: every pod gets a free loopback port in ``PORT`` (Knative also tells the
  container its port through ``PORT``), announced in the pod annotation ``local-knative.dev/port``.
* Pod processes inherit this server's environment (``PATH``, the virtualenv, ``HOME``), so that
  ``python`` programs run; the container's env, ``PORT``, ``K_SERVICE``, ``K_CONFIGURATION``,
  ``K_REVISION`` and ``PYTHONUNBUFFERED=1`` are laid over it.
* The readiness probe runs until it first passes; liveness probes are not run.
* Pod processes end with the server (also on ``SIGKILL``); after a restart the live Pods are restarted in
  place (``restartCount`` + 1), like containers of a rebooted node, and failed revisions stay failed.

Fast scaling values for tests (the ``local_knative`` session fixture passes :data:`FAST_SCALING_ARGS`):
``--stable-window 3 --scale-to-zero-grace 2 --progress-deadline 30 --autoscaler-tick 0.2``, so an idle
revision goes to zero about 5 s after its last request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_knative import kinds, processes
from local_knative.autoscaler import (
    PROGRESS_DEADLINE_ANNOTATION,
    ConcurrencyScaler,
    ScalingSpec,
    duration_ns,
)
from local_knative.errors import ApiError
from local_knative.metrics import RevisionLabels
from local_knative.pod_defaults import pod_container, pod_spec_defaults

if TYPE_CHECKING:
    from local_knative.faults.rules import FaultInjector
    from local_knative.images import ImageCatalog, LaunchSpec
    from local_knative.store import Store

log = logging.getLogger(__name__)

FAST_SCALING_ARGS: tuple[str, ...] = (
    "--stable-window",
    "3",
    "--scale-to-zero-grace",
    "2",
    "--progress-deadline",
    "30",
    "--autoscaler-tick",
    "0.2",
)
PORT_ANNOTATION = "local-knative.dev/port"
REVISION_LABEL = "serving.knative.dev/revision"
CONTAINER_NAME = "user-container"
DEFAULT_USER_PORT = (
    8080  # Knative's user port, reported when a pod has no process (an image not in the catalog)
)
PROBE_INTERVAL = 0.05
STOP_GRACE = 5.0
DRAIN_TIMEOUT = 30.0
LAST_LINES = 10
DEFAULT_REQUEST_TIMEOUT = 300.0
MAX_RESTART_BACKOFF = 30.0


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ScalingConfig:
    """Autoscaler and rollout timings (seconds), with Knative's defaults.

    :param stable_window: the KPA stable window.
    :param scale_to_zero_grace: extra idle time before the last pod goes.
    :param progress_deadline: how long a pod may take to pass its readiness probe.
    :param autoscaler_tick: how often the autoscaler decides.
    """

    stable_window: float = 60.0
    scale_to_zero_grace: float = 30.0
    progress_deadline: float = 120.0
    autoscaler_tick: float = 2.0

    @staticmethod
    def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
        """Add ``--stable-window``, ``--scale-to-zero-grace``, ``--progress-deadline``, ``--autoscaler-tick``.

        :param parser: the ``serve`` command's parser.
        """
        defaults = ScalingConfig()
        group = parser.add_argument_group(
            "autoscaling (seconds; tests use: " + " ".join(FAST_SCALING_ARGS) + ")"
        )
        group.add_argument(
            "--stable-window",
            type=float,
            default=defaults.stable_window,
            help="KPA stable window: averaging period and scale-down delay (default %(default)s)",
        )
        group.add_argument(
            "--scale-to-zero-grace",
            type=float,
            default=defaults.scale_to_zero_grace,
            help="idle time after the stable window before scaling to zero (default %(default)s)",
        )
        group.add_argument(
            "--progress-deadline",
            type=float,
            default=defaults.progress_deadline,
            help="time a pod has to pass its readiness probe (default %(default)s)",
        )
        group.add_argument(
            "--autoscaler-tick",
            type=float,
            default=defaults.autoscaler_tick,
            help="how often the autoscaler decides (default %(default)s)",
        )

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> ScalingConfig:
        """Build the config from parsed flags.

        :param args: flags parsed by a parser set up with :meth:`add_cli_arguments`.
        :raises ValueError: when a value is not positive.
        """
        config = cls(
            stable_window=args.stable_window,
            scale_to_zero_grace=args.scale_to_zero_grace,
            progress_deadline=args.progress_deadline,
            autoscaler_tick=args.autoscaler_tick,
        )
        for name, value in vars(config).items():
            if value <= 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a positive number of seconds, got {value}"
                )
        return config


class RevisionUnavailable(Exception):
    """No pod can take a request for a revision.

    :param status: the HTTP status the ingress answers (503 failed/unknown, 504 timeout).
    :param message: what happened and what to do.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class PodProcess:
    """One pod: a local process, its port and its state."""

    name: str
    namespace: str
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    ready: bool = False
    failed: bool = False
    stopping: bool = False
    in_flight: int = 0
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    # A pod restarted in place after a server restart keeps its last reported status until its new
    # process passes the probe (or fails), so the Revision derived from it does not flap.
    resumed: bool = False
    # Passed its probe but held NotReady by a readiness fault: out of the ingress until the fault lets go.
    held_down: bool = False


@dataclass(eq=False)
class RevisionState:
    """What the runtime knows about one revision, and the pods it borrows to the ingress."""

    namespace: str
    name: str
    uid: str
    service: str
    configuration: str
    revision: dict[str, Any]
    spec: ScalingSpec
    scaler: ConcurrencyScaler
    progress_deadline: float
    request_timeout: float
    runtime: RevisionRuntime
    labels: RevisionLabels
    pods: dict[str, PodProcess] = field(default_factory=dict)
    ready_pods: list[PodProcess] = field(default_factory=list)
    ever_ready: bool = False
    failure: str | None = None
    crashes: int = 0
    restart_after: float = 0.0
    removed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0

    def notify(self) -> None:
        """Wake every request waiting for a pod of this revision."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _pick(self) -> PodProcess | None:
        pods = self.ready_pods
        if not pods:
            return None
        limit = self.spec.container_concurrency
        count = len(pods)
        # Least in flight wins; the rotating start spreads ties across pods.
        self._next = (self._next + 1) % count
        best: PodProcess | None = None
        for offset in range(count):
            pod = pods[(self._next + offset) % count]
            if limit and pod.in_flight >= limit:
                continue
            if best is None or pod.in_flight < best.in_flight:
                best = pod
                if not pod.in_flight:
                    break
        return best

    def acquire_nowait(self) -> PodProcess | None:
        """Borrow the least busy ready pod that has room, or return None (then use :meth:`acquire`)."""
        pod = self._pick()
        if pod is not None:
            pod.in_flight += 1
            self.scaler.request_started(time.monotonic())
        return pod

    async def acquire(self) -> PodProcess:
        """Borrow a pod, waiting (the activator) while none can take the request.

        The held request counts as concurrency from the start, as Knative's activator reports the requests
        it holds: otherwise a pod slower to come up than the scale-to-zero idle time is stopped by the
        autoscaler while the request waits for it, and the request waits out its whole timeout.

        :raises RevisionUnavailable: when the revision failed, went away, or no pod came in time.
        """
        self.scaler.request_started(time.monotonic())
        try:
            pod = await self._wait_for_pod()
        except BaseException:  # also a cancelled wait (the client went away): it no longer counts
            self.scaler.request_finished(time.monotonic())
            raise
        pod.in_flight += 1
        return pod

    async def _wait_for_pod(self) -> PodProcess:
        deadline = time.monotonic() + self.request_timeout
        while True:
            if self.removed:
                raise RevisionUnavailable(503, f"revision {self.namespace}/{self.name} was deleted")
            if self.failure:
                raise RevisionUnavailable(
                    503, f"revision {self.namespace}/{self.name} is not ready: {self.failure}"
                )
            pod = self._pick()
            if pod is not None:
                return pod
            if not self.ready_pods:
                self.runtime.activate(self)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RevisionUnavailable(
                    504,
                    f"no pod of revision {self.namespace}/{self.name} could take the request within "
                    f"{self.request_timeout:g}s (timeoutSeconds); see `kubectl get pods -l "
                    f"{REVISION_LABEL}={self.name}` and the pod logs",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def release(self, pod: PodProcess) -> None:
        """Give a borrowed pod back."""
        pod.in_flight -= 1
        self.scaler.request_finished(time.monotonic())
        if self.spec.container_concurrency:
            self.notify()


class RevisionRuntime:
    """Run each Revision's pods as local processes and keep their Pod objects current.

    :param store: the object store.
    :param catalog: how images run locally.
    :param data_dir: the server's data directory; pod logs go to ``logs/{namespace}/{pod}.log`` in it.
    :param scaling: autoscaler timings.
    :param faults: the fault injector whose readiness rules make pods flap (None: fault injection is off).
    """

    def __init__(
        self,
        store: Store,
        *,
        catalog: ImageCatalog,
        data_dir: Path,
        scaling: ScalingConfig,
        faults: FaultInjector | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.catalog = catalog
        self.data_dir = Path(data_dir)
        self.scaling = scaling
        self.revisions: dict[tuple[str, str], RevisionState] = {}
        self._events: asyncio.Queue[tuple[str, kinds.Kind, dict[str, Any]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._autoscaler: asyncio.Task[None] | None = None
        self._flapper: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Pick up the pods of a previous run, start pods of revisions that want them, and follow the store.

        Pod processes end with the server, their Pod objects stay. A revision that failed is not started
        again and keeps its failed Pods (the record of why it failed, which the controller reads); the
        live Pods of the other revisions are restarted in place, under the same names. So a restart that
        changes nothing changes no Knative object either.
        """
        self.store.subscribe(self._on_event)
        previous: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for pod in self.store.list(kinds.POD, label_selector=REVISION_LABEL)[0]:
            revision_name = pod["metadata"]["labels"][REVISION_LABEL]
            previous.setdefault((pod["metadata"]["namespace"], revision_name), []).append(pod)
        for revision in self.store.list(kinds.REVISION)[0]:
            await self._add_revision(revision, previous_pods=previous.pop(_key(revision), []))
        for orphans in previous.values():  # their Revision is gone
            for pod in orphans:
                self._delete_pod_object(pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._worker = asyncio.create_task(self._process_events(), name="runtime-events")
        self._autoscaler = asyncio.create_task(self._autoscale(), name="autoscaler")
        if self.faults is not None:
            self._flapper = asyncio.create_task(self._flap_readiness(), name="readiness-faults")

    async def stop(self) -> None:
        """Stop every pod process (SIGTERM, then SIGKILL after a grace period) and the background tasks."""
        self._stopped = True
        for task in (self._worker, self._autoscaler, self._flapper):
            if task is not None:
                task.cancel()
        pods = [pod for state in self.revisions.values() for pod in state.pods.values()]
        for state in self.revisions.values():
            state.removed = True
            state.notify()
        await asyncio.gather(*(self._terminate(pod) for pod in pods), return_exceptions=True)
        for task in [*self._tasks, *(pod.task for pod in pods if pod.task)]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def revision(self, namespace: str, name: str) -> RevisionState | None:
        """Return the runtime state of a revision, or None when the runtime does not run it."""
        return self.revisions.get((namespace, name))

    def activate(self, state: RevisionState) -> None:
        """Ask for a pod now because a request waits at zero pods (what Knative's activator does)."""
        if state.removed or state.failure:
            return
        state.scaler.activate(time.monotonic())
        self._reconcile(state)

    # -- store events ----------------------------------------------------------------------------------

    def _on_event(self, event_type: str, kind: kinds.Kind, obj: dict[str, Any]) -> None:
        # Called synchronously inside a store write: only enqueue here.
        if kind == kinds.REVISION or (kind == kinds.POD and event_type == "DELETED"):
            self._events.put_nowait((event_type, kind, obj))

    async def _process_events(self) -> None:
        while True:
            event_type, kind, obj = await self._events.get()
            try:
                await self._handle_event(event_type, kind, obj)
            except Exception:
                log.exception("runtime: handling %s %s %s failed", event_type, kind.kind, _key(obj))

    async def _handle_event(self, event_type: str, kind: kinds.Kind, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == kinds.POD:
            namespace, pod_name = key
            revision_name = (obj["metadata"].get("labels") or {}).get(REVISION_LABEL, "")
            state = self.revisions.get((namespace, revision_name))
            pod = state.pods.get(pod_name) if state else None
            if state is not None and pod is not None and not pod.stopping:
                # Someone deleted the Pod (kubectl delete pod): end its process and start a replacement.
                self._forget_pod(state, pod)
                self._spawn(self._terminate(pod))
                self._reconcile(state)
            return
        if event_type == "DELETED":
            state = self.revisions.pop(key, None)
            if state is not None:
                state.removed = True
                state.notify()
                for pod in list(state.pods.values()):
                    self._forget_pod(state, pod)
                    self._spawn(self._stop_pod(state, pod, drain=False))
            return
        state = self.revisions.get(key)
        if state is None:
            if event_type == "ADDED":
                await self._add_revision(obj)
            return
        state.revision = obj

    async def _add_revision(
        self, revision: dict[str, Any], *, previous_pods: list[dict[str, Any]] | None = None
    ) -> None:
        """Start running a revision.

        :param revision: the Revision object.
        :param previous_pods: its Pod objects left by a previous run of the server.
        """
        key = _key(revision)
        if key in self.revisions or self._stopped:
            return
        metadata = revision["metadata"]
        labels = metadata.get("labels") or {}
        deadline_raw = (metadata.get("annotations") or {}).get(PROGRESS_DEADLINE_ANNOTATION)
        spec = ScalingSpec.from_revision(revision)
        ready = _condition(revision, "Ready") or {}
        failure: str | None = None
        if ready.get("status") == "False":
            # It failed before a restart: starting it again would only fail again.
            failure = ready.get("message") or ready.get("reason") or "the revision failed"
        live_pods: list[dict[str, Any]] = []
        ended_pods: list[dict[str, Any]] = []
        for pod in previous_pods or []:
            ended = (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")
            (ended_pods if ended else live_pods).append(pod)
        state = RevisionState(
            namespace=key[0],
            name=key[1],
            uid=metadata.get("uid", ""),
            service=labels.get("serving.knative.dev/service", ""),
            configuration=labels.get("serving.knative.dev/configuration", ""),
            revision=revision,
            spec=spec,
            scaler=ConcurrencyScaler(
                spec,
                stable_window=self.scaling.stable_window,
                scale_to_zero_grace=self.scaling.scale_to_zero_grace,
                now=time.monotonic(),
                # A revision that was serving resumes at the pod count it had (zero when scaled to zero).
                initial=len(live_pods) if ready.get("status") == "True" else None,
            ),
            progress_deadline=(
                duration_ns(deadline_raw) / 1e9 if deadline_raw else self.scaling.progress_deadline
            ),
            request_timeout=float(
                (revision.get("spec") or {}).get("timeoutSeconds") or DEFAULT_REQUEST_TIMEOUT
            ),
            runtime=self,
            labels=RevisionLabels(
                key[0],
                labels.get("serving.knative.dev/service", ""),
                labels.get("serving.knative.dev/configuration", ""),
                key[1],
            ),
            ever_ready=ready.get("status") == "True",
            failure=failure,
        )
        self.revisions[key] = state
        if failure:
            return  # its Pods stay as they are: they say why it failed
        for pod in ended_pods:
            self._delete_pod_object(pod["metadata"]["namespace"], pod["metadata"]["name"])
        for pod in live_pods:
            self._start_pod(state, previous=pod)
        self._reconcile(state)

    # -- scaling ---------------------------------------------------------------------------------------

    async def _autoscale(self) -> None:
        while True:
            await asyncio.sleep(self.scaling.autoscaler_tick)
            now = time.monotonic()
            for state in list(self.revisions.values()):
                if state.failure or not state.ever_ready:
                    continue  # keep the initial scale until the revision has come up once
                try:
                    state.scaler.tick(now)
                    self._reconcile(state)
                except Exception:
                    log.exception("runtime: scaling %s/%s failed", state.namespace, state.name)

    async def _flap_readiness(self) -> None:
        """Hold pods NotReady while a readiness fault says so, and give them back when it lets go."""
        assert self.faults is not None
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            now = time.monotonic()
            for state in list(self.revisions.values()):
                rule = self.faults.readiness_hold(state.namespace, state.service, state.name, now)
                for pod in list(state.pods.values()):
                    if pod.stopping or pod.failed or not pod.ready or pod.held_down == (rule is not None):
                        continue
                    pod.held_down = rule is not None
                    if rule is not None:
                        self._remove_ready(state, pod)
                        target = {"namespace": state.namespace, "revision": state.name, "pod": pod.name}
                        self.faults.record(rule, target)
                    else:
                        state.ready_pods.append(pod)
                        state.notify()
                    self._rewrite_readiness(state, pod, ready=not pod.held_down)

    def _rewrite_readiness(self, state: RevisionState, pod: PodProcess, *, ready: bool) -> None:
        current = self.store.try_get(kinds.POD, pod.namespace, pod.name) or {}
        container = ((current.get("status") or {}).get("containerStatuses") or [{}])[0]
        image = ((state.revision.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
        self._write_status(pod, "Running", ready=ready, image=image, state=container.get("state") or {})

    def _reconcile(self, state: RevisionState) -> None:
        """Start or stop pods until the revision has as many as the scaler wants."""
        if state.removed or state.failure or self._stopped:
            return
        active = [pod for pod in state.pods.values() if not pod.stopping and not pod.failed]
        wanted = state.scaler.desired
        if len(active) < wanted and time.monotonic() >= state.restart_after:
            for _ in range(wanted - len(active)):
                self._start_pod(state)
        elif len(active) > wanted:
            # Stop pods that are not ready yet first, then the idlest ready ones.
            victims = sorted(active, key=lambda pod: (pod.ready, pod.in_flight))[: len(active) - wanted]
            for pod in victims:
                pod.stopping = True
                self._remove_ready(state, pod)
                self._spawn(self._stop_pod(state, pod, drain=True))

    # -- pods ------------------------------------------------------------------------------------------

    def _start_pod(self, state: RevisionState, *, previous: dict[str, Any] | None = None) -> None:
        """Start a pod: a new one, or the ``previous`` Pod object of an earlier run restarted in place."""
        container = dict(((state.revision.get("spec") or {}).get("containers") or [{}])[0])
        container["name"] = CONTAINER_NAME
        launch = self.catalog.resolve(container)
        if previous is None:
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            pod = PodProcess(name=f"{state.name}-deployment-{suffix}", namespace=state.namespace)
        else:
            statuses = (previous.get("status") or {}).get("containerStatuses") or [{}]
            pod = PodProcess(
                name=previous["metadata"]["name"],
                namespace=state.namespace,
                restarts=int(statuses[0].get("restartCount") or 0) + 1,
                resumed=True,
            )
        if launch is not None:
            pod.port = processes.free_port()
        if not self._write_pod_object(state, pod, container, previous):
            return
        state.pods[pod.name] = pod
        image = container.get("image", "")
        if launch is None:
            message = (
                f"image {image!r} is not in the image catalog {self.catalog.path}; add a pattern that "
                "matches it to that file (or pass --images FILE) and create a new revision"
            )
            self._fail(
                state, pod, {"waiting": {"reason": "ErrImagePull", "message": message}}, message, "Pending"
            )
            return
        if not pod.resumed:
            self._write_status(
                pod, "Pending", ready=False, image=image, state={"waiting": {"reason": "ContainerCreating"}}
            )
        pod.task = asyncio.create_task(self._run_pod(state, pod, launch, container), name=f"pod-{pod.name}")

    def _write_pod_object(
        self,
        state: RevisionState,
        pod: PodProcess,
        container: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> bool:
        """Create the Pod object, or point the ``previous`` one at the new port; return whether it worked."""
        filled = pod_container(container, pod.port or DEFAULT_USER_PORT, CONTAINER_NAME)
        if previous is not None:
            previous["metadata"].setdefault("annotations", {})[PORT_ANNOTATION] = str(pod.port)
            # The process listens on a new port after a restart in place; the probes say so.
            previous.setdefault("spec", {})["containers"] = [filled]
            try:
                self.store.replace(kinds.POD, previous)
            except ApiError as error:
                log.warning("runtime: cannot restart pod %s/%s: %s", pod.namespace, pod.name, error)
                return False
            return True
        pod_object = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "namespace": state.namespace,
                "labels": {
                    REVISION_LABEL: state.name,
                    "serving.knative.dev/revisionUID": state.uid,
                    "serving.knative.dev/configuration": state.configuration,
                    "serving.knative.dev/service": state.service,
                    "app": state.name,
                },
                "annotations": {PORT_ANNOTATION: str(pod.port)},
                "ownerReferences": [
                    {
                        "apiVersion": kinds.REVISION.api_version,
                        "kind": kinds.REVISION.kind,
                        "name": state.name,
                        "uid": state.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "containers": [filled],
                "restartPolicy": "Never",
                **pod_spec_defaults(int(state.request_timeout)),
            },
        }
        try:
            self.store.create(kinds.POD, pod_object)
        except ApiError as error:
            log.warning("runtime: cannot create pod %s/%s: %s", state.namespace, pod.name, error)
            return False
        return True

    async def _run_pod(
        self, state: RevisionState, pod: PodProcess, launch: LaunchSpec, container: dict[str, Any]
    ) -> None:
        image = container.get("image", "")
        env = dict(os.environ)
        env.update(launch.env)
        for item in container.get("env") or []:
            if "value" in item:
                env[str(item["name"])] = str(item["value"])
        env.update(
            {
                "PORT": str(pod.port),
                "K_SERVICE": state.service,
                "K_CONFIGURATION": state.configuration,
                "K_REVISION": state.name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        pod.log_path = self.data_dir / "logs" / state.namespace / f"{pod.name}.log"
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        with pod.log_path.open("ab") as log_file:
            try:
                pod.process = await processes.spawn(launch.argv, cwd=launch.cwd, env=env, output=log_file)
            except OSError as error:
                message = f"cannot start {launch.argv[0]!r} in {launch.cwd}: {error}"
                log_file.write((message + "\n").encode())
                self._fail(state, pod, _terminated(128, message), message, "Failed")
                return
        started_at = _now_rfc3339()
        if not pod.resumed:
            self._write_status(
                pod, "Running", ready=False, image=image, state={"running": {"startedAt": started_at}}
            )
        process = pod.process
        exited = asyncio.create_task(process.wait())
        deadline = time.monotonic() + state.progress_deadline
        probe = ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
        while not pod.stopping:
            if exited.done():
                break
            if await processes.probe(pod.port, probe):
                pod.ready = True
                break
            if time.monotonic() >= deadline:
                message = (
                    f"the readiness probe ({'GET ' + probe if probe else 'TCP connect'} on port {pod.port}) "
                    f"did not pass within {state.progress_deadline:g}s; see the pod log {pod.log_path}"
                )
                await self._terminate(pod)
                self._fail(
                    state,
                    pod,
                    {"waiting": {"reason": "ProgressDeadlineExceeded", "message": message}},
                    message,
                    "Failed",
                )
                return
            await asyncio.wait([exited], timeout=PROBE_INTERVAL)
        if pod.ready and not pod.stopping:
            self._write_status(
                pod, "Running", ready=True, image=image, state={"running": {"startedAt": started_at}}
            )
            state.ready_pods.append(pod)
            if not state.ever_ready:
                state.ever_ready = True
                state.crashes = 0
            state.scaler.last_activity = max(state.scaler.last_activity, time.monotonic())
            state.notify()
        exit_code = await exited
        if pod.stopping:
            return
        message = processes.last_lines(pod.log_path, LAST_LINES)
        message = message or f"the process exited with code {exit_code}"
        self._fail(state, pod, _terminated(exit_code, message), message, "Failed")

    def _fail(
        self, state: RevisionState, pod: PodProcess, container_state: dict[str, Any], message: str, phase: str
    ) -> None:
        """Report a failed pod; a revision that never came up fails with it, one that did gets a new pod."""
        pod.failed = True
        self._remove_ready(state, pod)
        image = ((state.revision.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
        self._write_status(pod, phase, ready=False, image=image, state=container_state)
        if not state.ever_ready:
            state.failure = message
        else:
            # Replace it after a growing back-off, so a crash loop cannot eat the machine.
            state.crashes += 1
            state.restart_after = time.monotonic() + min(2.0**state.crashes, MAX_RESTART_BACKOFF)
            self._forget_pod(state, pod)
            pod.stopping = True
            self._delete_pod_object(pod.namespace, pod.name)
        state.notify()

    def _write_status(
        self, pod: PodProcess, phase: str, *, ready: bool, image: str, state: dict[str, Any]
    ) -> None:
        current = self.store.try_get(kinds.POD, pod.namespace, pod.name)
        if current is None:
            return
        ready_text = "True" if ready else "False"
        now = _now_rfc3339()
        current["status"] = {
            "phase": phase,
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "startTime": (current.get("status") or {}).get("startTime", now),
            "conditions": [
                {"type": "Ready", "status": ready_text, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready_text, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": CONTAINER_NAME,
                    "ready": ready,
                    "started": "running" in state,
                    "restartCount": pod.restarts,
                    "image": image,
                    # No registry, no digest: kubelet reports an empty imageID for such a container too.
                    "imageID": "",
                    "state": state,
                }
            ],
        }
        try:
            self.store.replace(kinds.POD, current, subresource="status")
        except ApiError as error:
            if error.code != 404:
                log.warning("runtime: cannot write status of pod %s/%s: %s", pod.namespace, pod.name, error)

    def _remove_ready(self, state: RevisionState, pod: PodProcess) -> None:
        if pod in state.ready_pods:
            state.ready_pods.remove(pod)

    def _forget_pod(self, state: RevisionState, pod: PodProcess) -> None:
        pod.stopping = True
        self._remove_ready(state, pod)
        state.pods.pop(pod.name, None)

    async def _stop_pod(self, state: RevisionState, pod: PodProcess, *, drain: bool) -> None:
        """Let requests in flight finish, end the process and delete the Pod object."""
        if drain:
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while pod.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await self._terminate(pod)
        state.pods.pop(pod.name, None)
        self._delete_pod_object(pod.namespace, pod.name)

    def _delete_pod_object(self, namespace: str, name: str) -> None:
        try:
            self.store.delete(kinds.POD, namespace, name)
        except ApiError as error:
            if error.code != 404:
                log.warning("runtime: cannot delete pod %s/%s: %s", namespace, name, error)

    async def _terminate(self, pod: PodProcess) -> None:
        """SIGTERM the pod's process group, SIGKILL it after a grace period."""
        pod.stopping = True
        if pod.process is not None:
            await processes.terminate(pod.process, STOP_GRACE)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def kill_pods(
        self, namespace: str, revision: str, pod_name: str | None, signum: signal.Signals
    ) -> list[str]:
        """Signal the running pod processes of a revision (or one pod), as a crash would; return their names.

        What follows is the runtime's ordinary crash handling: the pod is reported failed and replaced.
        """
        state = self.revision(namespace, revision)
        if state is None:
            return []
        killed = []
        for pod in list(state.pods.values()):
            if pod_name not in (None, pod.name) or pod.process is None or pod.process.returncode is not None:
                continue
            processes.signal_group(pod.process.pid, signum)
            killed.append(pod.name)
        return killed

    def pod_counts(self) -> list[tuple[RevisionState, int, int]]:
        """Return (revision, desired pods, ready pods) for every revision; a failed revision wants none."""
        return [
            (state, 0 if state.failure else state.scaler.desired, len(state.ready_pods))
            for state in self.revisions.values()
        ]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace", ""), metadata.get("name", "")


def _condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return dict(condition)
    return None


def _terminated(exit_code: int, message: str) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": "Error",
            "message": message,
            "finishedAt": _now_rfc3339(),
        }
    }
