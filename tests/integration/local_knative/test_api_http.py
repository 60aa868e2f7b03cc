"""API server over real loopback HTTP: discovery, OpenAPI, Tables, /status, validation, watch, pod logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_knative import admission, kinds
from local_knative.apiserver import build_api_app
from local_knative.store import Store

pytestmark = pytest.mark.integration

KSVC_PATH = "/apis/serving.knative.dev/v1/namespaces/default/services"
TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)
AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


def ksvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "img:1"}]}}},
    }


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Store]]:
    store = Store(tmp_path / "state.db", history_size=50)
    app = build_api_app(store, admission=admission.admit, data_dir=tmp_path, bookmark_interval=0.2)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, store
    store.close()


async def _watch_lines(client: TestClient, path: str, count: int, **headers: str) -> list[dict[str, Any]]:
    events = []
    async with client.get(path, headers=headers) as response:
        assert response.status == 200
        while len(events) < count:
            line = await asyncio.wait_for(response.content.readline(), timeout=5)
            if not line:
                break
            events.append(json.loads(line))
    return events


async def test_discovery_plain_and_aggregated(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    version = await (await client.get("/version")).json()
    assert (version["major"], version["minor"]) == ("1", "32")
    groups = await (await client.get("/apis")).json()
    assert {g["name"] for g in groups["groups"]} == {
        "apps",
        "batch",
        "networking.k8s.io",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "serving.knative.dev",
        "security.istio.io",
    }
    core = await (await client.get("/api/v1")).json()
    assert {"namespaces", "pods", "pods/log", "events", "configmaps", "secrets"} <= {
        r["name"] for r in core["resources"]
    }
    serving = await (await client.get("/apis/serving.knative.dev/v1")).json()
    by_name = {r["name"]: r for r in serving["resources"]}
    assert by_name["services"]["shortNames"] == ["kservice", "ksvc"]
    assert by_name["revisions"]["categories"] == ["all", "knative", "serving"]
    assert by_name["routes/status"]["verbs"] == ["get", "patch", "update"]

    aggregated = await client.get("/apis", headers={"Accept": AGGREGATED})
    assert aggregated.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    document = await aggregated.json(content_type=None)
    assert document["kind"] == "APIGroupDiscoveryList"
    serving_group = next(i for i in document["items"] if i["metadata"]["name"] == "serving.knative.dev")
    services = next(r for r in serving_group["versions"][0]["resources"] if r["resource"] == "services")
    assert services["scope"] == "Namespaced" and services["subresources"][0]["subresource"] == "status"
    missing = await client.get("/apis/serving.knative.dev/v2")
    assert missing.status == 404 and (await missing.json())["kind"] == "Status"


async def test_openapi_v3_describes_patch_with_field_validation(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    index = await (await client.get("/openapi/v3")).json()
    url = index["paths"]["apis/serving.knative.dev/v1"]["serverRelativeURL"]
    assert "?hash=" in url
    document = await (await client.get(url)).json()
    item = document["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "serving.knative.dev",
        "version": "v1",
        "kind": "Service",
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert (await client.get("/openapi/v3/apis/nothing.example.com/v1")).status == 404


async def test_tables_for_services_and_pods(api: tuple[TestClient, Store]) -> None:
    client, store = api
    created = await (await client.post(KSVC_PATH, json=ksvc("web"))).json()
    store.replace(
        kinds.KSVC,
        {
            **created,
            "status": {
                "url": "http://web.default.example.com",
                "latestCreatedRevisionName": "web-00001",
                "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed"}],
            },
        },
        subresource="status",
    )
    table = await (await client.get(KSVC_PATH, headers={"Accept": TABLE})).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "URL",
        "LatestCreated",
        "LatestReady",
        "Ready",
        "Reason",
    ]
    assert table["rows"][0]["cells"] == [
        "web",
        "http://web.default.example.com",
        "web-00001",
        None,
        "False",
        "RevisionFailed",
    ]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    store.create(
        kinds.POD,
        {
            "metadata": {"name": "web-00001-deployment-abcde", "namespace": "default"},
            "spec": {"containers": [{"name": "user-container"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "user-container", "ready": True, "restartCount": 2}],
            },
        },
    )
    pods = await (await client.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE})).json()
    assert [c["name"] for c in pods["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert pods["rows"][0]["cells"][:4] == ["web-00001-deployment-abcde", "1/1", "Running", 2]


async def test_status_subresource_over_http_and_admission_on_main_writes(
    api: tuple[TestClient, Store],
) -> None:
    client, _ = api
    created = await (await client.post(KSVC_PATH, json=ksvc("web"))).json()
    status_patch = await client.patch(
        f"{KSVC_PATH}/web/status",
        data=json.dumps({"status": {"url": "http://x"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status_patch.status == 200
    body = await status_patch.json()
    assert body["status"]["url"] == "http://x" and body["metadata"]["generation"] == 1
    stale = await client.put(f"{KSVC_PATH}/web", json={**created, "status": {"url": "ignored"}})
    assert stale.status == 409  # the status write moved the resourceVersion on
    unconditional = {**created, "metadata": {"name": "web"}, "status": {"url": "ignored"}}
    replaced = await client.put(f"{KSVC_PATH}/web", json=unconditional)
    assert (await replaced.json())["status"]["url"] == "http://x"
    denied = ksvc("bad")
    denied["spec"]["traffic"] = [{"latestRevision": True, "percent": 90}]
    response = await client.post(KSVC_PATH, json=denied)
    status = await response.json()
    assert response.status == 400 and status["reason"] == "BadRequest"
    assert status["message"].startswith('admission webhook "validation.webhook.serving.knative.dev" denied')


@pytest.mark.parametrize(
    ("path", "body", "query", "code", "fragment"),
    [
        (KSVC_PATH, {**ksvc("x"), "spek": {}}, "?fieldValidation=Strict", 400, 'unknown field "spek"'),
        (
            KSVC_PATH,
            {**ksvc("x"), "metadata": {"name": "x", "namespace": "other"}},
            "",
            400,
            "does not match",
        ),
        (KSVC_PATH, {**ksvc("x"), "kind": "Route"}, "", 400, "this URL serves"),
        (
            "/apis/serving.knative.dev/v1/namespaces/nowhere/services",
            ksvc("x"),
            "",
            404,
            'namespaces "nowhere"',
        ),
        ("/apis/serving.knative.dev/v1/namespaces/default/widgets", ksvc("x"), "", 404, "could not find"),
    ],
)
async def test_bad_requests_get_clear_status_errors(
    api: tuple[TestClient, Store], path: str, body: dict[str, Any], query: str, code: int, fragment: str
) -> None:
    client, _ = api
    response = await client.post(path + query, json=body)
    status = await response.json()
    assert response.status == code and status["kind"] == "Status" and fragment in status["message"]


async def test_dry_run_create_and_delete_change_nothing(api: tuple[TestClient, Store]) -> None:
    client, store = api
    dry = await client.post(f"{KSVC_PATH}?dryRun=All", json=ksvc("dry"))
    assert dry.status == 201 and store.try_get(kinds.KSVC, "default", "dry") is None
    await client.post(KSVC_PATH, json=ksvc("kept"))
    response = await client.delete(f"{KSVC_PATH}/kept", data=json.dumps({"dryRun": ["All"]}))
    assert response.status == 200 and store.try_get(kinds.KSVC, "default", "kept") is not None


async def test_watch_sends_bookmarks_and_table_rows(api: tuple[TestClient, Store]) -> None:
    client, store = api
    rv = store.resource_version
    await client.post(KSVC_PATH, json=ksvc("a"))
    events = await _watch_lines(
        client, f"{KSVC_PATH}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true", 2
    )
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    assert events[1] == {
        "type": "BOOKMARK",
        "object": {
            "kind": "Service",
            "apiVersion": "serving.knative.dev/v1",
            "metadata": {"resourceVersion": store.resource_version},
        },
    }
    tables = await _watch_lines(client, f"{KSVC_PATH}?watch=true&resourceVersion={rv}", 1, Accept=TABLE)
    assert tables[0]["object"]["kind"] == "Table" and tables[0]["object"]["rows"][0]["cells"][0] == "a"


async def test_watch_from_a_compacted_version_ends_with_an_expired_error(
    api: tuple[TestClient, Store],
) -> None:
    client, store = api
    for number in range(60):  # more writes than the 50 events of history this store keeps
        store.create(kinds.CONFIGMAP, {"metadata": {"name": f"cm-{number}", "namespace": "default"}})
    events = await _watch_lines(
        client, "/api/v1/namespaces/default/configmaps?watch=True&resourceVersion=2", 2
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


async def test_watch_closes_at_timeout_seconds(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    async with client.get(f"{KSVC_PATH}?watch=true&resourceVersion=0&timeoutSeconds=1") as response:
        body = await asyncio.wait_for(response.read(), timeout=5)
    assert body == b""


async def test_pod_logs_tail_and_follow(api: tuple[TestClient, Store], tmp_path: Path) -> None:
    client, store = api
    store.create(kinds.POD, {"metadata": {"name": "p", "namespace": "default"}, "spec": {}})
    log_file = tmp_path / "logs" / "default" / "p.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text("one\ntwo\nthree\n")
    logs = "/api/v1/namespaces/default/pods/p/log"
    assert await (await client.get(logs)).text() == "one\ntwo\nthree\n"
    assert await (await client.get(f"{logs}?tailLines=1")).text() == "three\n"
    async with client.get(f"{logs}?follow=true&tailLines=1") as response:
        assert await asyncio.wait_for(response.content.readline(), timeout=5) == b"three\n"
        with log_file.open("a") as handle:
            handle.write("four\n")
        assert await asyncio.wait_for(response.content.readline(), timeout=5) == b"four\n"
        store.delete(kinds.POD, "default", "p")
        assert await asyncio.wait_for(response.content.read(), timeout=5) == b""
    assert (await client.get("/api/v1/namespaces/default/pods/missing/log")).status == 404


async def test_delete_collection_by_label(api: tuple[TestClient, Store]) -> None:
    client, store = api
    for name, track in (("a", "canary"), ("b", "canary"), ("c", "stable")):
        body = ksvc(name)
        body["metadata"]["labels"] = {"track": track}
        assert (await client.post(KSVC_PATH, json=body)).status == 201
    response = await client.delete(f"{KSVC_PATH}?labelSelector=track%3Dcanary")
    deleted = await response.json()
    assert response.status == 200 and [i["metadata"]["name"] for i in deleted["items"]] == ["a", "b"]
    assert [s["metadata"]["name"] for s in store.list(kinds.KSVC, "default")[0]] == ["c"]


async def test_protobuf_bodies_of_undecodable_kinds_are_415(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    type_meta = b"\x0a\x02v1\x12\x03Pod"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12\x00"
    response = await client.post(
        "/api/v1/namespaces/default/pods",
        data=body,
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    status = await response.json()
    assert response.status == 415 and "send the object as application/json" in status["message"]


async def test_strict_field_validation_applies_to_patches(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    await client.post(KSVC_PATH, json=ksvc("web"))
    headers = {"Content-Type": "application/merge-patch+json"}
    strict = await client.patch(
        f"{KSVC_PATH}/web?fieldValidation=Strict", data='{"spek": {}}', headers=headers
    )
    assert strict.status == 400 and 'unknown field "spek"' in (await strict.json())["message"]
    lenient = await client.patch(
        f"{KSVC_PATH}/web?fieldValidation=Ignore", data='{"metadata": {}}', headers=headers
    )
    assert lenient.status == 200


async def test_metrics_count_requests_by_verb_resource_and_code(api: tuple[TestClient, Store]) -> None:
    client, _ = api
    await client.post(KSVC_PATH, json=ksvc("counted"))
    await client.post(KSVC_PATH, json=ksvc("counted"))  # 409: counted with its code
    await client.get(f"{KSVC_PATH}/counted")
    await client.get(KSVC_PATH)
    async with client.get(f"{KSVC_PATH}?watch=true&timeoutSeconds=1") as watch:
        await watch.read()
    text = await (await client.get("/metrics")).text()
    counted = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in text.splitlines()[1:]}
    labels = 'group="serving.knative.dev",resource="services",subresource="",verb="{}",version="v1"'
    assert counted == {
        f'apiserver_request_total{{code="201",{labels.format("CREATE")}}}': 1,
        f'apiserver_request_total{{code="409",{labels.format("CREATE")}}}': 1,
        f'apiserver_request_total{{code="200",{labels.format("GET")}}}': 1,
        f'apiserver_request_total{{code="200",{labels.format("LIST")}}}': 1,
        f'apiserver_request_total{{code="200",{labels.format("WATCH")}}}': 1,
    }, text
