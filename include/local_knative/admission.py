"""Apply Knative Serving's defaulting and validation webhooks to objects before they are stored.

Knative runs two admission webhooks: the defaulting one fills in what a user may leave out, then the
validating one rejects what its controllers could not act on. ``admit`` runs both, in that order, on
Services, Configurations, Routes and Revisions. Errors are collected the way ``knative.dev/pkg/apis``
``FieldError`` does (every problem, with its field path, merged and sorted) so clients see the same
text a real cluster answers, e.g. ``Traffic targets sum to 90, want 100: spec.traffic``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local_knative import errors, kinds

if TYPE_CHECKING:
    from local_knative.kinds import Kind

USER_CONTAINER_NAME = "user-container"
DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 600
MAX_CONTAINER_CONCURRENCY = 1000

_DNS1035_PATTERN = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(rf"^{_DNS1035_PATTERN}$")
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    f"validation is '{_DNS1035_PATTERN}')"
)
_DNS1035_MAX_LENGTH = 63


@dataclass
class FieldErrors:
    """Collect validation problems as (message, path, details) and render them as Knative does."""

    items: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, message: str, *paths: str, details: str = "") -> None:
        """Record one problem found at each of ``paths`` (full dotted paths, e.g. ``spec.traffic[0]``)."""
        for path in paths:
            self.items.append((message, path, details))

    def __bool__(self) -> bool:
        return bool(self.items)

    def render(self) -> str:
        """Merge problems with the same message, sort paths and messages, one problem per line."""
        merged: dict[tuple[str, str], list[str]] = {}
        for message, path, details in self.items:
            paths = merged.setdefault((message, details), [])
            if path not in paths:
                paths.append(path)
        lines = []
        for (message, details), paths in sorted(merged.items()):
            line = f"{message}: {', '.join(sorted(paths))}"
            lines.append(f"{line}\n{details}" if details else line)
        return "\n".join(lines)


def admit(kind: Kind, operation: str, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Default and validate ``obj`` as Knative's webhooks do; return the defaulted copy.

    :param kind: the kind of ``obj``; kinds other than Knative Serving's are returned unchanged.
    :param operation: ``"CREATE"`` or ``"UPDATE"``.
    :param obj: the object the client sent (not modified).
    :param old: the stored object for an UPDATE, else None.
    :raises local_knative.errors.ApiError: 400 with Knative's validation message when ``obj`` is invalid.
    """
    if kind not in (kinds.KSVC, kinds.CONFIGURATION, kinds.ROUTE, kinds.REVISION):
        return obj
    if operation not in ("CREATE", "UPDATE"):
        raise ValueError(f"operation must be CREATE or UPDATE, got {operation!r}")
    admitted = copy.deepcopy(obj)
    set_defaults(kind, admitted)
    problems = validate(kind, admitted, old if operation == "UPDATE" else None)
    if problems:
        raise errors.webhook_denied(problems.render())
    return admitted


# --- defaulting -------------------------------------------------------------------------------------


def set_defaults(kind: Kind, obj: dict[str, Any]) -> None:
    """Fill in, in place, the fields Knative's defaulting webhook fills in."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind in (kinds.KSVC, kinds.CONFIGURATION):
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            default_revision_spec(template["spec"])
    if kind == kinds.REVISION:
        default_revision_spec(spec)
    if kind == kinds.KSVC and not spec.get("traffic"):
        spec["traffic"] = [{"latestRevision": True, "percent": 100}]
    if kind in (kinds.KSVC, kinds.ROUTE):
        for target in spec.get("traffic") or []:
            if isinstance(target, dict) and target.get("latestRevision") is None:
                target["latestRevision"] = not target.get("revisionName")


def default_revision_spec(spec: dict[str, Any]) -> None:
    """Default a RevisionSpec: timeout, concurrency, container names and the serving container's probe."""
    if not spec.get("timeoutSeconds"):
        spec["timeoutSeconds"] = DEFAULT_TIMEOUT_SECONDS
    if spec.get("containerConcurrency") is None:
        spec["containerConcurrency"] = 0
    containers = spec.get("containers")
    if not isinstance(containers, list):
        return
    several = len(containers) > 1
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        if not container.get("name"):
            container["name"] = f"{USER_CONTAINER_NAME}-{index}" if several else USER_CONTAINER_NAME
        container.setdefault("resources", {})
        # Knative only probes the serving container: the only one, or the one that declares a port.
        if not several or container.get("ports"):
            _default_readiness_probe(container)
        for mount in container.get("volumeMounts") or []:
            if isinstance(mount, dict):
                mount["readOnly"] = True


def _default_readiness_probe(container: dict[str, Any]) -> None:
    probe = container.get("readinessProbe")
    if not isinstance(probe, dict):
        probe = container["readinessProbe"] = {}
    if not any(handler in probe for handler in ("tcpSocket", "httpGet", "exec", "grpc")):
        probe["tcpSocket"] = {"port": 0}
    if not probe.get("successThreshold"):
        probe["successThreshold"] = 1


# --- validation -------------------------------------------------------------------------------------


def validate(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> FieldErrors:
    """Return every problem Knative's validating webhook reports for ``obj`` (``old`` set on UPDATE)."""
    problems = FieldErrors()
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    _validate_object_name(metadata, problems)
    if kind == kinds.REVISION:
        if old is not None:
            _validate_unchanged(
                old.get("spec") or {}, spec, "Immutable fields changed (-old +new)", "spec", problems
            )
        else:
            _validate_revision_spec(spec, "spec", problems)
        return problems
    if kind in (kinds.KSVC, kinds.CONFIGURATION):
        template = spec.get("template")
        if not isinstance(template, dict):
            problems.add("missing field(s)", "spec.template")
        else:
            _validate_template(template, metadata, problems)
            if old is not None:
                old_template = (old.get("spec") or {}).get("template") or {}
                _validate_name_change(template, old_template, problems)
    if kind in (kinds.KSVC, kinds.ROUTE):
        _validate_traffic(spec.get("traffic") or [], problems, in_service=kind == kinds.KSVC)
    return problems


def dns1035_problems(value: str) -> list[str]:
    """Return Kubernetes' reasons why ``value`` is not a DNS-1035 label (empty when it is one)."""
    reasons = []
    if len(value) > _DNS1035_MAX_LENGTH:
        reasons.append(f"must be no more than {_DNS1035_MAX_LENGTH} characters")
    if not _DNS1035_RE.match(value):
        reasons.append(_DNS1035_MESSAGE)
    return reasons


def _go_list(items: list[str]) -> str:
    """Render a list of strings the way Go's fmt.Sprint prints a []string."""
    return "[" + " ".join(items) + "]"


def _validate_object_name(metadata: dict[str, Any], problems: FieldErrors) -> None:
    name = metadata.get("name") or ""
    generate_name = metadata.get("generateName") or ""
    if generate_name:
        # A generateName prefix may end in "-": the generated suffix follows it (Kubernetes masks that dash).
        masked = generate_name[:-1] + "a" if generate_name.endswith("-") else generate_name
        reasons = dns1035_problems(masked)
        if reasons:
            problems.add(f"not a DNS 1035 label prefix: {_go_list(reasons)}", "metadata.generateName")
            return
    if name:
        reasons = dns1035_problems(name)
        if reasons:
            problems.add(f"not a DNS 1035 label: {_go_list(reasons)}", "metadata.name")
    elif not generate_name:
        problems.add("name or generateName is required", "metadata.name")


def _validate_template(
    template: dict[str, Any], parent_metadata: dict[str, Any], problems: FieldErrors
) -> None:
    template_spec = template.get("spec")
    if not isinstance(template_spec, dict):
        problems.add("missing field(s)", "spec.template.spec")
    else:
        _validate_revision_spec(template_spec, "spec.template.spec", problems)
    template_metadata = template.get("metadata") or {}
    name = template_metadata.get("name") or ""
    if not name:
        return
    reasons = dns1035_problems(name)
    if reasons:
        problems.add(
            f"invalid value: not a DNS 1035 label: {_go_list(reasons)}", "spec.template.metadata.name"
        )
        return
    parent_name = parent_metadata.get("name") or ""
    if not parent_name and parent_metadata.get("generateName"):
        problems.add("must not set the field(s)", "spec.template.metadata.name")
        return
    prefix = f"{parent_name}-"
    if not name.startswith(prefix):
        problems.add(
            f"invalid value: {json.dumps(name)} must have prefix {json.dumps(prefix)}",
            "spec.template.metadata.name",
        )


def _validate_revision_spec(spec: dict[str, Any], path: str, problems: FieldErrors) -> None:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.add("missing field(s)", f"{path}.containers")
    elif len(containers) == 1:
        _validate_container(containers[0], f"{path}.containers[0]", problems)
    else:
        serving = [
            index
            for index, container in enumerate(containers)
            if isinstance(container, dict) and container.get("ports")
        ]
        if not serving:
            problems.add("missing field(s)", f"{path}.containers.ports")
        elif len(serving) > 1 or any(len(containers[index]["ports"]) > 1 for index in serving):
            problems.add("expected exactly one, got both", f"{path}.containers.ports")
        for index, container in enumerate(containers):
            _validate_container(container, f"{path}.containers[{index}]", problems)

    timeout = spec.get("timeoutSeconds")
    if timeout is not None:
        if not _is_int(timeout):
            problems.add(f"invalid value: {timeout}", f"{path}.timeoutSeconds")
        elif timeout != 0 and not 0 <= timeout <= MAX_TIMEOUT_SECONDS:
            problems.add(f"expected 0 <= {timeout} <= {MAX_TIMEOUT_SECONDS}", f"{path}.timeoutSeconds")
    concurrency = spec.get("containerConcurrency")
    if concurrency is not None:
        if not _is_int(concurrency):
            problems.add(f"invalid value: {concurrency}", f"{path}.containerConcurrency")
        elif not 0 <= concurrency <= MAX_CONTAINER_CONCURRENCY:
            problems.add(
                f"expected 0 <= {concurrency} <= {MAX_CONTAINER_CONCURRENCY}", f"{path}.containerConcurrency"
            )


def _validate_container(container: Any, path: str, problems: FieldErrors) -> None:
    if not isinstance(container, dict) or not container:
        problems.add("missing field(s)", path)
        return
    if not container.get("image"):
        problems.add("missing field(s)", f"{path}.image")
    ports = container.get("ports") or []
    if len(ports) > 1:
        problems.add(
            "More than one container port is set", f"{path}.ports", details="Only a single port is allowed"
        )
    if ports and isinstance(ports[0], dict):
        port = ports[0].get("containerPort")
        if port is not None and (not _is_int(port) or not 0 <= port <= 65535):
            problems.add(f"expected 0 <= {port} <= 65535", f"{path}.ports.containerPort")


def _validate_traffic(traffic: Any, problems: FieldErrors, *, in_service: bool) -> None:
    if not isinstance(traffic, list):
        problems.add(f"invalid value: {traffic}", "spec.traffic")
        return
    total = 0
    first_index_of_tag: dict[str, int] = {}
    for index, target in enumerate(traffic):
        path = f"spec.traffic[{index}]"
        if not isinstance(target, dict):
            problems.add(f"invalid value: {target}", path)
            continue
        revision_name = target.get("revisionName") or ""
        configuration_name = target.get("configurationName") or ""
        latest = target.get("latestRevision")
        if latest is not None and bool(revision_name) == bool(latest):
            problems.add(
                f"may not set revisionName {json.dumps(revision_name)} when latestRevision is "
                f"{str(bool(latest)).lower()}",
                f"{path}.latestRevision",
            )
        if in_service and configuration_name:
            problems.add("must not set the field(s)", f"{path}.configurationName")
        elif revision_name and configuration_name:
            problems.add(
                "expected exactly one, got both", f"{path}.configurationName", f"{path}.revisionName"
            )
        elif not in_service and not revision_name and not configuration_name:
            problems.add(
                "expected exactly one, got neither", f"{path}.configurationName", f"{path}.revisionName"
            )
        percent = target.get("percent")
        if percent is not None:
            if not _is_int(percent):
                problems.add(f"invalid value: {percent}", f"{path}.percent")
            else:
                total += percent
                if not 0 <= percent <= 100:
                    problems.add(f"expected 0 <= {percent} <= 100", f"{path}.percent")
        if target.get("url"):
            problems.add("must not set the field(s)", f"{path}.url")
        tag = target.get("tag") or ""
        if not tag:
            continue
        reasons = dns1035_problems(tag)
        if reasons:
            problems.add(
                f"invalid value: not a DNS 1035 label: {_go_list(reasons)}", f"spec.traffic.tag[{index}]"
            )
        if tag in first_index_of_tag:
            problems.add(
                f"Multiple definitions for {json.dumps(tag)}",
                f"spec.traffic[{index}].tag",
                f"spec.traffic[{first_index_of_tag[tag]}].tag",
            )
        else:
            first_index_of_tag[tag] = index
    if total != 100:
        problems.add(f"Traffic targets sum to {total}, want 100", "spec.traffic")


def _validate_name_change(
    template: dict[str, Any], old_template: dict[str, Any], problems: FieldErrors
) -> None:
    name = (template.get("metadata") or {}).get("name") or ""
    if not name or name != (old_template.get("metadata") or {}).get("name"):
        return
    _validate_unchanged(
        old_template,
        template,
        "Saw the following changes without a name change (-old +new)",
        "spec.template.metadata.name",
        problems,
    )


def _validate_unchanged(old: Any, new: Any, message: str, path: str, problems: FieldErrors) -> None:
    changes = diff_lines(old, new)
    if changes:
        problems.add(message, path, details="\n".join(changes))


def diff_lines(old: Any, new: Any, path: str = "") -> list[str]:
    """Describe every difference between two JSON values, one ``path: -old +new`` line per change."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            lines += diff_lines(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        lines = []
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            lines += diff_lines(old_item, new_item, f"{path}[{index}]")
        return lines
    if old == new:
        return []
    return [f"{path or '.'}: -{json.dumps(old)} +{json.dumps(new)}"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
