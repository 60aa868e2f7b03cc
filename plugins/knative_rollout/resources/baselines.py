"""The baseline of a canary analysis: the stable's spec deployed again, as young and as loaded as the canary.

Judging a canary against the stable compares a revision that started minutes ago with one that has
served for days (warm caches, filled connection pools, a tuned autoscaler). With
``KnativeCanaryRolloutOperator(baseline=True)`` the rollout deploys the stable revision's spec again as
a fresh revision, tagged ``baseline``, gives it the canary's weight, and the judge compares canary and
baseline: the same age and the same load, so a difference is the candidate's (Kayenta's
canary/baseline/production split; Flagger never did this, fluxcd/flagger #225).

How it is created, in a way real Knative accepts. A Revision is only ever made by its Service's
Configuration, from the template; so the template is set to the stable Revision's spec (its container
images pinned to the digests the stable runs, when Knative reports them) with two marker annotations,
under a BYO name of its own (:func:`baseline_template`: the name hashes that template, so the same
stable and rollout always give the same name and a resumed task finds it). Once that revision is
Ready the template is set back to the candidate's own spec and name: Knative reuses an existing
revision whose name the template gives when its spec is the same (``CheckNameAvailability`` in the
Configuration reconciler), so no revision is created and ``latestCreatedRevisionName`` is the candidate
again. Only then does the baseline get traffic. The template must not name the baseline when it is
deleted: Knative would create it again.

Weights (:func:`canary_split`): the baseline gets the canary's percent ``w`` while ``w <= 50``, the
stable keeps ``100 - 2w``. Above 50% there is not enough left: the baseline gets ``100 - w`` and the
stable 0% (still tagged ``stable``, still Ready, still the rollback target; under the KPA its pods may
scale to zero during a long step, so a rollback from there starts cold unless the Service sets
``min-scale``). At 100% the step checks the SLO only and the baseline gets nothing.

It is recorded in the rollout record (``baseline-revision``), never as stable, previous or candidate:
promotion and rollback never pick it, and teardown only keeps it while something routes to it or the
template names it. When the rollout ends (promotion, rollback, undone bake, a stop for approval) it is
taken out of traffic first, then deleted, then forgotten in the record.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from knative_rollout.resources.manifests import revision_name
from knative_rollout.resources.state_annotations import ANNOTATION_PREFIX
from knative_rollout.resources.traffic import CANDIDATE_ALIAS, STABLE_ALIAS

BASELINE_OF_ANNOTATION = ANNOTATION_PREFIX + "baseline-of"
"""On a baseline's template: the stable revision whose spec it runs."""
BASELINE_ROLLOUT_ANNOTATION = ANNOTATION_PREFIX + "baseline-for"
"""On a baseline's template: the rollout it was made for (so each rollout gets a fresh one)."""

KNATIVE_LABEL_PREFIX = "serving.knative.dev/"
# What Knative's controllers write on a Revision; not part of what the user deployed.
KNATIVE_SET_ANNOTATIONS = frozenset(
    {
        "serving.knative.dev/creator",
        "serving.knative.dev/lastModifier",
        "serving.knative.dev/routes",
        "serving.knative.dev/routingStateModified",
        "serving.knative.dev/lastPinned",
    }
)


def baseline_percent(candidate_percent: int) -> int:
    """Return the baseline's percent beside a canary at ``candidate_percent``: as much, or what is left."""
    return max(0, min(candidate_percent, 100 - candidate_percent))


def canary_split(candidate_percent: int, baseline: str | None) -> dict[str, int]:
    """Return the traffic of a canary step: the stable, the candidate and, when given, the baseline.

    Keys are the aliases ``@stable``/``@candidate`` and the baseline's name; a baseline with no share
    (the 100% step) is left out, so it leaves the traffic.
    """
    share = baseline_percent(candidate_percent) if baseline else 0
    split = {STABLE_ALIAS: 100 - candidate_percent - share, CANDIDATE_ALIAS: candidate_percent}
    if baseline and share:
        split[baseline] = share
    return split


def baseline_template(service: str, stable: Mapping[str, Any], rollout_id: str) -> dict[str, Any]:
    """Return the Service template that deploys the ``stable`` Revision's spec again as a baseline.

    :param stable: the stable Revision object (its spec is copied; the images Knative resolved to
        digests, in ``status.containerStatuses``, replace their tags so the baseline runs the same bytes).
    :param rollout_id: mixed into the name, so every rollout judges against a revision of its own.
    """
    metadata = stable.get("metadata") or {}
    spec = copy.deepcopy(dict(stable.get("spec") or {}))
    digests = {
        str(status.get("name")): str(status["imageDigest"])
        for status in (stable.get("status") or {}).get("containerStatuses") or []
        if status.get("imageDigest")
    }
    for container in spec.get("containers") or []:
        if str(container.get("name")) in digests:
            container["image"] = digests[str(container.get("name"))]
    labels = {
        key: value
        for key, value in (metadata.get("labels") or {}).items()
        if not key.startswith(KNATIVE_LABEL_PREFIX)
    }
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in KNATIVE_SET_ANNOTATIONS and not key.startswith(ANNOTATION_PREFIX)
    }
    annotations[BASELINE_OF_ANNOTATION] = str(metadata.get("name"))
    annotations[BASELINE_ROLLOUT_ANNOTATION] = rollout_id
    template: dict[str, Any] = {
        "metadata": {"labels": labels, "annotations": dict(sorted(annotations.items()))},
        "spec": spec,
    }
    template["metadata"]["name"] = revision_name(service, template)
    return template
