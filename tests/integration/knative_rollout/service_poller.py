"""Read a Knative Service over and over while a rollout runs (shared by the chaos and concurrency tests).

What the invariants read afterwards (``rollout_invariants``) shows only the end; some must hold at every
moment of the run (no traffic on a revision that is not the stable or the owner's candidate) or need what
happened on the way (every revision that served, to check none of them was deleted).
"""

from __future__ import annotations

import threading
from typing import Any, Self


class ServicePoller:
    """Read a Service every ``interval`` seconds in a thread and pass each read to :meth:`seen`.

    Reads go through the product's hook, so through the API server's injected faults: a failed read is
    skipped (the next one will do), and a missing Service is no read.
    """

    def __init__(self, namespace: str, service: str, interval: float) -> None:
        self.namespace = namespace
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def seen(self, service: dict[str, Any]) -> None:
        """Record what one read of the Service shows."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        from knative_rollout.hooks import KnativeServingHook

        hook = KnativeServingHook()
        while not self._stop.wait(self.interval):
            try:
                service = hook.find_service(self.service, self.namespace)
            except Exception:  # an injected fault
                continue
            if service is not None:
                self.seen(service)
