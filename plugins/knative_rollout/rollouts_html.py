"""The Rollouts page's HTML: one card per Service, its actions and the little script that sends them.

Server-rendered on purpose: the page works in the UI's iframe and in a plain browser without a build
step, and every value it shows is escaped here. The data comes from :mod:`knative_rollout.rollouts_page`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from knative_rollout.resources.charts import analysis_charts, latency_chart

ACTIONS_DAG = "manual_rollout"
"""The DAG the page's actions trigger (``dags/manual_rollout.py``)."""
ACTION_HEADER = "X-Rollouts-Action"
"""The header every action request carries, which a cross-site form cannot send."""

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
.error, .gate.failed { color: #b00020; }
.actions { margin: .5rem 0; } .actions form { display: inline; } .actions input { font-size: .85rem; }
button.rollback { background: #ffd6d6; border: 1px solid #b00020; border-radius: 4px; }
.plots svg { margin: .2rem 1rem .2rem 0; vertical-align: top; }
.diagnostics { border-left: 3px solid #b00020; padding-left: .6rem; margin: .5rem 0; }
pre.log { background: #f5f7fa; font-size: .8rem; padding: .4rem; margin: .2rem 0; white-space: pre-wrap;
          max-height: 18rem; overflow: auto; }
.verdict-fail { color: #b00020; } .verdict-pass { color: #1f7a3a; } .verdict-inconclusive { color: #8a6d00; }
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


def _task_link(report: Mapping[str, Any]) -> str:
    link = (report.get("links") or {}).get("task")
    task = _text(report["task"])
    return f'<a target="_top" href="{escape(link)}">{task}</a>' if link else task


def _gate_line(view: Mapping[str, Any]) -> str:
    """Return the load test's numbers and verdict, and its latency plot."""
    gate = view.get("load_test")
    if not gate:
        return ""
    outcome = "SLO passed" if gate["passed"] else "SLO failed: " + "; ".join(gate["violations"])
    numbers = (
        f"{gate['completed']}/{gate['requests']} requests at {float(gate['achieved_rate'] or 0):.1f}/s, "
        f"p50 {float(gate['p50_ms'] or 0):.1f} ms, p99 {float(gate['p99_ms'] or 0):.1f} ms, "
        f"error rate {float(gate['error_rate'] or 0):.2%}"
    )
    report = f" &middot; report {_text(gate['report'])}" if gate.get("report") else ""
    status = "passed" if gate["passed"] else "failed"
    plot = latency_chart(gate.get("latency_ms") or {}, gate.get("checks") or [], gate.get("error_rate"))
    return (
        f'<p class="meta gate {status}">Load test ({_task_link(gate)}): {escape(numbers)}: {escape(outcome)}'
        f'{report}</p><div class="plots load-test-plot">{plot}</div>'
    )


def _verdict(value: object) -> str:
    return f'<span class="verdict-{escape(str(value))}">{_text(value)}</span>'


def _number(value: object, digits: int = 3) -> str:
    return (
        f"{value:.{digits}g}" if isinstance(value, int | float) and not isinstance(value, bool) else "&ndash;"
    )


def _table(css: str, headers: tuple[str, ...], rows: list[list[str]]) -> str:
    """Return a table of already escaped cells, or nothing without rows."""
    if not rows:
        return ""
    head = "".join(f"<th>{header}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _analysis_section(view: Mapping[str, Any]) -> str:
    """Return the metric analysis: each step's verdict, the newest report per metric and SLO, and plots."""
    analysis = view.get("analysis")
    if not analysis:
        return ""
    latest = analysis["latest"]
    steps = [
        [_text(step["label"]), _verdict(step["verdict"]), _number(step.get("score")), _text(step["reason"])]
        for step in analysis["steps"]
    ]
    metrics = [
        [
            *(_text(item[key]) for key in ("metric", "classification")),
            *(_number(item[key]) for key in ("ratio", "p_value")),
            _text(item["reason"]),
        ]
        for item in latest["metrics"]
    ]
    checks = [
        [
            _text(item.get("check")),
            *(_number(item.get(key)) for key in ("threshold", "observed")),
            _verdict(item.get("verdict")),
            _text(item.get("reason")),
        ]
        for item in latest["slo"]
    ]
    # The canary task keeps only its newest report: then that one window is plotted.
    charted = [step for step in analysis["steps"] if step.get("totals")] or [{**latest, "label": ""}]
    plots = "".join(analysis_charts(charted, latest["slo"]))
    score = f", score {_number(latest['score'])}" if latest.get("score") is not None else ""
    against = f" against {_text(latest['baseline'])}" if latest.get("baseline") else ""
    return (
        f'<div class="analysis"><p class="meta">Analysis ({_task_link(analysis)}): newest window of '
        f"{_text(latest['canary'])}{against}: {_verdict(latest['verdict'])}{score}: "
        f"{_text(latest['reason'])}</p>"
        + _table("analysis-steps", ("Step", "Verdict", "Score", "Reason"), steps)
        + _table("analysis-metrics", ("Metric", "Classification", "Ratio", "p-value", "Reason"), metrics)
        + _table("analysis-slos", ("SLO", "Threshold", "Observed", "Verdict", "Reason"), checks)
        + f'<div class="plots analysis-plot">{plots}</div></div>'
    )


def _diagnostics_section(view: Mapping[str, Any]) -> str:
    """Return the failed candidate's conditions and its pods' last log lines (masked by the hook)."""
    found = view.get("diagnostics")
    if not found:
        return ""
    conditions = "".join(f'<li class="condition">{_text(item["text"])}</li>' for item in found["conditions"])
    pods = "".join(
        f'<p class="meta">Pod <code>{_text(pod["pod"])}</code> ({_text(pod["state"])}), container '
        f"{_text(pod['container'])}: "
        + (
            f'<span class="error">{_text(pod["error"])}</span></p>'
            if pod["error"]
            else f"last {len(pod['lines'])} log lines</p>"
            f'<pre class="log">{escape(chr(10).join(pod["lines"])) or "(no output)"}</pre>'
        )
        for pod in found["pods"]
    )
    note = f'<p class="meta">{_text(found["note"])}, so no logs.</p>' if found["note"] else ""
    errors = "".join(f'<p class="error">{_text(error)}</p>' for error in found["errors"])
    return (
        f'<div class="diagnostics"><p><strong>Why {_text(found["revision"])} failed</strong> '
        f'(its Knative conditions and last pod log lines)</p><ul class="conditions">{conditions}</ul>'
        f"{pods}{note}{errors}</div>"
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
        f"{_rollout_line(view)}{_diagnostics_section(view)}{_gate_line(view)}{_analysis_section(view)}"
        f"{_actions(view)}"
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
