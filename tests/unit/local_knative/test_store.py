"""Store: CRUD, resourceVersion/generation rules, status subresource, GC, selectors, watch and persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from local_knative import kinds
from local_knative.errors import ApiError
from local_knative.store import Store


def ksvc(name: str, image: str = "img:1", namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = Store(tmp_path / "state.db")
    yield opened
    opened.close()


def test_first_start_creates_the_initial_namespaces(store: Store) -> None:
    names = [ns["metadata"]["name"] for ns in store.list(kinds.NAMESPACE)[0]]
    assert names == ["default", "knative-serving", "kube-system"]
    assert store.get(kinds.NAMESPACE, None, "default")["status"]["phase"] == "Active"


def test_create_sets_server_fields_and_get_returns_a_copy(store: Store) -> None:
    before = int(store.resource_version)
    created = store.create(kinds.KSVC, ksvc("a"))
    meta = created["metadata"]
    assert created["apiVersion"] == "serving.knative.dev/v1" and created["kind"] == "Service"
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) == before + 1 == int(store.resource_version)
    fetched = store.get(kinds.KSVC, "default", "a")
    fetched["metadata"]["labels"]["mutated"] = "yes"
    assert "mutated" not in store.get(kinds.KSVC, "default", "a")["metadata"]["labels"]


@pytest.mark.parametrize(
    ("obj", "namespace", "code", "reason"),
    [
        (ksvc("a"), "default", 409, "AlreadyExists"),
        (ksvc("b", namespace="missing"), "missing", 404, "NotFound"),
        ({"metadata": {}, "spec": {}}, "default", 422, "Invalid"),
        (ksvc("Bad_Name"), "default", 422, "Invalid"),
    ],
)
def test_create_rejects(store: Store, obj: dict[str, Any], namespace: str, code: int, reason: str) -> None:
    store.create(kinds.KSVC, ksvc("a"))
    with pytest.raises(ApiError) as error:
        store.create(kinds.KSVC, obj)
    assert (error.value.code, error.value.reason) == (code, reason)
    assert error.value.to_status()["code"] == code


def test_generate_name_adds_a_suffix(store: Store) -> None:
    created = store.create(kinds.CONFIGMAP, {"metadata": {"generateName": "cfg-", "namespace": "default"}})
    assert created["metadata"]["name"].startswith("cfg-") and len(created["metadata"]["name"]) == 9


def test_replace_bumps_generation_only_on_spec_change_and_skips_no_op_writes(store: Store) -> None:
    created = store.create(kinds.KSVC, ksvc("a"))
    labelled = store.replace(
        kinds.KSVC, {**created, "metadata": {**created["metadata"], "labels": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    changed = store.replace(kinds.KSVC, {**labelled, "spec": ksvc("a", image="img:2")["spec"]})
    assert changed["metadata"]["generation"] == 2
    rv = store.resource_version
    again = store.replace(kinds.KSVC, changed)
    assert again == changed and store.resource_version == rv


def test_stale_resource_version_conflicts(store: Store) -> None:
    created = store.create(kinds.KSVC, ksvc("a"))
    store.replace(kinds.KSVC, {**created, "spec": ksvc("a", image="img:2")["spec"]})
    with pytest.raises(ApiError) as error:
        store.replace(kinds.KSVC, {**created, "spec": ksvc("a", image="img:3")["spec"]})
    assert error.value.code == 409 and error.value.reason == "Conflict"
    assert "the object has been modified" in error.value.message


def test_status_subresource_separates_status_from_main_writes(store: Store) -> None:
    created = store.create(kinds.KSVC, ksvc("a"))
    with_status = store.replace(kinds.KSVC, {**created, "status": {"url": "http://a"}}, subresource="status")
    assert with_status["status"] == {"url": "http://a"} and with_status["metadata"]["generation"] == 1
    main = store.replace(kinds.KSVC, {**with_status, "status": {"url": "ignored"}, "spec": {"x": 1}})
    assert main["status"] == {"url": "http://a"} and main["spec"] == {"x": 1}
    status_only = store.replace(
        kinds.KSVC, {**main, "spec": {"y": 2}, "status": {"url": "b"}}, subresource="status"
    )
    assert status_only["spec"] == {"x": 1} and status_only["status"] == {"url": "b"}


def test_dry_run_writes_nothing(store: Store) -> None:
    rv = store.resource_version
    store.create(kinds.KSVC, ksvc("a"), dry_run=True)
    assert store.try_get(kinds.KSVC, "default", "a") is None and store.resource_version == rv


def test_delete_collects_owned_objects_recursively(store: Store) -> None:
    service = store.create(kinds.KSVC, ksvc("a"))

    def owned_by(owner: dict[str, Any], kind: kinds.Kind, name: str) -> dict[str, Any]:
        ref = {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        return store.create(
            kind, {"metadata": {"name": name, "namespace": "default", "ownerReferences": [ref]}, "spec": {}}
        )

    configuration = owned_by(service, kinds.CONFIGURATION, "a")
    owned_by(configuration, kinds.REVISION, "a-00001")
    store.create(kinds.REVISION, {"metadata": {"name": "unrelated", "namespace": "default"}, "spec": {}})
    deleted = store.delete(kinds.KSVC, "default", "a")
    assert deleted["metadata"]["name"] == "a"
    assert store.try_get(kinds.CONFIGURATION, "default", "a") is None
    assert [r["metadata"]["name"] for r in store.list(kinds.REVISION)[0]] == ["unrelated"]
    with pytest.raises(ApiError) as error:
        store.delete(kinds.KSVC, "default", "a")
    assert error.value.message == 'services.serving.knative.dev "a" not found'


def test_deleting_a_namespace_deletes_its_objects(store: Store) -> None:
    store.create(kinds.NAMESPACE, {"metadata": {"name": "team"}})
    store.create(kinds.KSVC, ksvc("a", namespace="team"))
    store.create(kinds.KSVC, ksvc("a"))
    store.delete(kinds.NAMESPACE, None, "team")
    assert [s["metadata"]["namespace"] for s in store.list(kinds.KSVC)[0]] == ["default"]


@pytest.mark.parametrize(
    ("label_selector", "field_selector", "expected"),
    [
        ("tier=web", None, ["a", "b"]),
        ("tier!=web", None, ["c"]),
        ("tier in (db, cache)", None, ["c"]),
        ("tier notin (db),env", None, ["a"]),
        ("!env", None, ["b", "c"]),
        (None, "metadata.name=b", ["b"]),
        (None, "metadata.name!=b,metadata.namespace=default", ["a", "c"]),
        ("tier=web", "metadata.labels.env=prod", ["a"]),
    ],
)
def test_list_selectors(
    store: Store, label_selector: str | None, field_selector: str | None, expected: list[str]
) -> None:
    store.create(kinds.KSVC, ksvc("a", tier="web", env="prod"))
    store.create(kinds.KSVC, ksvc("b", tier="web"))
    store.create(kinds.KSVC, ksvc("c", tier="db"))
    items, rv = store.list(
        kinds.KSVC, "default", label_selector=label_selector, field_selector=field_selector
    )
    assert [i["metadata"]["name"] for i in items] == expected and rv == store.resource_version


def test_a_bad_selector_is_a_clear_400(store: Store) -> None:
    with pytest.raises(ApiError) as error:
        store.list(kinds.KSVC, label_selector="a in b")
    assert error.value.code == 400 and "labelSelector" in error.value.message


def test_subscribers_see_every_committed_write(store: Store) -> None:
    seen: list[tuple[str, str, str]] = []
    store.subscribe(lambda event, kind, obj: seen.append((event, kind.kind, obj["metadata"]["name"])))
    created = store.create(kinds.KSVC, ksvc("a"))
    store.replace(kinds.KSVC, created)  # no change: no event
    store.replace(kinds.KSVC, {**created, "spec": {}})
    store.delete(kinds.KSVC, "default", "a")
    assert seen == [("ADDED", "Service", "a"), ("MODIFIED", "Service", "a"), ("DELETED", "Service", "a")]


async def _take(iterator: Any, count: int) -> list[tuple[str, str]]:
    events = []
    for _ in range(count):
        event_type, obj = await asyncio.wait_for(anext(iterator), timeout=2)
        events.append((event_type, obj["metadata"]["name"]))
    return events


async def test_watch_lists_then_follows_and_replays_from_a_resource_version(store: Store) -> None:
    first = store.create(kinds.KSVC, ksvc("a"))
    since = first["metadata"]["resourceVersion"]
    store.create(kinds.KSVC, ksvc("b"))
    current = store.watch(kinds.KSVC, "default", "0")
    assert await _take(current, 2) == [("ADDED", "a"), ("ADDED", "b")]
    store.delete(kinds.KSVC, "default", "a")
    assert await _take(current, 1) == [("DELETED", "a")]
    replay = store.watch(kinds.KSVC, None, since)
    assert await _take(replay, 2) == [("ADDED", "b"), ("DELETED", "a")]
    await current.aclose()
    await replay.aclose()


async def test_watch_follows_objects_in_and_out_of_a_label_selector(store: Store) -> None:
    created = store.create(kinds.KSVC, ksvc("a"))
    watch = store.watch(kinds.KSVC, "default", store.resource_version, label_selector="track=canary")
    labelled = store.replace(
        kinds.KSVC, {**created, "metadata": {**created["metadata"], "labels": {"track": "canary"}}}
    )
    store.replace(kinds.KSVC, {**labelled, "metadata": {**labelled["metadata"], "labels": {}}})
    assert await _take(watch, 2) == [("ADDED", "a"), ("DELETED", "a")]
    await watch.aclose()


async def test_watch_from_a_compacted_resource_version_is_expired(tmp_path: Path) -> None:
    small = Store(tmp_path / "state.db", history_size=2)
    try:
        old_rv = small.resource_version
        for name in ("a", "b", "c"):
            small.create(kinds.CONFIGMAP, {"metadata": {"name": name, "namespace": "default"}})
        with pytest.raises(ApiError) as error:
            await anext(small.watch(kinds.CONFIGMAP, None, old_rv))
        assert error.value.code == 410 and error.value.reason == "Expired"
        assert "too old resource version" in error.value.message
    finally:
        small.close()


def test_objects_and_resource_version_survive_a_reopen(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    created = first.create(kinds.KSVC, ksvc("a"))
    updated = first.replace(kinds.KSVC, {**created, "spec": {"changed": True}})
    rv = first.resource_version
    first.close()
    second = Store(tmp_path / "state.db")
    try:
        assert second.get(kinds.KSVC, "default", "a") == updated
        assert second.resource_version == rv
        assert len(second.list(kinds.NAMESPACE)[0]) == 3
        again = second.create(kinds.KSVC, ksvc("b"))
        assert int(again["metadata"]["resourceVersion"]) == int(rv) + 1
    finally:
        second.close()
