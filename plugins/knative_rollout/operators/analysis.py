"""Metric analysis as a step: judge the candidate against the stable revision on live metrics.

The wait for the analysis window is a trigger (:class:`~knative_rollout.triggers.KnativeAnalysisTrigger`)
that sleeps in the triggerer and runs :func:`knative_rollout.analysis.analyse` there, so a window of
minutes holds no worker slot. :class:`AnalysisStep` is what the gate (:class:`KnativeCanaryAnalysisOperator`)
and the single-task rollout (:class:`~knative_rollout.operators.canary.KnativeCanaryRolloutOperator`)
share: reading the ``analysis`` mapping, building the trigger, reading its event. Inconclusive is never
a pass: the gate fails on it, the rollout measures again up to ``max_inconclusive`` times.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from knative_rollout.analysis import AnalysisConfig
from knative_rollout.exceptions import (
    KnativeAnalysisFailedError,
    KnativeInputError,
    KnativeRolloutConflictError,
    permanent_input_errors,
)
from knative_rollout.operators.base import KnativeBaseOperator
from knative_rollout.policy import Verdict
from knative_rollout.resources import check_percent, check_revision_name, state_from_annotations
from knative_rollout.triggers import KnativeAnalysisTrigger, run_inline

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.operators.rollout import _KnativeTrafficChangeOperator

ANALYSIS_XCOM_KEY = "analysis"
"""Where an analysis step leaves its last report (also when it failed)."""
TAG_HEADER = "Knative-Serving-Tag"
"""The request header that routes to a tagged revision on the Service's own host (Knative's
``tag-header-based-routing`` feature)."""
AB_ROUTES = ("weight", "header")


def ingress_metrics_url(kubernetes_conn_id: str = "kubernetes_default") -> str | None:
    """Return ``<ingress_address>/metrics`` of a Kubernetes connection, or ``None`` without that extra.

    local_knative serves its revisions' metrics there: the example DAGs read them when no Prometheus is set.
    """
    from airflow.sdk import BaseHook

    from knative_rollout.operators.loadtest import INGRESS_EXTRA

    ingress = BaseHook.get_connection(kubernetes_conn_id).extra_dejson.get(INGRESS_EXTRA)
    return str(ingress).rstrip("/") + "/metrics" if ingress else None


def metrics_source(
    url: str | None = None, kubernetes_conn_id: str = "kubernetes_default"
) -> dict[str, Any] | None:
    """Return the ``analysis`` keys that read metrics from ``url`` (for DAGs that take it as a Param).

    A ``/metrics`` endpoint is scraped (``scrape_urls``), any other URL is a Prometheus (``prometheus_url``);
    without a URL, the connection's ingress ``/metrics`` (:func:`ingress_metrics_url`). ``None`` when
    there is neither.
    """
    url = url or ingress_metrics_url(kubernetes_conn_id)
    if not url:
        return None
    if url.rstrip("/").endswith("/metrics"):
        return {"scrape_urls": [url]}
    return {"prometheus_url": url}


class AnalysisStep(KnativeBaseOperator):
    """Base of the operators that run metric analyses: the ``analysis`` mapping, its trigger, its event.

    :param analysis: what to measure and how to judge it (see :mod:`knative_rollout.analysis.config`),
        e.g. ``{"prometheus_url": "http://prometheus:9090", "window": "2m", "interval": "10s",
        "slo": {"max_p99_latency": "300ms", "max_error_rate": 0.01}}``. (templated)
    """

    def __init__(self, *, analysis: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.analysis = analysis

    def analysis_config(self, analysis: Mapping[str, Any] | None = None) -> AnalysisConfig:
        """Return the checked ``analysis`` mapping; a mistake fails the task without retry."""
        try:
            return AnalysisConfig.of(self.analysis if analysis is None else analysis)
        except (TypeError, ValueError) as error:
            raise KnativeInputError(f"analysis: {error}") from None

    def metrics_endpoint(self, config: AnalysisConfig) -> tuple[str | None, dict[str, str]]:
        """Return the Prometheus URL and credential headers from ``metrics_conn_id`` (or nothing)."""
        if not config.metrics_conn_id:
            return None, {}
        from airflow.sdk import BaseHook
        from airflow.sdk.log import mask_secret

        connection = BaseHook.get_connection(config.metrics_conn_id)
        host = (connection.host or "").rstrip("/")
        if not host:
            raise KnativeInputError(
                f"connection {config.metrics_conn_id!r} has no host; set it to the Prometheus API's URL, "
                "e.g. http://prometheus:9090"
            )
        if "://" not in host:
            host = f"{connection.schema or 'http'}://{host}"
        if connection.port and host.count(":") < 2:
            host = f"{host}:{connection.port}"
        headers: dict[str, str] = {}
        if connection.login:
            credentials = f"{connection.login}:{connection.password or ''}".encode()
            basic = base64.b64encode(credentials).decode()
            # The connection's password is masked by Airflow; the credential made from it is not.
            mask_secret(basic)
            headers["Authorization"] = f"Basic {basic}"
        elif connection.password:
            headers["Authorization"] = f"Bearer {connection.password}"
        return host, headers

    def analysis_trigger(
        self,
        config: AnalysisConfig,
        *,
        canary: str,
        baseline: str | None,
        carry: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        load_by_header: bool = False,
    ) -> KnativeAnalysisTrigger:
        """Return the trigger that waits one analysis window from now and judges it.

        :param overrides: keys of the mapping to replace for this window, e.g. ``{"compare": False}``
            (SLO checks only, when the stable serves no traffic).
        :param load_by_header: see :meth:`load_targets`.
        """
        analysis = dict(self.analysis) | dict(overrides or {})
        if overrides:
            config = self.analysis_config(analysis)
        prometheus_url, headers = self.metrics_endpoint(config)
        judged = [canary] + ([baseline] if baseline and config.compare else [])
        load = self.load_targets(config, judged, by_header=load_by_header) if config.load else None
        budget = config.window + config.settle + 4 * config.timeout + 60
        return KnativeAnalysisTrigger(
            name=self.service_name,
            namespace=self.namespace,
            canary=canary,
            baseline=baseline if config.compare else None,
            analysis=analysis,
            end=time.time() + config.window if config.reads_prometheus else None,
            prometheus_url=prometheus_url,
            headers=headers,
            load=load,
            timeout_seconds=budget,
            hook_params=self.trigger_hook_params(),
            carry=carry,
            renew_lock=self.lock_renewal(),
        )

    def wait_for_analysis(self, context: Context, trigger: KnativeAnalysisTrigger, method_name: str) -> Any:
        """Defer to the analysis trigger at once (the window always outlasts the inline watch); resume there.

        Unlike a watch, an analysis cannot end early, so the inline run of :meth:`wait` would only hold a
        worker slot and then throw away the part of the window it scraped. Not deferrable: it runs here.
        A window shorter than the inline watch plus Airflow's heartbeat (5 s) runs here to its end too,
        which avoids Airflow 3.3 failing a task whose trigger fires right after it deferred (cut off after
        the inline watch, a 5-10 s window would start over in the triggerer and fire just so).
        """
        config = self.analysis_config(trigger.analysis)
        lasts = config.window + (config.settle if config.reads_prometheus else 0.0)
        if not self.deferrable or lasts < self.inline_wait_seconds + 5:
            return getattr(self, method_name)(context, run_inline(trigger))
        self.push_urls(context, None)
        self.defer(
            trigger=trigger,
            method_name=method_name,
            timeout=timedelta(seconds=trigger.timeout_seconds + 60),
        )

    def load_targets(
        self, config: AnalysisConfig, revisions: list[str], *, by_header: bool = False
    ) -> list[dict[str, Any]]:
        """Return where the synthetic load goes: each judged revision's tag URL (through the ingress).

        :param by_header: send it to the Service's own URL with ``Knative-Serving-Tag: <tag>`` instead,
            the way the audience of a header-routed A/B test reaches its revision.
        :raises KnativeInputError: when a revision has no tag (no load could reach it alone).
        """
        from urllib.parse import urlsplit

        assert config.load is not None
        load = config.load
        status = self.hook.get_service(self.service_name, self.namespace).get("status") or {}
        if by_header and not status.get("url"):
            raise KnativeInputError(
                f"Knative Service {self.service_path} has no URL yet, so the analysis' synthetic load cannot "
                "reach its revisions by header; wait until it is Ready, or remove load"
            )
        targets: list[dict[str, Any]] = []
        reach = self.tag_urls(status, revisions, "the analysis' synthetic load", "remove load")
        for revision, (tag, url) in reach.items():
            headers = dict(load.headers)
            if by_header:
                url = str(status["url"])
                headers[TAG_HEADER] = tag
            connect_to = self.connect_to(url, load.ingress_address)
            targets.append(
                {
                    "revision": revision,
                    "url": url.rstrip("/") + load.path,
                    "host": urlsplit(url).netloc if connect_to else None,
                    "connect_to": connect_to,
                    "rate": load.rate,
                    "method": load.method,
                    "headers": headers,
                    "bodies": list(load.bodies),
                    "timeout": load.timeout,
                }
            )
        return targets

    def tag_urls(
        self, status: Mapping[str, Any], revisions: list[str], what: str, instead: str
    ) -> dict[str, tuple[str, str]]:
        """Return each revision's tag and tag URL from the Service's ``status``.

        :param what: who needs them, for the error; ``instead``: what to do instead.
        :raises KnativeInputError: when a revision has no tag (nothing could reach it alone).
        """
        tagged = {
            str(target.get("revisionName")): (str(target["tag"]), str(target["url"]))
            for target in status.get("traffic") or []
            if target.get("tag") and target.get("url")
        }
        for revision in revisions:
            if revision not in tagged:
                raise KnativeInputError(
                    f"revision {revision} of Knative Service {self.service_path} has no tag URL, so {what} "
                    f"cannot reach it alone; tag it (the rollout tags the stable and the candidate) or "
                    f"{instead}"
                )
        return {revision: tagged[revision] for revision in revisions}

    def connect_to(self, url: str, ingress_address: str | None) -> str | None:
        """Return ``host:port`` of the Knative ingress to reach ``url`` through, or None if its host resolves.

        :param ingress_address: the ingress given in the task's settings; else the connection's extra.
        """
        from urllib.parse import urlsplit

        from knative_rollout.operators.loadtest import INGRESS_EXTRA, _host_port, _host_resolves

        if ingress_address:
            return _host_port(ingress_address)
        host = urlsplit(url).hostname or ""
        if _host_resolves(host):
            return None
        extra = self.hook.get_connection(self.kubernetes_conn_id).extra_dejson.get(INGRESS_EXTRA)
        if not extra:
            raise KnativeInputError(
                f"host {host!r} of {url} does not resolve from this worker; give load's "
                f"ingress_address or the connection extra {INGRESS_EXTRA!r} (the Knative ingress)"
            )
        return _host_port(str(extra))

    def step_operator(
        self, cls: type[_KnativeTrafficChangeOperator], **kwargs: Any
    ) -> _KnativeTrafficChangeOperator:
        """Return a step operator whose ``compute`` says what a traffic change writes (it is never run).

        So a change made inside this task is computed by the very code the separate step would run.
        """
        return cls(
            task_id=self.task_id,
            service_name=self.service_name,
            namespace=self.namespace,
            rollout_id=self.rollout_id,
            lock_duration=self.lock_duration,
            **kwargs,
        )

    def change_traffic(
        self, context: Context, step: _KnativeTrafficChangeOperator, method_name: str, **carry: Any
    ) -> Any:
        """Write what ``step`` computes (one optimistic-concurrency write), wait until it is served."""
        self.hold_lock()
        revisions = self.revision_infos()
        service, _ = self.rewrite(context, lambda current, state: step.compute(current, state, revisions))
        return self.wait_for_traffic(context, service, method_name, **carry)

    def analysis_outcome(
        self, context: Context, event: Mapping[str, Any]
    ) -> tuple[Verdict, str, dict[str, Any]]:
        """Return the verdict, its reason and the report of an analysis event; push the report to XCom.

        A metrics source that could not be read, or an analysis that ran out of time, is inconclusive
        (measure again); a misconfigured analysis fails the task without retry.
        """
        status = event.get("status")
        canary = event.get("canary")
        if status == "success":
            verdict = Verdict(str(event.get("verdict")))
            report = dict(event.get("analysis") or {})
            reason = str(report.get("reason") or event.get("message"))
        elif status == "error" and event.get("permanent"):
            raise KnativeInputError(f"analysis of {canary} cannot run: {event.get('message')}")
        else:
            verdict = Verdict.INCONCLUSIVE
            reason = f"no measurement: {event.get('message')}"
            report = {"verdict": verdict.value, "reason": reason, "canary": canary}
        context["ti"].xcom_push(key=ANALYSIS_XCOM_KEY, value=report)
        self.log.info("Analysis of %s: %s (%s)", canary, verdict.value, reason)
        return verdict, reason, report


class KnativeCanaryAnalysisOperator(AnalysisStep):
    """Judge the candidate against the stable revision on live metrics: a gate at the current traffic step.

    Waits one analysis window in the triggerer (no worker slot), then compares the candidate's request
    metrics with the stable's (Kayenta-style judge) and checks the SLO. The task succeeds on ``pass``;
    it fails without retry on ``fail`` and on ``inconclusive`` (no data, too little data, a marginal
    score, an unreadable metrics source): not knowing is never a pass. ``on_no_data`` in ``analysis``
    says what an SLO check without enough answers counts as. The report goes to the ``analysis`` XCom
    either way. Inside a rollout (``rollout_id``) it renews the lock while it waits and refuses to judge
    a Service that another rollout now owns.

    :param analysis: see :class:`AnalysisStep`. (templated)
    :param revision: the candidate; inside a rollout the revision its deploy returned. Default: the
        Service's recorded candidate. (templated)
    :param baseline: the revision to compare with; default the recorded stable. (templated)
    :return: the analysis report (``verdict``, ``reason``, ``judgement``, ``slo``, ``totals``).
    """

    template_fields = (*KnativeBaseOperator.template_fields, "analysis", "revision", "baseline")
    template_fields_renderers = {"analysis": "json"}
    ui_color = "#e8ccff"

    def __init__(self, *, revision: str | None = None, baseline: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.revision = revision
        self.baseline = baseline

    def execute(self, context: Context) -> Any:
        """Check the input, find the two revisions, and wait for the window's verdict."""
        config = self.analysis_config()
        self.validate_target()
        service = self.managed_service()
        state = state_from_annotations(service["metadata"].get("annotations"))
        self.check_owner(state)
        canary = self._name(self.revision, "revision") or state.candidate
        if canary is None:
            raise KnativeInputError(
                f"Knative Service {self.service_path} has no candidate revision to analyse (phase "
                f"{state.phase.value}); deploy one first, or pass revision="
            )
        if self.revision and state.candidate != canary:
            raise KnativeRolloutConflictError(
                f"the candidate of Knative Service {self.service_path} is {state.candidate}, not {canary} "
                "(the revision this step was given); nothing was judged. See the Service's rollout history"
            )
        baseline = self._name(self.baseline, "baseline") or state.stable
        if config.compare and baseline is None:
            raise KnativeInputError(
                f"Knative Service {self.service_path} records no stable revision to compare {canary} with; "
                "pass baseline=, or set compare: false with an slo"
            )
        trigger = self.analysis_trigger(config, canary=canary, baseline=baseline, carry={})
        return self.wait_for_analysis(context, trigger, "execute_complete")

    @staticmethod
    def _name(value: str | None, what: str) -> str | None:
        if value is None or not str(value).strip():
            return None
        with permanent_input_errors():
            return check_revision_name(str(value).strip())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Pass on ``pass``; fail (no retry) on ``fail`` and ``inconclusive``."""
        verdict, reason, report = self.analysis_outcome(context, event)
        canary = event.get("canary")
        if verdict is Verdict.PASS:
            return report
        if verdict is Verdict.FAIL:
            raise KnativeAnalysisFailedError(
                f"analysis of {canary} in {self.service_path} failed: {reason}. Traffic was not changed by "
                "this step; roll back (the rollback step of the rollout does)"
            )
        raise KnativeAnalysisFailedError(
            f"analysis of {canary} in {self.service_path} was inconclusive, which is not a pass: {reason}. "
            "Send more traffic (or synthetic load) to the candidate, lengthen the window, or set "
            "on_no_data if no data should decide"
        )


def _get_text(url: str, connect_to: str | None, timeout: float) -> str:
    """Return the body of GET ``url``, sent to ``connect_to`` (the ingress) with the URL's ``Host``."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = f"{parts.scheme}://{connect_to}{parts.path}" if connect_to else url
    request = urllib.request.Request(target, headers={"Host": parts.netloc} if connect_to else {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return str(answer.read().decode())


class KnativeABTestOperator(AnalysisStep):
    """Hold an A/B test between the stable (A) and the candidate (B) for one window; name the winner.

    With ``route_by="weight"`` it sets the traffic to ``split`` percent for B (computed and written as
    :class:`~knative_rollout.operators.KnativeSetTrafficOperator` does). With ``route_by="header"`` the
    Service's route keeps 100% on A and only requests carrying ``Knative-Serving-Tag: <B's tag>`` reach B,
    so the test is limited to an audience the caller chooses (a client, a team, an internal tool) and
    nobody else sees B; Knative needs its ``tag-header-based-routing`` feature on, local_knative has it.
    Synthetic ``load`` then goes to the Service's own URL with each revision's tag header. Either way it
    waits until the traffic is served, waits one analysis window in the triggerer, and compares B with A
    both ways with the judge (default metrics: p99 latency and error rate, direction ``either``; see
    :mod:`knative_rollout.analysis.ab`). The traffic is left in place: what follows (promote, roll back,
    another test) is the DAG's choice, e.g. a branch on the returned ``winner``. The task fails only when
    the SLO (if given) is violated or the analysis cannot run; "B is worse" is a result, not an error.

    With ``quality_path`` it also compares the model's quality, higher is better: accuracy on the requests
    that carried their true labels, as the example model counts it on ``/metrics``
    (``model_labelled_predictions_total``, see :mod:`knative_rollout.analysis.ab`), read from each
    revision's tag URL when the window starts and when it ends (a revision with several pods is read
    wherever the request lands, and only a process seen both times counts: with more pods, expect "no
    data" more often).

    :param analysis: see :class:`AnalysisStep`; ``metrics`` default to the A/B metrics. (templated)
    :param revision: B; default the recorded candidate. (templated)
    :param route_by: ``"weight"`` (a split of everyone's traffic) or ``"header"`` (B only for requests
        with its tag header). (templated)
    :param split: B's percent of the traffic, 1..99, with ``route_by="weight"`` (default 50). (templated)
    :param quality_path: the path of the model's Prometheus metrics on each revision's tag URL, e.g.
        ``"/metrics"``; None (default): no quality comparison. (templated)
    :return: ``{"winner": "a" | "b" | "no significant difference" | "mixed" | "inconclusive",
        "winner_revision", "a", "b", "route_by", "split", "header", "summary", "analysis", "quality"}``;
        ``header`` is ``{"Knative-Serving-Tag": tag}`` with ``route_by="header"``, else None; ``quality``
        the accuracy comparison (``classification``: ``High`` when B is more accurate), else None.
    """

    template_fields = (
        *KnativeBaseOperator.template_fields,
        "analysis",
        "revision",
        "route_by",
        "split",
        "quality_path",
    )
    template_fields_renderers = {"analysis": "json"}
    ui_color = "#e8ccff"

    def __init__(
        self,
        *,
        revision: str | None = None,
        route_by: str = "weight",
        split: int | str | None = None,
        quality_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.revision = revision
        self.route_by = route_by
        self.split = split
        self.quality_path = quality_path

    def _overrides(self) -> dict[str, Any]:
        from knative_rollout.analysis.ab import AB_METRICS

        if "metrics" in self.analysis:
            return {"compare": True}
        metrics = [
            {
                "name": spec.name,
                "direction": spec.direction.value,
                "group": spec.group,
                "allowed_increase": spec.allowed_increase,
                "allowed_decrease": spec.allowed_decrease,
            }
            for spec in AB_METRICS
        ]
        return {"compare": True, "metrics": metrics}

    def _read_quality(self, revisions: list[str]) -> dict[str, dict[str, list[float]]]:
        """Read each revision's labelled-prediction counters from ``quality_path`` on its tag URL.

        A read that fails is logged and counts as nothing read, so that side's quality is "no data".
        """
        from urllib.error import URLError

        from knative_rollout.analysis.ab import labelled_counts
        from knative_rollout.analysis.series import MetricsParseError, parse_exposition

        config = self.analysis_config({**self.analysis, **self._overrides()})
        ingress = config.load.ingress_address if config.load else None
        status = self.hook.get_service(self.service_name, self.namespace).get("status") or {}
        reads: dict[str, dict[str, list[float]]] = {}
        for revision, (_, url) in self.tag_urls(
            status, revisions, "the quality read", "drop quality_path"
        ).items():
            metrics_url = url.rstrip("/") + str(self.quality_path)
            try:
                text = _get_text(metrics_url, self.connect_to(url, ingress), config.timeout)
                reads[revision] = labelled_counts(parse_exposition(text, time=time.time()).samples, revision)
            except (URLError, OSError, MetricsParseError) as error:
                self.log.warning(
                    "Could not read the model quality of %s from %s: %s", revision, metrics_url, error
                )
                reads[revision] = {}
        return reads

    def _check_route(self) -> tuple[str, int]:
        """Check ``route_by`` and ``split``; return the route and B's percent of everyone's traffic."""
        route_by = str(self.route_by).strip().lower()
        if route_by not in AB_ROUTES:
            raise KnativeInputError(f"route_by is {self.route_by!r}; use one of {', '.join(AB_ROUTES)}")
        given = self.split is not None and str(self.split).strip() != ""
        if route_by == "header":
            if given:
                raise KnativeInputError(
                    f"split is {self.split} but route_by is 'header': B gets only the requests with its "
                    "tag header and everyone else stays on A; drop split, or use route_by='weight'"
                )
            return route_by, 0
        with permanent_input_errors():
            split = check_percent(self.split if given else 50, "split")
        if not 1 <= split <= 99:
            raise KnativeInputError(f"split is {split}; an A/B test gives B between 1 and 99 percent")
        return route_by, split

    def execute(self, context: Context) -> Any:
        """Check the input, route B's traffic, and wait until it is served."""
        self.analysis_config({**self.analysis, **self._overrides()})
        route_by, split = self._check_route()
        if self.quality_path is not None and not str(self.quality_path).startswith("/"):
            raise KnativeInputError(f"quality_path={self.quality_path!r} must be a path starting with /")
        self.validate_target()
        state = state_from_annotations(self.managed_service()["metadata"].get("annotations"))
        self.check_owner(state)
        b = KnativeCanaryAnalysisOperator._name(self.revision, "revision") or state.candidate
        if b is None or state.stable is None:
            raise KnativeInputError(
                f"Knative Service {self.service_path} needs a stable revision (A) and a candidate (B) for an "
                f"A/B test; it has stable {state.stable}, candidate {state.candidate}. Deploy B first"
            )
        from knative_rollout.operators.rollout import KnativeSetTrafficOperator

        # By header B stays in the route at 0%, tagged: its tag is what the audience's header names.
        step = self.step_operator(
            KnativeSetTrafficOperator, revision=b, traffic={"@stable": 100 - split, "@candidate": split}
        )
        carry = {"a": state.stable, "b": b, "route_by": route_by, "split": split}
        return self.change_traffic(context, step, "split_complete", **carry)

    def split_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the traffic is served, wait one window and compare."""
        self.check_event(event, f"waiting for service {self.service_name} to serve the A/B traffic")
        overrides = self._overrides()
        carry = {key: event[key] for key in ("a", "b", "route_by", "split")}
        if event["route_by"] == "header":
            tags = {t.get("revisionName"): t.get("tag") for t in event.get("traffic") or [] if t.get("tag")}
            carry["tag"] = tags.get(event["b"])
        if self.quality_path:
            carry["quality_start"] = self._read_quality([str(event["a"]), str(event["b"])])
        trigger = self.analysis_trigger(
            self.analysis_config({**self.analysis, **overrides}),
            canary=str(event["b"]),
            baseline=str(event["a"]),
            carry=carry,
            overrides=overrides,
            load_by_header=event["route_by"] == "header",
        )
        return self.wait_for_analysis(context, trigger, "execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Name the winner; fail only on a violated SLO."""
        from knative_rollout.analysis.ab import A_WINS, B_WINS, ab_outcome, labelled_between, quality_result

        _, _, report = self.analysis_outcome(context, event)
        a, b = str(event["a"]), str(event["b"])
        quality = None
        if "quality_start" in event:
            start, end = event["quality_start"], self._read_quality([a, b])
            quality = quality_result(labelled_between(start[a], end[a]), labelled_between(start[b], end[b]))
        metrics = (report.get("judgement") or {}).get("metrics") or []
        outcome = ab_outcome(metrics, [quality] if quality else [])
        slo_failed = [check["reason"] for check in report.get("slo") or [] if check["verdict"] == "fail"]
        result = {
            "winner": outcome.winner,
            "winner_revision": {A_WINS: a, B_WINS: b}.get(outcome.winner),
            "a": a,
            "b": b,
            "route_by": event["route_by"],
            "split": int(event["split"]),
            "header": {TAG_HEADER: event["tag"]} if event.get("tag") else None,
            "summary": outcome.describe(a, b),
            "analysis": report,
            "quality": quality,
        }
        context["ti"].xcom_push(key="ab_test", value=result)
        self.log.info("A/B test of %s vs %s: %s", a, b, result["summary"])
        if slo_failed:
            raise KnativeAnalysisFailedError(
                f"A/B test of {b} against {a}: B violates the SLO ({'; '.join(slo_failed)}); "
                f"{result['summary']}. The split was left in place: roll back"
            )
        return result
