"""REST verbs on every served kind: get, list, watch, create, replace, patch, delete, /status and pod logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from local_knative import kinds, rbac
from local_knative.apiserver import patches, protobuf, schemas, tables
from local_knative.errors import (
    ApiError,
    bad_request,
    conflict,
    invalid,
    method_not_allowed,
    not_found,
    unsupported_media_type,
)
from local_knative.faults.rules import ConnectionDropped, FaultInjector, FaultRule
from local_knative.kinds import Kind
from local_knative.store import Store

log = logging.getLogger(__name__)

Admission = Callable[[Kind, str, dict[str, Any], dict[str, Any] | None], dict[str, Any]]

DEFAULT_WATCH_TIMEOUT = 1800.0
_TRUE = ("true", "True", "1")


@dataclass(frozen=True)
class Target:
    """What a request addresses: a kind, and optionally a namespace, a name and a subresource."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class RestSettings:
    """Behaviour knobs of the REST layer.

    :param data_dir: where pod logs live (``logs/NS/POD.log``); None serves empty logs.
    :param bookmark_interval: seconds between BOOKMARK events on watches that allow them.
    """

    data_dir: Path | None = None
    bookmark_interval: float = 5.0


def _no_admission(
    _kind: Kind, _operation: str, obj: dict[str, Any], _old: dict[str, Any] | None
) -> dict[str, Any]:
    return obj


def _json(data: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type=content_type
    )


def resolve(group: str, version: str, segments: list[str]) -> Target:
    """Map the path segments after ``/api/v1`` or ``/apis/G/V`` to a :class:`Target`.

    :raises ApiError: 404 when no served resource lives at that path.
    """
    not_served = ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    rest = segments
    if len(segments) >= 3 and segments[0] == "namespaces":
        candidate = kinds.by_plural(group, version, segments[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = segments[1], segments[2:]
    if not rest or len(rest) > 3 or any(not part for part in rest):
        raise not_served
    kind = kinds.by_plural(group, version, rest[0])
    if kind is None:
        raise not_served
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if (kind.namespaced and name is not None and namespace is None) or (not kind.namespaced and namespace):
        raise not_served
    allowed_subresources = {"status"} if kind.status_subresource else set()
    if kind == kinds.POD:
        allowed_subresources.add("log")
    if kind == kinds.SERVICEACCOUNT:
        allowed_subresources.add("token")
    if subresource is not None and subresource not in allowed_subresources:
        raise not_served
    return Target(kind, namespace, name, subresource)


def _type_error(kind: Kind, obj: dict[str, Any], wrong: list[tuple[str, str, Any]]) -> ApiError:
    """Return what a real server answers for values of the wrong type, naming each field.

    A CRD's structural schema refuses them with 422 Invalid; a built-in kind fails to decode (400).
    """
    if not schemas.is_custom_resource(kind):
        path, expected, value = wrong[0]
        return bad_request(
            f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: json: cannot '
            f"unmarshal {schemas.json_type(value)} into Go struct field {kind.kind}.{path} of type {expected}"
        )
    causes = [
        {
            "type": "FieldValueTypeInvalid",
            "message": f'Invalid value: "{schemas.json_type(value)}": {path} in body must be of type '
            f'{expected}: "{schemas.json_type(value)}"',
            "field": path,
        }
        for path, expected, value in wrong
    ]
    return invalid(kind, str((obj.get("metadata") or {}).get("name", "")), causes)


def _event_line(event_type: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"


def request_verb(method: str, target: Target, watch: bool) -> str:
    """Return the Kubernetes verb of a request (``get``, ``list``, ``watch``, ``create`` ...) as RBAC says."""
    return rbac.verb_of(method, target.name is not None, watch)


_WARNINGS = web.RequestKey("local_knative_warnings", list)
_WATCH_LIMIT = web.RequestKey("local_knative_fault_watch_events", int)
_WATCH_EXPIRED = web.RequestKey("local_knative_fault_watch_expired", FaultRule)


class RestHandler:
    """Serve the REST verbs for every kind from a :class:`Store`.

    :param faults: consulted before every request; a rule that fires delays, fails or cuts it.
    """

    def __init__(
        self,
        store: Store,
        admission: Admission | None,
        settings: RestSettings,
        *,
        faults: FaultInjector | None = None,
    ) -> None:
        self.store = store
        self.admission = admission or _no_admission
        self.settings = settings
        self.faults = faults
        # Answers POST serviceaccounts/NAME/token (a TokenRequest); set by the access control.
        self.token_request: Callable[[web.Request, Target], Awaitable[web.StreamResponse]] | None = None
        # Set when the server shuts down, so open watches and log streams end instead of being cut.
        self.closing = asyncio.Event()
        # Requests served: (verb, group, version, resource, subresource, code) -> count, for /metrics.
        self.requests: Counter[tuple[str, str, str, str, str, int]] = Counter()

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Dispatch one request on ``target`` and count it by verb, resource and status code."""
        code = 500
        try:
            response = await self._dispatch(request, target)
            code = response.status
            return response
        except ApiError as error:
            code = error.code
            raise
        finally:
            kind = target.kind
            verb = request_verb(request.method, target, request.query.get("watch") in _TRUE)
            key = (verb, kind.group, kind.version, kind.plural, target.subresource or "", code)
            self.requests[key] += 1

    async def _dispatch(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if self.faults is not None and self.faults.active:
            await self._inject(request, target)
        if target.subresource == "token":
            if method != "POST" or self.token_request is None:
                raise method_not_allowed(f"{method} is not allowed on serviceaccounts/token: use POST")
            return await self.token_request(request, target)
        if target.subresource == "log":
            if method != "GET":
                raise method_not_allowed(f"{method} is not allowed on pods/log: use GET")
            return await self.pod_log(request, target)
        if target.name is None:
            if method == "GET":
                if request.query.get("watch") in _TRUE:
                    return await self.watch(request, target)
                return self.list(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return self.delete_collection(request, target)
            raise method_not_allowed(f"{method} is not allowed on a collection of {target.kind.resource}")
        if method == "GET":
            return self._respond(
                request, target.kind, self.store.get(target.kind, target.namespace, target.name)
            )
        if method == "PUT":
            return await self.replace(request, target)
        if method == "PATCH":
            return await self.patch(request, target)
        if method == "DELETE":
            return await self.delete(request, target)
        raise method_not_allowed(f"{method} is not allowed on {target.kind.resource}")

    async def _inject(self, request: web.Request, target: Target) -> None:
        """Apply the fault rule that fires for this request: delay, then fail, drop or mark a watch."""
        assert self.faults is not None
        kind = target.kind
        verb = request_verb(request.method, target, request.query.get("watch") in _TRUE)
        rule = self.faults.for_api(
            verb, kind.plural, kind.group, target.subresource, target.namespace, target.name
        )
        if rule is None:
            return
        log.info("fault %s fires on %s %s %s/%s", rule.id, verb, kind.resource, target.namespace, target.name)
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.reset:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionDropped(rule.id)
        if rule.watch_events is not None:
            request[_WATCH_LIMIT] = rule.watch_events
        elif rule.error == 410 and verb == "watch":
            # A watch learns of an expired resourceVersion from an ERROR event in a 200 stream, not a 410.
            request[_WATCH_EXPIRED] = rule
        elif rule.error is not None:
            raise rule.api_error(kind.resource, kind.group, target.name)

    # ---- answers -------------------------------------------------------------------------------------

    def _respond(
        self, request: web.Request, kind: Kind, obj: dict[str, Any], status: int = 200
    ) -> web.Response:
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            rv = obj["metadata"].get("resourceVersion", self.store.resource_version)
            response = _json(tables.table(kind, [obj], rv, include_object=include), status)
        else:
            response = _json(obj, status)
        for warning in request.get(_WARNINGS, ()):
            # RFC 7234 warning, as the API server sends it: code 299, agent "-", the text quoted.
            response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    def list(self, request: web.Request, target: Target) -> web.Response:
        """Answer a LIST (``as=Table`` when asked)."""
        label_selector = request.query.get("labelSelector")
        field_selector = request.query.get("fieldSelector")
        if tables.wants_table(request.headers.get("Accept", "")):
            items, rv = self.store.list(
                target.kind, target.namespace, label_selector=label_selector, field_selector=field_selector
            )
            include = request.query.get("includeObject", "Metadata")
            return _json(tables.table(target.kind, items, rv, include_object=include))
        # The stored JSON texts are spliced in as they are: a large LIST is never parsed and re-serialized.
        bodies, rv = self.store.list_json(
            target.kind, target.namespace, label_selector=label_selector, field_selector=field_selector
        )
        head = json.dumps(
            {
                "kind": f"{target.kind.kind}List",
                "apiVersion": target.kind.api_version,
                "metadata": {"resourceVersion": rv},
            },
            separators=(",", ":"),
        )
        text = head[:-1] + ',"items":[' + ",".join(bodies) + "]}"
        return web.Response(body=text.encode(), content_type="application/json")

    # ---- writes --------------------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            raise bad_request("the request body is empty: send the object as JSON or YAML")
        if request.content_type == protobuf.CONTENT_TYPE:
            return protobuf.decode(raw)
        try:
            return json.loads(raw)
        except ValueError:
            pass
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise bad_request(f"the request body is neither JSON nor YAML: {error}") from None

    def _check_body(self, request: web.Request, target: Target, obj: Any, *, name_from_url: bool) -> None:
        kind = target.kind
        if not isinstance(obj, dict):
            raise bad_request(f"the request body must be a {kind.kind} object, not {type(obj).__name__}")
        if obj.get("apiVersion") not in (None, kind.api_version) or obj.get("kind") not in (None, kind.kind):
            raise bad_request(
                f"the body is {obj.get('apiVersion')}/{obj.get('kind')} but this URL serves "
                f"{kind.api_version}/{kind.kind}: send it to the matching resource URL"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if kind.namespaced:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = target.namespace
        if name_from_url:
            if meta.get("name") not in (None, target.name):
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                    f"({target.name})"
                )
            meta["name"] = target.name
        self._validate_fields(request, kind, obj)

    @staticmethod
    def _validate_fields(request: web.Request, kind: Kind, obj: dict[str, Any]) -> None:
        """Check fields against the kind's schema, as ``fieldValidation`` asks.

        ``Strict`` (kubectl's default) refuses an unknown field at any depth; ``Warn`` (the server's default)
        drops it and says so in a ``Warning`` header; ``Ignore`` drops it silently.
        """
        mode = request.query.get("fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation must be "Strict", "Warn" or "Ignore", got {mode!r}')
        findings = schemas.check(kind, obj, prune=mode != "Strict")
        if findings.wrong_types:
            raise _type_error(kind, obj, findings.wrong_types)
        unknown = findings.unknown
        if not unknown:
            return
        if mode == "Strict":
            fields = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise bad_request(
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                f"strict decoding error: {fields}"
            )
        if mode == "Warn":
            request.setdefault(_WARNINGS, []).extend(f'unknown field "{path}"' for path in unknown)

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise bad_request(f"unsupported dryRun value {value!r}: the only accepted value is 'All'")
        return bool(values)

    def _create(self, target: Target, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        if target.kind.status_subresource:
            # Like the real server: status is ignored on create when it is a subresource.
            obj.pop("status", None)
        admitted = self.admission(target.kind, "CREATE", obj, None)
        return self.store.create(target.kind, admitted, dry_run=dry_run)

    def _update(
        self, target: Target, new: dict[str, Any], current: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        if target.subresource == "status":
            return self.store.replace(target.kind, new, subresource="status", dry_run=dry_run)
        admitted = self.admission(target.kind, "UPDATE", new, current)
        return self.store.replace(target.kind, admitted, dry_run=dry_run)

    async def create(self, request: web.Request, target: Target) -> web.Response:
        """Answer a POST: admission, then store; 201 with the created object."""
        if target.kind.namespaced and target.namespace is None:
            raise method_not_allowed(f"create {target.kind.resource} under /namespaces/NAMESPACE/")
        obj = await self._body(request)
        self._check_body(request, target, obj, name_from_url=False)
        created = self._create(target, obj, self._dry_run(request))
        return self._respond(request, target.kind, created, 201)

    async def replace(self, request: web.Request, target: Target) -> web.Response:
        """Answer a PUT on the object or its /status."""
        obj = await self._body(request)
        self._check_body(request, target, obj, name_from_url=True)
        current = self.store.get(target.kind, target.namespace, str(target.name))
        updated = self._update(target, obj, current, self._dry_run(request))
        return self._respond(request, target.kind, updated)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        """Answer a PATCH: merge, JSON, server-side apply, or (core kinds only) strategic merge as merge."""
        content_type = request.content_type
        kind = target.kind
        accepted = f"{patches.JSON_PATCH}, {patches.MERGE_PATCH}, {patches.APPLY_PATCH}"
        if content_type == patches.STRATEGIC_MERGE_PATCH and kind.group:
            raise unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: {accepted}"
            )
        if content_type not in (
            patches.MERGE_PATCH,
            patches.JSON_PATCH,
            patches.APPLY_PATCH,
            patches.STRATEGIC_MERGE_PATCH,
        ):
            raise unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: {accepted}"
            )
        body = await self._body(request)
        dry_run = self._dry_run(request)
        current = self.store.try_get(kind, target.namespace, str(target.name))
        if content_type == patches.APPLY_PATCH:
            self._check_body(request, target, body, name_from_url=True)
            if current is None:
                if target.subresource == "status":
                    raise self._missing(target)
                return self._respond(request, kind, self._create(target, body, dry_run), 201)
            # Server-side apply, simplified: the applied fields are merged over the live object (no field
            # ownership tracking, so fields dropped from a later apply are kept rather than removed).
            new = patches.merge_patch(current, body)
        elif current is None:
            raise self._missing(target)
        elif content_type == patches.JSON_PATCH:
            new = patches.json_patch(current, body)
        else:
            if not isinstance(body, dict):
                raise patches.patch_error(
                    f"a merge patch must be a JSON object, not {type(body).__name__}: to send a list of "
                    f"operations use Content-Type {patches.JSON_PATCH}"
                )
            new = patches.merge_patch(current, body)
        if not isinstance(new, dict):
            raise patches.patch_error("the patched object is not a JSON object")
        self._validate_fields(request, kind, new)
        new_meta = new.get("metadata") or {}
        if new_meta.get("name") != target.name or (
            kind.namespaced and new_meta.get("namespace") != target.namespace
        ):
            raise bad_request("a patch may not change metadata.name or metadata.namespace")
        return self._respond(request, kind, self._update(target, new, current, dry_run))

    @staticmethod
    def _missing(target: Target) -> ApiError:
        return not_found(target.kind, str(target.name))

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        """Answer a DELETE (an optional ``DeleteOptions`` body may carry preconditions and dryRun)."""
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    options = json.loads(raw)
                except ValueError:
                    raise bad_request("the DeleteOptions body is not valid JSON") from None
        dry_run = self._dry_run(request) or "All" in (options.get("dryRun") or [])
        current = self.store.get(target.kind, target.namespace, str(target.name))
        preconditions = options.get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            expected = preconditions.get(key)
            if expected and expected != current["metadata"].get(key):
                raise conflict(target.kind, str(target.name))
        deleted = self.store.delete(target.kind, target.namespace, str(target.name), dry_run=dry_run)
        return self._respond(request, target.kind, deleted)

    def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        """Answer a DELETE on a collection: delete every object the selectors match; return them as a list."""
        if target.kind == kinds.NAMESPACE:
            raise method_not_allowed("deleting every namespace at once is not allowed: delete them by name")
        items, _ = self.store.list(
            target.kind,
            target.namespace,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        dry_run = self._dry_run(request)
        deleted = []
        for item in items:
            meta = item["metadata"]
            # Garbage collection of an earlier item may already have removed this one.
            if self.store.try_get(target.kind, meta.get("namespace"), meta["name"]) is not None:
                deleted.append(
                    self.store.delete(target.kind, meta.get("namespace"), meta["name"], dry_run=dry_run)
                )
        return _json(
            {
                "kind": f"{target.kind.kind}List",
                "apiVersion": target.kind.api_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": deleted,
            }
        )

    # ---- streams -------------------------------------------------------------------------------------

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Stream watch events, one JSON object per line, until ``timeoutSeconds`` or the client leaves."""
        query = request.query
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = query.get("includeObject", "Metadata")
        bookmarks = query.get("allowWatchBookmarks") in _TRUE and not as_table
        try:
            timeout = float(query.get("timeoutSeconds", DEFAULT_WATCH_TIMEOUT))
        except ValueError:
            raise bad_request(
                f"timeoutSeconds must be a number, got {query.get('timeoutSeconds')!r}"
            ) from None
        events = self.store.watch(
            target.kind,
            target.namespace,
            query.get("resourceVersion"),
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
        )
        # A pump task moves events to a queue so the loop below can wait with a timeout without
        # cancelling (and so closing) the store's async generator.
        inbox: asyncio.Queue[tuple[str, dict[str, Any]] | ApiError] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in events:
                    inbox.put_nowait(item)
            except ApiError as error:
                inbox.put_nowait(error)
            except Exception as error:
                log.exception("watch on %s failed", target.kind.resource)
                inbox.put_nowait(ApiError(500, "InternalError", f"Internal error occurred: {error}"))

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        expired_by = request.get(_WATCH_EXPIRED)
        # An injected fault may cut the stream after this many events, as an API server restart would.
        limit = request.get(_WATCH_LIMIT)
        await response.prepare(request)
        if expired_by is not None:
            inbox.put_nowait(expired_by.api_error(target.kind.resource, target.kind.group, None))
        pump_task = asyncio.create_task(pump() if expired_by is None else asyncio.sleep(0))
        sent = 0
        deadline = time.monotonic() + timeout if limit != 0 else time.monotonic()
        next_bookmark = time.monotonic() + self.settings.bookmark_interval
        first_table = True
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if self.closing.is_set() or request.transport is None or request.transport.is_closing():
                    break
                wait = min(remaining, 0.5, max(next_bookmark - time.monotonic(), 0.0) if bookmarks else 0.5)
                try:
                    item = await asyncio.wait_for(inbox.get(), timeout=wait)
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        bookmark = {
                            "kind": target.kind.kind,
                            "apiVersion": target.kind.api_version,
                            "metadata": {"resourceVersion": self.store.resource_version},
                        }
                        await response.write(_event_line("BOOKMARK", bookmark).encode())
                        next_bookmark = time.monotonic() + self.settings.bookmark_interval
                    continue
                # Send everything already queued in one write: a replay of thousands of events is one chunk.
                batch = [item]
                while not inbox.empty():
                    batch.append(inbox.get_nowait())
                lines = []
                failed = False
                for queued in batch:
                    if isinstance(queued, ApiError):
                        lines.append(_event_line("ERROR", queued.to_status()))
                        failed = True
                        break
                    if limit is not None and sent >= limit:
                        failed = True
                        break
                    sent += 1
                    event_type, obj = queued
                    if as_table:
                        rv = obj["metadata"]["resourceVersion"]
                        obj = tables.table(
                            target.kind, [obj], rv, include_object=include, with_columns=first_table
                        )
                        first_table = False
                    lines.append(_event_line(event_type, obj))
                await response.write("".join(lines).encode())
                if failed or (limit is not None and sent >= limit):
                    break
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_task
            await events.aclose()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def pod_log(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Serve a pod's log file (``tailLines``, ``limitBytes``, ``follow``)."""
        pod = self.store.get(kinds.POD, target.namespace, str(target.name))
        path = None
        if self.settings.data_dir is not None:
            path = self.settings.data_dir / "logs" / str(target.namespace) / f"{target.name}.log"
        content = path.read_bytes() if path is not None and path.exists() else b""
        tail = request.query.get("tailLines")
        if tail is not None:
            try:
                count = int(tail)
            except ValueError:
                raise bad_request(f"tailLines must be an integer, got {tail!r}") from None
            lines = content.splitlines(keepends=True)
            content = b"".join(lines[-count:]) if count > 0 else b""
        limit = request.query.get("limitBytes")
        if limit is not None and limit.isdigit():
            content = content[: int(limit)]
        if request.query.get("follow") not in _TRUE:
            return web.Response(body=content, content_type="text/plain")
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        offset = path.stat().st_size if path is not None and path.exists() else 0
        try:
            await response.write(content)
            while (
                not self.closing.is_set()
                and request.transport is not None
                and not request.transport.is_closing()
            ):
                current = self.store.try_get(kinds.POD, target.namespace, str(target.name))
                if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                    break
                if path is not None and path.exists() and path.stat().st_size > offset:
                    with path.open("rb") as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                    offset += len(chunk)
                    await response.write(chunk)
                await asyncio.sleep(0.2)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response
