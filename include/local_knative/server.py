"""Compose and run local_knative: store, API server, Knative controller, revision runtime and ingress.

Bad input (flags, image catalog, busy ports, an unusable data directory) is found before anything is
written, and :func:`run` reports it as :class:`ServeError`, which the CLI prints as one line (exit code 2).
Start order: Store -> API app -> controller -> runtime -> ingress -> ``kubeconfig`` and
``endpoints.json`` (written last, atomically, so a reader that sees ``endpoints.json`` can connect).
SIGTERM / SIGINT stop everything in the reverse order and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import json
import logging
import math
import os
import re
import signal
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from local_knative import admission, tls
from local_knative.apiserver import build_api_app
from local_knative.auth import Access, TokenFileError, read_token_file, secret_file
from local_knative.controller import KnativeController
from local_knative.faults.admin import ADMIN_TOKEN_FILE, AdminHooks
from local_knative.faults.rules import FaultInjector, FaultSpecError
from local_knative.images import CatalogError, ImageCatalog
from local_knative.ingress import Ingress
from local_knative.rbac import User
from local_knative.runtime import RevisionRuntime, ScalingConfig
from local_knative.store import Store

log = logging.getLogger(__name__)

CONTEXT_NAME = "local-knative"
STATIC_TOKEN = (
    "local-knative-token"  # without --auth any bearer token is accepted; this one fills the kubeconfig
)
SHUTDOWN_TIMEOUT = 2.0


# A DNS-1123 label; a domain is one or more of them joined by dots (Knative builds {name}.{ns}.{domain}).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DOMAIN_MAX_LENGTH = 253


class ServeError(Exception):
    """Bad input to ``serve``; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class ServeOptions:
    """Checked ``serve`` input: an existing writable data directory, a loaded catalog, claimed ports."""

    data_dir: Path
    catalog: ImageCatalog
    scaling: ScalingConfig
    api_socket: socket.socket
    ingress_socket: socket.socket
    domain: str
    bookmark_interval: float
    faults: FaultInjector | None = None
    auth: bool = False
    users: dict[str, User] | None = None


def port_number(text: str) -> int:
    """Parse a ``--*-port`` flag: 0 (a free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; pass 0-65535 (0 = a free one)")
    return port


def positive_seconds(text: str) -> float:
    """Parse a duration flag: a finite number of seconds greater than 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; pass a number of seconds above 0")
    return seconds


def domain_name(text: str) -> str:
    """Parse ``--domain``: a lowercase DNS name such as ``example.com``."""
    if len(text) > _DOMAIN_MAX_LENGTH or not all(_DNS_LABEL.fullmatch(label) for label in text.split(".")):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a DNS domain; pass lowercase labels of letters, digits and '-' "
            "joined by dots, e.g. example.com"
        )
    return text


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` flags, including the runtime's scaling flags, to ``parser``."""
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="state, logs, kubeconfig, endpoints.json"
    )
    parser.add_argument("--images", type=Path, default=None, help="image catalog (default: the bundled one)")
    parser.add_argument(
        "--api-port", type=port_number, default=0, help="API server port on 127.0.0.1 (0 = a free one)"
    )
    parser.add_argument(
        "--ingress-port", type=port_number, default=0, help="ingress port on 127.0.0.1 (0 = a free one)"
    )
    parser.add_argument(
        "--domain",
        type=domain_name,
        default="example.com",
        help="domain of Knative URLs (default example.com)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=positive_seconds,
        default=5.0,
        help="seconds between watch BOOKMARK events (default 5)",
    )
    parser.add_argument(
        "--fault-injection",
        action="store_true",
        help="serve the admin endpoint /admin/faults (behind DATA_DIR/admin-token) to script faults",
    )
    parser.add_argument(
        "--faults",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML/JSON fault rules ({seed, rules: [...]}) active from the start; implies --fault-injection",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="check a bearer token and RBAC on every API request (the kubeconfig gets an admin token)",
    )
    parser.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help='static user tokens, one "token,user,uid,"group1,group2"" per line; implies --auth',
    )
    ScalingConfig.add_cli_arguments(parser)


def _users(args: argparse.Namespace) -> dict[str, User] | None:
    path: Path | None = getattr(args, "token_auth_file", None)
    if path is None:
        return None
    try:
        return read_token_file(path)
    except OSError as error:
        raise ServeError(
            f"--token-auth-file {path} cannot be read ({error.strerror}); pass a readable file"
        ) from error
    except (TokenFileError, csv.Error) as error:
        raise ServeError(f"--token-auth-file {path}: {error}") from error


def _faults(args: argparse.Namespace) -> FaultInjector | None:
    path: Path | None = getattr(args, "faults", None)
    if path is None:
        return FaultInjector() if getattr(args, "fault_injection", False) else None
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ServeError(
            f"--faults {path} cannot be read ({error.strerror}); pass a readable file"
        ) from error
    except yaml.YAMLError as error:
        raise ServeError(f"--faults {path} is not valid YAML: {error}") from error
    injector = FaultInjector()
    try:
        injector.replace(document if document is not None else {})
    except FaultSpecError as error:
        raise ServeError(f"--faults {path}: {error}") from error
    return injector


def _admin_token(data_dir: Path) -> str:
    """Return the fault admin token kept in the data directory (made once, readable by this user only)."""
    return secret_file(data_dir / ADMIN_TOKEN_FILE)


def _scaling(args: argparse.Namespace) -> ScalingConfig:
    try:
        scaling = ScalingConfig.from_cli(args)
    except ValueError as error:
        raise ServeError(str(error)) from error
    # from_cli checks the sign only; NaN and infinity pass that check but would stall the autoscaler.
    for name, value in vars(scaling).items():
        if not math.isfinite(value):
            raise ServeError(f"--{name.replace('_', '-')} must be a finite number of seconds, got {value}")
    return scaling


def _listen(flag: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        # Listening now (not when the site starts) claims the port, so a busy one is bad input found
        # before anything is written.
        sock.listen()
    except OSError as error:
        sock.close()
        raise ServeError(
            f"{flag} {port}: cannot listen on 127.0.0.1:{port} ({error.strerror}); "
            f"stop what uses it or pass another port (0 = a free one)"
        ) from error
    return sock


def _usable_data_dir(path: Path) -> Path:
    data_dir = path.resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ServeError(
            f"--data-dir {data_dir} is not a directory; pass a directory path (it is created if missing)"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # A real write is the only check that holds for root and for read-only file systems alike;
        # the probe file has no name on disk after it is closed.
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as error:
        raise ServeError(
            f"--data-dir {data_dir} is not a writable directory ({error.strerror}); pass one you can write to"
        ) from error
    return data_dir


def prepare(args: argparse.Namespace) -> ServeOptions:
    """Check the parsed ``serve`` flags, load the catalog and claim the ports.

    Everything that cannot change the disk is checked first; the data directory is created last.

    :param args: flags parsed by a parser set up with :func:`add_serve_arguments`.
    :raises ServeError: on bad input, with what was wrong and what to do.
    """
    scaling = _scaling(args)
    faults = _faults(args)
    users = _users(args)
    try:
        catalog = ImageCatalog.load(args.images)
    except CatalogError as error:
        raise ServeError(f"--images: {error}") from error
    if args.api_port and args.api_port == args.ingress_port:
        raise ServeError(f"--api-port and --ingress-port are both {args.api_port}; pass two different ports")
    with contextlib.ExitStack() as on_error:
        api_socket = on_error.enter_context(_listen("--api-port", args.api_port))
        ingress_socket = on_error.enter_context(_listen("--ingress-port", args.ingress_port))
        options = ServeOptions(
            data_dir=_usable_data_dir(args.data_dir),
            catalog=catalog,
            scaling=scaling,
            api_socket=api_socket,
            ingress_socket=ingress_socket,
            domain=args.domain,
            bookmark_interval=args.bookmark_interval,
            faults=faults,
            auth=bool(getattr(args, "auth", False)) or users is not None,
            users=users,
        )
        on_error.pop_all()
    return options


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def kubeconfig_text(api_url: str, token: str = STATIC_TOKEN, ca_path: Path | None = None) -> str:
    """Return a kubeconfig for ``api_url`` with context ``local-knative`` and namespace ``default``.

    :param token: the bearer token of its user (the admin token with ``--auth``).
    :param ca_path: the CA the server's certificate is signed by (HTTPS, with ``--auth``).
    """
    cluster: dict[str, str] = {"server": api_url}
    if ca_path is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
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


async def _start_site(
    app: web.Application, sock: socket.socket, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    return runner, sock.getsockname()[1]


async def serve(options: ServeOptions) -> None:
    """Run local_knative until SIGTERM or SIGINT.

    :param options: checked input from :func:`prepare`.
    """
    data_dir = options.data_dir
    endpoints_path = data_dir / "endpoints.json"
    endpoints_path.unlink(missing_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # Each component is stopped in reverse order, also when a later one fails to start (so that no pod
    # process outlives a failed start).
    async with contextlib.AsyncExitStack() as running:
        store = Store(data_dir / "state.db")
        running.callback(store.close)
        admin_hooks = AdminHooks()
        access = Access(store, data_dir, enforce=options.auth, users=options.users)
        api_app = build_api_app(
            store,
            admission=admission.admit,
            data_dir=data_dir,
            bookmark_interval=options.bookmark_interval,
            faults=options.faults,
            admin_token=_admin_token(data_dir) if options.faults is not None else None,
            admin_hooks=admin_hooks,
            access=access,
        )
        # kubectl sends tokens only over TLS: with --auth the API server speaks HTTPS.
        ssl_context = tls.server_context(data_dir) if options.auth else None
        api_runner, api_port = await _start_site(api_app, options.api_socket, ssl_context)
        running.push_async_callback(api_runner.cleanup)
        api_url = f"{'https' if options.auth else 'http'}://127.0.0.1:{api_port}"
        controller = KnativeController(store, domain=options.domain)
        await controller.start()
        running.push_async_callback(controller.stop)
        runtime = RevisionRuntime(
            store, catalog=options.catalog, data_dir=data_dir, scaling=options.scaling, faults=options.faults
        )
        await runtime.start()
        running.push_async_callback(runtime.stop)
        admin_hooks.kill_pods = runtime.kill_pods
        ingress = Ingress(store, runtime, domain=options.domain, faults=options.faults)
        ingress_runner, ingress_port = await _start_site(ingress.app(), options.ingress_socket)
        running.push_async_callback(ingress_runner.cleanup)
        ingress_url = f"http://127.0.0.1:{ingress_port}"

        kubeconfig_path = data_dir / "kubeconfig"
        _write_atomically(
            kubeconfig_path,
            kubeconfig_text(
                api_url,
                access.admin_token or STATIC_TOKEN,
                data_dir / tls.CA_FILE if options.auth else None,
            ),
        )
        endpoints: dict[str, Any] = {
            "api": api_url,
            "ingress": ingress_url,
            "metrics": f"{ingress_url}/metrics",
            "domain": options.domain,
            "kubeconfig": str(kubeconfig_path),
            "data_dir": str(data_dir),
            "pid": os.getpid(),
        }
        if options.auth:
            endpoints["auth"] = True
            endpoints["ca_file"] = str(data_dir / tls.CA_FILE)
        if options.faults is not None:
            endpoints["admin"] = f"{api_url}/admin"
            endpoints["admin_token_file"] = str(data_dir / ADMIN_TOKEN_FILE)
        _write_atomically(endpoints_path, json.dumps(endpoints, indent=2) + "\n")
        running.callback(endpoints_path.unlink, missing_ok=True)
        log.info("local_knative ready: API %s, ingress %s, data %s", api_url, ingress_url, data_dir)

        await stop.wait()
        log.info("stopping local_knative")
    log.info("local_knative stopped")


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` from parsed arguments; return the exit code.

    :raises ServeError: on bad input, before anything is written.
    """
    asyncio.run(serve(prepare(args)))
    return 0
