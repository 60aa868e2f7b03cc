"""Opt-in access control of the API server (``serve --auth``): bearer tokens, RBAC and the self reviews.

Tokens, as kube-apiserver knows them:

* static user tokens from ``--token-auth-file`` (kube-apiserver's format: ``token,user,uid,"g1,g2"``);
* ServiceAccount tokens minted by ``POST .../serviceaccounts/NAME/token`` (a TokenRequest, which is what
  ``kubectl create token`` sends): HS256 JWTs signed with a key kept in the data directory, valid while
  they have not expired and the ServiceAccount they name (same uid) exists;
* the admin token in the kubeconfig local_knative writes (group ``system:masters``), so every client of
  that kubeconfig keeps working with ``--auth``. The API server then speaks HTTPS (:mod:`local_knative.tls`).

Every request but ``/healthz``, ``/readyz``, ``/livez`` and ``/version`` without credentials is
authenticated (401 otherwise) and authorized by :mod:`local_knative.rbac` against the stored RBAC
objects (403 with the API server's message otherwise), as whoever ``Impersonate-User`` names when the
sender may impersonate them (``kubectl --as``). The bootstrap ClusterRoles ``cluster-admin``,
``system:discovery`` and ``system:basic-user`` and their bindings are created at start when missing, as the
API server does, so any authenticated user may read discovery and OpenAPI and ask the self reviews.
Without ``--auth`` no middleware runs: any token acts as the admin, and the reviews say so.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from local_knative import kinds, rbac
from local_knative.apiserver import protobuf
from local_knative.errors import ApiError, bad_request
from local_knative.store import Store

log = logging.getLogger(__name__)

ADMIN_USER = rbac.User("local-knative-admin", "local-knative-admin", (rbac.MASTERS, "system:authenticated"))
SIGNING_KEY_FILE = "serviceaccount-signing-key"
AUTH_TOKEN_FILE = "auth-admin-token"
ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600  # the API server refuses shorter TokenRequests
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version", "/version/"})
_USER = web.RequestKey("local_knative_user", rbac.User)
_UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
_RBAC_GROUP = "rbac.authorization.k8s.io"


class TokenFileError(ValueError):
    """A ``--token-auth-file`` line that cannot be read; the message names the line."""


def read_token_file(path: Path) -> dict[str, rbac.User]:
    """Read kube-apiserver's static token file: ``token,user,uid[,"group1,group2"]`` per line.

    :raises TokenFileError: on a short line, an empty token or user, or a token given twice.
    """
    users: dict[str, rbac.User] = {}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3 or not row[0].strip() or not row[1].strip():
                raise TokenFileError(f'line {number}: expected token,user,uid[,"group1,group2"]')
            token = row[0].strip()
            if token in users:
                raise TokenFileError(f"line {number}: this token is already given on an earlier line")
            groups = [g.strip() for g in (row[3] if len(row) > 3 else "").split(",") if g.strip()]
            users[token] = rbac.User(row[1].strip(), row[2].strip(), (*groups, "system:authenticated"))
    return users


def secret_file(path: Path) -> str:
    """Return the secret kept in ``path``, made once (random, readable by this user only)."""
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text
    text = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.replace(tmp, path)
    return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _policy_rule(verbs: list[str], **fields: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, **fields}


# What kube-apiserver's bootstrap policy gives (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
_BOOTSTRAP_ROLES = {
    "cluster-admin": [
        _policy_rule(["*"], apiGroups=["*"], resources=["*"]),
        _policy_rule(["*"], nonResourceURLs=["*"]),
    ],
    "system:discovery": [
        _policy_rule(
            ["get"],
            nonResourceURLs=[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
        )
    ],
    "system:basic-user": [
        _policy_rule(
            ["create"],
            apiGroups=["authorization.k8s.io"],
            resources=["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        _policy_rule(["create"], apiGroups=["authentication.k8s.io"], resources=["selfsubjectreviews"]),
    ],
}
_BOOTSTRAP_BINDINGS = {
    "cluster-admin": rbac.MASTERS,
    "system:discovery": "system:authenticated",
    "system:basic-user": "system:authenticated",
}


class Access:
    """Authenticate and authorize API requests; mint ServiceAccount tokens; answer the self reviews.

    :param store: where ServiceAccounts and the RBAC objects live.
    :param data_dir: keeps the signing key and the admin token.
    :param enforce: ``--auth``: check every request; off, any request acts as the admin.
    :param users: static tokens from ``--token-auth-file``.
    """

    def __init__(
        self, store: Store, data_dir: Path, *, enforce: bool, users: dict[str, rbac.User] | None = None
    ) -> None:
        self.store = store
        self.enforce = enforce
        self._key = secret_file(data_dir / SIGNING_KEY_FILE).encode()
        self.admin_token = secret_file(data_dir / AUTH_TOKEN_FILE) if enforce else ""
        self._users = dict(users or {})
        if self.admin_token:
            self._users[self.admin_token] = ADMIN_USER
        self._policy: tuple[str, rbac.Policy] | None = None
        if enforce:
            self._bootstrap()

    def _bootstrap(self) -> None:
        labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
        for name, rules in _BOOTSTRAP_ROLES.items():
            if self.store.try_get(kinds.CLUSTERROLE, None, name) is None:
                role = {"metadata": {"name": name, "labels": labels}, "rules": rules}
                self.store.create(
                    kinds.CLUSTERROLE, {"apiVersion": f"{_RBAC_GROUP}/v1", "kind": "ClusterRole", **role}
                )
        for name, group in _BOOTSTRAP_BINDINGS.items():
            if self.store.try_get(kinds.CLUSTERROLEBINDING, None, name) is None:
                binding = {
                    "apiVersion": f"{_RBAC_GROUP}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": labels},
                    "roleRef": {"apiGroup": _RBAC_GROUP, "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": _RBAC_GROUP, "kind": "Group", "name": group}],
                }
                self.store.create(kinds.CLUSTERROLEBINDING, binding)

    # ---- authentication ------------------------------------------------------------------------------

    def authenticate(self, authorization: str) -> rbac.User:
        """Return the user a ``Authorization: Bearer ...`` header names.

        :raises ApiError: 401 for a missing, unknown, badly signed or expired token.
        """
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _UNAUTHORIZED
        user = self._users.get(token)
        if user is not None:
            return user
        return self._serviceaccount_user(token)

    def _serviceaccount_user(self, token: str) -> rbac.User:
        parts = token.split(".")
        if len(parts) != 3:
            raise _UNAUTHORIZED
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, _unb64(parts[2]))
            claims = json.loads(_unb64(parts[1])) if valid else {}
        except ValueError:
            raise _UNAUTHORIZED from None
        if not valid or not isinstance(claims, dict) or float(claims.get("exp", 0)) <= time.time():
            raise _UNAUTHORIZED
        info = claims.get("kubernetes.io") or {}
        namespace = info.get("namespace", "")
        account = info.get("serviceaccount") or {}
        live = self.store.try_get(kinds.SERVICEACCOUNT, namespace, account.get("name", ""))
        if live is None or live["metadata"].get("uid") != account.get("uid"):
            raise _UNAUTHORIZED  # the ServiceAccount was deleted (or made again): its tokens are void
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
        return rbac.User(str(claims.get("sub", "")), str(account.get("uid", "")), groups)

    def mint(self, serviceaccount: dict[str, Any], seconds: int, audiences: list[str]) -> tuple[str, int]:
        """Return a signed token for ``serviceaccount`` and its expiry (Unix seconds)."""
        meta = serviceaccount["metadata"]
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": f"{rbac.SERVICEACCOUNT_PREFIX}{meta['namespace']}:{meta['name']}",
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "kubernetes.io": {
                "namespace": meta["namespace"],
                "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
            },
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}", now + seconds

    # ---- authorization -------------------------------------------------------------------------------

    def policy(self) -> rbac.Policy:
        """Return the RBAC objects in force (read again only after a write to the store)."""
        version = self.store.resource_version
        if self._policy is None or self._policy[0] != version:
            objects = [self.store.list(kind, None)[0] for kind in _RBAC_KINDS]
            self._policy = (version, rbac.Policy(*objects))
        return self._policy[1]

    def allowed(self, user: rbac.User, request: rbac.Request) -> bool:
        """Return whether ``user`` may do ``request`` (always, with ``--auth`` off)."""
        return not self.enforce or rbac.allowed(user, request, self.policy())

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Authenticate and authorize one request before any handler sees it."""
        header = request.headers.get("Authorization", "")
        if request.path.startswith("/admin/") or (not header and request.path in PUBLIC_PATHS):
            return await handler(request)  # the fault admin endpoint checks its own token
        user = self._impersonated(request, self.authenticate(header))
        request[_USER] = user
        self._authorize(request, user, rbac.request_of(request.method, request.path, request.query))
        return await handler(request)

    def _authorize(self, request: web.Request, user: rbac.User, asked: rbac.Request) -> None:
        if rbac.allowed(user, asked, self.policy()):
            return
        group = f".{asked.api_group}" if asked.api_group else ""
        message = rbac.forbidden_message(user, asked, f"{asked.resource}{group}")
        details = {"name": asked.name, "group": asked.api_group, "kind": asked.resource}
        log.info("403 %s %s: %s", request.method, request.path_qs, message)
        raise ApiError(403, "Forbidden", message, details=details if asked.is_resource else None)

    def _impersonated(self, request: web.Request, user: rbac.User) -> rbac.User:
        """Return who the request acts as: ``Impersonate-User`` / ``-Group`` (``kubectl --as``), if allowed.

        As in Kubernetes, impersonating needs the ``impersonate`` verb on ``users``, ``groups`` or (for
        ``system:serviceaccount:NS:NAME``) ``serviceaccounts`` NAME in NS.
        """
        name = request.headers.get("Impersonate-User", "")
        groups = request.headers.getall("Impersonate-Group", [])
        if not name:
            if groups:
                raise bad_request("requested Impersonate-Group without Impersonate-User")
            return user
        namespace, _, account = name.removeprefix(rbac.SERVICEACCOUNT_PREFIX).partition(":")
        if name.startswith(rbac.SERVICEACCOUNT_PREFIX) and account:
            self._authorize(
                request, user, rbac.Request("impersonate", "", "serviceaccounts", "", account, namespace)
            )
            groups = [*groups, "system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        else:
            self._authorize(request, user, rbac.Request("impersonate", "", "users", name=name))
        for group in groups:
            self._authorize(request, user, rbac.Request("impersonate", "", "groups", name=group))
        return rbac.User(name, "", (*groups, "system:authenticated"))

    # ---- endpoints -----------------------------------------------------------------------------------

    @staticmethod
    def user_of(request: web.Request) -> rbac.User:
        """Return who sent ``request`` (the admin when ``--auth`` is off)."""
        user: rbac.User = request.get(_USER, ADMIN_USER)
        return user

    async def token_request(self, request: web.Request, namespace: str, name: str) -> web.Response:
        """Answer a TokenRequest for ServiceAccount ``namespace/name`` (``kubectl create token``)."""
        body = await _review_body(request, "authentication.k8s.io/v1", "TokenRequest")
        spec = body.get("spec") or {}
        seconds = spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
        if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS:
            cause = {
                "type": "FieldValueInvalid",
                "message": f"Invalid value: {json.dumps(seconds)}: may not specify a duration less than "
                "10 minutes",
                "field": "spec.expirationSeconds",
            }
            raise ApiError(
                422,
                "Invalid",
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: spec.expirationSeconds: '
                f"{cause['message']}",
                details={
                    "name": name,
                    "group": "authentication.k8s.io",
                    "kind": "TokenRequest",
                    "causes": [cause],
                },
            )
        audiences = spec.get("audiences") or [ISSUER]
        serviceaccount = self.store.get(kinds.SERVICEACCOUNT, namespace, name)
        token, expiry = self.mint(serviceaccount, seconds, list(audiences))
        expires = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["metadata"] = {"name": name, "namespace": namespace, "creationTimestamp": _now()}
        body["spec"] = {**spec, "audiences": audiences, "expirationSeconds": seconds}
        body["status"] = {"token": token, "expirationTimestamp": expires}
        return _json(body, 201)

    async def access_review(self, request: web.Request) -> web.Response:
        """Answer a SelfSubjectAccessReview (``kubectl auth can-i VERB RESOURCE``)."""
        body = await _review_body(request, "authorization.k8s.io/v1", "SelfSubjectAccessReview")
        spec = body.get("spec") or {}
        resource = spec.get("resourceAttributes")
        if resource:
            asked = rbac.Request(
                verb=resource.get("verb", ""),
                api_group=resource.get("group", ""),
                resource=resource.get("resource", ""),
                subresource=resource.get("subresource", ""),
                name=resource.get("name", ""),
                namespace=resource.get("namespace", ""),
            )
        else:
            path = (spec.get("nonResourceAttributes") or {}).get("path", "")
            asked = rbac.Request(verb=(spec.get("nonResourceAttributes") or {}).get("verb", ""), path=path)
        if not asked.verb or (resource and not asked.resource) or (not resource and not asked.path):
            raise bad_request(
                "spec: set resourceAttributes (verb, resource) or nonResourceAttributes (verb, path)"
            )
        body["status"] = {"allowed": self.allowed(self.user_of(request), asked)}
        return _json(body, 201)

    async def rules_review(self, request: web.Request) -> web.Response:
        """Answer a SelfSubjectRulesReview (``kubectl auth can-i --list``)."""
        body = await _review_body(request, "authorization.k8s.io/v1", "SelfSubjectRulesReview")
        namespace = (body.get("spec") or {}).get("namespace") or ""
        user = self.user_of(request)
        rules: Sequence[Mapping[str, Any]] = _BOOTSTRAP_ROLES["cluster-admin"]
        if self.enforce:
            rules = rbac.rules_for(user, namespace, self.policy())
        resource_rules = [
            {key: list(rule.get(key) or []) for key in ("verbs", "apiGroups", "resources", "resourceNames")}
            for rule in rules
            if rule.get("resources")
        ]
        non_resource_rules = [
            {"verbs": list(rule["verbs"]), "nonResourceURLs": list(rule["nonResourceURLs"])}
            for rule in rules
            if rule.get("nonResourceURLs")
        ]
        body["status"] = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        }
        return _json(body, 201)

    async def self_review(self, request: web.Request) -> web.Response:
        """Answer a SelfSubjectReview (``kubectl auth whoami``)."""
        body = await _review_body(request, "authentication.k8s.io/v1", "SelfSubjectReview")
        user = self.user_of(request)
        info = {"username": user.name, "uid": user.uid, "groups": list(user.groups)}
        body["status"] = {"userInfo": info}
        return _json(body, 201)

    def add_routes(self, app: web.Application) -> None:
        """Serve the self reviews (before the generic REST routes, which would not find them)."""
        router = app.router
        router.add_post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self.access_review)
        router.add_post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", self.rules_review)
        router.add_post("/apis/authentication.k8s.io/v1/selfsubjectreviews", self.self_review)


_RBAC_KINDS = (kinds.ROLE, kinds.CLUSTERROLE, kinds.ROLEBINDING, kinds.CLUSTERROLEBINDING)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(data: Any, status: int) -> web.Response:
    response = web.Response(body=json.dumps(data).encode(), status=status)
    response.headers["Content-Type"] = "application/json"
    return response


async def _review_body(request: web.Request, api_version: str, kind: str) -> dict[str, Any]:
    raw = await request.read()
    if request.content_type == protobuf.CONTENT_TYPE:
        body = protobuf.decode(raw)
    else:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise bad_request(f"the request body is not a JSON {kind}") from None
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a {kind} object")
    body.setdefault("apiVersion", api_version)
    body.setdefault("kind", kind)
    body.setdefault("metadata", {"creationTimestamp": None})
    return body
