"""Traffic: splits that always name revisions, tags, aliases, and checks before a split is applied.

The stable revision carries the tag ``stable`` and the candidate a configurable tag (``candidate``), so
both have their own URL: ``http://{tag}-{service}.{ns}.{domain}``; a canary analysis' fresh baseline
(:mod:`~knative_rollout.resources.baselines`) carries ``baseline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from knative_rollout.policy import RolloutState
from knative_rollout.resources.revisions import RevisionInfo
from knative_rollout.resources.validation import (
    RolloutInputError,
    check_dns1035,
    check_percent,
    check_revision_name,
)

STABLE_TAG = "stable"
BASELINE_TAG = "baseline"
DEFAULT_CANDIDATE_TAG = "candidate"
STABLE_ALIAS = "@stable"
CANDIDATE_ALIAS = "@candidate"
LATEST_ALIAS = "@latest"
ALIASES = (STABLE_ALIAS, CANDIDATE_ALIAS, LATEST_ALIAS)

TrafficKey = tuple[str, int, str | None]


def render_traffic(split: Mapping[str, int], tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return ``spec.traffic`` naming every revision explicitly; revisions at 0% appear only when tagged."""
    targets = []
    for revision, percent in split.items():
        if percent == 0 and revision not in tags:
            continue
        target: dict[str, Any] = {"revisionName": revision, "percent": percent, "latestRevision": False}
        if revision in tags:
            target["tag"] = tags[revision]
        targets.append(target)
    for revision, tag in tags.items():
        if revision not in split:
            targets.append({"revisionName": revision, "percent": 0, "latestRevision": False, "tag": tag})
    return sorted(targets, key=lambda target: (-int(target["percent"]), str(target["revisionName"])))


def traffic_keys(targets: Iterable[Mapping[str, Any]]) -> frozenset[TrafficKey]:
    """Return comparable (revision, percent, tag) triples of a traffic list (spec or status)."""
    return frozenset(
        (str(target.get("revisionName", "")), int(target.get("percent") or 0), target.get("tag") or None)
        for target in targets
    )


def split_of(targets: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Return percent per revision of a traffic list (a revision may appear in several targets)."""
    split: dict[str, int] = {}
    for target in targets:
        name = str(target.get("revisionName", ""))
        split[name] = split.get(name, 0) + int(target.get("percent") or 0)
    return split


def pinned_traffic(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the Service's current traffic with every target naming its revision.

    Knative routes ``latestRevision: true`` targets to whatever revision the template creates next,
    so before changing the template those targets are pinned to the revision they serve now.

    :raises RolloutInputError: when a latest-revision target has not been resolved by Knative yet.
    """
    spec_traffic = list(service.get("spec", {}).get("traffic") or [])
    status_traffic = list(service.get("status", {}).get("traffic") or [])
    resolved = {
        target.get("tag"): target.get("revisionName")
        for target in status_traffic
        if target.get("latestRevision")
    }
    pinned = []
    for target in spec_traffic:
        if target.get("revisionName"):
            pinned.append({**target, "latestRevision": False})
            continue
        revision = resolved.get(target.get("tag")) or service.get("status", {}).get("latestReadyRevisionName")
        if not revision:
            raise RolloutInputError(
                f"service {service.get('metadata', {}).get('name')!r} routes traffic to its latest revision, "
                "which "
                "is not Ready yet; wait until the service is Ready, then retry"
            )
        pinned.append(
            {key: value for key, value in target.items() if key != "configurationName"}
            | {"revisionName": revision, "latestRevision": False}
        )
    return pinned


def resolve_revision(reference: str, state: RolloutState, latest: str | None) -> str:
    """Return the revision an alias (``@stable``, ``@candidate``, ``@latest``) or a name refers to."""
    if reference.startswith("@"):
        resolved = {STABLE_ALIAS: state.stable, CANDIDATE_ALIAS: state.candidate, LATEST_ALIAS: latest}
        if reference not in resolved:
            raise RolloutInputError(
                f"unknown traffic alias {reference!r}; use one of {list(ALIASES)} or a name"
            )
        target = resolved[reference]
        if not target:
            raise RolloutInputError(
                f"traffic alias {reference} does not resolve: the service has no {reference[1:]} "
                "revision yet; "
                "deploy one first or name a revision"
            )
        return target
    return check_revision_name(reference)


def resolve_traffic(
    requested: object,
    *,
    state: RolloutState,
    revisions: Mapping[str, RevisionInfo],
    latest: str | None,
) -> dict[str, int]:
    """Return the requested traffic as percent per revision name, after checking it can be applied.

    :param requested: mapping of revision names or aliases to integer percents.
    :param revisions: the Service's existing revisions by name.
    :param latest: name of the latest created revision, for ``@latest``.
    :raises RolloutInputError: when percents do not sum to 100, a revision is unknown or not Ready, ...
    """
    if not isinstance(requested, Mapping) or not requested:
        raise RolloutInputError(
            "traffic must be a non-empty mapping of revision names or aliases to percents, "
            "e.g. {'@stable': 90, '@candidate': 10}"
        )
    split: dict[str, int] = {}
    for reference, percent in requested.items():
        if not isinstance(reference, str):
            raise RolloutInputError(f"traffic key {reference!r} must be a revision name or an alias")
        check_percent(percent, f"traffic percent for {reference!r}")
        name = resolve_revision(reference, state, latest)
        if name in split:
            raise RolloutInputError(
                f"traffic names revision {name!r} twice (as {reference!r} and another key); name it once"
            )
        split[name] = percent
    total = sum(split.values())
    if total != 100:
        raise RolloutInputError(f"traffic percents sum to {total}, want 100: {dict(requested)}")
    for name, percent in split.items():
        info = revisions.get(name)
        if info is None:
            raise RolloutInputError(
                f"revision {name!r} does not exist in this service; existing revisions: {sorted(revisions)}"
            )
        if percent > 0 and not info.ready:
            reason = f" ({info.reason})" if info.reason else ""
            raise RolloutInputError(
                f"revision {name!r} is not Ready{reason}; only Ready revisions can receive traffic. "
                "Wait for it or deploy a fixed revision"
            )
    return split


def traffic_tags(split: Mapping[str, int], state: RolloutState, candidate_tag: str) -> dict[str, str]:
    """Return the tags of a split: ``stable`` on the stable revision, the candidate tag on the candidate.

    A recorded baseline in the split is tagged ``baseline``.
    """
    tags: dict[str, str] = {}
    if state.stable:
        tags[state.stable] = STABLE_TAG
    if state.candidate and state.candidate != state.stable:
        tags[state.candidate] = candidate_tag
    if state.baseline and state.baseline not in tags:
        tags[state.baseline] = BASELINE_TAG
    return {revision: tag for revision, tag in tags.items() if revision in split or revision == state.stable}


def check_tag(tag: object) -> str:
    """Return a valid candidate tag (DNS-1035, not the stable tag)."""
    checked = check_dns1035(tag, "tag")
    if checked == STABLE_TAG:
        raise RolloutInputError(
            f"tag {STABLE_TAG!r} is reserved for the stable revision; use e.g. 'candidate'"
        )
    return checked


def tag_url(service_url: str, tag: str) -> str:
    """Return a tag's URL from the Service URL: ``http://{tag}-{service}.{ns}.{domain}``."""
    scheme, _, host = service_url.partition("://")
    return f"{scheme}://{tag}-{host}"


def describe_split(split: Mapping[str, int]) -> str:
    """Return a short human-readable split, e.g. ``iris-1a2b=90%, iris-3c4d=10%``."""
    return ", ".join(
        f"{name}={percent}%" for name, percent in sorted(split.items(), key=lambda item: -item[1])
    )
