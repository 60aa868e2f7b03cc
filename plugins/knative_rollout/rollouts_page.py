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

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from knative_rollout.exceptions import (
    KnativeInputError,
    permanent_input_errors,
)
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.resources import (
    check_namespace,
    check_service_name,
    condition,
    is_managed,
    revision_info,
    state_from_annotations,
)

URL_PREFIX = "/knative-rollout"
HISTORY_SHOWN = 10
ACTIONS_DAG = "manual_rollout"
"""The DAG the page's actions trigger (``dags/manual_rollout.py``)."""
ACTION_HEADER = "X-Rollouts-Action"


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
        "revisions": sorted(
            (revision_view(item, now) for item in revisions or []),
            key=lambda item: str(item["created"]),
            reverse=True,
        ),
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
            services.append(rollout_view(item, revisions, lock))
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


# -- HTML ---------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2933; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } h2 { font-size: 1.1rem; margin: 0; }
.meta, .empty { color: #52606d; font-size: .9rem; }
.card { border: 1px solid #d9e2ec; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
.phase { display: inline-block; padding: .1rem .5rem; border-radius: 4px; font-size: .85rem;
         background: #e4e7eb; }
.Promoted, .Stable { background: #c6f7d0; } .Canary, .Deploying { background: #fff3c4; }
.Failed, .RolledBack { background: #ffd6d6; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { text-align: left; padding: .2rem .8rem .2rem 0; vertical-align: top; }
th { color: #52606d; font-weight: 600; } .time { white-space: nowrap; }
.bar { display: inline-block; height: .7rem; background: #3e7bfa; vertical-align: middle; }
.error { color: #b00020; }
.actions { margin: .5rem 0; } .actions form { display: inline; } .actions input { font-size: .85rem; }
button.rollback { background: #ffd6d6; border: 1px solid #b00020; border-radius: 4px; }
"""


def _text(value: object) -> str:
    return "&ndash;" if value in (None, "") else escape(str(value))


def _link(url: object) -> str:
    return f'<a href="{escape(str(url))}">{escape(str(url))}</a>' if url else "&ndash;"


def _rollout_line(view: Mapping[str, Any]) -> str:
    """Return the rollout in progress (or the last one) and who holds the lock, as one line."""
    lock = view["lock"]
    if lock.get("holder"):
        state = "expired" if lock.get("expired") else f"until {_text(lock.get('expires'))} unless renewed"
        held = f'lock held by <code class="holder">{_text(lock["holder"])}</code> ({state})'
    else:
        held = "lock free"
    if not view["rollout_id"]:
        return f'<p class="meta rollout">No rollout recorded &middot; {held}</p>'
    what = "Rollout in progress" if view["active"] else "Last rollout"
    return (
        f'<p class="meta rollout">{what} <code class="rollout-id">{_text(view["rollout_id"])}</code> of '
        f"{_text(view['rollout_revision'])} since {_text(view['rollout_since'])} &middot; {held}</p>"
    )


def _by(entry: Mapping[str, Any]) -> str:
    links = entry.get("links")
    if not links:
        return _text(entry.get("by"))
    return (
        f'<a class="run-link" target="_top" href="{escape(links["run"])}">{_text(entry["by"])}</a> '
        f'(<a class="log-link" target="_top" href="{escape(links["task"])}">log</a>)'
    )


def _actions(view: Mapping[str, Any]) -> str:
    """Return the Service's actions: roll back now, and roll out a model (prefilled for this Service)."""
    stable = next((item for item in view["revisions"] if item["name"] == view["stable"]), None)
    data = {
        "service_name": view["name"],
        "namespace": view["namespace"],
        "image": (stable or {}).get("image") or "",
        # manual_rollout requires a model even to roll back: the stable one's, which it leaves as it is.
        "model_uri": (stable or {}).get("model_uri") or "",
    }
    attributes = f"data-service='{escape(json.dumps(data), quote=True)}'"
    model = escape(str((stable or {}).get("model_uri") or ""), quote=True)
    return (
        f'<div class="actions" {attributes}>'
        '<button type="button" class="rollback" onclick="rolloutAction(this, \'rollback\')">'
        "Roll back</button> "
        '<form class="rollout" onsubmit="event.preventDefault(); rolloutAction(this, \'rollout\')">'
        f'<label>Model URI <input name="model_uri" required size="50" value="{model}"></label> '
        '<label>p99 limit (ms) <input name="p99_ms" type="number" min="1" max="60000" value="500"></label> '
        f'<button type="submit">Roll out a model</button> <a target="_top" href="/dags/{ACTIONS_DAG}">'
        f"{ACTIONS_DAG} in Airflow</a></form>"
        '<p class="action-result meta"></p></div>'
    )


def _reason(reason: object) -> str:
    return f" ({_text(reason)})" if reason else ""


def _service_card(view: Mapping[str, Any]) -> str:
    revisions = "".join(
        f"<tr><th>{label}</th><td>{_text(view[key])}</td></tr>"
        for label, key in (
            ("Stable", "stable"),
            ("Candidate", "candidate"),
            ("Previous stable", "previous_stable"),
            ("Latest ready", "latest_ready"),
            ("Latest created", "latest_created"),
        )
        # The latest created revision is only news when it is not the ready one (it failed, or is starting).
        if key != "latest_created" or view[key] != view["latest_ready"]
    )
    traffic = "".join(
        f'<tr class="traffic-row" data-revision="{escape(str(target["revision"]))}" '
        f'data-percent="{target["percent"]}"><td>{_text(target["revision"])}</td><td>{target["percent"]}%</td>'
        f'<td><span class="bar" style="width:{target["percent"] * 1.5:.0f}px"></span></td>'
        f"<td>{_text(target['tag'])}</td><td>{_link(target['url'])}</td></tr>"
        for target in view["traffic"]
    )
    all_revisions = "".join(
        f"<tr><td>{_text(item['name'])}</td>"
        f'<td title="{escape(str(item["created"]))}">{_text(item["age"])}</td>'
        f'<td title="{escape(str(item["model_uri"] or ""))}">{_text(item["model"])}</td>'
        f"<td>{_text(item['ready'])}{_reason(item['reason'])}</td></tr>"
        for item in view["revisions"]
    )
    history = "".join(
        f'<tr class="history-row"><td class="time">{_text(entry["time"])}</td>'
        f"<td>{_text(entry['action'])}</td>"
        f"<td>{_text(entry['detail'])}</td><td>{_by(entry)}</td></tr>"
        for entry in view["history"]
    )
    ready = _text(view["ready"]) + (f" ({_text(view['ready_reason'])})" if view["ready_reason"] else "")
    step = f" &middot; candidate at {view['step']}%" if view["candidate"] else ""
    return (
        f'<section class="card" data-service="{escape(str(view["name"]))}">'
        f"<h2>{_text(view['namespace'])}/{_text(view['name'])} "
        f'<span class="phase {escape(view["phase"])}">{_text(view["phase"])}</span></h2>'
        f'<p class="meta">URL {_link(view["url"])} &middot; Ready {ready}{step}</p>'
        f"{_rollout_line(view)}{_actions(view)}"
        f'<table class="state">{revisions}</table>'
        '<table class="traffic"><tr><th>Revision</th><th>Traffic</th><th></th><th>Tag</th>'
        "<th>Tag URL</th></tr>"
        f"{traffic or '<tr><td colspan=5 class=empty>no traffic served yet</td></tr>'}</table>"
        '<table class="revisions"><tr><th>Revision</th><th>Age</th><th>Model</th><th>Ready</th></tr>'
        f"{all_revisions or '<tr><td colspan=4 class=empty>no revisions</td></tr>'}</table>"
        '<table class="history"><tr><th>Time</th><th>Event</th><th>Detail</th><th>By</th></tr>'
        f"{history or '<tr><td colspan=4 class=empty>no history</td></tr>'}</table></section>"
    )


SCRIPT = """
async function rolloutAction(element, action) {
  const box = element.closest('.actions');
  const body = JSON.parse(box.dataset.service);
  const name = body.namespace + '/' + body.service_name;
  if (action === 'rollback' && !confirm('Roll back ' + name + ' now?')) return;
  if (action === 'rollout') {
    for (const input of element.querySelectorAll('input')) body[input.name] = input.type === 'number'
      ? Number(input.value) : input.value;
  }
  const result = box.querySelector('.action-result');
  result.textContent = 'Triggering ' + action + ' ...';
  const response = await fetch('api/actions/' + action, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-Rollouts-Action': '1'}, body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) {
    result.textContent = 'Refused: ' + answer.detail;
    result.classList.add('error');
    return;
  }
  lastAction = Date.now();
  result.innerHTML = '';
  const link = document.createElement('a');
  link.href = answer.url; link.target = '_top'; link.className = 'triggered-run';
  link.textContent = answer.dag_id + ' run ' + answer.run_id;
  result.append('Triggered ', link, '; this page refreshes itself.');
}
// With ?refresh=SECONDS the page reloads itself, except while the user types or just acted.
let lastAction = 0;
const refresh = Number(new URLSearchParams(location.search).get('refresh') || 0);
if (refresh > 0) setInterval(() => {
  const typing = document.activeElement && document.activeElement.tagName === 'INPUT';
  if (!typing && Date.now() - lastAction > 15000) location.reload();
}, refresh * 1000);
"""


def _document(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Knative rollouts</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}</body></html>"
    )


def render_page(data: Mapping[str, Any]) -> str:
    """Return the HTML page of :func:`collect_rollouts`' result."""
    where = ", ".join(escape(name) for name in data["namespaces"])
    header = (
        "<h1>Knative rollouts</h1>"
        f'<p class="meta">Connection <code>{escape(data["connection"])}</code> &middot; namespaces {where} '
        f"(from {escape(data['namespaces_from'])}; add <code>?namespace=NAME</code> to choose) &middot; "
        '<a href="api/rollouts">JSON</a></p>'
    )
    errors = "".join(
        f'<p class="error">Namespace {escape(item["namespace"])}: {escape(item["error"])}</p>'
        for item in data["errors"]
    )
    cards = "".join(_service_card(view) for view in data["services"])
    empty = '<p class="empty">No Service managed by knative-rollout in these namespaces.</p>'
    return _document(header + errors + (cards or empty))


def render_error(message: str) -> str:
    """Return an HTML page that explains why the rollouts cannot be shown."""
    return _document(f'<h1>Knative rollouts</h1><p class="error">{escape(message)}</p>')
