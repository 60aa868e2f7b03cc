"""Deferrable waits on Knative objects: a Revision becoming Ready, a Service serving the expected traffic.

Each trigger watches its one object with ``kubernetes_asyncio`` (a watch, not polling), decides on every
change, and yields exactly one event: ``{"status": "success" | "failed" | "error" | "timeout",
"message": ..., <ids>}``. The hook resumes a dropped watch, so an ``error`` event means the cluster stayed
unreachable, or, with ``permanent: True`` and the fix in its message, that the API refused the watch for
good (403, 404: at once, not at the timeout). The same triggers also run in the worker: :func:`run_inline`
runs one to its event (the non-deferrable mode) or for a few seconds before a task defers, so every mode
shares one definition of "ready".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from knative_rollout.exceptions import KnativeRolloutError, KnativeWatchRefusedError, error_text
from knative_rollout.hooks import AsyncKnativeServingHook
from knative_rollout.locks import read_lease_async, renew_async
from knative_rollout.resources import KSVC, LEASE, REVISION, condition, holding_of, traffic_keys


class _KnativeWatchTrigger(BaseTrigger):
    """Watch one Knative object until :meth:`decide` returns an event, or until the timeout."""

    resource = KSVC

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        timeout_seconds: float,
        hook_params: Mapping[str, Any] | None = None,
        carry: Mapping[str, Any] | None = None,
        renew_lock: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self.hook_params = dict(hook_params or {})
        self.carry = dict(carry or {})
        self.renew_lock = dict(renew_lock) if renew_lock else None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "timeout_seconds": self.timeout_seconds,
            "hook_params": self.hook_params,
            "carry": self.carry,
            "renew_lock": self.renew_lock,
        }

    async def _keep_lock(self, hook: AsyncKnativeServingHook) -> None:
        """Renew the rollout lock every third of its duration until cancelled (when the wait ends).

        The first renewal waits one interval: the step renewed the lock just before it started this wait,
        and by then the watch has read the connection, which the hook caches. (Airflow's task SDK cannot
        serve two connection reads at once from one event loop: DeadlockImminentError in a worker.)
        """
        assert self.renew_lock is not None
        lock = self.renew_lock
        interval = max(1.0, float(lock["duration_seconds"]) / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                held = await renew_async(
                    hook,
                    lock["service"],
                    lock["namespace"],
                    lock["rollout_id"],
                    int(lock["duration_seconds"]),
                )
            except Exception as error:  # the wait goes on; the next step renews or sees the loss
                self.log.warning("Could not renew the rollout lock: %s", error_text(error))
            else:
                if not held:
                    self.log.warning("Rollout lock of %s is no longer held by this rollout", lock["service"])
                    return

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the import path and the arguments that recreate this trigger."""
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        # ``carry`` comes back in the event because the task resumes from the event alone.
        payload = {**self.carry, **extra}
        return TriggerEvent(
            {**payload, "status": status, "message": message, "name": self.name, "namespace": self.namespace}
        )

    def decide(self, obj: dict[str, Any] | None) -> TriggerEvent | None:
        """Return the final event for this state of the object, or ``None`` to keep watching."""
        raise NotImplementedError

    def _watch_failed(self, error: Exception) -> TriggerEvent:
        """Return the ``error`` event of a watch that ended with ``error``."""
        # A refusal (403, 404, 400...) fails the same way on every retry: say so, so the task need not
        # retry; anything else (the cluster stayed unreachable) may pass.
        extra: dict[str, Any] = {"permanent": isinstance(error, KnativeRolloutError)}
        if isinstance(error, KnativeWatchRefusedError):
            extra["reason"] = error.reason
        return self._event(
            "error",
            f"watching {self.resource.kind} {self.namespace}/{self.name} failed: {error_text(error)}",
            **extra,
        )

    def progress(self, obj: dict[str, Any] | None) -> str:
        """Return what the object looked like last, for the timeout message."""
        if obj is None:
            return "it does not exist"
        ready = condition(obj, "Ready") or {}
        parts = (f"Ready={ready.get('status', 'Unknown')}", ready.get("reason"), ready.get("message"))
        return " ".join(str(part) for part in parts if part)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Watch the object and yield exactly one event (renewing the rollout lock meanwhile, if asked)."""
        hook = AsyncKnativeServingHook(**self.hook_params)
        keeper = asyncio.create_task(self._keep_lock(hook)) if self.renew_lock else None
        try:
            async for event in self._watch(hook):
                yield event
                return
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    async def _watch(self, hook: AsyncKnativeServingHook) -> AsyncIterator[TriggerEvent]:
        last: dict[str, Any] | None = None
        try:
            async for obj in hook.watch_object(
                self.resource, self.name, self.namespace, timeout_seconds=self.timeout_seconds
            ):
                last = obj
                event = self.decide(obj)
                if event is not None:
                    yield event
                    return
        except Exception as error:
            yield self._watch_failed(error)
            return
        yield self._event(
            "timeout",
            f"{self.resource.kind} {self.namespace}/{self.name} did not get there within "
            f"{self.timeout_seconds:g}s; last seen: {self.progress(last)}",
        )


class KnativeRevisionReadyTrigger(_KnativeWatchTrigger):
    """Wait until a Revision is Ready (success) or reports Ready=False (failed, with Knative's reason).

    :param name: revision name.
    :param namespace: its namespace.
    :param timeout_seconds: how long to wait before yielding a ``timeout`` event.
    :param hook_params: keyword arguments of :class:`AsyncKnativeServingHook` (connection).
    :param carry: small values the resumed task needs, returned in the event.
    :param renew_lock: ``{"service", "namespace", "rollout_id", "duration_seconds"}``: the rollout lock
        this wait renews while it lasts.
    """

    resource = REVISION

    def decide(self, obj: dict[str, Any] | None) -> TriggerEvent | None:
        """Return success when Ready, failed when Knative gave up on the revision."""
        if obj is None:
            return self._event(
                "failed", f"revision {self.namespace}/{self.name} was deleted", reason="Deleted"
            )
        ready = condition(obj, "Ready") or {}
        if ready.get("status") == "True":
            return self._event("success", f"revision {self.name} is Ready", reason="Ready")
        if ready.get("status") == "False":
            reason = str(ready.get("reason") or "NotReady")
            return self._event(
                "failed",
                f"revision {self.name} failed: {reason}: {ready.get('message', '')}".rstrip(": "),
                reason=reason,
            )
        return None


class KnativeServiceReadyTrigger(_KnativeWatchTrigger):
    """Wait until a Service has reconciled its latest spec and is Ready, or serves ``expected_traffic``.

    :param name: service name.
    :param namespace: its namespace.
    :param expected_traffic: when given, success means ``status.traffic`` matches these targets
        (revision, percent, tag) and routes are ready; the Service as a whole may still be not Ready
        (a failed newer revision must not block moving traffic between good ones). When another writer
        has replaced these targets in the spec since, they will never be served: the event is a success
        with ``superseded: True`` and the traffic served now.
    :param timeout_seconds: how long to wait before yielding a ``timeout`` event.
    :param hook_params: keyword arguments of :class:`AsyncKnativeServingHook` (connection).
    :param carry: small values the resumed task needs, returned in the event.
    :param renew_lock: the rollout lock this wait renews while it lasts (see the Revision trigger).
    """

    resource = KSVC

    def __init__(self, *, expected_traffic: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expected_traffic = expected_traffic

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "expected_traffic": self.expected_traffic}

    def decide(self, obj: dict[str, Any] | None) -> TriggerEvent | None:
        """Return success once the Service serves what was asked; failed when it is gone or failed."""
        if obj is None:
            return self._event(
                "failed", f"service {self.namespace}/{self.name} was deleted", reason="Deleted"
            )
        status = obj.get("status") or {}
        if status.get("observedGeneration", 0) < obj.get("metadata", {}).get("generation", 0):
            return None
        served: list[dict[str, Any]] = list(status.get("traffic") or [])
        summary = {"url": status.get("url"), "traffic": served}
        if self.expected_traffic is not None:
            wanted = traffic_keys(self.expected_traffic)
            if traffic_keys((obj.get("spec") or {}).get("traffic") or []) != wanted:
                return self._event(
                    "success",
                    f"service {self.name}: another writer replaced this traffic split before it was served; "
                    f"it serves {sorted(traffic_keys(served), key=str)} now",
                    superseded=True,
                    **summary,
                )
            routes = condition(obj, "RoutesReady")
            routes_ready = routes is None or routes.get("status") == "True"
            if routes_ready and traffic_keys(served) == wanted:
                return self._event("success", f"service {self.name} serves the requested traffic", **summary)
            return None
        ready = condition(obj, "Ready") or {}
        if ready.get("status") == "True":
            return self._event("success", f"service {self.name} is Ready", **summary)
        configurations = condition(obj, "ConfigurationsReady") or {}
        if configurations.get("status") == "False":
            return self._event(
                "failed",
                f"service {self.name} is not Ready: {configurations.get('reason', '')}: "
                f"{configurations.get('message', '')}",
                reason=configurations.get("reason"),
                **summary,
            )
        return None

    def progress(self, obj: dict[str, Any] | None) -> str:
        """Return readiness and the traffic the Service served last."""
        if obj is None or self.expected_traffic is None:
            return super().progress(obj)
        served = sorted(traffic_keys((obj.get("status") or {}).get("traffic") or []), key=str)
        wanted = sorted(traffic_keys(self.expected_traffic), key=str)
        return f"{super().progress(obj)}; traffic {served}, wanted {wanted}"


class KnativeLockFreeTrigger(_KnativeWatchTrigger):
    """Wait until a Service's rollout Lease is free: released, or expired because its holder stopped renewing.

    The Lease is watched; since expiry is the passing of time rather than a change, each watch lasts only
    until the current holder's Lease would expire, then the Lease is judged again.

    :param name: the Lease name (``lease_name(service)``).
    :param namespace: its namespace.
    :param rollout_id: the rollout that waits (a Lease it holds already counts as free).
    :param timeout_seconds: how long to wait before yielding a ``timeout`` event.
    :param hook_params: keyword arguments of :class:`AsyncKnativeServingHook` (connection).
    :param carry: small values the resumed task needs, returned in the event.
    """

    resource = LEASE

    def __init__(self, *, rollout_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rollout_id = rollout_id

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "rollout_id": self.rollout_id}

    def decide(self, obj: dict[str, Any] | None) -> TriggerEvent | None:
        """Return success once nobody else holds the Lease."""
        holding = holding_of(obj, datetime.now(UTC))
        if holding.held_by_other(self.rollout_id):
            return None
        return self._event("success", f"rollout lock {self.name} is free", previous_holder=holding.holder)

    def progress(self, obj: dict[str, Any] | None) -> str:
        """Return who held the Lease last."""
        holding = holding_of(obj, datetime.now(UTC))
        return f"held by {holding.holder} since {holding.since}" if holding.holder else "free"

    async def _watch(self, hook: AsyncKnativeServingHook) -> AsyncIterator[TriggerEvent]:
        """Read the Lease, then watch it until its holder's time is up; again, until free or timed out.

        Each round starts from a fresh read, so a slow or dropped watch never reads as "no Lease, free";
        an API that refuses for good (403, 404 on the resource type) ends the wait at once.
        """
        deadline = time.monotonic() + self.timeout_seconds
        last: dict[str, Any] | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                last = await read_lease_async(hook, self.name, self.namespace)
                event = self.decide(last)
                if event is not None:
                    yield event
                    return
                window = min(
                    remaining, holding_of(last, datetime.now(UTC)).seconds_left(datetime.now(UTC)) + 0.5
                )
                async for obj in hook.watch_object(
                    self.resource, self.name, self.namespace, timeout_seconds=window
                ):
                    last = obj
                    event = self.decide(obj)
                    if event is not None:
                        yield event
                        return
            except KnativeRolloutError as error:
                yield self._watch_failed(error)
                return
            except Exception as error:  # a blip: the next round reads the Lease again
                self.log.warning("Waiting for %s: %s; reading it again", self.name, error_text(error))
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        yield self._event(
            "timeout",
            f"rollout lock {self.namespace}/{self.name} was not free within {self.timeout_seconds:g}s; "
            f"{self.progress(last)}",
        )


def run_inline(trigger: BaseTrigger, *, within: float | None = None) -> dict[str, Any] | None:
    """Run a trigger in this process until its single event and return the event's payload.

    :param within: seconds after which to stop watching and return ``None`` (the task then defers);
        ``None`` waits for the event, however long the trigger takes (the non-deferrable mode).
    """

    async def first_event() -> dict[str, Any]:
        # Closed here rather than by the garbage collector: the watch's connection ends with the event.
        async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
            async for event in events:
                return dict(event.payload)
        return {"status": "error", "message": f"{type(trigger).__name__} ended without an event"}

    async def bounded() -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(within):
                return await first_event()
        except TimeoutError:
            # Only the bound above raises it: a trigger turns its own errors into an event.
            return None

    return asyncio.run(bounded())


class KnativeAnalysisTrigger(_KnativeWatchTrigger):
    """Wait out an analysis window in the triggerer, then judge the candidate on its metrics.

    The window is waited for with ``asyncio.sleep`` (Prometheus: until ``end`` plus ``settle``, then the
    stored window is read; direct scrape: the scrapes themselves take the window), so no worker slot is
    held, and the rollout lock is renewed meanwhile (``renew_lock``). The event's ``verdict`` is
    ``pass``/``fail``/``inconclusive`` and ``analysis`` the report
    (:meth:`~knative_rollout.analysis.AnalysisResult.to_dict`). A metrics source that cannot be read
    gives an ``error`` event (``permanent`` false: worth measuring again); an analysis that can never
    work (a query Prometheus refuses, bad configuration) one with ``permanent`` true.

    :param name: the Knative Service.
    :param namespace: its namespace.
    :param canary: the revision under test.
    :param baseline: the revision to compare with (the stable), or ``None`` for SLO checks only.
    :param analysis: the ``analysis`` mapping (see :mod:`knative_rollout.analysis.config`).
    :param end: epoch seconds at which the window ends (Prometheus); ``None``: from now on.
    :param prometheus_url: the Prometheus URL resolved from ``metrics_conn_id``.
    :param headers: request headers resolved from that connection (credentials).
    :param load: synthetic load to send during the window, one target per judged revision: ``{"revision",
        "url", "host", "connect_to", "rate", "method", "headers", "bodies", "timeout"}`` (the open-model
        engine of :mod:`knative_rollout.loadtest`, run in this event loop); the report gets ``load``.
    :param timeout_seconds: how long the whole analysis may take before a ``timeout`` event.
    :param hook_params: keyword arguments of :class:`AsyncKnativeServingHook` (for the lock renewal).
    :param carry: small values the resumed task needs, returned in the event.
    :param renew_lock: the rollout lock this wait renews while it lasts.
    """

    def __init__(
        self,
        *,
        canary: str,
        baseline: str | None,
        analysis: Mapping[str, Any],
        end: float | None = None,
        prometheus_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        load: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.load = list(load) if load else None
        self.canary = canary
        self.baseline = baseline
        self.analysis = dict(analysis)
        self.end = end
        self.prometheus_url = prometheus_url
        self.headers = dict(headers or {})

    def _kwargs(self) -> dict[str, Any]:
        return {
            **super()._kwargs(),
            "canary": self.canary,
            "baseline": self.baseline,
            "analysis": self.analysis,
            "end": self.end,
            "prometheus_url": self.prometheus_url,
            "headers": self.headers,
            "load": self.load,
        }

    def _send_load(self, seconds: float) -> list[asyncio.Task[Any]]:
        """Start the synthetic load: ``seconds`` of open-model requests to each target, in this event loop."""
        from knative_rollout.loadtest import LoadTestConfig, run_load_test

        tasks: list[asyncio.Task[Any]] = []
        for target in self.load or []:
            config = LoadTestConfig(
                url=target["url"],
                rate=float(target["rate"]),
                duration_s=max(0.5, seconds),
                timeout_s=float(target["timeout"]),
                method=target.get("method"),
                host=target.get("host"),
                connect_to=target.get("connect_to"),
                headers=tuple((target.get("headers") or {}).items()),
                bodies=tuple(str(body).encode() for body in target.get("bodies") or ()),
                # The load must cover the analysis window from its start: a serving revision needs no
                # warm-up, and one that fails must be measured failing, not waited on.
                warmup_s=0,
            )
            tasks.append(asyncio.create_task(run_load_test(config)))
        return tasks

    async def _load_summary(self, tasks: list[asyncio.Task[Any]]) -> list[dict[str, Any]]:
        """Wait for the load to end (it ends with the window) and summarise what each target answered."""
        results = await asyncio.gather(*tasks, return_exceptions=True)
        summary: list[dict[str, Any]] = []
        for target, result in zip(self.load or [], results, strict=True):
            if isinstance(result, BaseException):
                summary.append(
                    {"revision": target["revision"], "url": target["url"], "error": error_text(result)}
                )
                continue
            summary.append(
                {
                    "revision": target["revision"],
                    "url": target["url"],
                    "requests": result.requests,
                    "answered": result.completed,
                    "succeeded": result.succeeded,
                    "error_rate": result.error_rate,
                }
            )
        return summary

    async def _watch(self, hook: AsyncKnativeServingHook) -> AsyncIterator[TriggerEvent]:
        from knative_rollout.analysis import AnalysisConfig, MetricsUnavailable, analyse_configured

        ids = {"canary": self.canary, "baseline": self.baseline}
        try:
            config = AnalysisConfig.of(self.analysis)
        except ValueError as error:
            yield self._event("error", f"analysis is misconfigured: {error}", permanent=True, **ids)
            return
        # The load runs over the window itself: from now to its end (Prometheus), or the scrapes' window.
        prometheus_end = self.end if config.reads_prometheus else None
        load = self._send_load(config.window if prometheus_end is None else prometheus_end - time.time())
        try:
            async with asyncio.timeout(self.timeout_seconds):
                if prometheus_end is not None:
                    # Sleep, not poll: the window's metrics exist only once it is over and scraped.
                    await asyncio.sleep(max(0.0, prometheus_end + config.settle - time.time()))
                result = await analyse_configured(
                    config,
                    namespace=self.namespace,
                    canary=self.canary,
                    baseline=self.baseline,
                    end=self.end,
                    prometheus_url=self.prometheus_url,
                    headers=self.headers,
                )
                load_summary = await self._load_summary(load) if load else None
        except TimeoutError:
            yield self._event(
                "timeout",
                f"the analysis of {self.canary} did not finish within {self.timeout_seconds:g}s",
                **ids,
            )
            return
        except MetricsUnavailable as error:
            yield self._event(
                "error", f"metrics could not be read: {error_text(error)}", permanent=False, **ids
            )
            return
        except ValueError as error:  # a refused query, bad input: the same on every try
            yield self._event("error", f"analysis refused: {error_text(error)}", permanent=True, **ids)
            return
        finally:
            for task in load:  # a load still running when the analysis ended early stops with it
                task.cancel()
        report = result.to_dict() | ({"load": load_summary} if load_summary is not None else {})
        yield self._event(
            "success",
            f"analysis of {self.canary}: {result.verdict.value}: {result.reason}",
            verdict=result.verdict.value,
            analysis=report,
            **ids,
        )
