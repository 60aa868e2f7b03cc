"""Run Knative Serving's controllers against the local store: a work queue and the reconcilers it drives.

One asyncio task drains a de-duplicated work queue of ``(kind, namespace, name)`` keys, like Knative's
controllers: a store subscription turns every write into keys to look at again (the object, its owner,
the Routes that point at it), and every reconcile (:mod:`local_knative.knative`) reads the current state,
writes only what differs and so settles. Everything is rebuilt from the store at start, which is how
state survives a restart.

Reverse look-ups (Pods of a Revision, Routes that name a Configuration or Revision) are kept in memory
from the store's events, so one reconcile costs a handful of dictionary reads however many objects exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.errors import ApiError
from local_knative.knative.configuration import reconcile_configuration
from local_knative.knative.objects import CONFIGURATION_LABEL, REVISION_LABEL, SERVICE_LABEL
from local_knative.knative.revision import reconcile_revision
from local_knative.knative.route import Target, reconcile_route
from local_knative.knative.service import reconcile_service

if TYPE_CHECKING:
    from local_knative.kinds import Kind
    from local_knative.store import Store

log = logging.getLogger(__name__)

CONFLICT_RETRY_SECONDS = 0.05

Key = tuple["Kind", str, str]


class KnativeController:
    """Run Knative Serving's Service, Configuration, Route and Revision controllers against the store.

    :param store: the object store.
    :param domain: the domain of external URLs, ``http://{name}.{namespace}.{domain}``.
    """

    def __init__(self, store: Store, *, domain: str) -> None:
        self.store = store
        self.domain = domain
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._retrying: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._subscribed = False
        self._running = False
        self._pods: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        # Which Routes name a target, and which targets each Route names, to requeue Routes on change.
        self._routes_by_target: dict[Target, set[str]] = {}
        self._targets_of_route: dict[tuple[str, str], set[Target]] = {}

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the store, queue every existing Knative object and start reconciling."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        if not self._subscribed:
            self.store.subscribe(self._on_event)
            self._subscribed = True
        self._pods.clear()
        for pod in self.store.list(kinds.POD)[0]:
            self._index_pod("ADDED", pod)
        for kind in (kinds.REVISION, kinds.CONFIGURATION, kinds.ROUTE, kinds.KSVC):
            for obj in self.store.list(kind)[0]:
                self._enqueue(kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
        self._task = asyncio.create_task(self._run(), name="knative-controller")

    async def stop(self) -> None:
        """Stop reconciling; queued work is dropped (it is rebuilt from the store at the next start)."""
        self._running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until the work queue is empty and every reconcile has finished.

        :raises TimeoutError: when the controller is still busy after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self._pending or self._retrying:
                if self._pending:
                    await self._queue.join()
                else:
                    await asyncio.sleep(CONFLICT_RETRY_SECONDS)
                # A reconcile may have queued more work: look again.
                await asyncio.sleep(0)

    # ---- work queue ----------------------------------------------------------------------------------

    def _enqueue(self, kind: Kind, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        if key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def _on_event(self, event_type: str, kind: Kind, obj: dict[str, Any]) -> None:
        if not self._running or self._loop is None:
            return
        if threading.get_ident() != self._loop_thread:
            # asyncio objects are not thread-safe: hand writes from other threads to the loop.
            self._loop.call_soon_threadsafe(self._on_event, event_type, kind, obj)
            return
        meta = obj.get("metadata") or {}
        namespace, name, labels = meta.get("namespace", ""), meta.get("name", ""), meta.get("labels") or {}
        if kind == kinds.POD:
            revision = self._index_pod(event_type, obj)
            if revision:
                self._enqueue(kinds.REVISION, namespace, revision)
        elif kind == kinds.KSVC:
            self._enqueue(kinds.KSVC, namespace, name)
        elif kind == kinds.CONFIGURATION:
            self._enqueue(kinds.CONFIGURATION, namespace, name)
            self._enqueue_owner_service(namespace, labels)
            self._enqueue_routes_naming(namespace, "configuration", name)
        elif kind == kinds.ROUTE:
            self._enqueue(kinds.ROUTE, namespace, name)
            self._enqueue_owner_service(namespace, labels)
        elif kind == kinds.REVISION:
            self._enqueue(kinds.REVISION, namespace, name)
            if labels.get(CONFIGURATION_LABEL):
                self._enqueue(kinds.CONFIGURATION, namespace, labels[CONFIGURATION_LABEL])
            self._enqueue_routes_naming(namespace, "revision", name)

    def _enqueue_owner_service(self, namespace: str, labels: dict[str, str]) -> None:
        if labels.get(SERVICE_LABEL):
            self._enqueue(kinds.KSVC, namespace, labels[SERVICE_LABEL])

    def _enqueue_routes_naming(self, namespace: str, target_kind: str, name: str) -> None:
        for route in self._routes_by_target.get((namespace, target_kind, name), ()):
            self._enqueue(kinds.ROUTE, namespace, route)

    def _index_pod(self, event_type: str, pod: dict[str, Any]) -> str | None:
        meta = pod.get("metadata") or {}
        revision = (meta.get("labels") or {}).get(REVISION_LABEL)
        if not revision:
            return None
        pods = self._pods.setdefault((meta.get("namespace", ""), revision), {})
        if event_type == "DELETED":
            pods.pop(meta.get("name", ""), None)
        else:
            pods[meta.get("name", "")] = pod
        return str(revision)

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            try:
                self._reconcile(*key)
            except ApiError as error:
                if error.code == 409:
                    self._retry_later(key)
                else:
                    log.error("reconciling %s %s/%s failed: %s", key[0].kind, key[1], key[2], error.message)
            except Exception:
                log.exception("reconciling %s %s/%s failed", key[0].kind, key[1], key[2])
            finally:
                self._queue.task_done()
            # Let the API server answer requests between reconciles during a burst.
            await asyncio.sleep(0)

    def _retry_later(self, key: Key) -> None:
        """Look at ``key`` again shortly: someone wrote it between our read and our write."""
        self._retrying.add(key)

        def retry() -> None:
            self._retrying.discard(key)
            if self._running:
                self._enqueue(*key)

        asyncio.get_running_loop().call_later(CONFLICT_RETRY_SECONDS, retry)

    def _reconcile(self, kind: Kind, namespace: str, name: str) -> None:
        if kind == kinds.KSVC:
            self.reconcile_service(namespace, name)
        elif kind == kinds.CONFIGURATION:
            self.reconcile_configuration(namespace, name)
        elif kind == kinds.ROUTE:
            self.reconcile_route(namespace, name)
        elif kind == kinds.REVISION:
            self.reconcile_revision(namespace, name)

    # ---- reconcilers --------------------------------------------------------------------------------

    def reconcile_service(self, namespace: str, name: str) -> None:
        """Reconcile one Service now (see :func:`local_knative.knative.service.reconcile_service`)."""
        reconcile_service(self.store, namespace, name)

    def reconcile_configuration(self, namespace: str, name: str) -> None:
        """Reconcile one Configuration now (see :mod:`local_knative.knative.configuration`)."""
        reconcile_configuration(self.store, namespace, name)

    def reconcile_route(self, namespace: str, name: str) -> None:
        """Reconcile one Route now and remember what it names (see :mod:`local_knative.knative.route`)."""
        targets = reconcile_route(self.store, namespace, name, domain=self.domain)
        previous = self._targets_of_route.pop((namespace, name), set())
        for target in previous - targets:
            routes = self._routes_by_target.get(target)
            if routes is not None:
                routes.discard(name)
                if not routes:
                    del self._routes_by_target[target]
        for target in targets:
            self._routes_by_target.setdefault(target, set()).add(name)
        if targets:
            self._targets_of_route[(namespace, name)] = targets

    def reconcile_revision(self, namespace: str, name: str) -> None:
        """Reconcile one Revision now from its indexed Pods (see :mod:`local_knative.knative.revision`)."""
        if self.store.try_get(kinds.REVISION, namespace, name) is None:
            self._pods.pop((namespace, name), None)
            return
        reconcile_revision(self.store, namespace, name, list(self._pods.get((namespace, name), {}).values()))
