"""Compose and run local_knative: store, API server, Knative controller, revision runtime and ingress.

Start order: Store -> API app -> controller -> runtime -> ingress -> ``kubeconfig`` and
``endpoints.json`` (written last, atomically, so a reader that sees ``endpoints.json`` can connect).
SIGTERM / SIGINT stop everything in the reverse order and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from local_knative.apiserver import build_api_app
from local_knative.store import Store

log = logging.getLogger(__name__)

CONTEXT_NAME = "local-knative"
STATIC_TOKEN = "local-knative-token"  # any bearer token is accepted; this one just fills the kubeconfig
SHUTDOWN_TIMEOUT = 2.0


@dataclass(frozen=True)
class ServeOptions:
    """What ``serve`` needs besides the scaling flags (see :func:`add_serve_arguments`)."""

    data_dir: Path
    images: Path | None
    api_port: int
    ingress_port: int
    domain: str
    bookmark_interval: float


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` flags, including the runtime's scaling flags, to ``parser``."""
    from local_knative.runtime import ScalingConfig

    parser.add_argument(
        "--data-dir", required=True, type=Path, help="state, logs, kubeconfig, endpoints.json"
    )
    parser.add_argument("--images", type=Path, default=None, help="image catalog (default: the bundled one)")
    parser.add_argument(
        "--api-port", type=int, default=0, help="API server port on 127.0.0.1 (0 = a free one)"
    )
    parser.add_argument(
        "--ingress-port", type=int, default=0, help="ingress port on 127.0.0.1 (0 = a free one)"
    )
    parser.add_argument(
        "--domain", default="example.com", help="domain of Knative URLs (default example.com)"
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=5.0,
        help="seconds between watch BOOKMARK events (default 5)",
    )
    ScalingConfig.add_cli_arguments(parser)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def kubeconfig_text(api_url: str) -> str:
    """Return a kubeconfig for ``api_url`` with context ``local-knative`` and namespace ``default``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": api_url}}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": STATIC_TOKEN}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text


async def _start_site(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    sock = _bind(port)
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]


async def serve(options: ServeOptions, args: argparse.Namespace) -> None:
    """Run local_knative until SIGTERM or SIGINT.

    :param options: paths, ports and domain.
    :param args: the parsed command line (the runtime reads its scaling flags from it).
    """
    from local_knative import admission
    from local_knative.controller import KnativeController
    from local_knative.images import ImageCatalog
    from local_knative.ingress import Ingress
    from local_knative.runtime import RevisionRuntime, ScalingConfig

    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    endpoints_path = data_dir / "endpoints.json"
    endpoints_path.unlink(missing_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    catalog = ImageCatalog.load(options.images)
    # Each component is stopped in reverse order, also when a later one fails to start (so that no pod
    # process outlives a failed start).
    async with contextlib.AsyncExitStack() as running:
        store = Store(data_dir / "state.db")
        running.callback(store.close)
        api_app = build_api_app(
            store, admission=admission.admit, data_dir=data_dir, bookmark_interval=options.bookmark_interval
        )
        api_runner, api_port = await _start_site(api_app, options.api_port)
        running.push_async_callback(api_runner.cleanup)
        api_url = f"http://127.0.0.1:{api_port}"
        controller = KnativeController(store, domain=options.domain)
        await controller.start()
        running.push_async_callback(controller.stop)
        runtime = RevisionRuntime(
            store, catalog=catalog, data_dir=data_dir, scaling=ScalingConfig.from_cli(args)
        )
        await runtime.start()
        running.push_async_callback(runtime.stop)
        ingress = Ingress(store, runtime, domain=options.domain)
        ingress_runner, ingress_port = await _start_site(ingress.app(), options.ingress_port)
        running.push_async_callback(ingress_runner.cleanup)
        ingress_url = f"http://127.0.0.1:{ingress_port}"

        kubeconfig_path = data_dir / "kubeconfig"
        _write_atomically(kubeconfig_path, kubeconfig_text(api_url))
        endpoints: dict[str, Any] = {
            "api": api_url,
            "ingress": ingress_url,
            "metrics": f"{ingress_url}/metrics",
            "domain": options.domain,
            "kubeconfig": str(kubeconfig_path),
            "data_dir": str(data_dir),
            "pid": os.getpid(),
        }
        _write_atomically(endpoints_path, json.dumps(endpoints, indent=2) + "\n")
        running.callback(endpoints_path.unlink, missing_ok=True)
        log.info("local_knative ready: API %s, ingress %s, data %s", api_url, ingress_url, data_dir)

        await stop.wait()
        log.info("stopping local_knative")
    log.info("local_knative stopped")


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` from parsed arguments; return the exit code."""
    options = ServeOptions(
        data_dir=args.data_dir,
        images=args.images,
        api_port=args.api_port,
        ingress_port=args.ingress_port,
        domain=args.domain,
        bookmark_interval=args.bookmark_interval,
    )
    asyncio.run(serve(options, args))
    return 0
