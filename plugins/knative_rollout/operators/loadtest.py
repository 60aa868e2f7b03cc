"""Gate a revision on a load test against its tag URL: LoadTestGateOperator.

The load runs from the Airflow worker with the pure-asyncio engine in :mod:`knative_rollout.loadtest`
(open model: honest percentiles even when the revision stalls). When the worker cannot reach the service
(a cluster-local URL, a private ingress), run the same engine inside the cluster instead: build the task
with :func:`load_test_pod_operator`, which starts ``python -m knative_rollout.loadtest`` in a pod through
``KubernetesPodOperator`` and passes the report back through the pod's XCom sidecar; the pod's exit code
(1 when the gate fails, 3 when it is inconclusive) fails the task. That path needs an image with this
package installed and a real cluster, so it is not exercised by this repository's tests (local_knative
runs no pods from images).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.exceptions import KnativeInputError, KnativeRolloutConflictError, permanent_input_errors
from knative_rollout.loadtest import (
    DEFAULT_WARMUP_S,
    IntervalStats,
    LoadTestConfig,
    LoadTestConfigError,
    LoadTestResult,
    Slo,
    SloSyntaxError,
    Stage,
    Warmup,
    judge,
    parse_duration,
    render_plot,
    report_json,
    run_load_test,
    summary_of,
)
from knative_rollout.operators.base import CONNECTION_FIELDS, KnativeConnectionOperator
from knative_rollout.resources import parse_bool

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import Context

INGRESS_EXTRA = "ingress_address"
XCOM_KEY = "loadtest"


def _host_resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def _host_port(address: str) -> str:
    """Return ``host:port`` from ``http://host:port`` or ``host:port``."""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    if not parts.hostname or not parts.port:
        raise KnativeInputError(
            f"ingress_address {address!r} needs a host and a port, e.g. http://127.0.0.1:8081 "
            "(local_knative writes it as 'ingress' in endpoints.json)"
        )
    return f"{parts.hostname}:{parts.port}"


def _check_path(path: str, task_id: str) -> None:
    """Refuse a path that would leave the tag URL once appended (``@host``, ``http://``) or split one."""
    if not path:
        return
    if not path.startswith("/") or any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in path):
        raise KnativeInputError(
            f"{task_id}: path {path[:100]!r} must start with '/' and hold no spaces or control characters: "
            "it is appended to the tag URL, so anything else could send the load (and its headers) to "
            "another host or split the request. No load was sent"
        )


def _refused_hint(errors: Mapping[str, int]) -> str:
    """Say what 401 / 403 answers mean, when those are what failed the gate, so nobody tunes the SLO."""
    refused = [kind for kind in ("http_401", "http_403") if kind in errors]
    if not errors or len(refused) != len(errors):
        return ""
    meaning = {
        "http_401": "401: the token sent is not valid (expired, another issuer or audience)",
        "http_403": "403: the request carries no token, or a policy denies this caller",
    }
    return (
        ". The model API refused the load test's requests ("
        + "; ".join(meaning[kind] for kind in refused)
        + "): give the gate a valid token, e.g. headers={'Authorization': "
        "'Bearer {{ conn.NAME.password }}'} from an Airflow connection"
    )


def _storage_path(path: ObjectStoragePath | str) -> ObjectStoragePath:
    if isinstance(path, ObjectStoragePath):
        return path
    return ObjectStoragePath(path if "://" in path else f"file://{path}")


class LoadTestGateOperator(KnativeConnectionOperator):
    """Send synthetic load to a URL or a Knative Service's tag and fail the task when the SLO is violated.

    The target is ``url``, or the URL Knative publishes for ``tag`` of ``service_name`` (its
    ``status.traffic[].url``), read through :class:`~knative_rollout.hooks.KnativeServingHook`. When that
    URL's host does not resolve from the worker (Knative's ``*.example.com`` hosts on local_knative, or a
    domain without DNS), requests go to ``ingress_address`` with the URL's host in the Host header, which
    is how a Knative ingress routes them. ``ingress_address`` comes from the argument or else from the
    ``ingress_address`` extra of the ``kubernetes_conn_id`` connection; for local_knative use the
    ``ingress`` value of its ``endpoints.json``.

    Before measuring, the gate warms the target up: it sends the load's request one at a time until one
    succeeds (by ``expect_status``/``expect_json_field``), for at most ``warmup``, so a candidate Knative
    scaled to zero is judged serving, not on its cold start. Warm-up requests are never measured; the
    summary records ``warmup_s`` (how long it took) and ``warmup_requests``. When nothing succeeds within
    ``warmup`` the log says so and the measurement runs anyway, judging what it finds.

    The report summary (``requests``, ``completed`` (answered), ``succeeded``, ``timeouts``,
    ``offered_rate``, ``achieved_rate`` (answered per second), ``errors``, ``latency_ms`` (every request,
    timeouts at no less than the timeout), ``latency_ms_ok`` (successful requests), ``above_timeout``,
    ``warmup_s``, ``warmup_requests``, ``verdict``, ``report``)
    is pushed to XCom under ``loadtest`` first, then, when the gate passes,
    returned. The full JSON report and a PNG latency plot are then written to ``report_path`` (and
    ``.png`` next to it); a report or plot that cannot be written is a warning in the log (and
    ``report_warning`` in the XCom), never a failure of the gate. A violated SLO, a measurement in which
    no request succeeded, or one in which no request was answered at all (``inconclusive``, unless
    ``fail_on_inconclusive`` is false) raises :class:`AirflowFailException` (no retry), naming every
    reason, so a rollout can branch to rollback. SLO latencies ``pNN`` judge every request; ``ok_pNN``
    successful ones only. To run the load from inside the cluster, see :func:`load_test_pod_operator`.

    :param url: URL to load (templated); or give ``service_name`` and ``tag``.
    :param service_name: Knative Service whose tag URL is loaded (templated).
    :param tag: traffic tag, e.g. ``candidate`` (templated).
    :param namespace: the Service's namespace (templated).
    :param rate: requests per second (open model), or a cap for the closed model.
    :param duration: how long to send: seconds or text such as ``"60s"``.
    :param slo: thresholds, e.g. ``"p99<=200ms,error_rate<=0.01,achieved_rate>=45"`` (templated), or a
        mapping such as ``{"p99": "<=200ms"}``; empty means every run passes.
    :param stages: a ramped profile instead of ``rate``/``duration``, e.g. ``["30s:10..100", "1m:100"]``.
    :param model: ``"open"`` (fixed schedule, default) or ``"closed"`` (``concurrency`` workers).
    :param concurrency: most connections at once (open) or workers (closed).
    :param timeout: per-request timeout, counted from the request's scheduled start.
    :param warmup: the longest warm-up before measuring (default 30 s): seconds or text; 0 turns
        it off.
    :param method: HTTP method; POST when ``bodies`` are given.
    :param path: path (and query) appended to a tag URL, e.g. ``/v1/models/model:predict`` (templated).
    :param headers: extra headers (templated), e.g. an ``Authorization`` token.
    :param bodies: request bodies used in turn (str or bytes), e.g. prediction requests.
    :param payloads_path: a JSON Lines file of request bodies, one per line, used in turn instead of
        ``bodies``: an ``ObjectStoragePath`` or a string (local path, ``file://`` or ``gs://``) (templated).
    :param expect_status: statuses that count as success; default any status below 400.
    :param expect_json_field: a field every JSON response must contain (e.g. ``predictions``).
    :param report_path: where the JSON report goes: an ``ObjectStoragePath`` or a string such as
        ``file:///reports/{{ run_id }}/loadtest.json`` or ``gs://bucket/...`` (templated).
    :param ingress_address: ``http://host:port`` of the Knative ingress to connect to (templated).
    :param kubernetes_conn_id: connection used to read the Service (and the ``ingress_address`` extra);
        on GKE, ``gcp_conn_id``, ``project_id``, ``location`` and ``cluster_name`` as for the rollout
        operators (:class:`~knative_rollout.operators.base.KnativeConnectionOperator`). (templated)
    :param progress_interval: how often progress is logged.
    :param revision: the revision ``tag`` must route to (templated); the gate fails without sending load
        when the tag names another one, so a rollout never gates a revision it did not deploy.
    :param fail_on_inconclusive: whether a measurement with no answered request fails the gate (default
        True); a bool, or after templating one of ``true``/``false``/``1``/``0``/``yes``/``no`` (templated).
    """

    template_fields: Sequence[str] = (
        "url",
        "service_name",
        "tag",
        "namespace",
        "path",
        "slo",
        "headers",
        "payloads_path",
        "report_path",
        "ingress_address",
        "fail_on_inconclusive",
        "revision",
        *CONNECTION_FIELDS,
    )
    ui_color = "#f4d35e"

    def __init__(
        self,
        *,
        url: str | None = None,
        service_name: str | None = None,
        tag: str | None = None,
        namespace: str = "default",
        rate: float | None = None,
        duration: str | float = "30s",
        slo: str | Mapping[str, str | float] | None = None,
        stages: Sequence[str] = (),
        model: str = "open",
        concurrency: int = 100,
        timeout: str | float = "10s",
        warmup: str | float = DEFAULT_WARMUP_S,
        method: str | None = None,
        path: str = "",
        headers: Mapping[str, str] | None = None,
        bodies: Sequence[str | bytes] = (),
        payloads_path: ObjectStoragePath | str | None = None,
        expect_status: Sequence[int] = (),
        expect_json_field: str | None = None,
        report_path: ObjectStoragePath | str | None = None,
        ingress_address: str | None = None,
        progress_interval: str | float = "5s",
        fail_on_inconclusive: bool | str = True,
        revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (url is None) == (service_name is None):
            raise KnativeInputError(f"{self.task_id}: give either url or service_name (with tag), not both")
        if service_name is not None and not tag:
            raise KnativeInputError(f"{self.task_id}: service_name needs a tag, e.g. tag='candidate'")
        self.url = url
        self.service_name = service_name
        self.tag = tag
        self.namespace = namespace
        self.rate = rate
        self.duration = duration
        self.slo = slo
        self.stages = tuple(stages)
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.warmup = warmup
        self.method = method
        self.path = path
        self.headers = dict(headers or {})
        if bodies and payloads_path is not None:
            raise KnativeInputError(f"{self.task_id}: give bodies or payloads_path, not both")
        self.bodies = tuple(body.encode() if isinstance(body, str) else body for body in bodies)
        self.payloads_path = payloads_path
        self.expect_status = tuple(expect_status)
        self.expect_json_field = expect_json_field
        self.report_path = report_path
        self.ingress_address = ingress_address
        self.progress_interval = progress_interval
        self.fail_on_inconclusive = fail_on_inconclusive
        self.revision = revision

    def tag_url(self) -> str:
        """Return the URL Knative publishes for ``tag`` of ``service_name``."""
        service = self.hook.get_service(str(self.service_name), self.namespace)
        traffic = service.get("status", {}).get("traffic", [])
        for target in traffic:
            if target.get("tag") == self.tag and target.get("url"):
                if self.revision and target.get("revisionName") != self.revision:
                    raise KnativeRolloutConflictError(
                        f"tag {self.tag!r} of Knative Service {self.namespace}/{self.service_name} routes "
                        f"to {target.get('revisionName')}, not to {self.revision} (the revision to gate); "
                        "no load was sent. Another writer changed the rollout: see the Service's history"
                    )
                return str(target["url"])
        tags = sorted(str(target["tag"]) for target in traffic if target.get("tag"))
        raise KnativeInputError(
            f"Knative Service {self.namespace}/{self.service_name} has no URL for tag {self.tag!r} "
            f"(its tags: {', '.join(tags) or 'none'}); set the tag with KnativeSetTrafficOperator first"
        )

    def resolve_ingress(self, url: str) -> str | None:
        """Return the ``host:port`` to connect to instead of the URL's host, or None to connect directly."""
        if self.ingress_address:
            return _host_port(self.ingress_address)
        host = urlsplit(url).hostname or ""
        if _host_resolves(host):
            return None
        extra = self.hook.get_connection(self.kubernetes_conn_id).extra_dejson.get(INGRESS_EXTRA)
        if not extra:
            raise KnativeInputError(
                f"host {host!r} of {url} does not resolve from this worker; give ingress_address (the "
                f"Knative ingress, e.g. local_knative's endpoints.json 'ingress') or the connection extra "
                f"{INGRESS_EXTRA!r}, or run the load in the cluster with load_test_pod_operator"
            )
        return _host_port(str(extra))

    def build_config(self, url: str, connect_to: str | None) -> LoadTestConfig:
        """Return the load test for ``url`` (raises KnativeInputError on bad parameters)."""
        try:
            return LoadTestConfig(
                url=url,
                rate=self.rate,
                duration_s=parse_duration(self.duration),
                stages=tuple(Stage.parse(stage) for stage in self.stages),
                model=self.model,  # type: ignore[arg-type]  # LoadTestConfig rejects other values
                concurrency=self.concurrency,
                timeout_s=parse_duration(self.timeout),
                method=self.method,
                host=urlsplit(url).netloc if connect_to else None,
                connect_to=connect_to,
                headers=tuple(self.headers.items()),
                bodies=self.bodies or self._read_payloads(),
                expect_status=self.expect_status,
                expect_json_field=self.expect_json_field,
                progress_interval_s=parse_duration(self.progress_interval),
                warmup_s=parse_duration(self.warmup, allow_zero=True),
            )
        except (LoadTestConfigError, ValueError) as error:
            raise KnativeInputError(f"{self.task_id}: {error}") from error

    def _read_payloads(self) -> tuple[bytes, ...]:
        if self.payloads_path is None:
            return ()
        path = _storage_path(self.payloads_path)
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        except OSError as error:
            raise KnativeInputError(f"{self.task_id}: cannot read payloads_path {path}: {error}") from error
        if not lines:
            raise KnativeInputError(
                f"{self.task_id}: payloads_path {path} has no request bodies (JSON Lines)"
            )
        return tuple(lines)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the load test, push the summary, save the report and fail the task if the gate fails."""
        try:
            slo = Slo.parse(self.slo)
        except SloSyntaxError as error:
            raise KnativeInputError(f"{self.task_id}: {error}") from error
        with permanent_input_errors():
            fail_on_inconclusive = parse_bool(
                self.fail_on_inconclusive, f"{self.task_id}: fail_on_inconclusive"
            )
        _check_path(self.path, self.task_id)
        base_url = self.url or self.tag_url()
        url = base_url.rstrip("/") + self.path if self.path else base_url
        connect_to = self.resolve_ingress(url)
        config = self.build_config(url, connect_to)
        self.log.info(
            "Load test: %s %s/s for %ss (%s model) against %s%s; SLO %s",
            config.method or ("POST" if config.bodies else "GET"),
            config.rate or "stages",
            config.schedule_duration_s,
            config.model,
            url,
            f" via ingress {connect_to}" if connect_to else "",
            slo or "(none)",
        )

        def progress(stats: IntervalStats) -> None:
            self.log.info("%s", stats.line())

        def warmed_up(warmup: Warmup) -> None:
            (self.log.info if warmup.succeeded else self.log.warning)("%s", warmup.line())

        result = asyncio.run(run_load_test(config, on_progress=progress, on_warmup=warmed_up))
        verdict, report = judge(config, result, slo, fail_on_inconclusive=fail_on_inconclusive)
        summary = summary_of(report)
        summary["report"] = None
        counts = (
            "requests",
            "completed",
            "succeeded",
            "timeouts",
            "errors",
            "offered_rate",
            "achieved_rate",
            "warmup_s",
            "warmup_requests",
        )
        self.log.info("Result: %s", {key: summary[key] for key in counts})
        self.log.info("Latency (ms), all requests: %s", summary["latency_ms"])
        self.log.info("Latency (ms), successful requests: %s", summary["latency_ms_ok"])
        if summary["above_timeout"]:
            self.log.info(
                "At or above the %ss timeout (lower bounds, the true latency is longer): %s",
                config.timeout_s,
                ", ".join(summary["above_timeout"]),
            )
        self.log.info("Verdict: %s: %s", verdict.outcome.value, verdict.explain())
        # The summary goes out before any file is written: the verdict must not depend on storage.
        ti = context["ti"]
        ti.xcom_push(key=XCOM_KEY, value=summary)
        if self.report_path is not None:
            written, warning = self._save(report, result, f"{self.task_id}: {url}")
            summary["report"] = written
            if warning:
                summary["report_warning"] = warning
            ti.xcom_push(key=XCOM_KEY, value=summary)
        if not verdict.passed:
            raise AirflowFailException(
                f"{self.task_id}: load test on {url}: {verdict.explain()}{_refused_hint(result.errors)}"
            )
        return summary

    def _save(self, report: dict[str, Any], result: LoadTestResult, title: str) -> tuple[str | None, str]:
        """Write the JSON report and the plot; return the report's path (None if not written) and a warning.

        Storage that fails (no permission, a full disk, an unreachable bucket) or a plot that cannot be
        drawn is logged as a warning and never fails the task: the verdict is in the XCom already.
        """
        assert self.report_path is not None
        written: str | None = None
        try:
            path = _storage_path(self.report_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(report_json(report))
            written = str(path)
            plot_path = path.with_suffix(".png")
            plot_path.write_bytes(render_plot(result, title))
        except Exception as error:  # storage backends raise their own types, not only OSError
            where = "plot next to " if written else "report to "
            warning = f"could not write the {where}{self.report_path}: {type(error).__name__}: {error}"
            self.log.warning("Load test %s; the gate's verdict stands", warning)
            return written, warning
        self.log.info("Report written to %s, plot to %s", path, plot_path)
        return written, ""


def load_test_cli_arguments(
    *,
    url: str,
    rate: float | None = None,
    duration: str = "30s",
    slo: str | None = None,
    host: str | None = None,
    model: str = "open",
    concurrency: int = 100,
    timeout: str = "10s",
    warmup: str | float = DEFAULT_WARMUP_S,
    headers: Mapping[str, str] | None = None,
    json_path: str = "/airflow/xcom/return.json",
    fail_on_inconclusive: bool = True,
) -> list[str]:
    """Return the ``python -m knative_rollout.loadtest`` arguments for a load test run in a pod.

    The pod exits 1 when the gate fails and 3 when it is inconclusive (no request answered) unless
    ``fail_on_inconclusive`` is False; either fails the task.
    """
    arguments = ["--url", url, "--duration", duration, "--model", model, "--concurrency", str(concurrency)]
    arguments += ["--timeout", timeout, "--warmup", str(warmup), "--json", json_path]
    if rate is not None:
        arguments += ["--rate", f"{rate:g}"]
    if slo:
        arguments += ["--slo", slo]
    if host:
        arguments += ["--host", host]
    for name, value in (headers or {}).items():
        arguments += ["--header", f"{name}:{value}"]
    if not fail_on_inconclusive:
        arguments.append("--allow-inconclusive")
    return arguments


def load_test_pod_operator(
    *, task_id: str, image: str, namespace: str, arguments: Sequence[str], **pod_kwargs: Any
) -> KubernetesPodOperator:
    """Return a task that runs the load test in a pod in the cluster (untested here: needs a real cluster).

    Use it when the worker cannot reach the service, e.g. the cluster-local address
    ``http://NAME.NAMESPACE.svc.cluster.local`` with ``host`` set to the tag's host. ``arguments`` is the
    load test as :func:`load_test_cli_arguments` returns it. ``image`` must have this package installed
    (``pip install knative-rollout``); the pod runs ``python -m knative_rollout.loadtest``, writes the JSON
    report to ``/airflow/xcom/return.json`` (pushed as the task's XCom by the sidecar) and exits non-zero
    when the gate fails (1) or is inconclusive (3), which fails the task. Extra keyword arguments go to
    ``KubernetesPodOperator`` (``kubernetes_conn_id``, resources, ...).
    """
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return KubernetesPodOperator(
        task_id=task_id,
        image=image,
        namespace=namespace,
        cmds=["python", "-m", "knative_rollout.loadtest"],
        arguments=list(arguments),
        do_xcom_push=True,
        **pod_kwargs,
    )
