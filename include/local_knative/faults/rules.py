"""Fault rules and the seeded injector that decides, request by request, which rule fires.

A rule says *where* (layer ``api`` with verbs and resources, or layer ``ingress`` with Services and
revisions; both may narrow by namespace and name), *when* (let the first ``after`` matches through, fire at
most ``count`` times, each time with ``probability``) and *what* (``delay`` seconds, then an ``error``
status, a ``reset`` connection, or, on watches, a stream cut after ``watchEvents`` events). Layer
``readiness`` (Services, revisions) makes the pods of a revision flap: NotReady for ``period`` seconds, Ready
for ``period`` seconds, and so on from when the rule is added, for ``duration`` seconds (or until removed).

Rules are tried in order and the first that fires applies, so a narrow rule placed before a broad one wins.
Draws from the random generator happen only for rules with ``probability < 1``, so with a given seed and the
same sequence of requests the same requests fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from local_knative.errors import ApiError

API_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"})
LAYERS = ("api", "ingress", "readiness")
EVENT_HISTORY = 1000
FAULT_HEADER = "X-Local-Knative-Fault"

_COMMON_FIELDS = frozenset(
    {"id", "layer", "namespaces", "names", "probability", "after", "count", "delay", "error", "retryAfter"}
    | {"message", "reset"}
)
_FIELDS = {
    "api": _COMMON_FIELDS | {"verbs", "resources", "watchEvents"},
    "ingress": _COMMON_FIELDS | {"revisions", "paths"},
    "readiness": frozenset({"id", "layer", "namespaces", "names", "revisions", "period", "duration"}),
}
# (reason, message) as a real API server words them; the rule's own ``message`` replaces the text.
_API_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: the server does not allow this request"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", ""),  # worded per object below, like a stale resourceVersion
    410: ("Expired", "too old resource version"),
    422: ("Invalid", "the server rejected the object as invalid"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
}


class ConnectionDropped(Exception):
    """A fault dropped the client's connection; the server answers nothing (the transport is closed)."""


class FaultSpecError(ValueError):
    """A fault rule or rule file is malformed; the message says which field and what to write instead."""


def _string_set(spec: dict[str, Any], key: str, where: str) -> frozenset[str] | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise FaultSpecError(f"{where}: {key} must be a list of names (or one comma-separated string)")
    if "*" in value:
        return None
    return frozenset(value)


def _number(spec: dict[str, Any], key: str, where: str, *, default: float, low: float, high: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultSpecError(f"{where}: {key} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _count(spec: dict[str, Any], key: str, where: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultSpecError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return value


@dataclass
class FaultRule:
    """One parsed rule and its counters (``matched``: requests it applied to, ``fired``: faults injected)."""

    id: str
    layer: str
    verbs: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    names: frozenset[str] | None = None
    revisions: frozenset[str] | None = None
    paths: tuple[str, ...] | None = None
    probability: float = 1.0
    after: int = 0
    count: int | None = None
    delay: float = 0.0
    error: int | None = None
    retry_after: int | None = None
    message: str | None = None
    reset: bool = False
    watch_events: int | None = None
    period: float = 0.0
    duration: float | None = None
    added: float = field(default_factory=time.monotonic)
    matched: int = 0
    fired: int = 0

    @classmethod
    def parse(cls, spec: Any, default_id: str) -> FaultRule:
        """Parse one rule from its JSON/YAML form (camelCase keys, see the module docstring).

        :raises FaultSpecError: on an unknown key, a bad value, or a rule that does nothing.
        """
        if not isinstance(spec, dict):
            raise FaultSpecError(f"a fault rule must be a mapping, got {type(spec).__name__}")
        rule_id = spec.get("id", default_id)
        if not isinstance(rule_id, str) or not rule_id:
            raise FaultSpecError(f"rule id must be a non-empty string, got {rule_id!r}")
        where = f"fault rule {rule_id!r}"
        layer = spec.get("layer", "api")
        if layer not in LAYERS:
            raise FaultSpecError(f"{where}: layer must be one of {', '.join(LAYERS)}, got {layer!r}")
        unknown = sorted(set(spec) - _FIELDS[layer])
        if unknown:
            raise FaultSpecError(
                f"{where}: unknown field {unknown[0]!r} for layer {layer}; "
                f"allowed: {', '.join(sorted(_FIELDS[layer]))}"
            )
        if layer == "readiness":
            return cls._parse_readiness(spec, rule_id, where)
        verbs = _string_set(spec, "verbs", where)
        if verbs is not None and not verbs <= API_VERBS:
            raise FaultSpecError(
                f"{where}: unknown verb {sorted(verbs - API_VERBS)[0]!r}; use {', '.join(sorted(API_VERBS))}"
            )
        error = spec.get("error")
        if error is not None and (
            isinstance(error, bool) or not isinstance(error, int) or not 400 <= error <= 599
        ):
            raise FaultSpecError(f"{where}: error must be an HTTP status code from 400 to 599, got {error!r}")
        retry_after = _count(spec, "retryAfter", where)
        if retry_after is None and error == 429:
            retry_after = 1  # a real 429 always says when to come back
        message = spec.get("message")
        if message is not None and not isinstance(message, str):
            raise FaultSpecError(f"{where}: message must be a string")
        reset = spec.get("reset", False)
        if not isinstance(reset, bool):
            raise FaultSpecError(f"{where}: reset must be true or false")
        watch_events = _count(spec, "watchEvents", where)
        if watch_events is not None and verbs is not None and verbs != {"watch"}:
            raise FaultSpecError(
                f"{where}: watchEvents cuts watch streams: set verbs to [watch] (or leave it out)"
            )
        if watch_events is not None and (error is not None or reset):
            raise FaultSpecError(f"{where}: watchEvents cannot be combined with error or reset")
        if error is not None and reset:
            raise FaultSpecError(f"{where}: choose error or reset, not both")
        delay = _number(spec, "delay", where, default=0.0, low=0.0, high=3600.0)
        if error is None and not reset and watch_events is None and delay == 0:
            raise FaultSpecError(f"{where}: the rule does nothing: set error, reset, delay or watchEvents")
        paths = spec.get("paths")
        if paths is not None and (
            not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise FaultSpecError(f"{where}: paths must be a list of path prefixes starting with '/'")
        resources = _string_set(spec, "resources", where)
        if watch_events is not None:
            verbs = frozenset({"watch"})
        return cls(
            id=rule_id,
            layer=layer,
            verbs=verbs,
            resources=resources,
            namespaces=_string_set(spec, "namespaces", where),
            names=_string_set(spec, "names", where),
            revisions=_string_set(spec, "revisions", where),
            paths=tuple(paths) if paths else None,
            probability=_number(spec, "probability", where, default=1.0, low=0.0, high=1.0),
            after=_count(spec, "after", where) or 0,
            count=_count(spec, "count", where),
            delay=delay,
            error=error,
            retry_after=retry_after,
            message=message,
            reset=reset,
            watch_events=watch_events,
        )

    @classmethod
    def _parse_readiness(cls, spec: dict[str, Any], rule_id: str, where: str) -> FaultRule:
        if "period" not in spec:
            raise FaultSpecError(f"{where}: a readiness rule needs period (seconds NotReady, then Ready)")
        period = _number(spec, "period", where, default=0.0, low=0.1, high=3600.0)
        duration = None
        if spec.get("duration") is not None:
            duration = _number(spec, "duration", where, default=0.0, low=0.1, high=86400.0)
        return cls(
            id=rule_id,
            layer="readiness",
            namespaces=_string_set(spec, "namespaces", where),
            names=_string_set(spec, "names", where),
            revisions=_string_set(spec, "revisions", where),
            period=period,
            duration=duration,
        )

    def holds_down(self, now: float) -> bool:
        """Return whether a readiness rule keeps its pods NotReady at monotonic time ``now``."""
        elapsed = now - self.added
        if self.duration is not None and elapsed >= self.duration:
            return False
        return int(elapsed // self.period) % 2 == 0

    def to_dict(self) -> dict[str, Any]:
        """Return the rule in its JSON form, with its counters."""
        out: dict[str, Any] = {"id": self.id, "layer": self.layer}
        for key, value in (
            ("verbs", self.verbs),
            ("resources", self.resources),
            ("namespaces", self.namespaces),
            ("names", self.names),
            ("revisions", self.revisions),
        ):
            if value is not None:
                out[key] = sorted(value)
        if self.paths is not None:
            out["paths"] = list(self.paths)
        if self.layer != "readiness":
            out.update({"probability": self.probability, "after": self.after, "count": self.count})
        optional: tuple[tuple[str, object], ...] = (
            ("delay", self.delay or None),
            ("error", self.error),
            ("retryAfter", self.retry_after),
            ("message", self.message),
            ("reset", self.reset or None),
            ("watchEvents", self.watch_events),
            ("period", self.period or None),
            ("duration", self.duration),
        )
        for key, setting in optional:
            if setting is not None:
                out[key] = setting
        out.update({"matched": self.matched, "fired": self.fired})
        return out

    def _matches_resource(self, plural: str, group: str, subresource: str | None) -> bool:
        if self.resources is None:
            return True
        suffix = f"/{subresource}" if subresource else ""
        return bool(
            {f"{plural}{suffix}", f"{plural}.{group}{suffix}" if group else f"{plural}{suffix}"}
            & self.resources
        )

    def applies_to_api(
        self,
        verb: str,
        plural: str,
        group: str,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> bool:
        """Return whether this rule's filter covers one API request."""
        return (
            self.layer == "api"
            and (self.verbs is None or verb in self.verbs)
            and self._matches_resource(plural, group, subresource)
            and (self.namespaces is None or (namespace or "") in self.namespaces)
            and (self.names is None or (name or "") in self.names)
        )

    def applies_to_revision(self, layer: str, namespace: str, service: str, revision: str) -> bool:
        """Return whether this rule of ``layer`` covers a revision (of Service ``service``)."""
        return (
            self.layer == layer
            and (self.namespaces is None or namespace in self.namespaces)
            and (self.names is None or service in self.names)
            and (self.revisions is None or revision in self.revisions)
        )

    def applies_to_ingress(self, namespace: str, service: str, revision: str, path: str) -> bool:
        """Return whether this rule's filter covers one request through the ingress."""
        return self.applies_to_revision("ingress", namespace, service, revision) and (
            self.paths is None or any(path.startswith(prefix) for prefix in self.paths)
        )

    def api_error(self, resource: str, group: str, name: str | None) -> ApiError:
        """Return the ``Status`` error this rule answers on the API, worded like the real server's."""
        code = int(self.error or 500)
        reason, text = _API_ERRORS.get(
            code, ("InternalError" if code >= 500 else "BadRequest", f"HTTP {code}")
        )
        details: dict[str, Any] | None = None
        if code == 409:
            text = (
                f'Operation cannot be fulfilled on {resource} "{name or ""}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            details = {"name": name or "", "group": group, "kind": resource.split(".")[0]}
        if self.retry_after is not None:
            details = dict(details or {}, retryAfterSeconds=self.retry_after)
        headers = {FAULT_HEADER: self.id}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return ApiError(code, reason, self.message or text, details=details, headers=headers)


@dataclass
class FiredFault:
    """One injected fault, as the admin endpoint lists it."""

    rule: str
    layer: str
    target: dict[str, str]
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """Return the record in its JSON form."""
        return {"rule": self.rule, "layer": self.layer, "at": self.at, **self.target}


class FaultInjector:
    """Hold the rules, pick the rule that fires for a request, and remember what fired.

    :param seed: seed of the generator behind ``probability``; None picks one (reported, so a run can be
        repeated with it).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.events: deque[FiredFault] = deque(maxlen=EVENT_HISTORY)
        self._next_id = 1
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the generator from ``seed`` (None: a fresh random seed)."""
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        self._random = random.Random(self.seed)

    @property
    def active(self) -> bool:
        """Return whether any rule is set (the request path skips all work otherwise)."""
        return bool(self.rules)

    def _new_id(self) -> str:
        rule_id = f"f{self._next_id}"
        self._next_id += 1
        return rule_id

    def add(self, spec: Any) -> FaultRule:
        """Parse and append one rule; return it.

        :raises FaultSpecError: when the rule is malformed or its id is taken.
        """
        with self._lock:
            rule = FaultRule.parse(spec, self._new_id())
            if any(existing.id == rule.id for existing in self.rules):
                raise FaultSpecError(
                    f"a fault rule with id {rule.id!r} exists: remove it first or pick another id"
                )
            self.rules.append(rule)
            return rule

    def replace(self, document: Any) -> None:
        """Replace every rule with a document ``{"seed": N, "rules": [...]}``; counters and history restart.

        :raises FaultSpecError: when the document or a rule in it is malformed (nothing changes then).
        """
        if not isinstance(document, dict) or set(document) - {"seed", "rules"}:
            raise FaultSpecError('a fault document is a mapping with "rules" (a list) and an optional "seed"')
        seed = document.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultSpecError(f"seed must be an integer, got {seed!r}")
        specs = document.get("rules") or []
        if not isinstance(specs, list):
            raise FaultSpecError("rules must be a list of fault rules")
        with self._lock:
            rules = [FaultRule.parse(spec, f"f{index + 1}") for index, spec in enumerate(specs)]
            ids = [rule.id for rule in rules]
            duplicate = next((rule_id for rule_id in ids if ids.count(rule_id) > 1), None)
            if duplicate is not None:
                raise FaultSpecError(f"two fault rules have the id {duplicate!r}: ids must be unique")
            self.rules = rules
            self._next_id = len(rules) + 1
            self.events.clear()
            self.reseed(seed)

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; return whether it existed."""
        with self._lock:
            before = len(self.rules)
            self.rules = [rule for rule in self.rules if rule.id != rule_id]
            return len(self.rules) != before

    def clear(self) -> None:
        """Remove every rule and forget what fired (the seed stays)."""
        with self._lock:
            self.rules = []
            self.events.clear()

    def _fire(self, candidates: list[FaultRule], target: dict[str, str]) -> FaultRule | None:
        with self._lock:
            for rule in candidates:
                rule.matched += 1
                if rule.matched <= rule.after or (rule.count is not None and rule.fired >= rule.count):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                self.events.append(FiredFault(rule.id, rule.layer, target))
                return rule
        return None

    def for_api(
        self,
        verb: str,
        plural: str,
        group: str,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> FaultRule | None:
        """Return the rule that fires for one API request, or None."""
        rules = self.rules
        if not rules:
            return None
        candidates = [
            rule for rule in rules if rule.applies_to_api(verb, plural, group, subresource, namespace, name)
        ]
        if not candidates:
            return None
        resource = f"{plural}.{group}" if group else plural
        if subresource:
            resource += f"/{subresource}"
        target = {"verb": verb, "resource": resource, "namespace": namespace or "", "name": name or ""}
        return self._fire(candidates, target)

    def for_ingress(self, namespace: str, service: str, revision: str, path: str) -> FaultRule | None:
        """Return the rule that fires for one request through the ingress, or None."""
        rules = self.rules
        if not rules:
            return None
        candidates = [rule for rule in rules if rule.applies_to_ingress(namespace, service, revision, path)]
        if not candidates:
            return None
        target = {"namespace": namespace, "service": service, "revision": revision, "path": path}
        return self._fire(candidates, target)

    def readiness_hold(self, namespace: str, service: str, revision: str, now: float) -> FaultRule | None:
        """Return the readiness rule that holds this revision's pods NotReady at ``now``, or None."""
        for rule in self.rules:
            if rule.applies_to_revision("readiness", namespace, service, revision) and rule.holds_down(now):
                return rule
        return None

    def record(self, rule: FaultRule, target: dict[str, str]) -> None:
        """Count one fault a rule caused outside a request (a pod held NotReady) and remember it."""
        with self._lock:
            rule.fired += 1
            self.events.append(FiredFault(rule.id, rule.layer, target))

    def snapshot(self) -> dict[str, Any]:
        """Return the seed, the rules with their counters, and the faults that fired (oldest first)."""
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [rule.to_dict() for rule in self.rules],
                "fired": [event.to_dict() for event in self.events],
            }
