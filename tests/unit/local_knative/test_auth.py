"""local_knative's token authentication: static and admin tokens, ServiceAccount tokens, bootstrap roles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_knative import kinds
from local_knative.auth import ADMIN_USER, Access
from local_knative.errors import ApiError
from local_knative.rbac import Request, User
from local_knative.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "state.db")
    yield store
    store.close()


def serviceaccount(store: Store, name: str = "deployer") -> dict[str, Any]:
    return store.create(kinds.SERVICEACCOUNT, {"metadata": {"name": name, "namespace": "default"}})


def refused(access: Access, header: str) -> int:
    with pytest.raises(ApiError) as error:
        access.authenticate(header)
    return error.value.code


def test_tokens_name_their_users(store: Store, tmp_path: Path) -> None:
    alice = User("alice", "a1", ("system:authenticated",))
    access = Access(store, tmp_path, enforce=True, users={"alice-token": alice})
    assert access.authenticate("Bearer alice-token") == alice
    assert access.authenticate(f"Bearer {access.admin_token}") == ADMIN_USER
    token, _ = access.mint(serviceaccount(store), 600, [])
    user = access.authenticate(f"Bearer {token}")
    assert user.name == "system:serviceaccount:default:deployer"
    assert "system:serviceaccounts:default" in user.groups


@pytest.mark.parametrize("header", ["", "Bearer ", "Basic YWxpY2U6eA==", "Bearer nope", "Bearer a.b.c"])
def test_a_missing_or_unknown_token_is_401(store: Store, tmp_path: Path, header: str) -> None:
    assert refused(Access(store, tmp_path, enforce=True), header) == 401


def test_a_serviceaccount_token_stops_working_when_expired_tampered_or_its_account_is_gone(
    store: Store, tmp_path: Path
) -> None:
    access = Access(store, tmp_path, enforce=True)
    account = serviceaccount(store)
    expired, _ = access.mint(account, -1, [])
    assert refused(access, f"Bearer {expired}") == 401
    token, _ = access.mint(account, 600, [])
    header, payload, signature = token.split(".")
    assert refused(access, f"Bearer {header}.{payload}x.{signature}") == 401
    # Another server's key (another data directory) signs tokens this one does not accept.
    (tmp_path / "other").mkdir()
    assert refused(Access(store, tmp_path / "other", enforce=True), f"Bearer {token}") == 401
    store.delete(kinds.SERVICEACCOUNT, "default", "deployer")
    serviceaccount(store)  # the same name again is another account (another uid)
    assert refused(access, f"Bearer {token}") == 401


def test_the_signing_key_and_admin_token_survive_a_restart(store: Store, tmp_path: Path) -> None:
    first = Access(store, tmp_path, enforce=True)
    token, expiry = first.mint(serviceaccount(store), 600, [])
    assert expiry > time.time()
    again = Access(store, tmp_path, enforce=True)
    assert again.admin_token == first.admin_token
    assert again.authenticate(f"Bearer {token}").name == "system:serviceaccount:default:deployer"


def test_bootstrap_roles_let_any_user_read_discovery_and_review_itself(store: Store, tmp_path: Path) -> None:
    access = Access(store, tmp_path, enforce=True)
    user = User("nobody", groups=("system:authenticated",))
    assert access.allowed(user, Request("get", path="/apis/serving.knative.dev/v1"))
    assert access.allowed(user, Request("create", "authorization.k8s.io", "selfsubjectaccessreviews"))
    assert not access.allowed(user, Request("list", "", "pods", namespace="default"))
    assert not access.allowed(user, Request("get", path="/metrics"))
    # Without --auth nothing is checked.
    (tmp_path / "off").mkdir()
    assert Access(store, tmp_path / "off", enforce=False).allowed(user, Request("delete", "", "namespaces"))
