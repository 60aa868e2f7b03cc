"""The Kubernetes-compatible API server: discovery, OpenAPI v3, REST verbs, watch, Tables and pod logs.

``build_api_app(store, admission=...)`` returns an aiohttp application that real kubectl and the
``kubernetes`` / ``kubernetes_asyncio`` clients talk to; ``/metrics`` counts the REST requests served
(``apiserver_request_total`` by verb, resource and code, as kube-apiserver does). Any bearer token is
accepted unless an :class:`~local_knative.auth.Access` that enforces is given (``serve --auth``): then
tokens and RBAC are checked on every request. With a fault injector, ``/admin/faults`` scripts failures
(:mod:`local_knative.faults`).

Deliberate simplifications, each invisible to the clients this project uses:

* Server-side apply merges the applied object over the live one like a JSON merge patch; there is no
  field ownership (``managedFields``), so a field dropped from a later apply is kept, not removed.
* LIST ignores ``limit`` and returns everything with no ``continue`` token.
* Protobuf is decoded only for request bodies of Namespace, ConfigMap, Secret, ServiceAccount, the RBAC
  kinds, TokenRequest and the self reviews (what ``kubectl create`` and ``kubectl auth`` send); answers are
  always JSON, which every client accepts.
* Deletion is immediate (no finalizers, no grace period); owned objects are collected right away.
* Field selectors accept any dotted path; field validation checks field names at every depth against
  :mod:`.schemas`, not their types.
* Watch history is the last 5,000 writes, in memory: older resourceVersions (and any from before a
  restart) get 410 Expired, as after an etcd compaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from local_knative.apiserver import discovery, openapi, openapi_pb
from local_knative.apiserver.rest import Admission, RestHandler, RestSettings, resolve
from local_knative.errors import ApiError
from local_knative.faults.admin import AdminHooks, add_admin_routes
from local_knative.faults.rules import ConnectionDropped, FaultInjector
from local_knative.store import Store

if TYPE_CHECKING:
    from local_knative.auth import Access

__all__ = ["build_api_app"]

log = logging.getLogger(__name__)
_NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")


def _json(data: object, content_type: str = "application/json", **kwargs: Any) -> web.Response:
    # The exact Content-Type the API server sends: no charset parameter (aiohttp's default adds one).
    response = web.Response(body=json.dumps(data).encode(), **kwargs)
    response.headers["Content-Type"] = content_type
    return response


@web.middleware
async def _errors_as_status(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _json(error.to_status(), status=error.code, headers=error.headers)
    except ConnectionDropped:
        return web.Response()  # never sent: the fault closed the connection
    except web.HTTPException as error:
        if error.status_code == 404:
            return _json(_NOT_FOUND.to_status(), status=404)
        if error.status_code < 400:
            raise
        reason = error.reason.replace(" ", "")
        message = f"{request.method} {request.path}: {error.reason.lower()}"
        status = ApiError(error.status_code, reason, message).to_status()
        return _json(status, status=error.status_code)
    except Exception as error:
        log.exception("internal error serving %s %s", request.method, request.path_qs)
        status = ApiError(500, "InternalError", f"Internal error occurred: {error}").to_status()
        return _json(status, status=500)


def build_api_app(
    store: Store,
    *,
    admission: Admission | None = None,
    data_dir: Path | None = None,
    bookmark_interval: float = 5.0,
    faults: FaultInjector | None = None,
    admin_token: str | None = None,
    admin_hooks: AdminHooks | None = None,
    access: Access | None = None,
) -> web.Application:
    """Return the API server application over ``store``.

    :param admission: ``admit(kind, operation, obj, old) -> obj`` called before every main-resource write
        (not /status); None admits everything unchanged.
    :param data_dir: the data directory holding ``logs/NS/POD.log`` for ``kubectl logs``.
    :param bookmark_interval: seconds between BOOKMARK events on watches with ``allowWatchBookmarks``.
    :param faults: the fault injector consulted on every REST request; None turns fault injection off
        (and the admin endpoint answers 404).
    :param admin_token: the bearer token the admin endpoint (``/admin/...``) requires.
    :param admin_hooks: server parts the admin endpoint acts on (pod kills), filled in once they run.
    :param access: ServiceAccount tokens and the self reviews, and with ``enforce`` the authentication and
        RBAC check of every request; None serves neither.
    """
    rest = RestHandler(
        store,
        admission,
        RestSettings(data_dir=data_dir, bookmark_interval=bookmark_interval),
        faults=faults,
    )

    async def version(_request: web.Request) -> web.Response:
        return _json(discovery.version_info())

    async def core_discovery(request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated_discovery(core=True), discovery.AGGREGATED_CONTENT_TYPE)
        return _json(discovery.api_versions(request.host))

    async def groups_discovery(request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated_discovery(core=False), discovery.AGGREGATED_CONTENT_TYPE)
        return _json(discovery.api_group_list())

    async def core_resources(_request: web.Request) -> web.Response:
        return _json(discovery.api_resource_list("", "v1"))

    async def group(request: web.Request) -> web.Response:
        answer = discovery.api_group(request.match_info["group"])
        if answer is None:
            raise _NOT_FOUND
        return _json(answer)

    async def group_resources(request: web.Request) -> web.Response:
        resources = discovery.api_resource_list(request.match_info["group"], request.match_info["version"])
        if resources is None:
            raise _NOT_FOUND
        return _json(resources)

    async def openapi_index(_request: web.Request) -> web.Response:
        return _json(openapi.index())

    async def openapi_v2(request: web.Request) -> web.Response:
        if openapi_pb.MEDIA_TYPE in request.headers.get("Accept", ""):
            return web.Response(body=openapi.v2_protobuf(), content_type=openapi_pb.RESPONSE_TYPE)
        return _json(openapi.v2_document())

    async def openapi_document(request: web.Request) -> web.Response:
        parts = request.match_info["tail"].split("/")
        if parts[0] == "api" and len(parts) == 2:
            document = openapi.group_version_document("", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            document = openapi.group_version_document(parts[1], parts[2])
        else:
            document = None
        if document is None:
            raise _NOT_FOUND
        return _json(document)

    async def core_rest(request: web.Request) -> web.StreamResponse:
        return await rest.handle(request, resolve("", "v1", request.match_info["tail"].split("/")))

    async def group_rest(request: web.Request) -> web.StreamResponse:
        target = resolve(
            request.match_info["group"], request.match_info["version"], request.match_info["tail"].split("/")
        )
        return await rest.handle(request, target)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_request: web.Request) -> web.Response:
        # kube-apiserver's counter, with its label names: how many requests each client pattern costs.
        lines = ["# TYPE apiserver_request_total counter"]
        for (verb, group_name, version_name, resource, subresource, code), count in sorted(
            rest.requests.items()
        ):
            labels = (
                f'code="{code}",group="{group_name}",resource="{resource}",subresource="{subresource}",'
                f'verb="{verb.upper()}",version="{version_name}"'
            )
            lines.append(f"apiserver_request_total{{{labels}}} {count}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def end_streams(_app: web.Application) -> None:
        rest.closing.set()

    middlewares: list[Any] = [_errors_as_status]
    if access is not None and access.enforce:
        middlewares.append(access.middleware)
    app = web.Application(middlewares=middlewares, client_max_size=8 * 1024 * 1024)
    app.on_shutdown.append(end_streams)
    router = app.router
    if access is not None:
        rest.token_request = lambda request, target: access.token_request(
            request, str(target.namespace), str(target.name)
        )
        access.add_routes(app)
    router.add_get("/version", version)
    router.add_get("/version/", version)  # the kubernetes client's VersionApi asks here
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", healthz)
    router.add_get("/livez", healthz)
    router.add_get("/metrics", metrics)
    router.add_get("/api", core_discovery)
    router.add_get("/api/", core_discovery)
    router.add_get("/apis", groups_discovery)
    router.add_get("/apis/", groups_discovery)
    router.add_get("/api/v1", core_resources)
    router.add_get("/api/v1/", core_resources)
    router.add_get("/openapi/v2", openapi_v2)
    router.add_get("/openapi/v3", openapi_index)
    router.add_get("/openapi/v3/{tail:.+}", openapi_document)
    router.add_route("*", "/api/v1/{tail:.+}", core_rest)
    router.add_get("/apis/{group}", group)
    router.add_get("/apis/{group}/", group)
    router.add_get("/apis/{group}/{version}", group_resources)
    router.add_get("/apis/{group}/{version}/", group_resources)
    router.add_route("*", "/apis/{group}/{version}/{tail:.+}", group_rest)
    add_admin_routes(app, faults, admin_token, admin_hooks or AdminHooks())
    return app
