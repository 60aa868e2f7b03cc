"""In-process data plane for the runtime and ingress tests: a real Store, RevisionRuntime and Ingress.

No controller runs here: the tests write Revision and Route objects (with Route status) themselves, which is
exactly what the Knative controller would write. Pods are real processes of the echo app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from local_knative import kinds
from local_knative.images import ImageCatalog
from local_knative.ingress import Ingress
from local_knative.runtime import RevisionRuntime, ScalingConfig
from local_knative.store import Store

ECHO_IMAGE = "registry.example.com/knative-rollout/echo:latest"
NAMESPACE = "default"
DOMAIN = "example.com"
FAST = ScalingConfig(stable_window=3, scale_to_zero_grace=2, progress_deadline=30, autoscaler_tick=0.2)


class Dataplane:
    """A started store + runtime + ingress on a free loopback port.

    :param data_dir: a fresh directory for the SQLite file and pod logs.
    :param scaling: autoscaler timings.
    :param catalog: the image catalog (default: the shipped one).
    """

    def __init__(self, data_dir: Path, *, scaling: ScalingConfig = FAST, catalog: ImageCatalog | None = None):
        self.data_dir = data_dir
        self.store = Store(data_dir / "state.db")
        self.runtime = RevisionRuntime(
            self.store, catalog=catalog or ImageCatalog.load(None), data_dir=data_dir, scaling=scaling
        )
        self.ingress: Ingress | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Dataplane:
        """Start the runtime, then the ingress (the server's composition order)."""
        await self.runtime.start()
        self.ingress = Ingress(self.store, self.runtime, domain=DOMAIN)
        self._runner = web.AppRunner(self.ingress.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Stop the ingress and every pod process, and close the store."""
        if self._runner is not None:
            await self._runner.cleanup()
        await self.runtime.stop()
        self.store.close()

    def add_revision(
        self,
        name: str,
        *,
        service: str = "svc",
        env: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        image: str = ECHO_IMAGE,
        probe_path: str | None = "/healthz",
        container_concurrency: int | None = None,
        timeout_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Create a Revision the way the controller would (labels, annotations, one container)."""
        container: dict[str, Any] = {
            "image": image,
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
        if probe_path:
            container["readinessProbe"] = {"httpGet": {"path": probe_path}}
        spec: dict[str, Any] = {"containers": [container]}
        if container_concurrency is not None:
            spec["containerConcurrency"] = container_concurrency
        if timeout_seconds is not None:
            spec["timeoutSeconds"] = timeout_seconds
        return self.store.create(
            kinds.REVISION,
            {
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "labels": {
                        "serving.knative.dev/service": service,
                        "serving.knative.dev/configuration": service,
                    },
                    "annotations": annotations or {},
                },
                "spec": spec,
            },
        )

    def set_traffic(self, route: str, targets: list[tuple[str, int, str | None]]) -> None:
        """Write a Route's ``status.traffic`` as the controller resolves it: (revision, percent, tag)."""
        current = self.store.try_get(kinds.ROUTE, NAMESPACE, route)
        if current is None:
            current = self.store.create(
                kinds.ROUTE, {"metadata": {"name": route, "namespace": NAMESPACE}, "spec": {}}
            )
        traffic = []
        for revision, percent, tag in targets:
            target: dict[str, Any] = {"revisionName": revision, "percent": percent, "latestRevision": False}
            if tag:
                target["tag"] = tag
                target["url"] = f"http://{tag}-{route}.{NAMESPACE}.{DOMAIN}"
            traffic.append(target)
        current["status"] = {"url": f"http://{route}.{NAMESPACE}.{DOMAIN}", "traffic": traffic}
        self.store.replace(kinds.ROUTE, current, subresource="status")

    def pods(self, revision: str) -> list[dict[str, Any]]:
        """Return the Pod objects of a revision."""
        items, _ = self.store.list(
            kinds.POD, NAMESPACE, label_selector=f"serving.knative.dev/revision={revision}"
        )
        return items

    async def wait_for(
        self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
    ) -> Any:
        """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def wait_ready_pods(
        self, revision: str, count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Wait until a revision has ``count`` Ready pods and return them."""

        def ready() -> list[dict[str, Any]]:
            pods = [p for p in self.pods(revision) if _pod_ready(p)]
            return pods if len(pods) >= count else []

        return await self.wait_for(ready, timeout, f"{count} ready pod(s) of {revision}")

    async def wait_container_state(self, revision: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until a pod of the revision reports a waiting-with-reason or terminated state; return it."""

        def failed_state() -> dict[str, Any] | None:
            for pod in self.pods(revision):
                for status in (pod.get("status") or {}).get("containerStatuses") or []:
                    state = status.get("state") or {}
                    if "terminated" in state or (state.get("waiting") or {}).get("reason") not in (
                        None,
                        "ContainerCreating",
                    ):
                        return state
            return None

        return await self.wait_for(failed_state, timeout, f"a failed pod of {revision}")


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
