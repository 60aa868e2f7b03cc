"""The Rollouts page: where the rollout of every managed Knative Service stands, read from its annotations.

A FastAPI app that :mod:`knative_rollout.plugin` mounts in the Airflow API server under
:data:`URL_PREFIX`: ``/`` is a server-rendered HTML page (the Airflow UI shows it under "Rollouts"),
``/api/rollouts`` the same data as JSON. Both take the query parameters ``conn_id`` (the ``kubernetes``
connection to read through, default ``kubernetes_default``) or, for GKE, ``cluster_name``, ``location``,
``project_id`` and ``gcp_conn_id``; and ``namespace`` (repeatable). Without ``namespace`` the page shows
the guardrails' allowed namespaces, or ``default`` when they allow any.

The page only reads, through :class:`~knative_rollout.hooks.KnativeServingHook` like the operators do,
so it shows what any task, retry or other DAG would see. It needs an Airflow login, as the rest of the
API server does: the UI's session cookie or a bearer token.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import requires_authenticated
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from knative_rollout.exceptions import (
    KnativeInputError,
    permanent_input_errors,
)
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import check_namespace, condition, is_managed, state_from_annotations

URL_PREFIX = "/knative-rollout"
HISTORY_SHOWN = 5


def rollout_view(service: Mapping[str, Any]) -> dict[str, Any]:
    """Return what the page shows of one Knative Service: its rollout state and the traffic it serves."""
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
            {"time": entry.time, "action": entry.action, "detail": entry.detail}
            for entry in reversed(state.history[-HISTORY_SHOWN:])
        ],
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
        services.extend(rollout_view(item) for item in sorted(items, key=_name) if is_managed(item))
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


def create_app() -> FastAPI:
    """Return the Rollouts app (HTML page and JSON endpoint), protected by Airflow's login."""
    app = FastAPI(
        title="Knative rollouts",
        description="Where the rollout of every managed Knative Service stands.",
        dependencies=[Depends(requires_authenticated())],
    )

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
"""


def _text(value: object) -> str:
    return "&ndash;" if value in (None, "") else escape(str(value))


def _link(url: object) -> str:
    return f'<a href="{escape(str(url))}">{escape(str(url))}</a>' if url else "&ndash;"


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
        f"<tr><td>{_text(target['revision'])}</td><td>{target['percent']}%</td>"
        f'<td><span class="bar" style="width:{target["percent"] * 1.5:.0f}px"></span></td>'
        f"<td>{_text(target['tag'])}</td><td>{_link(target['url'])}</td></tr>"
        for target in view["traffic"]
    )
    history = "".join(
        f'<tr><td class="time">{_text(entry["time"])}</td><td>{_text(entry["action"])}</td>'
        f"<td>{_text(entry['detail'])}</td></tr>"
        for entry in view["history"]
    )
    ready = _text(view["ready"]) + (f" ({_text(view['ready_reason'])})" if view["ready_reason"] else "")
    step = f" &middot; candidate at {view['step']}%" if view["candidate"] else ""
    return (
        f'<section class="card"><h2>{_text(view["namespace"])}/{_text(view["name"])} '
        f'<span class="phase {escape(view["phase"])}">{_text(view["phase"])}</span></h2>'
        f'<p class="meta">URL {_link(view["url"])} &middot; Ready {ready}{step}</p>'
        f"<table>{revisions}</table>"
        "<table><tr><th>Revision</th><th>Traffic</th><th></th><th>Tag</th><th>Tag URL</th></tr>"
        f"{traffic or '<tr><td colspan=5 class=empty>no traffic served yet</td></tr>'}</table>"
        "<table><tr><th>Time</th><th>Event</th><th>Detail</th></tr>"
        f"{history or '<tr><td colspan=3 class=empty>no history</td></tr>'}</table></section>"
    )


def _document(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Knative rollouts</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
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
