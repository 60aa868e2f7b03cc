"""Logs where the failure is: a failed candidate's conditions and last pod log lines in the task log.

The reading is :meth:`~knative_rollout.hooks.KnativeServingHook.revision_diagnostics`; which revision
and how it reads are pure (:mod:`knative_rollout.resources.diagnostics`). This module is the Airflow
side: the secrets masker, and the lines a rollout's ``outcome`` task logs when it was not promoted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from knative_rollout.exceptions import error_text
from knative_rollout.resources.diagnostics import RevisionDiagnostics, failed_candidate

if TYPE_CHECKING:
    from knative_rollout.hooks import KnativeServingHook

T = TypeVar("T")


REDACT_DEPTH = 12
"""How deep a page's data is walked for secrets (Airflow's default of 5 stops short of a log line)."""


def secrets_redactor(revisions: Iterable[Mapping[str, Any] | None]) -> Callable[[T], T]:
    """Return a function that masks every secret Airflow knows in a text or a nested structure.

    The values of the revisions' env vars whose names Airflow deems sensitive (``*_PASSWORD``,
    ``*_TOKEN``, ``*SECRET*``, ...) are masked from here on, as a Variable of such a name is when read.
    Both of Airflow's maskers apply: the task SDK's (task processes) and the core one (the API server,
    where the Rollouts page runs).
    """
    from airflow._shared.secrets_masker import mask_secret as core_mask_secret
    from airflow._shared.secrets_masker import redact as core_redact
    from airflow.sdk.log import mask_secret, redact

    for revision in revisions:
        containers = ((revision or {}).get("spec") or {}).get("containers") or [{}]
        for item in containers[0].get("env") or []:
            if item.get("value"):
                mask_secret(str(item["value"]), str(item.get("name")))
                core_mask_secret(str(item["value"]), str(item.get("name")))

    def masked(value: T) -> T:
        return core_redact(redact(value, max_depth=REDACT_DEPTH), max_depth=REDACT_DEPTH)  # type: ignore[return-value]

    return masked


def candidate_diagnostics(
    hook: KnativeServingHook, service_name: str, namespace: str, rollout_id: str | None = None
) -> RevisionDiagnostics | None:
    """Return the diagnostics of the candidate the Service records as failed (see ``failed_candidate``).

    ``None`` when the Service records no such candidate. Never raises: a Service that cannot be read is
    one line in ``errors``.
    """
    try:
        service = hook.find_service(service_name, namespace)
    except Exception as error:
        failure = f"reading Service {namespace}/{service_name} failed: {error_text(error)}"
        return RevisionDiagnostics("?", namespace, errors=(failure,))
    revision = failed_candidate(service or {}, rollout_id)
    return hook.revision_diagnostics(revision, namespace) if revision else None


def log_candidate_diagnostics(
    hook: KnativeServingHook,
    service_name: str,
    namespace: str,
    rollout_id: str | None,
    log: logging.Logger | Any,
) -> RevisionDiagnostics | None:
    """Log the not-promoted candidate's conditions and last pod log lines (what ``outcome`` calls).

    :param rollout_id: the rollout whose candidate it is; another rollout's record is not looked at.
    :param log: where to write, e.g. the task's ``self.log``.
    """
    diagnostics = candidate_diagnostics(hook, service_name, namespace, rollout_id)
    if diagnostics is None:
        log.info("Service %s/%s records no failed candidate of this rollout", namespace, service_name)
        return None
    for line in diagnostics.text():
        log.warning("%s", line)
    return diagnostics
