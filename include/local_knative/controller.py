"""Reconcile Knative Services into Configurations, Routes and Revisions inside the local store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local_knative.store import Store


class KnativeController:
    """Run Knative Serving's controllers against the store (work in progress)."""

    def __init__(self, store: Store, *, domain: str) -> None:
        self.store = store
        self.domain = domain

    async def start(self) -> None:
        """Subscribe to the store and reconcile every existing object once."""

    async def stop(self) -> None:
        """Stop reconciling."""
