"""Knative Serving's reconcilers, one module per kind; :mod:`local_knative.controller` runs them.

Each ``reconcile_*`` function reads the current state from the store, writes only what differs and
returns, so running it again on an unchanged world writes nothing: that is what lets the controller settle.
"""
