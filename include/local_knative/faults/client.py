"""A small client of the admin endpoint, for tests, chaos scripts and the ``faults`` CLI (stdlib only)."""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_knative.faults.admin import ADMIN_TOKEN_FILE

# Python spellings of the rule fields whose JSON names are camelCase.
_CAMEL = {"retry_after": "retryAfter", "watch_events": "watchEvents"}


class FaultClientError(RuntimeError):
    """The admin endpoint refused a request or could not be reached; the message carries its answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def rule_from_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn keyword arguments (``retry_after=2``) into a rule in its JSON form (``retryAfter``)."""
    return {_CAMEL.get(key, key): value for key, value in fields.items() if value is not None}


class FaultClient:
    """Script the faults of one running local_knative.

    :param admin_url: ``endpoints.json["admin"]``, e.g. ``http://127.0.0.1:PORT/admin``.
    :param token: the admin token (``DATA_DIR/admin-token``).
    :param ca_file: the CA of the API server's certificate when it speaks HTTPS (``serve --auth``).
    """

    def __init__(
        self, admin_url: str, token: str, *, timeout: float = 30.0, ca_file: str | None = None
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    @classmethod
    def from_data_dir(cls, data_dir: Path | str) -> FaultClient:
        """Connect to the server whose ``--data-dir`` is ``data_dir``.

        :raises FaultClientError: when the server is not running or fault injection is off.
        """
        data_dir = Path(data_dir)
        try:
            endpoints = json.loads((data_dir / "endpoints.json").read_text())
        except OSError:
            raise FaultClientError(
                f"{data_dir}/endpoints.json is missing: is `python -m local_knative serve --data-dir "
                f"{data_dir}` running?"
            ) from None
        if "admin" not in endpoints:
            raise FaultClientError(
                f"the server on {data_dir} runs without fault injection: restart it with --fault-injection"
            )
        token = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
        return cls(endpoints["admin"], token, ca_file=endpoints.get("ca_file"))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                text = json.loads(text).get("message", text)
            raise FaultClientError(f"{method} {path}: HTTP {error.code}: {text}", error.code) from None
        except OSError as error:
            raise FaultClientError(f"{method} {self.admin_url}{path}: {error}") from None

    def status(self) -> dict[str, Any]:
        """Return ``{"seed", "rules": [... with "matched"/"fired"], "fired": [...]}``."""
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def add(self, rule: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Add one rule (a JSON-form dict, or keywords such as ``error=429, retry_after=2``); return it."""
        result: dict[str, Any] = self._call("POST", "/faults", {**(rule or {}), **rule_from_fields(fields)})
        return result

    def replace(self, rules: list[dict[str, Any]], *, seed: int | None = None) -> dict[str, Any]:
        """Replace every rule (counters and history restart; ``seed`` restarts the generator)."""
        document: dict[str, Any] = {"rules": rules}
        if seed is not None:
            document["seed"] = seed
        result: dict[str, Any] = self._call("PUT", "/faults", document)
        return result

    def remove(self, rule_id: str) -> None:
        """Remove one rule."""
        self._call("DELETE", f"/faults/{rule_id}")

    def clear(self) -> None:
        """Remove every rule."""
        self._call("DELETE", "/faults")

    def rule(self, rule_id: str) -> dict[str, Any]:
        """Return one rule with its counters."""
        for rule in self.status()["rules"]:
            if rule["id"] == rule_id:
                found: dict[str, Any] = rule
                return found
        raise FaultClientError(f"no fault rule {rule_id!r}", 404)

    def kill(
        self, namespace: str, revision: str, *, pod: str | None = None, signal: str = "KILL"
    ) -> list[str]:
        """Kill the pod processes of a revision (or one pod); return the pods signalled."""
        body = {"namespace": namespace, "revision": revision, "pod": pod, "signal": signal}
        killed: list[str] = self._call("POST", "/kill", body)["killed"]
        return killed

    @contextlib.contextmanager
    def injected(self, rule: dict[str, Any] | None = None, **fields: Any) -> Iterator[dict[str, Any]]:
        """Add a rule for the ``with`` block and remove it afterwards; yields the rule as added."""
        added = self.add(rule, **fields)
        try:
            yield added
        finally:
            with contextlib.suppress(FaultClientError):
                self.remove(added["id"])
