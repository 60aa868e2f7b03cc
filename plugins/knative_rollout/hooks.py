"""The only code that talks to the Kubernetes API: Knative Services and Revisions, rollout state, Events.

``KnativeServingHook`` (sync) is what operators use; ``AsyncKnativeServingHook`` is what triggers use to
watch objects without holding a worker. Both take Airflow's ``kubernetes`` connection
(``kubernetes_conn_id``: kubeconfig path or content in the extras, or in-cluster), or a GKE cluster
reached through the google provider (``gcp_conn_id``, ``project_id``, ``location``, ``cluster_name``),
exactly as ``GKEStartPodOperator`` does, so the same DAG runs on Cloud Composer.

Temporary API failures (429, 5xx, connection errors) are retried here with exponential backoff; a 409
on an update re-reads the object and re-applies the change. Everything else is permanent and raised as
a :mod:`knative_rollout.exceptions` error whose message says what the API refused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook, KubernetesHook
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as async_client
from kubernetes_asyncio import watch as async_watch
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException
from urllib3.exceptions import HTTPError

from knative_rollout.exceptions import (
    KnativeApiRejectedError,
    KnativeInputError,
    KnativeNotFoundError,
    KnativeTemporaryError,
    error_text,
)
from knative_rollout.resources import KSVC, REVISION, SERVICE_LABEL, Guardrails, Resource, RolloutInputError

GUARDRAILS_VARIABLE = "knative_rollout_guardrails"
GUARDRAILS_EXTRA = "guardrails"
TEMPORARY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT_SECONDS = 30

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
        """Run one API call, retrying temporary failures with exponential backoff."""
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except ApiException as error:
                if error.status not in TEMPORARY_STATUSES or attempt == self.max_attempts:
                    raise
                self.log.warning("%s: HTTP %s, retrying in %.1fs", what, error.status, delay)
            except (HTTPError, OSError) as error:
                if attempt == self.max_attempts:
                    raise KnativeTemporaryError(
                        f"{what} failed: the Kubernetes API is unreachable ({error_text(error)}); check the "
                        "connection and that the cluster is up, then retry"
                    ) from error
                self.log.warning("%s: %s, retrying in %.1fs", what, error_text(error), delay)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _rejected(self, what: str, error: ApiException) -> Exception:
        message = api_message(error)
        if error.status in TEMPORARY_STATUSES:
            return KnativeTemporaryError(
                f"{what} failed after {self.max_attempts} attempts: HTTP {error.status}: {message}; "
                "retry later"
            )
        if error.status == 404:
            return KnativeNotFoundError(f"{what}: not found: {message}")
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

    def _delete(self, resource: Resource, name: str, namespace: str) -> bool:
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
        return self._delete(KSVC, name, namespace)

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
        return self._delete(REVISION, name, namespace)

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
    """

    def __init__(
        self,
        *,
        kubernetes_conn_id: str | None = KubernetesHook.default_conn_name,
        cluster_url: str | None = None,
        ssl_ca_cert: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)
        self.cluster_url = cluster_url
        self.ssl_ca_cert = ssl_ca_cert
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain

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

        The watch resumes from the last resourceVersion when the server closes the stream (or a stalled
        stream times out on this side), and starts over (current state first) when that version has
        expired (410). Ends after ``timeout_seconds``.
        """
        deadline = time.monotonic() + timeout_seconds
        resource_version: str | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            async with self.get_conn() as api_client:
                api = async_client.CustomObjectsApi(api_client)
                watcher = async_watch.Watch()
                server_timeout = max(1, int(remaining))
                kwargs: dict[str, Any] = {
                    "field_selector": f"metadata.name={name}",
                    "timeout_seconds": server_timeout,
                    # Without it the cncf provider's client bounds the whole stream by its API_TIMEOUT (60 s)
                    # and ends a longer wait with a bare TimeoutError: the server ends the stream instead.
                    "_request_timeout": server_timeout + REQUEST_TIMEOUT_SECONDS,
                }
                if resource_version:
                    kwargs["resource_version"] = resource_version
                try:
                    async for event in watcher.stream(
                        api.list_namespaced_custom_object,
                        resource.group,
                        resource.version,
                        namespace,
                        resource.plural,
                        **kwargs,
                    ):
                        if event["type"] == "BOOKMARK":
                            continue
                        obj = event["raw_object"]
                        resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                        yield None if event["type"] == "DELETED" else obj
                except AsyncApiException as error:
                    if error.status != 410:
                        raise
                    resource_version = None
                except TimeoutError:
                    self.log.info("Watch of %s %s/%s stalled; reconnecting", resource.kind, namespace, name)
                finally:
                    await watcher.close()
