"""Tests of knative-rollout; a package so that ``tests.conftest`` imports as one module, not two."""
