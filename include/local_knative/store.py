"""Keep every API object in memory, persisted to SQLite, with one global resourceVersion and watch history.

Design: the event loop is the only writer, so every method is synchronous and a write is atomic with
respect to readers and watchers. Each committed write is one SQLite transaction (the object row and the
counter), so after a restart every object, uid and resourceVersion is as it was. Watch history is kept in
memory only (bounded); a watch from a resourceVersion older than what is kept gets 410 Expired, which is
what a real server answers once etcd has compacted the revision.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
import secrets
import sqlite3
import string
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_knative import kinds
from local_knative.errors import already_exists, bad_request, conflict, expired, invalid, not_found
from local_knative.kinds import Kind
from local_knative.selectors import parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

DEFAULT_HISTORY_SIZE = 5000
INITIAL_NAMESPACES = ("default", "kube-system", "knative-serving")
_NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
# Fields of metadata the server owns: a client's value is ignored on update.
_SYSTEM_METADATA = ("uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp")

Subscriber = Callable[[str, Kind, dict[str, Any]], None]


def now_rfc3339() -> str:
    """Return the current UTC time as Kubernetes writes timestamps (``2026-01-02T03:04:05Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind_key(kind: Kind) -> str:
    return f"{kind.group}/{kind.version}/{kind.plural}"


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _parse(body: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    return _parse(_dumps(obj))


@dataclass
class _Event:
    """One committed write as watches replay it; objects are kept as JSON text, which is compact."""

    resource_version: int
    event_type: str
    kind: Kind
    namespace: str
    body: str
    old_body: str | None


@dataclass(eq=False)
class _Watcher:
    kind: Kind
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.filtered = bool((self.label_selector or "").strip() or (self.field_selector or "").strip())
        self._labels = parse_label_selector(self.label_selector)
        self._fields = parse_field_selector(self.field_selector)

    def matches(self, body: str | None) -> bool:
        if body is None:
            return False
        if not self.filtered:
            return True
        obj = _parse(body)
        return self._labels(obj) and self._fields(obj)

    def translate(self, event: _Event) -> str | None:
        """Return the event type this watcher sees, following objects in and out of its selectors."""
        if event.kind != self.kind or (self.namespace is not None and event.namespace != self.namespace):
            return None
        if not self.filtered:
            return event.event_type
        now_matches = self.matches(event.body)
        if event.event_type == "DELETED":
            return "DELETED" if now_matches else None
        before_matched = self.matches(event.old_body)
        if now_matches:
            return "MODIFIED" if before_matched else "ADDED"
        return "DELETED" if before_matched else None


class Store:
    """Hold API objects, persist them to SQLite and fan writes out to subscribers and watches.

    :param db_path: the SQLite file (created with its parent directory when missing).
    :param history_size: how many write events are kept for watches that resume from a resourceVersion.
    """

    def __init__(self, db_path: Path, *, history_size: int = DEFAULT_HISTORY_SIZE) -> None:
        db_path = Path(db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, "
            "name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, namespace, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._objects: dict[Kind, dict[tuple[str, str], str]] = {k: {} for k in kinds.ALL_KINDS}
        # owner uid -> the objects whose ownerReferences name it, so garbage collection needs no scan
        self._owned: dict[str, set[tuple[Kind, str, str]]] = {}
        self._subscribers: list[Subscriber] = []
        self._watchers: set[_Watcher] = set()
        self._history: deque[_Event] = deque()
        self._history_size = history_size
        self._rv = 0
        self._load()
        # Events at or below this resourceVersion are no longer kept: a watch from there gets 410.
        self._history_floor = self._rv
        if not self._objects[kinds.NAMESPACE]:
            for name in INITIAL_NAMESPACES:
                self.create(kinds.NAMESPACE, {"metadata": {"name": name}})

    def _load(self) -> None:
        by_key = {_kind_key(k): k for k in kinds.ALL_KINDS}
        for kind_key, namespace, name, body in self._db.execute(
            "SELECT kind, namespace, name, body FROM objects"
        ):
            kind = by_key.get(kind_key)
            if kind is None:
                log.warning("ignoring stored object %s/%s of unknown kind %s", namespace, name, kind_key)
                continue
            self._objects[kind][(namespace, name)] = body
            self._index_owners(kind, namespace, name, _parse(body), add=True)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'resourceVersion'").fetchone()
        self._rv = int(row[0]) if row else 0

    def close(self) -> None:
        """Close the database; later writes fail."""
        self._db.close()

    @property
    def resource_version(self) -> str:
        """Return the current global resourceVersion."""
        return str(self._rv)

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event_type, kind, copy_of_object)`` after every committed write.

        Callbacks run synchronously inside the write: they must not write to the store (schedule instead).
        """
        self._subscribers.append(callback)

    # ---- reads ---------------------------------------------------------------------------------------

    def try_get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Return a copy of the object, or None when it does not exist."""
        body = self._objects[kind].get((self._namespace_of(kind, namespace), name))
        return _parse(body) if body is not None else None

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        """Return a copy of the object.

        :raises ApiError: 404 when it does not exist.
        """
        obj = self.try_get(kind, namespace, name)
        if obj is None:
            raise not_found(kind, name)
        return obj

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Return copies of the matching objects, ordered by namespace and name, and the list resourceVersion.

        :param namespace: None lists every namespace.
        """
        bodies, resource_version = self.list_json(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [_parse(body) for body in bodies], resource_version

    def list_json(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[str], str]:
        """Return the matching objects as JSON texts, in list order (not parsed when unfiltered)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        filtered = bool(label_selector and label_selector.strip()) or bool(
            field_selector and field_selector.strip()
        )
        bodies = []
        for (item_namespace, _name), body in sorted(self._objects[kind].items()):
            if namespace is not None and kind.namespaced and item_namespace != namespace:
                continue
            if filtered:
                obj = _parse(body)
                if not (labels(obj) and fields(obj)):
                    continue
            bodies.append(body)
        return bodies, self.resource_version

    # ---- writes --------------------------------------------------------------------------------------

    def create(self, kind: Kind, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Store a new object and return it with uid, creationTimestamp, resourceVersion and generation set.

        :raises ApiError: 409 AlreadyExists, 404 when its namespace does not exist, 422 for a bad name.
        """
        new = _copy(obj)
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        meta = new.setdefault("metadata", {})
        namespace = self._namespace_of(kind, meta.get("namespace"))
        if kind.namespaced:
            meta["namespace"] = namespace
            if ("", namespace) not in self._objects[kinds.NAMESPACE]:
                raise not_found(kinds.NAMESPACE, namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(kind, namespace, str(meta["generateName"]))
        name = meta.get("name")
        self._validate_name(kind, name)
        if (namespace, name) in self._objects[kind]:
            raise already_exists(kind, name)
        for key in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if "spec" in new and kind != kinds.NAMESPACE:
            meta["generation"] = 1
        if kind == kinds.NAMESPACE:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new.setdefault("spec", {"finalizers": ["kubernetes"]})
            new.setdefault("status", {"phase": "Active"})
        if dry_run:
            return new
        self._commit("ADDED", kind, namespace, new, None)
        return _copy(new)

    def replace(
        self,
        kind: Kind,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Update an object (``subresource="status"``: only its status) and return the stored result.

        A main write keeps the stored status when the kind has a status subresource; generation rises only
        when spec changes; a write that changes nothing returns the object as it is, with no new
        resourceVersion and no event.

        :raises ApiError: 404 when missing, 409 Conflict when ``metadata.resourceVersion`` is stale.
        """
        if subresource not in (None, "status"):
            raise bad_request(
                f"unknown subresource {subresource!r} of {kind.resource}: only 'status' is served"
            )
        meta = obj.get("metadata") or {}
        namespace = self._namespace_of(kind, meta.get("namespace"))
        name = meta.get("name")
        body = self._objects[kind].get((namespace, name)) if isinstance(name, str) else None
        if body is None:
            raise not_found(kind, str(name or ""))
        current = _parse(body)
        requested_rv = meta.get("resourceVersion")
        if requested_rv and str(requested_rv) != current["metadata"]["resourceVersion"]:
            raise conflict(kind, str(name))
        if subresource == "status":
            new = _parse(body)
            if "status" in obj:
                new["status"] = _copy(obj["status"]) if obj["status"] is not None else None
            else:
                new.pop("status", None)
        else:
            new = _copy(obj)
            new_meta = new.setdefault("metadata", {})
            for key in _SYSTEM_METADATA:
                if key in current["metadata"]:
                    new_meta[key] = current["metadata"][key]
                else:
                    new_meta.pop(key, None)
            new_meta.pop("managedFields", None)
            if kind.status_subresource:
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
            if "generation" in current["metadata"] and new.get("spec") != current.get("spec"):
                new_meta["generation"] = int(current["metadata"]["generation"]) + 1
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current or dry_run:
            return new
        self._commit("MODIFIED", kind, namespace, new, current)
        return _copy(new)

    def delete(
        self, kind: Kind, namespace: str | None, name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete an object, then every object it owns (and, for a namespace, everything in it).

        :returns: the deleted object.
        :raises ApiError: 404 when missing.
        """
        namespace = self._namespace_of(kind, namespace)
        body = self._objects[kind].get((namespace, name))
        if body is None:
            raise not_found(kind, name)
        current = _parse(body)
        if dry_run:
            return current
        self._commit("DELETED", kind, namespace, current, current)
        self._collect_garbage(current["metadata"]["uid"])
        if kind == kinds.NAMESPACE:
            for other in kinds.ALL_KINDS:
                if other.namespaced:
                    for item_namespace, item_name in [key for key in self._objects[other] if key[0] == name]:
                        # An earlier delete in this loop may already have collected it as an owned object.
                        if (item_namespace, item_name) in self._objects[other]:
                            self.delete(other, item_namespace, item_name)
        return _copy(current)

    def _collect_garbage(self, owner_uid: str) -> None:
        for kind, namespace, name in sorted(
            self._owned.pop(owner_uid, set()), key=lambda k: (k[0].plural, k[1:])
        ):
            # An earlier delete in this loop may already have collected it.
            if (namespace, name) in self._objects[kind]:
                self.delete(kind, namespace, name)

    def _index_owners(self, kind: Kind, namespace: str, name: str, obj: dict[str, Any], *, add: bool) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            uid = ref.get("uid")
            if not uid:
                continue
            if add:
                self._owned.setdefault(uid, set()).add((kind, namespace, name))
            elif uid in self._owned:
                self._owned[uid].discard((kind, namespace, name))
                if not self._owned[uid]:
                    del self._owned[uid]

    def _commit(
        self, event_type: str, kind: Kind, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        name = obj["metadata"]["name"]
        body = _dumps(obj)
        key = _kind_key(kind)
        self._db.execute("BEGIN")
        try:
            if event_type == "DELETED":
                self._db.execute(
                    "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                    (key, namespace, name),
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (kind, namespace, name, body) VALUES (?, ?, ?, ?)",
                    (key, namespace, name, body),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('resourceVersion', ?)", (str(self._rv),)
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._rv -= 1
            raise
        if event_type == "DELETED":
            del self._objects[kind][(namespace, name)]
        else:
            self._objects[kind][(namespace, name)] = body
        if old is not None:
            self._index_owners(kind, namespace, name, old, add=False)
        if event_type != "DELETED":
            self._index_owners(kind, namespace, name, obj, add=True)
        old_body = _dumps(old) if old is not None and event_type == "MODIFIED" else None
        event = _Event(self._rv, event_type, kind, namespace, body, old_body)
        self._history.append(event)
        if len(self._history) > self._history_size:
            self._history_floor = self._history.popleft().resource_version
        for watcher in self._watchers:
            seen_as = watcher.translate(event)
            if seen_as is not None:
                watcher.queue.put_nowait((seen_as, body))
        for callback in list(self._subscribers):
            try:
                callback(event_type, kind, _parse(body))
            except Exception:
                log.exception("store subscriber %r failed on %s %s %s", callback, event_type, kind.kind, name)

    # ---- watch ---------------------------------------------------------------------------------------

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Yield ``(event_type, object)`` for changes after ``resource_version``.

        None, "" or "0" first yields a synthetic ADDED for every current object.

        :raises ApiError: 410 Expired (on the first iteration) when that resourceVersion is no longer kept.
        """
        watcher = _Watcher(kind, namespace if kind.namespaced else None, label_selector, field_selector)
        initial: list[tuple[str, str]] = []
        if resource_version in (None, "", "0"):
            for (item_namespace, _name), body in sorted(self._objects[kind].items()):
                if (watcher.namespace is None or item_namespace == watcher.namespace) and watcher.matches(
                    body
                ):
                    initial.append(("ADDED", body))
        else:
            try:
                since = int(str(resource_version))
            except ValueError:
                raise bad_request(
                    f"invalid resourceVersion {resource_version!r}: expected an integer"
                ) from None
            if since < self._history_floor:
                raise expired(f"too old resource version: {since} ({self._history_floor + 1})")
            for event in self._history:
                if event.resource_version > since:
                    seen_as = watcher.translate(event)
                    if seen_as is not None:
                        initial.append((seen_as, event.body))
        self._watchers.add(watcher)
        try:
            for event_type, body in initial:
                yield event_type, _parse(body)
            while True:
                event_type, body = await watcher.queue.get()
                yield event_type, _parse(body)
        finally:
            self._watchers.discard(watcher)

    # ---- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _namespace_of(kind: Kind, namespace: str | None) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"

    def _generate_name(self, kind: Kind, namespace: str, prefix: str) -> str:
        while True:
            name = prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if (namespace, name) not in self._objects[kind]:
                return name

    @staticmethod
    def _validate_name(kind: Kind, name: Any) -> None:
        if not name:
            raise invalid(
                kind,
                "",
                [
                    {
                        "type": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            )
        if kind.group == "rbac.authorization.k8s.io" and isinstance(name, str):
            # RBAC names are path segments (``system:discovery``), as the API server validates them.
            if name in (".", "..") or "/" in name or "%" in name:
                raise invalid(
                    kind,
                    name,
                    [
                        {
                            "type": "FieldValueInvalid",
                            "message": f"Invalid value: {name!r}: may not be '.' or '..' and may not contain "
                            "'/' or '%'",
                            "field": "metadata.name",
                        }
                    ],
                )
            return
        if not isinstance(name, str) or len(name) > 253 or not _NAME_PATTERN.match(name):
            raise invalid(
                kind,
                str(name),
                [
                    {
                        "type": "FieldValueInvalid",
                        "message": f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character",
                        "field": "metadata.name",
                    }
                ],
            )
