"""Serve a trained example model over HTTP with the KServe v1 protocol (what Knative model servers speak).

Run ``python -m model.serve`` with the environment Knative gives a container:

- ``PORT``: port to listen on (default 8080; 0 picks a free one, logged in the start-up line);
  ``LISTEN_HOST`` (default ``0.0.0.0``).
- ``MODEL_URI``: artifact directory written by ``python -m model.train``, or ``gs://bucket/path`` of a copy
  (downloaded at start with google-cloud-storage to ``MODEL_CACHE_DIR`` or a temporary directory).
- ``MODEL_NAME``: name in the URLs; default ``K_SERVICE``, else ``model``. ``K_REVISION`` is echoed in the
  ``X-Revision`` header and the artifact version in ``X-Model-Version``, so a client can tell who answered.
- ``FAULT_*``: fault knobs, see :mod:`model.faults`.

Endpoints: ``GET /`` (liveness), ``GET /v1/models`` (list), ``GET /v1/models/NAME`` (readiness),
``POST /v1/models/NAME:predict`` with ``{"instances": [[...], ...]}`` -> ``{"predictions": [...]}``,
``GET /metrics`` (Prometheus text). Errors are JSON ``{"error": "..."}`` with 400 (bad input), 404 (unknown
model) or 500 (injected fault).

The model-quality metric: a predict body may carry the true class of each row, ``"labels": [...]`` (as
a client that later learns the answer, or a labelled evaluation stream, would send it); the server
counts those predictions in ``model_labelled_predictions_total{outcome="correct"|"incorrect"}``, so
accuracy on live traffic is ``correct / (correct + incorrect)`` per revision (label ``revision_name``,
from ``K_REVISION``). ``server_id`` names this process: a second pod or a restart counts apart, so two
reads of one process' counters always give what it answered between them.

The model is loaded (and one warm-up prediction made) before the port opens, so "accepts connections"
already means "ready", whichever probe a platform uses. aiohttp keeps injected latency cheap: a slow
request awaits a timer instead of holding a thread, so a slow canary stays slow, not saturated.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from model.artifact import Artifact, ArtifactError, load_artifact, resolve_model_uri
from model.faults import CRASH_EXIT_CODE, FaultConfig, FaultConfigError

CONFIG_EXIT_CODE = 2
LOAD_EXIT_CODE = 1

ARTIFACT_KEY = web.AppKey("artifact", Artifact)
MODEL_NAME_KEY = web.AppKey("model_name", str)
FAULTS_KEY = web.AppKey("faults", FaultConfig)
RNG_KEY = web.AppKey("rng", random.Random)
QUALITY_KEY = web.AppKey("quality", dict[str, int])
REVISION_KEY = web.AppKey("revision", str)
SERVER_ID_KEY = web.AppKey("server_id", str)
QUALITY_METRIC = "model_labelled_predictions_total"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BadInstances(ValueError):
    """Raise when a predict request body is not a valid KServe v1 ``instances`` payload."""


def model_name_from_env(env: Mapping[str, str]) -> str:
    """Return the served model's name: ``MODEL_NAME``, else ``K_SERVICE``, else ``model``."""
    return env.get("MODEL_NAME") or env.get("K_SERVICE") or "model"


def parse_instances(body: bytes, n_features: int) -> list[list[float]]:
    """Return the rows of a predict request body, or raise BadInstances saying what is wrong.

    :param body: the raw request body
    :param n_features: how many numbers each row must have
    """
    example = f'{{"instances": [[{", ".join(["0.0"] * n_features)}]]}}'
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInstances(f"request body is not valid JSON ({error}); send for example {example}") from None
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadInstances(
            f"request body must be a JSON object with an 'instances' list; for example {example}"
        )
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadInstances(f"'instances' must be a non-empty list of rows; for example {example}")
    for index, row in enumerate(instances):
        if not isinstance(row, list) or len(row) != n_features:
            raise BadInstances(
                f"instances[{index}] must be a list of {n_features} numbers (one per feature), "
                f"got {json.dumps(row)[:80]}"
            )
        for column, value in enumerate(row):
            # bool is an int subclass in Python, but true/false is never a feature value here.
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BadInstances(
                    f"instances[{index}][{column}] = {json.dumps(value)} is not a finite number"
                )
    return instances


def parse_labels(body: bytes, rows: int) -> list[int] | None:
    """Return the true classes a predict body carries (``"labels"``), None when it has none.

    :param body: the raw request body (already a valid ``instances`` payload)
    :param rows: how many instances it has, so how many labels it must have
    :raises BadInstances: naming ``labels`` when it is not a list of ``rows`` class numbers
    """
    labels = json.loads(body).get("labels")
    if labels is None:
        return None
    if (
        not isinstance(labels, list)
        or len(labels) != rows
        or any(isinstance(label, bool) or not isinstance(label, int) for label in labels)
    ):
        raise BadInstances(
            f"'labels' must be a list of {rows} class numbers, one true class per instance, got "
            f"{json.dumps(labels)[:80]}"
        )
    return labels


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _unknown_model(request: web.Request) -> web.Response | None:
    served = request.app[MODEL_NAME_KEY]
    asked = request.match_info["name"]
    if asked == served:
        return None
    return _error(404, f"model {asked!r} not found: this server serves {served!r} (GET /v1/models lists it)")


async def health(request: web.Request) -> web.Response:
    """Answer the liveness check."""
    return web.json_response({"status": "alive"})


async def list_models(request: web.Request) -> web.Response:
    """List the served model names (KServe v1 ``GET /v1/models``)."""
    return web.json_response({"models": [request.app[MODEL_NAME_KEY]]})


async def model_ready(request: web.Request) -> web.Response:
    """Answer the readiness check of the model (KServe v1 ``GET /v1/models/NAME``)."""
    return _unknown_model(request) or web.json_response({"name": request.app[MODEL_NAME_KEY], "ready": True})


async def predict(request: web.Request) -> web.Response:
    """Predict the classes of the posted instances (KServe v1 ``POST /v1/models/NAME:predict``)."""
    if unknown := _unknown_model(request):
        return unknown
    faults, rng = request.app[FAULTS_KEY], request.app[RNG_KEY]
    if delay := faults.sample_latency_s(rng):
        await asyncio.sleep(delay)
    if faults.should_fail(rng):
        return _error(500, f"injected fault: FAULT_ERROR_RATE={faults.error_rate:g}")
    artifact = request.app[ARTIFACT_KEY]
    body = await request.read()
    try:
        instances = parse_instances(body, artifact.n_features)
        labels = parse_labels(body, len(instances))
    except BadInstances as error:
        return _error(400, str(error))
    predictions = artifact.model.predict(instances).tolist()
    if labels is not None:
        quality = request.app[QUALITY_KEY]
        correct = sum(int(predicted == label) for predicted, label in zip(predictions, labels, strict=True))
        quality["correct"] += correct
        quality["incorrect"] += len(labels) - correct
    return web.json_response({"predictions": predictions})


async def metrics(request: web.Request) -> web.Response:
    """Answer the labelled predictions' counters in the Prometheus text exposition format."""
    app = request.app
    labels = f'revision_name="{_escape(app[REVISION_KEY])}",server_id="{app[SERVER_ID_KEY]}"'
    lines = [
        f"# HELP {QUALITY_METRIC} Predictions of requests that carried the true labels, by outcome.",
        f"# TYPE {QUALITY_METRIC} counter",
        *(
            f'{QUALITY_METRIC}{{{labels},outcome="{outcome}"}} {count}'
            for outcome, count in app[QUALITY_KEY].items()
        ),
    ]
    return web.Response(
        body=("\n".join(lines) + "\n").encode(), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def build_app(
    artifact: Artifact, *, model_name: str, faults: FaultConfig, revision: str | None
) -> web.Application:
    """Build the HTTP application serving ``artifact`` under ``model_name``.

    :param artifact: the loaded model
    :param model_name: name in the ``/v1/models/NAME`` URLs
    :param faults: fault injection settings
    :param revision: Knative revision name for the ``X-Revision`` header (None: no header)
    """
    app = web.Application()
    app[ARTIFACT_KEY] = artifact
    app[MODEL_NAME_KEY] = model_name
    app[FAULTS_KEY] = faults
    app[RNG_KEY] = random.Random()
    app[QUALITY_KEY] = {"correct": 0, "incorrect": 0}
    app[REVISION_KEY] = revision or ""
    app[SERVER_ID_KEY] = uuid.uuid4().hex[:12]
    identity = {"X-Model-Version": artifact.version}
    if revision:
        identity["X-Revision"] = revision

    async def add_identity_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(identity)

    app.on_response_prepare.append(add_identity_headers)
    app.router.add_get("/", health)
    app.router.add_get("/v1/models", list_models)
    # ':' cannot be part of a name, so "NAME:predict" never reaches the readiness route (GET on it is a 405).
    app.router.add_get("/v1/models/{name:[^/:]+}", model_ready)
    app.router.add_post("/v1/models/{name:[^/:]+}:predict", predict)
    app.router.add_get("/metrics", metrics)
    return app


def load_model(uri: str, cache_dir: Path) -> Artifact:
    """Load the artifact named by ``uri`` and check it answers one prediction."""
    artifact = load_artifact(resolve_model_uri(uri, cache_dir))
    artifact.model.predict([[0.0] * artifact.n_features])  # warm-up, and proof the model fits its metadata
    return artifact


async def serve(app: web.Application, host: str, port: int, banner: str) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully."""
    # Handlers first: a SIGTERM that arrives as soon as the port opens must still shut down gracefully.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(f"{banner} on http://{host}:{bound_port}", flush=True)
    await stopping.wait()
    await runner.cleanup()


def main(env: Mapping[str, str] | None = None) -> int:
    """Check the configuration, load the model and serve it; return the process exit status."""
    env = os.environ if env is None else env
    try:
        faults = FaultConfig.from_env(env)
        port = int(env.get("PORT", "8080"))
        if not 0 <= port <= 65535:
            raise ValueError
    except FaultConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return CONFIG_EXIT_CODE
    except ValueError:
        print(f"error: PORT={env.get('PORT')!r} is not a port number: set it to 0..65535", file=sys.stderr)
        return CONFIG_EXIT_CODE
    if faults.crash_at_start:
        print(f"error: FAULT_CRASH_AT_START is set: exiting with status {CRASH_EXIT_CODE}", file=sys.stderr)
        return CRASH_EXIT_CODE
    uri = env.get("MODEL_URI", "").strip()
    if not uri:
        print(
            "error: MODEL_URI is not set: point it at an artifact directory printed by "
            "'python -m model.train --output DIR' (or its gs:// copy)",
            file=sys.stderr,
        )
        return CONFIG_EXIT_CODE
    model_name = model_name_from_env(env)
    with tempfile.TemporaryDirectory(prefix="model-download-") as download_dir:
        started = time.perf_counter()
        try:
            artifact = load_model(uri, Path(env.get("MODEL_CACHE_DIR") or download_dir))
        except ArtifactError as error:
            print(f"error: {error}", file=sys.stderr)
            return LOAD_EXIT_CODE
        print(
            f"loaded model {model_name!r} version {artifact.version} from {uri} in "
            f"{time.perf_counter() - started:.2f}s; faults: {faults.describe()}",
            flush=True,
        )
        if faults.slow_start_s:
            time.sleep(faults.slow_start_s)  # nothing listens yet, so blocking is exactly the point
        app = build_app(artifact, model_name=model_name, faults=faults, revision=env.get("K_REVISION"))
        banner = f"serving model {model_name!r} version {artifact.version}"
        asyncio.run(serve(app, env.get("LISTEN_HOST", "0.0.0.0"), port, banner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
