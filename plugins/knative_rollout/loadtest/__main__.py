"""Run the load test command line (see :mod:`knative_rollout.loadtest.cli`)."""

from __future__ import annotations

import sys

from knative_rollout.loadtest.cli import main

sys.exit(main())
