"""Benchmark the local_knative ingress against the same pod reached directly and through nginx.

Run: ``.venv/bin/python benchmarks/ingress.py`` (needs the Debian packages ``wrk`` and ``nginx-light``).

One run starts a real ``python -m local_knative serve``, deploys the echo app as a Knative Service pinned to
one pod (min-scale = max-scale = 1), starts nginx (one worker, keep-alive upstream) as a reverse proxy to that
same pod, and loads three paths with wrk, interleaved over several rounds so that a noisy neighbour hits all
paths alike:

* ``direct``: the pod's own port;
* ``ingress``: the local_knative ingress port with the service's Host header;
* ``nginx``: nginx in front of the pod.

Two load shapes per path: throughput (``--connections`` keep-alive connections, requests per second, p50/p99)
and latency (one connection, so p50 is the per-request cost, not queueing). The medians over the rounds,
the ratios (added p50 of the ingress over direct; ingress rps / nginx rps; each taken within a round, then
the median over rounds) and the verdict against the goals
(added p50 < 1 ms, at least half of nginx's rps on one core) go to ``benchmarks/results/ingress.json`` and
``ingress.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import parse_wrk, start_nginx

if TYPE_CHECKING:
    from collections.abc import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ECHO_IMAGE = "registry.example.com/knative-rollout/echo:bench"
SERVICE = "bench"
NAMESPACE = "default"
PATHS = ("direct", "ingress", "nginx")
GOAL_ADDED_P50_MS = 1.0
GOAL_RPS_RATIO = 0.5
HOT_PATH_NOTES = """## How the hot path is built

- The ingress is an aiohttp server (the contract: `Ingress.app()`), but it reaches pods through its own
  keep-alive HTTP/1.1 client (`UpstreamPool` in `include/local_knative/ingress.py`): aiohttp's client was
  the largest cost per request in the profile, and replacing it roughly doubled throughput.
- No timer per request (one sweep a second enforces `timeoutSeconds`), one metrics lookup per request,
  no extra coroutine on the path when a pod is free.
- What is left is mostly aiohttp's server side and the asyncio loop. Next steps, if a load test ever
  finds the ingress to be its bottleneck: run the server on uvloop, or serve the ingress port with a raw
  asyncio protocol instead of aiohttp (`server.py` would then serve something other than an aiohttp app).
- The pod, the ingress and nginx share the machine's cores (wrk has its own), so the ingress path pays
  for two Python processes per request where the nginx path pays for one.
"""

# The rest of nginx.conf (one worker, files in its work directory) is benchmarks/peers.py's.
NGINX_PROXY = """
  upstream pod {{ server 127.0.0.1:{pod_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://pod;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
"""


def _api(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        api + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start_local_knative(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a local_knative server and return it with its endpoints."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "local_knative", "serve", "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoints_path = data_dir / "endpoints.json"
    deadline = time.monotonic() + 60
    while not endpoints_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"local_knative did not start; see {data_dir / 'server.log'}")
        time.sleep(0.1)
    return process, json.loads(endpoints_path.read_text())


def deploy_echo(api: str) -> int:
    """Create the echo Service on one pod and return that pod's port once it is Ready."""
    annotations = {"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"}
    _api(
        api,
        "POST",
        f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": SERVICE},
            "spec": {
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {"containers": [{"image": ECHO_IMAGE}]},
                }
            },
        },
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = _api(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
        for pod in pods:
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return int(pod["metadata"]["annotations"]["local-knative.dev/port"])
        time.sleep(0.2)
    raise RuntimeError("the echo pod did not become Ready within 60 s")


def run_wrk(
    url: str, host: str | None, connections: int, duration: float, pin: list[str]
) -> dict[str, float]:
    """Run wrk once (one thread) and return its numbers."""
    command = [*pin, shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if host:
        command += ["-H", f"Host: {host}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def main() -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk run (default %(default)s)"
    )
    parser.add_argument("--connections", type=int, default=50, help="connections of the throughput runs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    missing = [name for name in ("wrk", "nginx") if shutil.which(name) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install -y wrk nginx-light", file=sys.stderr)
        return 2
    # wrk gets the last CPU to itself when there are several, so the client does not steal from the proxy.
    cpus = os.cpu_count() or 1
    pin = ["taskset", "-c", str(cpus - 1)] if cpus > 1 and shutil.which("taskset") else []

    work = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    server, endpoints = start_local_knative(work / "local-knative")
    (work / "nginx").mkdir()
    nginx: subprocess.Popen[bytes] | None = None
    try:
        pod_port = deploy_echo(endpoints["api"])
        nginx, nginx_port = start_nginx(work / "nginx", NGINX_PROXY, pod_port=pod_port)
        host = f"{SERVICE}.{NAMESPACE}.{endpoints['domain']}"
        targets = {
            "direct": (f"http://127.0.0.1:{pod_port}/", None),
            "ingress": (endpoints["ingress"] + "/", host),
            "nginx": (f"http://127.0.0.1:{nginx_port}/", host),
        }
        for url, target_host in targets.values():  # warm up connections and code paths
            run_wrk(url, target_host, args.connections, 1, pin)
        load_before = os.getloadavg()
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            path: {"throughput": [], "latency": []} for path in PATHS
        }
        for round_number in range(args.rounds):
            for path in PATHS:
                url, target_host = targets[path]
                runs[path]["throughput"].append(
                    run_wrk(url, target_host, args.connections, args.duration, pin)
                )
                runs[path]["latency"].append(run_wrk(url, target_host, 1, args.duration, pin))
                print(f"round {round_number + 1} {path}: {runs[path]['throughput'][-1]}", flush=True)
        load_after = os.getloadavg()
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(10)
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    def median(path: str, shape: str, key: str) -> float:
        return round(statistics.median(run[key] for run in runs[path][shape]), 3)

    summary = {
        path: {
            "throughput": {
                key: median(path, "throughput", key) for key in ("rps", "p50_ms", "p99_ms", "non_2xx")
            },
            "latency_1_connection": {
                key: median(path, "latency", key) for key in ("rps", "p50_ms", "p99_ms")
            },
        }
        for path in PATHS
    }

    def per_round(
        path: str, other: str, shape: str, key: str, combine: Callable[[float, float], float]
    ) -> list[float]:
        # Ratios are taken within a round, whose paths ran back to back, then the median over rounds:
        # a neighbour's burst then skews one round instead of one column.
        pairs = zip(runs[path][shape], runs[other][shape], strict=True)
        return [round(combine(ours[key], theirs[key]), 3) for ours, theirs in pairs]

    def minus(a: float, b: float) -> float:
        return a - b

    def over(a: float, b: float) -> float:
        return a / b

    added_p50s = per_round("ingress", "direct", "latency", "p50_ms", minus)
    nginx_added_p50s = per_round("nginx", "direct", "latency", "p50_ms", minus)
    rps_ratios = per_round("ingress", "nginx", "throughput", "rps", over)
    direct_ratios = per_round("ingress", "direct", "throughput", "rps", over)
    added_p50 = round(statistics.median(added_p50s), 3)
    rps_ratio = round(statistics.median(rps_ratios), 3)
    result = {
        "benchmark": "ingress",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "duration_s": args.duration,
            "connections": args.connections,
            "rounds": args.rounds,
            "wrk_pinned_to_cpu": pin[-1] if pin else None,
            "backend": "local_knative.echo (aiohttp), one pod",
        },
        "environment": {
            "cpus": cpus,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "python": platform.python_version(),
            "aiohttp": version("aiohttp"),
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True)
            .stdout.split("\n")[0]
            .strip(),
        },
        "paths": summary,
        "runs": runs,
        "ratios": {
            "ingress_added_p50_ms": added_p50,
            "nginx_added_p50_ms": round(statistics.median(nginx_added_p50s), 3),
            "ingress_rps_over_nginx_rps": rps_ratio,
            "ingress_rps_over_direct_rps": round(statistics.median(direct_ratios), 3),
            "per_round": {
                "ingress_added_p50_ms": added_p50s,
                "ingress_rps_over_nginx_rps": rps_ratios,
                "ingress_rps_over_direct_rps": direct_ratios,
            },
        },
        "goals": {
            "added_p50_under_1ms": added_p50 < GOAL_ADDED_P50_MS,
            "at_least_half_of_nginx_rps": rps_ratio >= GOAL_RPS_RATIO,
        },
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "ingress.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "ingress.md").write_text(render_markdown(result))
    print(render_markdown(result))
    return 0


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def render_markdown(result: dict[str, Any]) -> str:
    """Render the results as a short Markdown report."""
    settings, env, ratios, goals = (
        result["settings"],
        result["environment"],
        result["ratios"],
        result["goals"],
    )
    lines = [
        "# Ingress benchmark",
        "",
        f"Run {result['date']} by `benchmarks/ingress.py` ({settings['rounds']} interleaved rounds of "
        f"{settings['duration_s']:g} s per run, medians). Backend: {settings['backend']}. "
        f"{env['cpus']} CPUs, wrk pinned to CPU {settings['wrk_pinned_to_cpu']}; load average "
        f"{env['load_average_before'][0]} before, {env['load_average_after'][0]} after (the machine is "
        "shared, so absolute numbers are noisy; paths were interleaved so they share the noise).",
        "",
        f"| path | rps ({settings['connections']} conn) | p50 ms | p99 ms "
        "| p50 ms (1 conn) | p99 ms (1 conn) |",
        "|---|---|---|---|---|---|",
    ]
    for path, numbers in result["paths"].items():
        t, lat = numbers["throughput"], numbers["latency_1_connection"]
        lines.append(
            f"| {path} | {t['rps']:.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} "
            f"| {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} |"
        )
    lines += [
        "",
        "## Where we stand",
        "",
        "- Added p50 latency of the ingress over direct, one connection: "
        f"{ratios['ingress_added_p50_ms']:.3f} ms (nginx adds {ratios['nginx_added_p50_ms']:.3f} ms). "
        f"Goal < 1 ms: {_verdict(goals['added_p50_under_1ms'])}.",
        f"- Ingress rps / nginx rps: {ratios['ingress_rps_over_nginx_rps']:.2f} "
        f"(ingress / direct: {ratios['ingress_rps_over_direct_rps']:.2f}; per round "
        f"{ratios['per_round']['ingress_rps_over_nginx_rps']}). Goal >= 0.5 on one core: "
        f"{_verdict(goals['at_least_half_of_nginx_rps'])}.",
        "",
        HOT_PATH_NOTES,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
