"""Locust user for the load generator benchmark: FastHttpUser GETs ``/``, flat out or at a per-user rate.

``LOADGEN_USER_RATE`` (requests per second per user; 0 or unset = no wait) sets the pace, so N users at
rate R/N offer R requests per second in total, the way Locust users are meant to be paced.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, constant_throughput, task

USER_RATE = float(os.environ.get("LOADGEN_USER_RATE", "0") or 0)


class GetRoot(FastHttpUser):
    """Send GET / in a loop."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE else constant(0)

    @task
    def get_root(self) -> None:
        """Send one request."""
        self.client.get("/")
