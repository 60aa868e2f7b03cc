"""The only code that talks to the Kubernetes API: Knative Services and Revisions, rollout state, Events.

``KnativeServingHook`` (sync) is what operators use; ``AsyncKnativeServingHook`` is what triggers use to
watch objects without holding a worker. Both take Airflow's ``kubernetes`` connection
(``kubernetes_conn_id``: kubeconfig path or content in the extras, or in-cluster), or a GKE cluster
reached through the google provider (``gcp_conn_id``, ``project_id``, ``location``, ``cluster_name``),
exactly as ``GKEStartPodOperator`` does, so the same DAG runs on Cloud Composer.

Temporary API failures (429, 5xx, connection errors) are retried here with exponential backoff, or after
the ``Retry-After`` a 429/503 names; a 409 on an update re-reads the object and re-applies the change. A
watch that drops resumes from its last resourceVersion. Everything else is permanent and raised as a
:mod:`knative_rollout.exceptions` error whose message says what the API refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.utils
import functools
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

import aiohttp
import tenacity
from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook, KubernetesHook
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as async_client
from kubernetes_asyncio import watch as async_watch
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException
from kubernetes_asyncio.client.rest import RESTResponse
from urllib3.exceptions import HTTPError

from knative_rollout.diagnostics import secrets_redactor
from knative_rollout.exceptions import (
    KnativeApiRejectedError,
    KnativeInputError,
    KnativeNotFoundError,
    KnativeTemporaryError,
    KnativeWatchRefusedError,
    error_text,
)
from knative_rollout.resources import KSVC, REVISION, SERVICE_LABEL, Guardrails, Resource, RolloutInputError
from knative_rollout.resources.diagnostics import (
    LOG_LIMIT_BYTES,
    LOG_LINES,
    LOG_PODS,
    REVISION_LABEL,
    PodLog,
    RevisionDiagnostics,
    conditions_of,
    container_state,
    newest_pods,
    pod_container,
    tail,
    user_container,
)

GUARDRAILS_VARIABLE = "knative_rollout_guardrails"
GUARDRAILS_EXTRA = "guardrails"
TEMPORARY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT_SECONDS = 30
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_SECONDS = 30.0
"""A longer Retry-After is waited only this long: a wait past it is the task's retries' business."""
MAX_BACKOFF_SECONDS = 30.0
# What a dropped watch raises: aiohttp's errors (server disconnect, payload not completed, connection
# reset or refused), bare socket errors, and the client-side timeout of a stalled stream.
WATCH_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)

T = TypeVar("T")


def utc_now() -> str:
    """Return the current time as RFC 3339 with a ``Z``, as Kubernetes writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_message(error: ApiException | AsyncApiException) -> str:
    """Return the human message of a Kubernetes API error (the Status ``message``), or its reason."""
    try:
        status = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return str(error.reason or error)


def retry_after_seconds(
    status: int | None, headers: Mapping[str, str] | None, *, cap: float = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Return how long a 429 or 503 answer asked to wait (``Retry-After``), at most ``cap`` seconds.

    :return: the seconds (delta-seconds or an HTTP date), or ``None`` when the answer did not say.
    """
    value = (headers or {}).get("Retry-After") if status in RETRY_AFTER_STATUSES else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


class WaitRetryAfterOr(tenacity.wait.wait_base):
    """Wait what a 429/503 asked for in ``Retry-After`` (capped), else what ``fallback`` says.

    The cncf provider's ``WaitRetryAfterOrExponential`` honours only 429, whole seconds and no cap, and
    falls back to the ``[workers] api_retry_wait_*`` settings; this one is the same idea for both API
    errors, with the hook's own backoff.

    :param fallback: the wait when the answer named none (exponential backoff).
    :param cap: the longest Retry-After waited.
    """

    def __init__(self, fallback: tenacity.wait.wait_base, *, cap: float = MAX_RETRY_AFTER_SECONDS) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        """Return the seconds to wait before the next attempt."""
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(error, ApiException | AsyncApiException):
            asked = retry_after_seconds(error.status, error.headers, cap=self.cap)
            if asked is not None:
                return asked
        return float(self.fallback(retry_state))


def _temporary_sync_failure(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TEMPORARY_STATUSES
    return isinstance(error, HTTPError | OSError)


def _failure_text(error: BaseException | None) -> str:
    if isinstance(error, ApiException | AsyncApiException):
        return f"HTTP {error.status}: {api_message(error)}"
    return error_text(error) if error is not None else "no error"


class KnativeServingHook(KubernetesHook):
    """Read and change Knative Services and Revisions, with retries and optimistic concurrency.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection.
    :param gcp_conn_id: Google Cloud connection, when the cluster is GKE (with ``cluster_name``).
    :param project_id: GKE project (defaults to the Google connection's project).
    :param location: GKE cluster location (region or zone).
    :param cluster_name: GKE cluster name; when set, the cluster is reached through the google provider.
    :param impersonation_chain: optional service account(s) to impersonate on GKE.
    :param max_attempts: attempts for temporary errors and 409 conflicts before giving up.
    :param backoff_seconds: first wait between attempts; it doubles after each.
    """

    def __init__(
        self,
        *,
        kubernetes_conn_id: str | None = KubernetesHook.default_conn_name,
        gcp_conn_id: str = "google_cloud_default",
        project_id: str | None = None,
        location: str | None = None,
        cluster_name: str | None = None,
        impersonation_chain: str | list[str] | None = None,
        max_attempts: int = 6,
        backoff_seconds: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location
        self.cluster_name = cluster_name
        self.impersonation_chain = impersonation_chain
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.conflicts = 0
        """How many 409 conflicts this hook resolved by re-reading; tests and logs use it."""

    # -- connection -----------------------------------------------------------------------------------

    @cached_property
    def gke_cluster_info(self) -> tuple[str, str]:
        """Return the GKE cluster's endpoint URL and CA certificate, read through the google provider."""
        from airflow.providers.google.cloud.hooks.kubernetes_engine import GKEHook
        from airflow.providers.google.cloud.operators.kubernetes_engine import GKEClusterAuthDetails

        cluster_hook = GKEHook(
            gcp_conn_id=self.gcp_conn_id, location=self.location, impersonation_chain=self.impersonation_chain
        )
        return GKEClusterAuthDetails(
            cluster_name=str(self.cluster_name),
            project_id=self.project_id,  # type: ignore[arg-type]  # None means the connection's project
            use_internal_ip=False,
            use_dns_endpoint=False,
            cluster_hook=cluster_hook,
        ).fetch_cluster_info()

    def get_conn(self) -> client.ApiClient:
        """Return an API client for the ``kubernetes`` connection, or for the named GKE cluster."""
        if not self.cluster_name:
            return super().get_conn()
        from airflow.providers.google.cloud.hooks.kubernetes_engine import GKEKubernetesHook

        cluster_url, ssl_ca_cert = self.gke_cluster_info
        return GKEKubernetesHook(
            cluster_url=cluster_url,
            ssl_ca_cert=ssl_ca_cert,
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
        ).get_conn()

    def check_connection(self) -> None:
        """Read the connection now, so a missing one fails with a clear message before any API call."""
        if self.cluster_name:
            return
        try:
            self.conn_extras  # noqa: B018 - reading it is the check
        except Exception as error:
            raise KnativeInputError(
                f"Airflow connection {self.conn_id!r} cannot be read ({error_text(error)}); create a "
                "'kubernetes' connection with that id (kube_config_path in its extras, or in_cluster) or "
                "pass another kubernetes_conn_id"
            ) from error

    def check_namespace_exists(self, namespace: str) -> None:
        """Fail when the namespace does not exist, so a wait in it fails at once instead of at its timeout.

        Reading a namespace needs ``get`` on ``namespaces``, which a namespaced Role may not grant: a 403
        is no proof of absence, so the wait goes on (and the watch itself reports any missing permission).

        :raises KnativeNotFoundError: when the API says the namespace does not exist.
        """
        what = f"reading namespace {namespace}"
        try:
            self._call(
                what,
                lambda: self.core_v1_client.read_namespace(
                    namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
                ),
            )
        except ApiException as error:
            if error.status == 403:
                self.log.info("%s: not allowed (HTTP 403), so not checked: %s", what, api_message(error))
                return
            if error.status == 404:
                raise KnativeNotFoundError(
                    f"namespace {namespace!r} does not exist, so nothing in it can become Ready; fix the "
                    f"namespace argument or create it (kubectl create namespace {namespace})"
                ) from error
            raise self._rejected(what, error) from error

    def load_guardrails(self) -> Guardrails:
        """Return the guardrails: the connection extra ``guardrails``, else the Airflow Variable.

        :raises KnativeInputError: when the configured guardrails are malformed.
        """
        try:
            if not self.cluster_name and self.conn_extras.get(GUARDRAILS_EXTRA):
                source = f"the extras of connection {self.conn_id!r}"
                return Guardrails.from_config(self.conn_extras[GUARDRAILS_EXTRA], source)
            from airflow.sdk import Variable

            return Guardrails.from_config(
                Variable.get(GUARDRAILS_VARIABLE, default=None), f"Airflow Variable {GUARDRAILS_VARIABLE!r}"
            )
        except RolloutInputError as error:
            raise KnativeInputError(str(error)) from error

    # -- low-level call with retries ------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run one API call, retrying temporary failures with backoff (tenacity, as the cncf provider does).

        A 429 or 503 that says ``Retry-After`` is retried after that long (at most
        :data:`MAX_RETRY_AFTER_SECONDS`), other temporary failures after ``backoff_seconds``, doubling.
        The cncf provider's ``generic_api_retry`` is not used as is: it also retries 409, which the
        callers here answer themselves (re-read and re-apply, or "exists already").

        :raises ApiException: a permanent status, or a temporary one that persisted ``max_attempts`` times.
        :raises KnativeTemporaryError: when the API stayed unreachable.
        """

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            self.log.warning("%s: %s, retrying in %.1fs", what, _failure_text(error), state.upcoming_sleep)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=WaitRetryAfterOr(
                tenacity.wait_exponential(multiplier=self.backoff_seconds, max=MAX_BACKOFF_SECONDS)
            ),
            retry=tenacity.retry_if_exception(_temporary_sync_failure),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(call)
        except (HTTPError, OSError) as error:
            raise KnativeTemporaryError(
                f"{what} failed: the Kubernetes API is unreachable ({error_text(error)}); check the "
                "connection and that the cluster is up, then retry"
            ) from error

    def _rejected(self, what: str, error: ApiException) -> Exception:
        message = api_message(error)
        if error.status in TEMPORARY_STATUSES:
            return KnativeTemporaryError(
                f"{what} failed after {self.max_attempts} attempts: HTTP {error.status}: {message}; "
                "retry later"
            )
        if error.status == 404:
            return KnativeNotFoundError(f"{what}: not found: {message}")
        if error.status == 403:
            return KnativeApiRejectedError(
                f"{what} was rejected by the Kubernetes API (HTTP 403): {message}; grant that verb to the "
                f"identity of connection {self.conn_id!r} in a Role bound to it (include/manifests/rbac.yaml "
                "has what a rollout needs), or use another namespace"
            )
        return KnativeApiRejectedError(
            f"{what} was rejected by the Kubernetes API (HTTP {error.status}): {message}"
        )

    @cached_property
    def custom_api(self) -> client.CustomObjectsApi:
        """Return the custom-objects API (Knative resources)."""
        return client.CustomObjectsApi(api_client=self.api_client)

    def _custom(
        self,
        what: str,
        verb: str,
        resource: Resource,
        namespace: str,
        *args: Any,
        answers: Mapping[int, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``{verb}_namespaced_custom_object`` for ``resource``, retrying temporary failures.

        :param answers: what to return instead of raising for some statuses (404 on a read, 409 on a create).
        :raises KnativeNotFoundError, KnativeApiRejectedError, KnativeTemporaryError: for other failures.
        """
        method = getattr(self.custom_api, f"{verb}_namespaced_custom_object")
        try:
            return self._call(
                what,
                lambda: method(
                    resource.group,
                    resource.version,
                    namespace,
                    resource.plural,
                    *args,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                    **kwargs,
                ),
            )
        except ApiException as error:
            if answers and error.status in answers:
                return answers[error.status]
            raise self._rejected(what, error) from error

    def find(self, resource: Resource, name: str, namespace: str) -> dict[str, Any] | None:
        """Return a namespaced Knative object, or ``None`` when it does not exist."""
        what = f"reading {resource.kind} {namespace}/{name}"
        return self._custom(what, "get", resource, namespace, name, answers={404: None})

    def create_object(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a namespaced object; return ``None`` when one of that name exists already (lost a race)."""
        metadata = body["metadata"]
        what = f"creating {resource.kind} {metadata['namespace']}/{metadata['name']}"
        return self._custom(what, "create", resource, metadata["namespace"], body, answers={409: None})

    def replace_object(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
        """Replace a namespaced object at its ``resourceVersion``; return ``None`` on a 409 conflict."""
        metadata = body["metadata"]
        what = f"updating {resource.kind} {metadata['namespace']}/{metadata['name']}"
        return self._custom(
            what, "replace", resource, metadata["namespace"], metadata["name"], body, answers={409: None}
        )

    def delete_object(self, resource: Resource, name: str, namespace: str) -> bool:
        """Delete a namespaced object; return whether it existed."""
        what = f"deleting {resource.kind} {namespace}/{name}"
        return self._custom(what, "delete", resource, namespace, name, answers={404: None}) is not None

    # -- services -------------------------------------------------------------------------------------

    def find_service(self, name: str, namespace: str) -> dict[str, Any] | None:
        """Return the Knative Service, or ``None`` when it does not exist."""
        return self.find(KSVC, name, namespace)

    def get_service(self, name: str, namespace: str) -> dict[str, Any]:
        """Return the Knative Service (``status.url``, ``status.traffic[].url`` per tag, ...).

        :raises KnativeNotFoundError: when it does not exist.
        """
        service = self.find_service(name, namespace)
        if service is None:
            raise KnativeNotFoundError(
                f"Knative Service {namespace}/{name} does not exist; deploy it first "
                "(KnativeDeployRevisionOperator) or check the name and namespace"
            )
        return service

    def list_services(self, namespace: str) -> list[dict[str, Any]]:
        """Return the Knative Services of a namespace."""
        result = self._custom(f"listing Services in namespace {namespace}", "list", KSVC, namespace)
        return list(result.get("items") or [])

    def create_service(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a Knative Service; return ``None`` when one of that name already exists (lost a race)."""
        namespace = body["metadata"]["namespace"]
        what = f"creating Service {namespace}/{body['metadata']['name']}"
        return self._custom(what, "create", KSVC, namespace, body, answers={409: None})

    def update_service(
        self, name: str, namespace: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> tuple[dict[str, Any], bool]:
        """Apply ``mutate`` to the current Service and write it back with optimistic concurrency.

        ``mutate`` gets a copy of the Service as read and returns the object to write, or ``None`` when
        nothing needs to change. On 409 Conflict (someone wrote in between) the Service is read again and
        ``mutate`` re-applied, with backoff, up to ``max_attempts`` times.

        :return: the Service after the call and whether it was written.
        """
        what = f"updating Service {namespace}/{name}"
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            current = self.get_service(name, namespace)
            desired = mutate(copy.deepcopy(current))
            if desired is None:
                return current, False
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            written = self._custom(what, "replace", KSVC, namespace, name, desired, answers={409: None})
            if written is not None:
                return written, True
            self.conflicts += 1
            self.log.info("%s: conflict (attempt %d), re-reading and re-applying", what, attempt)
            time.sleep(delay)
            delay *= 2
        raise KnativeTemporaryError(
            f"{what}: the Service kept changing under us ({self.max_attempts} conflicts in a row); "
            "another writer is busy on it, retry later"
        )

    def delete_service(self, name: str, namespace: str) -> bool:
        """Delete a Knative Service (Knative deletes its revisions); return whether it existed."""
        return self.delete_object(KSVC, name, namespace)

    # -- revisions ------------------------------------------------------------------------------------

    def find_revision(self, name: str, namespace: str) -> dict[str, Any] | None:
        """Return the Revision, or ``None`` when it does not exist."""
        return self.find(REVISION, name, namespace)

    def list_revisions(self, service: str, namespace: str) -> list[dict[str, Any]]:
        """Return the Revisions of a Service."""
        result = self._custom(
            f"listing Revisions of Service {namespace}/{service}",
            "list",
            REVISION,
            namespace,
            label_selector=f"{SERVICE_LABEL}={service}",
        )
        return list(result.get("items") or [])

    def delete_revision(self, name: str, namespace: str) -> bool:
        """Delete a Revision; return whether it existed."""
        return self.delete_object(REVISION, name, namespace)

    def revision_diagnostics(
        self, name: str, namespace: str, *, pods: int = LOG_PODS, lines: int = LOG_LINES
    ) -> RevisionDiagnostics:
        """Return a Revision's Knative conditions and the last log lines of its newest pods; never raise.

        A failed candidate is where the operator's question "why?" is answered, so the outcome task and
        the Rollouts page show this instead of sending people to kubectl. Each read that fails (RBAC, a
        pod gone, the API down) becomes one line in ``errors`` or the pod's ``error``; the caller goes
        on. Log lines and messages pass through Airflow's secrets masker, which also learns the values
        of the Revision's env vars whose names Airflow deems sensitive. The pod reads are not retried
        (the Revision's read is, as every read here): a diagnosis is no step of the rollout.

        :param name: the Revision.
        :param namespace: its namespace.
        :param pods: how many of its newest pods to read the logs of.
        :param lines: how many last lines of each pod's log (each line cut at a few hundred characters).
        """
        errors: list[str] = []
        revision: dict[str, Any] | None = None
        try:
            revision = self.find_revision(name, namespace)
            if revision is None:
                errors.append(f"revision {namespace}/{name} does not exist (any more)")
        except Exception as error:
            errors.append(f"reading revision {namespace}/{name} failed: {_failure_text(error)}")
        wanted = user_container(revision)
        logs: list[PodLog] = []
        try:
            listed = self.core_v1_client.list_namespaced_pod(
                namespace,
                label_selector=f"{REVISION_LABEL}={name}",
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            found = self.api_client.sanitize_for_serialization(listed).get("items") or []
        except Exception as error:
            errors.append(f"listing the pods of revision {namespace}/{name} failed: {_failure_text(error)}")
            found = []
        for pod in newest_pods(found, pods):
            pod_name, container = str(pod["metadata"]["name"]), pod_container(pod, wanted)
            state = container_state(pod, container)
            try:
                response = self.core_v1_client.read_namespaced_pod_log(
                    pod_name,
                    namespace,
                    container=container,
                    tail_lines=lines,
                    limit_bytes=LOG_LIMIT_BYTES,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                )
                text = response.data.decode("utf-8", errors="replace")
                logs.append(PodLog(pod_name, container, state, tail(text, lines)))
            except Exception as error:
                failure = f"log not readable: {_failure_text(error)}"
                logs.append(PodLog(pod_name, container, state, error=failure))
        diagnostics = RevisionDiagnostics(
            name, namespace, conditions_of(revision or {}), tuple(logs), tuple(errors)
        )
        return diagnostics.redacted(secrets_redactor([revision]))

    # -- events ---------------------------------------------------------------------------------------

    def record_event(
        self, service: dict[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """Create a core v1 Event about the Service, so ``kubectl describe ksvc`` tells the rollout story.

        An Event is a record, not part of the rollout: failing to write one is logged, not raised.
        """
        metadata = service["metadata"]
        now = utc_now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": KSVC.api_version,
                "kind": KSVC.kind,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "knative-rollout"},
            "reportingComponent": "knative-rollout",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._call(
                f"recording Event {reason}",
                lambda: self.core_v1_client.create_namespaced_event(
                    metadata["namespace"], event, _request_timeout=REQUEST_TIMEOUT_SECONDS
                ),
            )
        except (ApiException, KnativeTemporaryError) as error:
            self.log.warning(
                "Could not record Event %s on %s: %s", reason, metadata["name"], error_text(error)
            )


class AsyncKnativeServingHook(AsyncKubernetesHook):
    """Watch Knative objects from a trigger, without blocking the triggerer's event loop.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection.
    :param cluster_url: GKE endpoint (resolved by the operator through the google provider); with it, the
        Google credentials of ``gcp_conn_id`` authenticate instead of the kubernetes connection.
    :param ssl_ca_cert: the GKE cluster's CA certificate.
    :param gcp_conn_id: Google Cloud connection for GKE.
    :param impersonation_chain: optional service account(s) to impersonate on GKE.
    :param max_reconnects: failed reconnects in a row (no event in between) before a watch gives up.
    :param backoff_seconds: first wait before reconnecting after a failure; it doubles, up to 30 s, with
        jitter. With the defaults a watch rides out about two and a half minutes of API outage.
    """

    def __init__(
        self,
        *,
        kubernetes_conn_id: str | None = KubernetesHook.default_conn_name,
        cluster_url: str | None = None,
        ssl_ca_cert: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | list[str] | None = None,
        max_reconnects: int = 10,
        backoff_seconds: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)
        self.cluster_url = cluster_url
        self.ssl_ca_cert = ssl_ca_cert
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.max_reconnects = max_reconnects
        self.backoff_seconds = backoff_seconds
        self._reconnect_wait_strategy = WaitRetryAfterOr(
            tenacity.wait_exponential_jitter(
                initial=backoff_seconds, max=MAX_BACKOFF_SECONDS, jitter=backoff_seconds
            )
        )

    @contextlib.asynccontextmanager
    async def get_conn(self) -> AsyncIterator[async_client.ApiClient]:
        """Yield an async API client for the kubernetes connection, or for GKE when a cluster URL is set."""
        if not self.cluster_url:
            async with super().get_conn() as api_client:
                yield api_client
            return
        from airflow.providers.google.cloud.hooks.kubernetes_engine import GKEKubernetesAsyncHook

        gke_hook = GKEKubernetesAsyncHook(
            cluster_url=self.cluster_url,
            ssl_ca_cert=str(self.ssl_ca_cert),
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
        )
        async with gke_hook.get_conn() as api_client:
            yield api_client

    async def watch_object(
        self, resource: Resource, name: str, namespace: str, *, timeout_seconds: float
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Yield the object each time it changes (first its current state), ``None`` when it is deleted.

        Whenever the stream ends the watch resumes from the last resourceVersion, so no change is missed
        and none is seen twice: after a clean end (the server's timeout) at once, after a drop (server
        disconnect, a payload cut short, a reset, a stalled stream, 429 or 5xx) at once when the stream had
        delivered events, else after a wait: the answer's ``Retry-After`` on 429/503 (capped), or a
        backoff. It starts over (current state first) when that version has expired (410). Ends after
        ``timeout_seconds``.

        :raises KnativeWatchRefusedError: at once on 403 (a missing permission) or 404 (the resource type
            is not served), with the fix in the message.
        :raises KnativeApiRejectedError: at once on any other refusal (400, 401, ...).
        :raises KnativeTemporaryError: when ``max_reconnects`` reconnects in a row failed, or the next wait
            would outlast ``timeout_seconds``: the cluster is gone, not slow.
        """
        what = f"watching {resource.kind} {namespace}/{name}"
        deadline = time.monotonic() + timeout_seconds
        resource_version: str | None = None
        failures = 0
        while (remaining := deadline - time.monotonic()) > 0:
            delivered = False
            failure: BaseException
            try:
                async with self.get_conn() as api_client:
                    api = async_client.CustomObjectsApi(api_client)
                    watcher = async_watch.Watch()
                    server_timeout = max(1, int(remaining))
                    kwargs: dict[str, Any] = {
                        "field_selector": f"metadata.name={name}",
                        "timeout_seconds": server_timeout,
                        # Without it the cncf provider's client bounds the whole stream by its API_TIMEOUT
                        # (60 s) and ends a longer wait with a bare TimeoutError: the server ends it instead.
                        "_request_timeout": server_timeout + REQUEST_TIMEOUT_SECONDS,
                    }
                    if resource_version:
                        kwargs["resource_version"] = resource_version
                    try:
                        async for event in watcher.stream(
                            _raising_api_errors(api.list_namespaced_custom_object),
                            resource.group,
                            resource.version,
                            namespace,
                            resource.plural,
                            **kwargs,
                        ):
                            if not isinstance(event, dict):
                                # A line that is no JSON: a proxy's page or a line cut short. Reconnect.
                                raise aiohttp.ClientPayloadError(f"not a watch event: {str(event)[:200]!r}")
                            delivered = True
                            obj = event["raw_object"]
                            metadata = obj.get("metadata") or {}
                            resource_version = metadata.get("resourceVersion", resource_version)
                            if event["type"] != "BOOKMARK":
                                yield None if event["type"] == "DELETED" else obj
                    finally:
                        await watcher.close()
            except AsyncApiException as error:
                if error.status == 410 and resource_version is not None:
                    self.log.info("%s: resourceVersion %s expired; starting over", what, resource_version)
                    resource_version = None
                    continue
                if error.status not in TEMPORARY_STATUSES | {410}:
                    raise self._watch_rejected(resource, namespace, error) from error
                failure = error
            except WATCH_CONNECTION_ERRORS as error:
                failure = error
            else:
                failures = 0
                continue
            if delivered:
                failures = 0
                self.log.info("%s: stream dropped (%s); resuming", what, _failure_text(failure))
                continue
            failures += 1
            if failures > self.max_reconnects:
                raise KnativeTemporaryError(
                    f"the Kubernetes API could not be watched {failures} times in a row (last: "
                    f"{_failure_text(failure)}); check the connection and that the cluster is up"
                ) from failure
            wait = self._reconnect_wait(failures, failure)
            if wait >= deadline - time.monotonic():
                raise KnativeTemporaryError(
                    f"the Kubernetes API could not be watched ({_failure_text(failure)}) and the wait ran "
                    "out before the next attempt; check the connection and that the cluster is up"
                ) from failure
            self.log.warning("%s: %s; reconnecting in %.1fs", what, _failure_text(failure), wait)
            await asyncio.sleep(wait)

    def _reconnect_wait(self, failures: int, error: BaseException) -> float:
        """Return how long to wait before reconnect number ``failures`` after ``error``."""
        # The same tenacity wait as the sync hook's retries; a reconnecting stream is no retried call, so
        # the loop is ours and tenacity only says how long.
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = failures
        state.set_exception((type(error), error, error.__traceback__))
        return float(self._reconnect_wait_strategy(state))

    @staticmethod
    def _watch_rejected(resource: Resource, namespace: str, error: AsyncApiException) -> Exception:
        """Return the permanent error for a watch the API refused, saying what to grant or install."""
        message = api_message(error)
        resource_name = f"{resource.plural}.{resource.group}"
        if error.status == 403:
            return KnativeWatchRefusedError(
                f"the Kubernetes API forbids the identity Airflow uses to watch {resource_name} in namespace "
                f"{namespace} (HTTP 403: {message}); grant it the verbs get, list and watch on "
                f"{resource.plural!r} in API group {resource.group!r} there: apply "
                f"include/manifests/rbac.yaml with its namespace set to {namespace!r} (check with "
                f"kubectl auth can-i watch {resource_name} -n {namespace} --as=IDENTITY)",
                reason="Forbidden",
            )
        if error.status == 404:
            return KnativeWatchRefusedError(
                f"the Kubernetes API does not serve {resource_name} {resource.version} in namespace "
                f"{namespace} (HTTP 404: {message}): Knative Serving is not installed in this cluster or not "
                f"at {resource.api_version} (kubectl api-resources --api-group={resource.group}), or "
                f"namespace {namespace!r} does not exist (kubectl get namespace {namespace}); install "
                "Knative Serving or fix the namespace",
                reason="NotFound",
            )
        return KnativeApiRejectedError(
            f"the watch was rejected by the Kubernetes API (HTTP {error.status}): {message}"
        )


def _raising_api_errors(list_call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a list call so that a watch answered with an error status raises it, with headers and body.

    A watch asks for the raw response (``_preload_content=False``), which kubernetes_asyncio returns
    whatever its status; its ``Watch`` then reads a Status body as a line and raises an ``ApiException``
    with neither headers nor body, so a 429's ``Retry-After`` would be lost. ``functools.wraps`` keeps the
    docstring that ``Watch`` reads the return type from.
    """

    @functools.wraps(list_call)
    async def call(*args: Any, **kwargs: Any) -> Any:
        response = await list_call(*args, **kwargs)
        if 200 <= response.status <= 299:
            return response
        try:
            data = await response.read()
        finally:
            response.release()
        raise AsyncApiException(http_resp=RESTResponse(response, data))

    return call
