"""Measure the example model server's latencies once on a real local_knative and fit the benchmark's model.

Run: ``.venv/bin/python benchmarks/canary_judge/calibrate.py [--rate 30] [--duration 60]``. It starts
``python -m local_knative serve``, trains the example model, deploys it as the Knative Service of
``include/manifests/knative-service.yaml`` (one warm pod), sends open-model predictions through the
ingress with the product's load generator, and fits a two-lognormal mixture (a body and a heavy tail)
to the measured quantiles. The result goes to ``benchmarks/canary_judge/calibration.json``, which
``run.py`` reads: trials then draw from the fitted model instead of a cluster, so 100+ trials per case
take minutes, not days.

The latencies are the client's, through the ingress (what Knative's queue-proxy histograms see plus
the client's own loopback hop); the machine is shared, so the tail includes CPU contention, as a busy
node's would. The server answers no errors unless told to (its fault knobs), so the error rate is not
measured but set in ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "include"), str(REPO / "plugins")]

from benchmarks.canary_judge.model import CALIBRATION, QUANTILES, fit_mixture  # noqa: E402
from knative_rollout.loadtest import LoadTestConfig, run_load_test  # noqa: E402
from local_knative.runtime import FAST_SCALING_ARGS  # noqa: E402
from local_knative.testing import LocalKnative  # noqa: E402
from model.train import train  # noqa: E402

TEMPLATE = REPO / "include" / "manifests" / "knative-service.yaml"
NAMESPACE = "models"
SERVICE = "iris-classifier"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}).encode()


def deploy(cluster: LocalKnative, artifact: Path, timeout: float = 120.0) -> str:
    """Create the example Service from the template with a local artifact; return its Ready revision."""
    status, body = cluster.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    if status != 201:
        raise RuntimeError(f"creating namespace {NAMESPACE} answered {status}: {body}")
    service = yaml.safe_load(TEMPLATE.read_text())
    container = service["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {**item, "value": str(artifact)} if item["name"] == "MODEL_URI" else item for item in container["env"]
    ]
    revision = service["spec"]["template"]["metadata"]["name"]
    status, body = cluster.request(
        "POST", f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services", service
    )
    if status != 201:
        raise RuntimeError(f"creating the Service answered {status}: {body}")
    path = f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/revisions/{revision}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = cluster.request("GET", path)
        conditions = (
            {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])} if status == 200 else {}
        )
        if conditions.get("Ready", {}).get("status") == "True":
            return revision
        time.sleep(0.3)
    raise RuntimeError(f"revision {revision} was not Ready within {timeout:.0f}s:\n{cluster.output()}")


def measure(rate: float, duration: float, warmup: float) -> dict[str, Any]:
    """Return the measured latency quantiles (ms) and counts of the example model on local_knative."""
    with tempfile.TemporaryDirectory(prefix="canary-judge-calibrate-") as root:
        artifact = train(Path(root) / "artifacts", "v1", seed=0)
        cluster = LocalKnative.start(Path(root) / "cluster", extra_args=FAST_SCALING_ARGS)
        try:
            revision = deploy(cluster, artifact)
            config = dict(
                url=f"{cluster.ingress_url}/v1/models/{SERVICE}:predict",
                host=f"{SERVICE}.{NAMESPACE}.{cluster.domain}",
                bodies=(BODY,),
                expect_status=(200,),
            )
            asyncio.run(run_load_test(LoadTestConfig(rate=rate, duration_s=warmup, **config)))  # warm the pod
            result = asyncio.run(run_load_test(LoadTestConfig(rate=rate, duration_s=duration, **config)))
        finally:
            cluster.stop()
    latencies = result.all_requests()
    values = latencies.percentiles([q * 100 for q in QUANTILES])
    return {
        "revision": revision,
        "rate": rate,
        "duration_s": duration,
        "requests": result.requests,
        "answered": result.completed,
        "errors": result.error_count,
        "quantiles_ms": {f"{q:g}": value / 1000 for q, value in zip(QUANTILES, values, strict=True) if value},
        "max_ms": (latencies.max or 0) / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second (open model)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    args = parser.parse_args()
    measured = measure(args.rate, args.duration, args.warmup)
    quantiles = {float(q): ms / 1000 for q, ms in measured["quantiles_ms"].items()}
    fit = fit_mixture(quantiles)
    calibration = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "by": "benchmarks/canary_judge/calibrate.py",
        "environment": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "measured": measured,
        "fit": fit.to_dict(),
        "fit_quantiles_ms": {f"{q:g}": fit.quantile(q) * 1000 for q in QUANTILES},
    }
    CALIBRATION.write_text(json.dumps(calibration, indent=2) + "\n")
    print(json.dumps(calibration, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
