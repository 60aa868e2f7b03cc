"""The Rollouts page: where the rollout of every managed Knative Service stands, read from its annotations.

A FastAPI app that :mod:`knative_rollout.plugin` mounts in the Airflow API server under
:data:`URL_PREFIX`: ``/`` is a server-rendered HTML page (the Airflow UI shows it under "Rollouts"),
``/api/rollouts`` the same data as JSON. Both take the query parameters ``conn_id`` (the ``kubernetes``
connection to read through, default ``kubernetes_default``) or, for GKE, ``cluster_name``, ``location``,
``project_id`` and ``gcp_conn_id``; and ``namespace`` (repeatable). Without ``namespace`` the page shows
the guardrails' allowed namespaces, or ``default`` when they allow any.

The page reads through :class:`~knative_rollout.hooks.KnativeServingHook` like the operators do, so it
shows what any task, retry or other DAG would see: per Service its revisions (age, model, readiness),
the traffic, stable / candidate / previous stable, the rollout in progress (its id, since when, who
holds the lock) and the history, each entry linked to the DAG run and task log that wrote it.

It changes nothing itself. Its two actions, "Roll back" and "Roll out a model", trigger the
``manual_rollout`` DAG (:data:`ACTIONS_DAG`) through Airflow, as the signed-in user and only with that
user's permission to trigger it, so every change is a DAG run with a log, like any other. Actions are
``POST`` requests with a JSON body and the :data:`ACTION_HEADER` header, which a cross-site form cannot
send. It needs an Airflow login, as the rest of the API server does (the UI's session cookie or a bearer
token); a browser without one is sent to the login page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from knative_rollout.diagnostics import secrets_redactor
from knative_rollout.exceptions import (
    KnativeInputError,
    permanent_input_errors,
)
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.operators.analysis import ANALYSIS_XCOM_KEY
from knative_rollout.operators.canary import ROLLOUT_XCOM_KEY
from knative_rollout.operators.loadtest import XCOM_KEY as LOAD_TEST_XCOM_KEY
from knative_rollout.resources import (
    check_namespace,
    check_service_name,
    condition,
    is_managed,
    revision_info,
    state_from_annotations,
)
from knative_rollout.resources.diagnostics import failed_candidate
from knative_rollout.rollouts_html import ACTION_HEADER, ACTIONS_DAG, render_error, render_page

URL_PREFIX = "/knative-rollout"
HISTORY_SHOWN = 10


def history_links(by: str) -> dict[str, str] | None:
    """Return the Airflow UI paths of the DAG run and task try that wrote a history entry, if it names them.

    :param by: the entry's writer, ``dag_id/run_id/task_id/try`` (run ids contain no ``/``).
    """
    parts = by.split("/")
    if len(parts) != 4 or not all(parts) or not parts[3].isdigit():
        return None
    dag_id, run_id, task_id, attempt = (quote(part, safe="") for part in parts)
    run = f"/dags/{dag_id}/runs/{run_id}"
    return {"run": run, "task": f"{run}/tasks/{task_id.split('%5B')[0]}?try_number={attempt}"}


def _age(created: str, now: datetime) -> str:
    try:
        seconds = (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def revision_view(revision: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Return what the page shows of one Revision: name, age, readiness, image and model."""
    info = revision_info(revision)
    containers = (revision.get("spec") or {}).get("containers") or [{}]
    env = {item.get("name"): item.get("value") for item in containers[0].get("env") or []}
    model = str(env.get("MODEL_URI") or "")
    return {
        "name": info.name,
        "created": info.created,
        "age": _age(info.created, now),
        "ready": "True" if info.ready else ("False" if info.failed else "Unknown"),
        "reason": info.reason,
        "image": containers[0].get("image"),
        "model_uri": model or None,
        "model": model.rstrip("/").rsplit("/", 1)[-1] or None,
    }


def rollout_view(
    service: Mapping[str, Any],
    revisions: list[Mapping[str, Any]] | None = None,
    lock: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return what the page shows of one Knative Service: rollout state, traffic, revisions and lock.

    :param revisions: the Service's Revision objects (newest first on the page).
    :param lock: who holds the Service's rollout lock: ``{"holder", "since", "expires", "expired"}``.
    """
    now = now or datetime.now(UTC)
    metadata = service.get("metadata") or {}
    status = service.get("status") or {}
    state = state_from_annotations(metadata.get("annotations"))
    ready = condition(service, "Ready") or {}
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "url": status.get("url"),
        "ready": ready.get("status", "Unknown"),
        "ready_reason": ": ".join(str(part) for part in (ready.get("reason"), ready.get("message")) if part),
        "phase": state.phase.value,
        "step": state.step,
        "stable": state.stable,
        "candidate": state.candidate,
        "previous_stable": state.previous_stable,
        "rollout_id": state.rollout_id,
        "rollout_revision": state.rollout_revision,
        "rollout_since": state.rollout_since,
        "active": state.is_active(),
        "lock": dict(lock) if lock else {"holder": None},
        # Newest first, in the order Knative made them (creation times have one-second resolution).
        "revisions": [
            revision_view(item, now)
            for item in sorted(revisions or [], key=lambda item: revision_info(item).order(), reverse=True)
        ],
        "latest_created": status.get("latestCreatedRevisionName"),
        "latest_ready": status.get("latestReadyRevisionName"),
        # What is served (status), not what was asked (spec): during a change they differ for a moment.
        "traffic": [
            {
                "revision": target.get("revisionName"),
                "percent": int(target.get("percent") or 0),
                "tag": target.get("tag"),
                "url": target.get("url"),
            }
            for target in status.get("traffic") or []
        ],
        "history": [
            {
                "time": entry.time,
                "action": entry.action,
                "detail": entry.detail,
                "by": entry.by,
                "links": history_links(entry.by),
            }
            for entry in reversed(state.history[-HISTORY_SHOWN:])
        ],
    }


def _rollout_xcoms(rollout_id: str | None, key: str) -> list[tuple[str, Any]]:
    """Return ``(task_id, value)`` of a rollout's XComs under ``key``, oldest first, from Airflow's database.

    Only a rollout whose id has the default form ``dag_id/run_id/group_id[/map_index]`` can be found: its
    tasks are the group's (``group_id.*``), or the single task of that id (the canary rollout). Empty when
    Airflow's database cannot tell: the page then shows the cluster's state without these extras.
    """
    parts = (rollout_id or "").split("/")
    if len(parts) < 3:
        return []
    dag_id, run_id, group = parts[:3]
    map_index = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else -1
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(run_id=run_id, dag_ids=dag_id, key=key, map_indexes=map_index)
            rows = sorted(session.scalars(query).all(), key=lambda row: row.timestamp)
            return [
                (str(row.task_id), XComModel.deserialize_value(row))
                for row in rows
                if row.task_id == group or str(row.task_id).startswith(f"{group}.")
            ]
    except Exception:
        return []


def _task_links(rollout_id: str, task_id: str) -> dict[str, str] | None:
    dag_id, run_id = rollout_id.split("/")[:2]
    return history_links(f"{dag_id}/{run_id}/{task_id}/1")


def gate_view(rollout_id: str | None) -> dict[str, Any] | None:
    """Return the load-test gate's verdict of a rollout (the group's ``load_test`` task), from its XCom."""
    found = [
        (task_id, summary)
        for task_id, summary in _rollout_xcoms(rollout_id, LOAD_TEST_XCOM_KEY)
        if task_id.endswith(".load_test") and isinstance(summary, Mapping) and "verdict" in summary
    ]
    if not found:
        return None
    task_id, summary = found[-1]
    latency = summary.get("latency_ms") or {}
    verdict = summary["verdict"]
    return {
        "task": task_id,
        "links": _task_links(str(rollout_id), task_id),
        "requests": summary.get("requests"),
        "completed": summary.get("completed"),
        "achieved_rate": summary.get("achieved_rate"),
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "latency_ms": dict(latency),
        "error_rate": summary.get("error_rate"),
        "passed": bool(verdict.get("passed")),
        "violations": [str(check.get("message")) for check in verdict.get("failed") or []],
        "checks": list(verdict.get("checks") or []),
        "report": summary.get("report"),
    }


def _step_label(task_id: str) -> str:
    leaf = task_id.rsplit(".", 1)[-1]
    match = re.fullmatch(r"analysis_(\d+)", leaf)
    return f"{match.group(1)}%" if match else leaf


def _analysis_step(label: str, report: Mapping[str, Any]) -> dict[str, Any]:
    judgement = report.get("judgement") or {}
    return {
        "label": label,
        "verdict": report.get("verdict"),
        "reason": report.get("reason"),
        "score": judgement.get("score"),
        "canary": report.get("canary"),
        "baseline": report.get("baseline"),
        "totals": report.get("totals") or {},
    }


def analysis_view(rollout_id: str | None) -> dict[str, Any] | None:
    """Return a rollout's metric analyses: the verdict of each step and the newest report in full.

    The steps are the group's analysis tasks (one report each), or the canary task's own record of its
    steps (it keeps only its newest report).
    """
    reports = [
        (task_id, report)
        for task_id, report in _rollout_xcoms(rollout_id, ANALYSIS_XCOM_KEY)
        if isinstance(report, Mapping) and "verdict" in report
    ]
    if not reports:
        return None
    task_id, latest = reports[-1]
    group = str(rollout_id).split("/")[2]
    steps = [_analysis_step(_step_label(task), report) for task, report in reports if task != group]
    if not steps:
        summaries = [
            value for _, value in _rollout_xcoms(rollout_id, ROLLOUT_XCOM_KEY) if isinstance(value, Mapping)
        ]
        recorded = (summaries[-1].get("steps") if summaries else None) or []
        steps = [
            {
                "label": f"{step.get('percent')}%" + (" bake" if step.get("bake") else ""),
                "verdict": step.get("verdict"),
                "reason": step.get("reason"),
            }
            for step in recorded
            if isinstance(step, Mapping)
        ]
    judgement = latest.get("judgement") or {}
    return {
        "task": task_id,
        "links": _task_links(str(rollout_id), task_id),
        "latest": {
            **_analysis_step("newest window", latest),
            "window": latest.get("window"),
            "metrics": [
                {key: metric.get(key) for key in ("metric", "classification", "ratio", "p_value", "reason")}
                for metric in judgement.get("metrics") or []
            ],
            "slo": list(latest.get("slo") or []),
        },
        "steps": steps,
    }


def lock_view(hook: KnativeServingHook, name: str, namespace: str) -> dict[str, Any]:
    """Return who holds the Service's rollout lock now (``holder`` is ``None`` when it is free)."""
    holding = RolloutLock(hook, name, namespace).holding()
    return {
        "holder": holding.holder,
        "since": holding.since,
        "expires": holding.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if holding.expires else None,
        "expired": holding.expired,
    }


def cluster_hook(
    conn_id: Annotated[str, Query(description="Airflow kubernetes connection")] = (
        KnativeServingHook.default_conn_name
    ),
    gcp_conn_id: Annotated[
        str, Query(description="Google Cloud connection, for GKE")
    ] = "google_cloud_default",
    project_id: Annotated[str | None, Query(description="GKE project")] = None,
    location: Annotated[str | None, Query(description="GKE location")] = None,
    cluster_name: Annotated[str | None, Query(description="GKE cluster; set it to read GKE")] = None,
) -> KnativeServingHook:
    """Return the hook the page reads through: the operators' connection parameters, from the query."""
    return KnativeServingHook(
        kubernetes_conn_id=conn_id,
        gcp_conn_id=gcp_conn_id,
        project_id=project_id,
        location=location,
        cluster_name=cluster_name,
        # A page answers in seconds or says why it cannot; the operators' longer retries are for tasks.
        max_attempts=2,
    )


def collect_rollouts(hook: KnativeServingHook, namespaces: list[str] | None) -> dict[str, Any]:
    """Return the rollouts of the managed Services in ``namespaces`` (or the guardrails' namespaces).

    A namespace that cannot be read (forbidden, unreachable cluster, GKE credentials) is reported in
    ``errors``, not as a failure of the whole page.

    :raises KnativeInputError: for a malformed namespace, or a connection that cannot be read.
    """
    hook.check_connection()
    if namespaces:
        source = "query"
    else:
        allowed = hook.load_guardrails().allowed_namespaces
        namespaces, source = (list(allowed), "guardrails") if allowed else (["default"], "default")
    with permanent_input_errors():
        for namespace in namespaces:
            check_namespace(namespace)
    services: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for namespace in namespaces:
        try:
            items = hook.list_services(namespace)
        except Exception as error:
            # Whatever stops one namespace (RBAC, network, a GKE or kubeconfig problem) is shown beside
            # the others rather than turning the whole page into a server error.
            errors.append({"namespace": namespace, "error": f"{type(error).__name__}: {error}"})
            continue
        for item in sorted(items, key=_name):
            if not is_managed(item):
                continue
            name = _name(item)
            try:
                revisions = hook.list_revisions(name, namespace)
                lock = lock_view(hook, name, namespace)
            except Exception as error:
                # The Service's own state is still worth showing when its revisions or lock cannot be read.
                errors.append({"namespace": namespace, "error": f"{name}: {type(error).__name__}: {error}"})
                revisions, lock = [], None
            view = rollout_view(item, revisions, lock)
            view["load_test"] = gate_view(view["rollout_id"])
            view["analysis"] = analysis_view(view["rollout_id"])
            failed = failed_candidate(item)
            # Read only for a failed candidate: a healthy Service costs no pod or log reads.
            view["diagnostics"] = hook.revision_diagnostics(failed, namespace).to_dict() if failed else None
            # Condition messages and history details can quote a container's output, as logs do.
            services.append(secrets_redactor(revisions)(view))
    return {
        "connection": _describe(hook),
        "namespaces": namespaces,
        "namespaces_from": source,
        "services": services,
        "errors": errors,
    }


def _describe(hook: KnativeServingHook) -> str:
    if hook.cluster_name:
        return f"GKE cluster {hook.cluster_name} ({hook.project_id or 'default project'}, {hook.location})"
    return str(hook.conn_id)


def _name(service: Mapping[str, Any]) -> str:
    return str(service.get("metadata", {}).get("name"))


Hook = Annotated[KnativeServingHook, Depends(cluster_hook)]
Namespaces = Annotated[list[str] | None, Query(alias="namespace", description="namespaces to show")]


def _read(hook: KnativeServingHook, namespaces: list[str] | None) -> dict[str, Any]:
    try:
        return collect_rollouts(hook, namespaces)
    except KnativeInputError as error:
        raise HTTPException(status_code=400, detail=str(error)) from error


def trigger_action(user: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger :data:`ACTIONS_DAG` with ``conf`` as ``user``, if Airflow lets that user trigger it.

    :raises HTTPException: 403 without the permission, 404 when the DAG is not deployed, 400 when Airflow
        refuses the conf (the DAG's Params), 409 when the DAG is paused (the run would only queue).
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.exceptions import DagNotFound, ParamValidationError
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    allowed = get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=ACTIONS_DAG), user=user
    )
    if not allowed:
        raise HTTPException(403, f"user {user.get_name()} may not trigger the DAG {ACTIONS_DAG}")
    model = DagModel.get_current(ACTIONS_DAG)
    if model is None:
        raise HTTPException(404, f"the DAG {ACTIONS_DAG} is not deployed; copy dags/{ACTIONS_DAG}.py there")
    if model.is_paused:
        raise HTTPException(409, f"the DAG {ACTIONS_DAG} is paused, so its run would wait; unpause it first")
    try:
        run = trigger_dag(
            ACTIONS_DAG,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user.get_name(),
            conf=conf,
            note=f"from the Rollouts page by {user.get_name()}",
        )
    except DagNotFound as error:
        raise HTTPException(404, str(error)) from error
    except (ParamValidationError, ValueError) as error:
        raise HTTPException(400, f"{ACTIONS_DAG} refused the request: {error}") from error
    run_id = str(run.run_id) if run is not None else ""
    return {
        "dag_id": ACTIONS_DAG,
        "run_id": run_id,
        "url": f"/dags/{ACTIONS_DAG}/runs/{quote(run_id, safe='')}",
    }


def _action_conf(body: Mapping[str, Any], rollback: bool) -> dict[str, Any]:
    """Return the ``manual_rollout`` conf of an action, refusing a bad Service or namespace at once."""
    conf = {key: body[key] for key in ("model_uri", "image", "p99_ms") if body.get(key) not in (None, "")}
    with permanent_input_errors():
        conf["service_name"] = check_service_name(str(body.get("service_name", "")))
        conf["namespace"] = check_namespace(str(body.get("namespace", "")))
    if rollback:
        conf["rollback_now"] = True
    return conf


def create_app() -> FastAPI:
    """Return the Rollouts app (HTML page, JSON endpoint, actions), protected by Airflow's login."""
    app = FastAPI(
        title="Knative rollouts",
        description="Where the rollout of every managed Knative Service stands.",
        dependencies=[Depends(requires_authenticated())],
    )

    @app.exception_handler(HTTPException)
    async def login_redirect(request: Request, error: HTTPException) -> Any:
        """Send a browser without a valid login to the login page, and back here after it."""
        wants_html = "text/html" in request.headers.get("accept", "")
        if error.status_code in (401, 403) and request.method == "GET" and wants_html:
            from airflow.api_fastapi.app import get_auth_manager

            here = str(request.url)
            return RedirectResponse(get_auth_manager().get_url_login(next_url=here), status_code=303)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    def _checked_action(request: Request) -> None:
        if request.headers.get(ACTION_HEADER) != "1":
            raise HTTPException(400, f"an action needs the header {ACTION_HEADER}: 1 (the page sends it)")

    @app.post("/api/actions/rollback", dependencies=[Depends(_checked_action)])
    def rollback_action(user: Annotated[Any, Depends(get_user)], body: Annotated[dict, Body()]) -> Any:
        """Trigger manual_rollout with rollback_now for one Service."""
        try:
            return trigger_action(user, _action_conf(body, rollback=True))
        except KnativeInputError as error:
            raise HTTPException(400, str(error)) from error

    @app.post("/api/actions/rollout", dependencies=[Depends(_checked_action)])
    def rollout_action(user: Annotated[Any, Depends(get_user)], body: Annotated[dict, Body()]) -> Any:
        """Trigger manual_rollout of a model for one Service."""
        try:
            return trigger_action(user, _action_conf(body, rollback=False))
        except KnativeInputError as error:
            raise HTTPException(400, str(error)) from error

    @app.get("/api/rollouts")
    def rollouts_json(hook: Hook, namespace: Namespaces = None) -> Any:
        """Return the rollouts as JSON."""
        return _read(hook, namespace)

    @app.get("/", response_class=HTMLResponse)
    def rollouts_page(hook: Hook, namespace: Namespaces = None) -> HTMLResponse:
        """Return the rollouts as an HTML page."""
        try:
            return HTMLResponse(render_page(_read(hook, namespace)))
        except HTTPException as error:
            return HTMLResponse(render_error(str(error.detail)), status_code=error.status_code)

    return app
