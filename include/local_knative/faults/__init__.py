"""Seeded, scriptable fault injection: API errors, latency, dropped connections and watches, ingress errors
and delay per revision, and killed pod processes. Off unless ``serve`` gets ``--fault-injection`` or
``--faults FILE``; scripted through ``/admin/faults`` behind the admin token (``DATA_DIR/admin-token``), the
``python -m local_knative faults`` CLI, or :class:`local_knative.faults.client.FaultClient` from Python.
"""
