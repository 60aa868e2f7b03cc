"""Route requests by Host header to revision pods (skeleton; being filled in by H3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from local_knative.runtime import RevisionRuntime
    from local_knative.store import Store


class Ingress:
    """Knative-like ingress: Host routing, traffic split, tags, activator, metrics."""

    def __init__(self, store: Store, runtime: RevisionRuntime, *, domain: str) -> None:
        self.store = store
        self.runtime = runtime
        self.domain = domain

    def app(self) -> web.Application:
        """Return the aiohttp application served on the ingress port."""
        application = web.Application()
        return application
