"""Measure the example model server's latencies once on a real local_knative and fit the benchmark's model.

Run: ``.venv/bin/python benchmarks/canary_judge/calibrate.py [--rate 30] [--duration 120]`` (3 minutes).
It starts ``python -m local_knative serve``, trains the example model, deploys it as the Knative Service of
``include/manifests/knative-service.yaml`` (one warm pod) and sends open-model predictions through the
ingress with the product's load generator while the product's direct-scrape provider reads
local_knative's Knative metrics (``revision_request_latencies``, the OpenCensus schema) in ``--step``
intervals. The two-lognormal mixture (a body and a heavy tail) is fitted by maximum likelihood to the
bucket counts of that whole window: the latencies as Knative measured them, which is all the judge
ever sees. The client's own latencies are recorded beside them but not fitted: on a shared machine the
load generator's process waits for a core too, and that is not the revision's latency.

``model`` in the output describes intervals drawn from the fit at the same rate, beside ``knative``,
the scraped ones: totals, bucket shares and the spread of per-interval p99s. The fit matches totals;
the per-interval spread is not fitted, so it is the sanity check that a trial's series look like a
provider's. The result goes to ``benchmarks/canary_judge/calibration.json``, which ``run.py`` reads:
trials draw from the fit instead of a cluster, so 100+ trials per case take a minute, not days. The
server answers no errors unless told to (its fault knobs), so the error rate is set in ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

import numpy as np  # noqa: E402

from benchmarks.canary_judge.model import (  # noqa: E402
    BUCKETS_S,
    CALIBRATION,
    Revision,
    draw_window,
    fit_buckets,
)
from knative_rollout.analysis import ScrapeProvider  # noqa: E402
from knative_rollout.analysis.checks import metric_samples  # noqa: E402
from knative_rollout.analysis.series import RevisionWindow  # noqa: E402
from knative_rollout.loadtest import LoadTestConfig, run_load_test  # noqa: E402
from local_knative.runtime import FAST_SCALING_ARGS  # noqa: E402
from local_knative.testing import LocalKnative  # noqa: E402
from model.train import train  # noqa: E402

TEMPLATE = REPO / "include" / "manifests" / "knative-service.yaml"
NAMESPACE = "models"
SERVICE = "iris-classifier"
CLIENT_QUANTILES = (0.5, 0.9, 0.99, 0.999)
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


def measure(
    rate: float, duration: float, warmup: float, step: float
) -> tuple[dict[str, Any], RevisionWindow]:
    """Return the client's view (counts, latency quantiles) and the revision's scraped Knative window."""
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
            scrape = ScrapeProvider([cluster.metrics_url]).windows(
                namespace=NAMESPACE, revisions=[revision], window=duration, step=step, schema="opencensus"
            )
            load = run_load_test(LoadTestConfig(rate=rate, duration_s=duration, **config))
            windows, result = asyncio.run(_together(scrape, load))
        finally:
            cluster.stop()
    latencies = result.all_requests()
    values = latencies.percentiles([q * 100 for q in CLIENT_QUANTILES])
    client = {
        "requests": result.requests,
        "answered": result.completed,
        "errors": result.error_count,
        "quantiles_ms": {f"{q:g}": (v or 0) / 1000 for q, v in zip(CLIENT_QUANTILES, values, strict=True)},
    }
    scraped = windows[revision]
    # The first and last intervals are cut by the load's start and end.
    return client, RevisionWindow(
        scraped.namespace, scraped.revision, scraped.schema, scraped.intervals[1:-1]
    )


async def _together(*steps: Any) -> list[Any]:
    return list(await asyncio.gather(*steps))


def describe(window: RevisionWindow) -> dict[str, Any]:
    """Return a window's totals, p50/p99 and bucket shares up to 100 ms, and its per-interval p99s' spread."""
    total = window.total
    p99s = [p99 for p99 in metric_samples(window, "latency_p99") if np.isfinite(p99)]
    return {
        "intervals": len(window.intervals),
        "requests": total.requests,
        "p50_ms": (total.latency_quantile(0.5) or 0) * 1000,
        "p99_ms": (total.latency_quantile(0.99) or 0) * 1000,
        "share_at_most_ms": {
            f"{bound * 1000:g}": count / total.requests for bound, count in total.buckets if bound <= 0.1
        },
        "interval_p99_ms": {f"p{q}": float(np.percentile(p99s, q)) * 1000 for q in (10, 50, 90)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second (open model)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--step", type=float, default=10.0, help="seconds per scraped interval")
    args = parser.parse_args()
    client, scraped = measure(args.rate, args.duration, args.warmup, args.step)
    fit = fit_buckets(scraped.total.buckets)
    drawn = draw_window(
        np.random.default_rng(0),
        Revision("model", 1.0, 1.0, 0.0),
        fit,
        total_rate=args.rate,
        interval=args.step,
        intervals=500,
        buckets=BUCKETS_S["opencensus"],
    )
    calibration = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "by": "benchmarks/canary_judge/calibrate.py",
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rate": args.rate,
        "duration_s": args.duration,
        "interval_s": args.step,
        "client": client,
        "knative": describe(scraped),
        "fit": fit.to_dict(),
        "model": describe(drawn),
    }
    CALIBRATION.write_text(json.dumps(calibration, indent=2) + "\n")
    print(json.dumps(calibration, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
