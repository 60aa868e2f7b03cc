"""A tiny HTTP test app that says which revision answered: ``python -m local_knative.echo``.

Every path answers JSON ``{"revision", "service", "path", "host"}`` with header ``X-Revision``;
``/healthz`` is the readiness path. Fault knobs in the environment let tests make a bad revision:
``ECHO_DELAY_MS`` (added latency per request), ``ECHO_FAIL_AT_START`` (exit 1 right away) and
``ECHO_STARTUP_DELAY_S`` (sleep before listening, so readiness comes late).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from aiohttp import web


def _env_float(name: str) -> float:
    raw = os.environ.get(name, "0") or "0"
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"echo: {name}={raw!r} is not a number; set it to a number or unset it") from None


def build_app() -> web.Application:
    """Build the echo application from the environment."""
    revision = os.environ.get("K_REVISION", "")
    service = os.environ.get("K_SERVICE", "")
    delay = _env_float("ECHO_DELAY_MS") / 1000.0
    revision_header = {"X-Revision": revision}

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=revision_header)

    async def echo(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        body = {"revision": revision, "service": service, "path": request.path_qs, "host": request.host}
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/json", headers=revision_header
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def main() -> None:
    """Run the echo app on ``$PORT`` (default 8080)."""
    if os.environ.get("ECHO_FAIL_AT_START"):
        print("echo: failing at start because ECHO_FAIL_AT_START is set", flush=True)
        sys.exit(1)
    startup_delay = _env_float("ECHO_STARTUP_DELAY_S")
    if startup_delay:
        print(f"echo: sleeping {startup_delay}s before listening (ECHO_STARTUP_DELAY_S)", flush=True)
        time.sleep(startup_delay)
    port = int(os.environ.get("PORT", "8080"))
    print(f"echo: revision {os.environ.get('K_REVISION', '')!r} listening on 127.0.0.1:{port}", flush=True)
    web.run_app(build_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
