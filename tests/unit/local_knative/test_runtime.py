"""Revision runtime: image catalog, scaling flags, pods as real processes and their Pod objects."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from local_knative import kinds
from local_knative.images import CatalogError, ImageCatalog
from local_knative.runtime import FAST_SCALING_ARGS, PORT_ANNOTATION, ScalingConfig
from tests.unit.local_knative.test_runtime_harness import ECHO_IMAGE, NAMESPACE, Dataplane


@pytest.fixture
async def plane(tmp_path: Path):
    dataplane = await Dataplane(tmp_path).start()
    yield dataplane
    await dataplane.stop()


def _catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(text)
    return path


CATALOG = """
images:
  "example.com/app:*":
    entrypoint: [python, -m, app]
    cmd: [--serve]
    workingDir: work
    env: {A: "1"}
  "example.com/*":
    entrypoint: [/bin/true]
"""


@pytest.mark.parametrize(
    ("container", "argv_tail", "cwd_name"),
    [
        ({"image": "example.com/app:v1"}, ["-m", "app", "--serve"], "work"),
        ({"image": "example.com/app:v1", "args": ["--x"]}, ["-m", "app", "--x"], "work"),
        ({"image": "example.com/app:v1", "command": ["/bin/echo"]}, [], "work"),
        ({"image": "example.com/app:v1", "command": ["/bin/echo"], "args": ["hi"]}, ["hi"], "work"),
        ({"image": "example.com/other:v1"}, [], None),
    ],
)
def test_catalog_follows_kubernetes_command_and_args(tmp_path, container, argv_tail, cwd_name):
    catalog = ImageCatalog.load(_catalog(tmp_path, CATALOG))
    launch = catalog.resolve(container)
    assert launch is not None
    assert launch.argv[1:] == argv_tail
    if container.get("command"):
        assert launch.argv[0] == "/bin/echo"
    elif cwd_name:
        assert launch.argv[0] == sys.executable, "'python' must mean the interpreter running local_knative"
        assert launch.cwd == (tmp_path / cwd_name).resolve(), (
            "a relative workingDir is relative to the catalog"
        )
        assert launch.env == {"A": "1"}


def test_catalog_unknown_image_resolves_to_none(tmp_path):
    assert ImageCatalog.load(_catalog(tmp_path, CATALOG)).resolve({"image": "docker.io/nginx:1"}) is None


def test_default_catalog_maps_model_server_and_echo():
    catalog = ImageCatalog.load(None)
    model = catalog.resolve({"image": "registry.example.com/knative-rollout/model-server:v3"})
    echo = catalog.resolve({"image": ECHO_IMAGE})
    include_dir = Path(__file__).resolve().parents[3] / "include"
    assert (
        model is not None and model.argv == [sys.executable, "-m", "model.serve"] and model.cwd == include_dir
    )
    assert echo is not None and echo.argv == [sys.executable, "-m", "local_knative.echo"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: [1, 2]", "top-level mapping"),
        ("images:\n  'a:*': {entrypoint: python}", "'entrypoint' list"),
        ("images: {", "not valid YAML"),
    ],
)
def test_catalog_rejects_bad_files_clearly(tmp_path, text, message):
    with pytest.raises(CatalogError, match=message):
        ImageCatalog.load(_catalog(tmp_path, text))


def test_catalog_missing_file_names_it(tmp_path):
    with pytest.raises(CatalogError, match="cannot be read"):
        ImageCatalog.load(tmp_path / "absent.yaml")


def test_scaling_flags_defaults_and_fast_values():
    parser = argparse.ArgumentParser()
    ScalingConfig.add_cli_arguments(parser)
    assert ScalingConfig.from_cli(parser.parse_args([])) == ScalingConfig(60, 30, 120, 2)
    assert ScalingConfig.from_cli(parser.parse_args(list(FAST_SCALING_ARGS))) == ScalingConfig(3, 2, 30, 0.2)
    with pytest.raises(ValueError, match="--stable-window must be a positive"):
        ScalingConfig.from_cli(parser.parse_args(["--stable-window", "0"]))


async def test_pod_runs_with_knative_env_labels_and_log(plane):
    revision = plane.add_revision("hello-00001", service="hello", env={"GREETING": "hi"})
    [pod] = await plane.wait_ready_pods("hello-00001")
    metadata = pod["metadata"]
    assert (
        metadata["name"].startswith("hello-00001-deployment-")
        and len(metadata["name"].rsplit("-", 1)[1]) == 5
    )
    assert metadata["labels"] == {
        "serving.knative.dev/revision": "hello-00001",
        "serving.knative.dev/revisionUID": revision["metadata"]["uid"],
        "serving.knative.dev/configuration": "hello",
        "serving.knative.dev/service": "hello",
        "app": "hello-00001",
    }
    assert metadata["ownerReferences"][0]["uid"] == revision["metadata"]["uid"]
    assert metadata["ownerReferences"][0]["controller"] is True
    status = pod["status"]
    assert status["phase"] == "Running" and status["podIP"] == "127.0.0.1"
    assert (
        status["containerStatuses"][0]["ready"] is True
        and "running" in status["containerStatuses"][0]["state"]
    )
    port = int(metadata["annotations"][PORT_ANNOTATION])
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/p") as response:
        assert (await response.json())["revision"] == "hello-00001"
    log_file = plane.data_dir / "logs" / NAMESPACE / f"{metadata['name']}.log"
    assert "listening on 127.0.0.1" in log_file.read_text()


async def test_unknown_image_is_err_image_pull(plane):
    plane.add_revision("bad-00001", image="docker.io/library/nginx:1.27")
    state = await plane.wait_container_state("bad-00001")
    assert state["waiting"]["reason"] == "ErrImagePull"
    assert "docker.io/library/nginx:1.27" in state["waiting"]["message"]
    assert "images.yaml" in state["waiting"]["message"]


async def test_crashing_process_is_terminated_with_its_last_output(plane):
    plane.add_revision("crash-00001", env={"ECHO_FAIL_AT_START": "1"})
    state = await plane.wait_container_state("crash-00001")
    assert state["terminated"]["exitCode"] == 1
    assert "failing at start because ECHO_FAIL_AT_START" in state["terminated"]["message"]
    [pod] = plane.pods("crash-00001")
    assert pod["status"]["phase"] == "Failed"


async def test_probe_that_never_passes_hits_the_progress_deadline(plane):
    plane.add_revision(
        "slow-00001",
        env={"ECHO_STARTUP_DELAY_S": "30"},
        annotations={"serving.knative.dev/progress-deadline": "1s"},
    )
    state = await plane.wait_container_state("slow-00001")
    assert state["waiting"]["reason"] == "ProgressDeadlineExceeded"
    assert "did not pass within 1s" in state["waiting"]["message"]
    process = next(iter(plane.runtime.revision(NAMESPACE, "slow-00001").pods.values())).process
    assert process.returncode is not None, "the runtime must kill a process that missed the deadline"


async def test_deleting_a_revision_stops_its_processes_and_pods(plane):
    plane.add_revision("gone-00001")
    await plane.wait_ready_pods("gone-00001")
    process = next(iter(plane.runtime.revision(NAMESPACE, "gone-00001").pods.values())).process
    plane.store.delete(kinds.REVISION, NAMESPACE, "gone-00001")
    await plane.wait_for(lambda: process.returncode is not None, what="the pod process to end")
    await plane.wait_for(lambda: not plane.pods("gone-00001"), what="the Pod objects to go")


async def test_a_deleted_pod_is_replaced(plane):
    plane.add_revision("kept-00001")
    [old] = await plane.wait_ready_pods("kept-00001")
    process = next(iter(plane.runtime.revision(NAMESPACE, "kept-00001").pods.values())).process
    plane.store.delete(kinds.POD, NAMESPACE, old["metadata"]["name"])
    [new] = await plane.wait_ready_pods("kept-00001")
    assert new["metadata"]["name"] != old["metadata"]["name"]
    await plane.wait_for(lambda: process.returncode is not None, what="the deleted pod's process to end")


async def test_min_and_initial_scale_start_that_many_pods(plane):
    plane.add_revision(
        "many-00001",
        annotations={"autoscaling.knative.dev/min-scale": "2", "autoscaling.knative.dev/initial-scale": "3"},
    )
    await plane.wait_ready_pods("many-00001", count=3)
    # After the stable window with no traffic the revision settles at min-scale, never below.
    await plane.wait_for(
        lambda: len(plane.pods("many-00001")) == 2, timeout=15, what="scale down to min-scale"
    )


async def test_stop_ends_every_process_group(tmp_path):
    dataplane = await Dataplane(tmp_path).start()
    dataplane.add_revision("a-00001")
    dataplane.add_revision("b-00001")
    await dataplane.wait_ready_pods("a-00001")
    await dataplane.wait_ready_pods("b-00001")
    pids = [pod.process.pid for state in dataplane.runtime.revisions.values() for pod in state.pods.values()]
    await dataplane.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _mark_ready(store, revision: str, status: str, reason: str = "", message: str = "") -> None:
    """Write the Ready condition the controller derives from the pods (the runtime reads it at start)."""
    current = store.get(kinds.REVISION, NAMESPACE, revision)
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message}
    current["status"] = {"conditions": [condition]}
    store.replace(kinds.REVISION, current, subresource="status")


async def test_restart_resumes_live_pods_in_place_and_keeps_failed_ones(tmp_path):
    first = await Dataplane(tmp_path).start()
    first.add_revision("ok-00001")
    first.add_revision("broken-00001", image="docker.io/unknown:1")
    [old_pod] = await first.wait_ready_pods("ok-00001")
    await first.wait_container_state("broken-00001")
    [broken_pod] = first.pods("broken-00001")
    _mark_ready(first.store, "ok-00001", "True")
    _mark_ready(first.store, "broken-00001", "False", "ContainerMissing", "Unable to fetch image")
    await first.stop()  # as the server stops: processes end, Pod objects of the dead run stay behind

    second = Dataplane(tmp_path)
    second.add_revision("idle-00001")
    _mark_ready(second.store, "idle-00001", "True")  # it served before and was scaled to zero
    pod_events: list[tuple[str, dict]] = []
    second.store.subscribe(lambda event, kind, obj: kind == kinds.POD and pod_events.append((event, obj)))
    await second.start()
    try:
        ok = second.runtime.revision(NAMESPACE, "ok-00001")
        await second.wait_for(lambda: ok.ready_pods, what="the resumed pod to pass its probe")
        [pod] = second.pods("ok-00001")
        assert pod["metadata"]["name"] == old_pod["metadata"]["name"], "restarted in place, same Pod"
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
        port = int(pod["metadata"]["annotations"][PORT_ANNOTATION])
        assert port == ok.ready_pods[0].port
        async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}/") as answer:
            assert (await answer.json())["revision"] == "ok-00001"
        # Its Pod never reported not-ready in between, so the Revision derived from it does not flap.
        ok_events = [
            (event, obj) for event, obj in pod_events if obj["metadata"]["name"] == pod["metadata"]["name"]
        ]
        assert len(ok_events) >= 2, "the new port, then the new process's ready status"
        assert all(
            event == "MODIFIED" and obj["status"]["conditions"][0]["status"] == "True"
            for event, obj in ok_events
        )

        assert second.pods("broken-00001") == [broken_pod], "a failed revision keeps its failed Pod as it was"
        assert second.pods("idle-00001") == [], "a revision scaled to zero stays at zero until a request"
        desired = {state.name: wanted for state, wanted, _ in second.runtime.pod_counts()}
        assert desired == {"ok-00001": 1, "broken-00001": 0, "idle-00001": 0}
    finally:
        await second.stop()
