"""The admin endpoint that scripts faults: ``/admin/faults`` on the API server's port, behind the admin token.

Every request needs ``Authorization: Bearer <admin token>`` (the token is in ``DATA_DIR/admin-token``);
the ordinary kubeconfig token does not open it. When fault injection is off, the paths answer 404.

========  ========================  =====================================================================
method    path                      does
========  ========================  =====================================================================
GET       /admin/faults             ``{"seed", "rules": [... with matched/fired], "fired": [...]}``
POST      /admin/faults             add one rule (JSON body), answers 201 with it (and its id)
PUT       /admin/faults             replace everything with ``{"seed": N, "rules": [...]}``
DELETE    /admin/faults             remove every rule
DELETE    /admin/faults/{id}        remove one rule
POST      /admin/kill               ``{"namespace", "revision", "pod"?, "signal"?: "KILL"|"TERM"}``: end
                                    the pod processes of a revision (or one pod) as a crash would
========  ========================  =====================================================================
"""

from __future__ import annotations

import hmac
import json
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from local_knative.errors import ApiError, bad_request
from local_knative.faults.rules import FaultInjector, FaultSpecError

ADMIN_PREFIX = "/admin/"
ADMIN_TOKEN_FILE = "admin-token"

PodKiller = Callable[[str, str, "str | None", signal.Signals], list[str]]


@dataclass
class AdminHooks:
    """Parts of the server the admin endpoint acts on that exist only after the API app is built."""

    kill_pods: PodKiller | None = None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        raise bad_request("the admin request body is not JSON") from None


def add_admin_routes(
    app: web.Application, injector: FaultInjector | None, token: str | None, hooks: AdminHooks
) -> None:
    """Serve the admin endpoint on ``app``; with ``injector`` None every admin path answers 404."""

    def guard(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if injector is None or token is None:
                raise ApiError(
                    404,
                    "NotFound",
                    "fault injection is off: start `python -m local_knative serve` with --fault-injection "
                    "or --faults FILE",
                )
            sent = request.headers.get("Authorization", "")
            if not sent.startswith("Bearer "):
                raise ApiError(
                    401, "Unauthorized", "the admin endpoint needs Authorization: Bearer <admin token>"
                )
            if not hmac.compare_digest(sent[len("Bearer ") :].strip().encode(), token.encode()):
                raise ApiError(
                    403,
                    "Forbidden",
                    "wrong admin token: use the one in DATA_DIR/admin-token, not the kubeconfig's",
                )
            try:
                return await handler(request)
            except FaultSpecError as error:
                raise bad_request(str(error)) from None

        return guarded

    def faults() -> FaultInjector:
        assert injector is not None  # guard() answered 404 otherwise
        return injector

    async def show(_request: web.Request) -> web.Response:
        return _json(faults().snapshot())

    async def add(request: web.Request) -> web.Response:
        return _json(faults().add(await _body(request)).to_dict(), 201)

    async def replace(request: web.Request) -> web.Response:
        faults().replace(await _body(request))
        return _json(faults().snapshot())

    async def clear(_request: web.Request) -> web.Response:
        faults().clear()
        return _json(faults().snapshot())

    async def remove(request: web.Request) -> web.Response:
        rule_id = request.match_info["id"]
        if not faults().remove(rule_id):
            raise ApiError(404, "NotFound", f"no fault rule {rule_id!r}; GET /admin/faults lists them")
        return _json(faults().snapshot())

    async def kill(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or not body.get("namespace") or not body.get("revision"):
            raise bad_request('send {"namespace": NS, "revision": REV} (and optionally "pod" and "signal")')
        try:
            signum = signal.Signals[f"SIG{str(body.get('signal', 'KILL')).upper().removeprefix('SIG')}"]
        except KeyError:
            raise bad_request(f"unknown signal {body.get('signal')!r}: use KILL or TERM") from None
        if hooks.kill_pods is None:
            raise ApiError(503, "ServiceUnavailable", "the revision runtime is not running yet")
        killed = hooks.kill_pods(str(body["namespace"]), str(body["revision"]), body.get("pod"), signum)
        if not killed:
            raise ApiError(
                404,
                "NotFound",
                f"revision {body['namespace']}/{body['revision']} has no running pod"
                + (f" named {body['pod']!r}" if body.get("pod") else "")
                + "; see `kubectl get pods -l serving.knative.dev/revision=REV`",
            )
        return _json({"killed": killed, "signal": signum.name})

    router = app.router
    router.add_get("/admin/faults", guard(show))
    router.add_post("/admin/faults", guard(add))
    router.add_put("/admin/faults", guard(replace))
    router.add_delete("/admin/faults", guard(clear))
    router.add_delete("/admin/faults/{id}", guard(remove))
    router.add_post("/admin/kill", guard(kill))
