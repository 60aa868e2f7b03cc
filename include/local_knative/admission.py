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
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local_knative import errors, istio_auth, kinds, rbac
from local_knative.autoscaler import (
    ANNOTATION_PREFIX,
    PROGRESS_DEADLINE_ANNOTATION,
    annotation,
    duration_ns,
)

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

KPA_CLASS = "kpa.autoscaling.knative.dev"
HPA_CLASS = "hpa.autoscaling.knative.dev"
_INT32_MAX = 2**31 - 1
_SECOND_NS = 10**9
_WINDOW_BOUNDS_NS = (6 * _SECOND_NS, 3600 * _SECOND_NS)  # Knative's WindowMin, WindowMax
_DELAY_BOUNDS_NS = (0, 3600 * _SECOND_NS)
_AGGREGATION_ALGORITHMS = ("linear", "weighted-exponential", "weightedExponential")
_GO_INT = re.compile(r"[-+]?[0-9]+")
PathOf = Callable[[str], str]  # annotation key -> full field path


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

    :param kind: the kind of ``obj``; Istio's security kinds are validated as Istio's webhook does, RBAC
        kinds as the API server does (422), other kinds that are not Knative Serving's are returned unchanged.
    :param operation: ``"CREATE"`` or ``"UPDATE"``.
    :param obj: the object the client sent (not modified).
    :param old: the stored object for an UPDATE, else None.
    :raises local_knative.errors.ApiError: 400 with Knative's validation message when ``obj`` is invalid.
    """
    istio_auth.admit(kind, obj)
    if kind.group == "rbac.authorization.k8s.io":
        causes = rbac.validation_problems(kind.kind, obj, old)
        if causes:
            raise errors.invalid(kind, str((obj.get("metadata") or {}).get("name", "")), causes)
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
    annotations = metadata.get("annotations") or {}
    if kind == kinds.REVISION:
        validate_scaling_annotations(annotations, "metadata.annotations", problems)
        if old is not None:
            _validate_unchanged(
                old.get("spec") or {}, spec, "Immutable fields changed (-old +new)", "spec", problems
            )
        else:
            _validate_revision_spec(spec, "spec", problems)
        return problems
    if kind in (kinds.KSVC, kinds.CONFIGURATION):
        for key in sorted(annotations):
            if key.startswith(ANNOTATION_PREFIX.rstrip("/")):
                problems.add(
                    f"invalid key name {json.dumps(key)}",
                    "metadata.annotations",
                    details='autoscaling annotations must be put under "spec.template.metadata.annotations" '
                    "to work",
                )
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
    validate_scaling_annotations(
        template_metadata.get("annotations") or {}, "spec.template.metadata.annotations", problems
    )
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


def validate_scaling_annotations(annotations: dict[str, str], path: str, problems: FieldErrors) -> None:
    """Report the autoscaling (and progress-deadline) annotation values Knative's webhook refuses.

    Follows knative.dev/serving's ``autoscaling.ValidateAnnotations`` with the default config-autoscaler
    (no max-scale limit, initial scale 0 not allowed), so the runtime only ever reads usable values.

    :param annotations: the annotations of a Revision or a revision template.
    :param path: where they are, e.g. ``spec.template.metadata.annotations``.
    """

    def at(key: str) -> str:
        return f"{path}.{key}"

    def out_of_bounds(value: str, lower: str, upper: str, key: str) -> None:
        problems.add(f"expected {lower} <= {value} <= {upper}", at(key))

    def scale(name: str) -> int:
        found = annotation(annotations, name)
        if found is None:
            return 0
        key, value = found
        number = _go_int(value)
        if number is None:
            problems.add(f"invalid value: {value}", at(key))
        elif not 0 <= number <= _INT32_MAX:
            out_of_bounds(value, "0", str(_INT32_MAX), key)
        else:
            return number
        return 0

    class_value = (annotation(annotations, "class") or ("", ""))[1]
    if class_value.endswith(".knative.dev") and class_value not in (KPA_CLASS, HPA_CLASS):
        problems.add(f"invalid value: {class_value}", at(ANNOTATION_PREFIX + "class"))

    min_scale, max_scale = scale("min-scale"), scale("max-scale")
    if max_scale and max_scale < min_scale:
        problems.add(
            f"max-scale={max_scale} is less than min-scale={min_scale}",
            at(ANNOTATION_PREFIX + "max-scale"),
            at(ANNOTATION_PREFIX + "min-scale"),
        )
    _validate_activation_scale(annotations, min_scale, max_scale, at, problems)

    for name, lower, upper in (
        ("panic-window-percentage", 1.0, 100.0),
        ("panic-threshold-percentage", 110.0, 1000.0),
        ("target-utilization-percentage", 1.0, 100.0),
    ):
        if found := annotation(annotations, name):
            number = _go_float(found[1])
            if number is None:
                problems.add(f"invalid value: {found[1]}", at(found[0]))
            elif not lower <= number <= upper:
                out_of_bounds(found[1], f"{lower:g}", f"{upper:g}", found[0])
    if found := annotation(annotations, "target"):
        number = _go_float(found[1])
        if number is None:
            problems.add(f"invalid value: {found[1]}", at(found[0]))
        elif number < 0.01:
            problems.add(f"target {found[1]} should be at least 0.01", at(found[0]))
    if found := annotation(annotations, "target-burst-capacity"):
        number = _go_float(found[1])
        if number is None or (number < 0 and number != -1):
            problems.add(f"invalid value: {found[1]}", at(found[0]))

    for name, bounds, whole_seconds in (
        ("window", _WINDOW_BOUNDS_NS, True),
        ("scale-to-zero-pod-retention-period", _DELAY_BOUNDS_NS, False),
        ("scale-down-delay", _DELAY_BOUNDS_NS, True),
    ):
        if found := annotation(annotations, name):
            _validate_duration(found, bounds, whole_seconds, at, problems)

    _validate_metric(annotations, class_value, at, problems)
    if found := annotation(annotations, "initial-scale"):
        key, value = found
        number = _go_int(value)
        if number is None or not -(2**63) <= number < 2**63:
            problems.add(f"invalid value: {value}", at(key))
        elif number < 0:
            problems.add(f"invalid value: {value}", at(f"{key} must be greater than 0"))
        elif number == 0:
            problems.add(f"invalid value: {value}", at(f"{key}=0 not allowed by cluster"))
    _validate_progress_deadline(annotations, at, problems)


def _go_int(value: str) -> int | None:
    """Read a decimal integer as Go's strconv.ParseInt does (sign, digits only), or return None."""
    if not _GO_INT.fullmatch(value):
        return None
    # Past any int64 anyway; capping keeps int() away from its limit on very long digit strings.
    return int(value) if len(value) <= 40 else (-(10**40) if value.startswith("-") else 10**40)


def _go_float(value: str) -> float | None:
    """Read a number as Go's strconv.ParseFloat does, or return None.

    Go also reads ``NaN`` and ``Inf``; no autoscaler can work with them, so they are refused here.
    """
    if value != value.strip() or "_" in value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _validate_activation_scale(
    annotations: dict[str, str], min_scale: int, max_scale: int, at: PathOf, problems: FieldErrors
) -> None:
    key = ANNOTATION_PREFIX + "activation-scale"
    value = annotations.get(key)
    if value is None:
        return
    number = _go_int(value)
    if number is None or abs(number) > _INT32_MAX:
        problems.add(f"invalid value: {value}", at(key))
    elif min_scale > number:
        problems.add(f"min-scale={min_scale} is greater than min-activate-scale={number}", at(key))
    elif max_scale and max_scale < number:
        problems.add(f"max-scale={max_scale} is less than min-activate-scale={number}", at(key))
    elif number < 2:
        problems.add(f"min-activate-scale={number} must be greater than 1", at(key))


def _validate_duration(
    found: tuple[str, str], bounds: tuple[int, int], whole_seconds: bool, at: PathOf, problems: FieldErrors
) -> None:
    key, value = found
    try:
        nanoseconds = duration_ns(value)
    except ValueError:
        problems.add(f"invalid value: {value}", at(key))
        return
    if not bounds[0] <= nanoseconds <= bounds[1]:
        lower, upper = (_go_duration_text(bound) for bound in bounds)
        problems.add(f"expected {lower} <= {value} <= {upper}", at(key))
    elif whole_seconds and nanoseconds % _SECOND_NS:
        problems.add("must be specified with at most second precision", at(key))


def _go_duration_text(nanoseconds: int) -> str:
    """Print whole seconds the way Go prints a time.Duration (``0s``, ``6s``, ``1h0m0s``)."""
    seconds = nanoseconds // _SECOND_NS
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def _validate_metric(
    annotations: dict[str, str], class_value: str, at: PathOf, problems: FieldErrors
) -> None:
    found = annotation(annotations, "metric")
    if found is not None:
        scaler_class = class_value or KPA_CLASS
        refused = (scaler_class == KPA_CLASS and found[1] not in ("concurrency", "rps")) or (
            scaler_class == HPA_CLASS and not found[1]
        )
        if refused:
            problems.add(f"invalid value: {found[1]}", at(ANNOTATION_PREFIX + "metric"))
    algorithm = annotation(annotations, "metric-aggregation-algorithm")
    # Only a class set to KPA explicitly is checked: other autoscalers may define their own values.
    if class_value == KPA_CLASS and algorithm and algorithm[1] not in ("", *_AGGREGATION_ALGORITHMS):
        problems.add(f"invalid value: {algorithm[1]}", at(algorithm[0]))


def _validate_progress_deadline(annotations: dict[str, str], at: PathOf, problems: FieldErrors) -> None:
    # Knative parses it with time.ParseDuration and wants whole, non-negative seconds.
    value = annotations.get(PROGRESS_DEADLINE_ANNOTATION)
    if not value:
        return
    key = PROGRESS_DEADLINE_ANNOTATION
    try:
        nanoseconds = duration_ns(value)
    except ValueError:
        problems.add(f"invalid value: {value}", at(key))
        return
    if nanoseconds % _SECOND_NS:
        problems.add(f"progress-deadline={value} is not at second precision", at(key))
    elif nanoseconds < 0:
        problems.add(f"progress-deadline={value} must be positive", at(key))


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
