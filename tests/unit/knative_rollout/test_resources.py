"""Table tests of the pure resources module: names, quantities, guardrails, templates, traffic, state."""

from __future__ import annotations

import json

import pytest

from knative_rollout.policy import HistoryEntry, RolloutPhase, RolloutState
from knative_rollout.resources import (
    HISTORY_ANNOTATION,
    MANAGED_BY_LABEL,
    STABLE_ANNOTATION,
    Guardrails,
    GuardrailViolation,
    RevisionInfo,
    RevisionSpec,
    RolloutInputError,
    apply_state,
    check_dns1035,
    check_namespace,
    check_service_name,
    check_tag,
    deletable_revisions,
    image_registry,
    parse_quantity,
    pinned_traffic,
    render_service,
    render_template,
    render_traffic,
    resolve_traffic,
    revision_info,
    state_from_annotations,
    tag_url,
    traffic_keys,
    traffic_tags,
)


@pytest.mark.parametrize("name", ["a", "iris", "iris-v2", "a" * 63, "x1-2-3"])
def test_dns1035_accepts(name: str) -> None:
    assert check_dns1035(name, "name") == name


@pytest.mark.parametrize(
    "name", ["", "1iris", "Iris", "iris_v2", "iris-", "-iris", "a" * 64, "ir.is", None, 3]
)
def test_dns1035_rejects_with_the_rule(name: object) -> None:
    with pytest.raises(RolloutInputError, match="name"):
        check_dns1035(name, "name")


def test_service_name_leaves_room_for_the_revision_hash() -> None:
    assert check_service_name("a" * 52) == "a" * 52
    with pytest.raises(RolloutInputError, match="at most 52"):
        check_service_name("a" * 53)


@pytest.mark.parametrize("namespace", ["default", "team-1", "0abc"])
def test_namespace_accepts_dns1123(namespace: str) -> None:
    assert check_namespace(namespace) == namespace


@pytest.mark.parametrize("namespace", ["", "Team", "a_b", "a" * 64])
def test_namespace_rejects(namespace: str) -> None:
    with pytest.raises(RolloutInputError, match="DNS-1123"):
        check_namespace(namespace)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2", "2"),
        ("1.5", "1.5"),
        ("512Mi", str(512 * 2**20)),
        ("1G", "1000000000"),
        ("1Gi", str(2**30)),
        ("100k", "100000"),
        (3, "3"),
        ("1e3", "1000"),
    ],
)
def test_parse_quantity(text: object, value: str) -> None:
    assert parse_quantity(text, "q") == __import__("decimal").Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "5 Gi", "1Xi", "-1", True, None, "1.2.3"])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(RolloutInputError, match="q"):
        parse_quantity(text, "q")


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("registry.example.com/team/app:v1", "registry.example.com"),
        ("nginx:1", "docker.io"),
        ("library/nginx", "docker.io"),
        ("localhost/app", "localhost"),
        ("host:5000/app:v1", "host:5000"),
    ],
)
def test_image_registry(image: str, registry: str) -> None:
    assert image_registry(image) == registry


GUARDRAILS = Guardrails.from_config(
    {
        "allowed_namespaces": ["models"],
        "allowed_registries": ["registry.example.com/knative-rollout", "gcr.io"],
        "max_cpu": "2",
        "max_memory": "4Gi",
        "max_gpu": "1",
    },
    "test",
)


def test_guardrails_allow_what_is_inside() -> None:
    GUARDRAILS.check_namespace("models")
    GUARDRAILS.check_image("registry.example.com/knative-rollout/echo:v1")
    GUARDRAILS.check_image("gcr.io/p/app:v1")
    GUARDRAILS.check_resources({"requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}})


@pytest.mark.parametrize(
    ("check", "argument", "message"),
    [
        ("check_namespace", "default", "namespace 'default' is not allowed"),
        ("check_image", "docker.io/evil/app:v1", "registry 'docker.io'"),
        ("check_image", "registry.example.com/other/app:v1", "registry 'registry.example.com'"),
        ("check_resources", {"requests": {"cpu": "2500m"}}, "cpu of 2500m is above the guardrail limit of 2"),
        ("check_resources", {"limits": {"memory": "5Gi"}}, "memory of 5Gi is above"),
        ("check_resources", {"limits": {"nvidia.com/gpu": "2"}}, "nvidia.com/gpu of 2 is above"),
    ],
)
def test_guardrails_refuse_what_is_outside(check: str, argument: object, message: str) -> None:
    with pytest.raises(GuardrailViolation, match=message):
        getattr(GUARDRAILS, check)(argument)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1], "must be a JSON object"),
        ({"max_cpus": "1"}, "unknown keys"),
        ({"allowed_namespaces": "models"}, "list of strings"),
        ({"max_memory": "lots"}, "not a Kubernetes quantity"),
    ],
)
def test_guardrails_config_errors_name_the_source(config: object, message: str) -> None:
    with pytest.raises(RolloutInputError, match=message) as error:
        Guardrails.from_config(config, "Variable X")
    assert "Variable X" in str(error.value)


def test_empty_guardrails_allow_everything() -> None:
    guardrails = Guardrails.from_config(None, "nowhere")
    guardrails.check_namespace("anything")
    guardrails.check_image("docker.io/x/y:z")
    guardrails.check_resources({"requests": {"cpu": "64"}})


def test_revision_name_is_deterministic_and_follows_the_spec() -> None:
    spec = RevisionSpec.build(image="registry.example.com/a/b:v1", env={"B": "2", "A": 1})
    same = RevisionSpec.build(image="registry.example.com/a/b:v1", env={"A": "1", "B": "2"})
    other = RevisionSpec.build(image="registry.example.com/a/b:v2", env={"A": "1", "B": "2"})
    name = render_template("iris", spec)["metadata"]["name"]
    assert name == render_template("iris", same)["metadata"]["name"]
    assert name != render_template("iris", other)["metadata"]["name"]
    assert name.startswith("iris-") and len(name) == len("iris-") + 10
    assert len(render_template("a" * 52, spec)["metadata"]["name"]) == 63


def test_template_carries_everything_asked() -> None:
    spec = RevisionSpec.build(
        image="registry.example.com/a/b:v1",
        env={"MODEL_URI": "/m"},
        resources={"requests": {"cpu": "500m"}},
        annotations={"team": "ml"},
        autoscaling={"min-scale": 1},
        container_port=9000,
    )
    template = render_template("iris", spec)
    container = template["spec"]["containers"][0]
    assert container["env"] == [{"name": "MODEL_URI", "value": "/m"}]
    assert container["resources"] == {"requests": {"cpu": "500m"}}
    assert container["ports"] == [{"containerPort": 9000}]
    assert template["metadata"]["annotations"] == {"autoscaling.knative.dev/min-scale": "1", "team": "ml"}
    assert template["metadata"]["labels"] == {MANAGED_BY_LABEL: "knative-rollout"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": ""}, "not a valid image reference"),
        ({"image": "has space:v1"}, "not a valid image reference"),
        ({"image": "x", "env": ["A=1"]}, "env must be a mapping"),
        ({"image": "x", "env": {"1A": "x"}}, "not a valid variable name"),
        ({"image": "x", "env": {"PORT": "1"}}, "set by Knative"),
        ({"image": "x", "env": {"A": {"b": 1}}}, "string or a number"),
        ({"image": "x", "resources": {"requests": {"cpu": "lots"}}}, "not a Kubernetes quantity"),
        ({"image": "x", "resources": {"request": {}}}, "unknown key 'request'"),
        ({"image": "x", "annotations": {"rollout.knative-rollout.dev/phase": "x"}}, "reserved"),
        ({"image": "x", "autoscaling": {"min_scale": 1}}, "not a Knative autoscaling setting"),
        ({"image": "x", "container_port": 8012}, "reserved by Knative"),
        ({"image": "x", "container_port": 70000}, "between 1 and 65535"),
    ],
)
def test_revision_spec_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RolloutInputError, match=message):
        RevisionSpec.build(**kwargs)


def test_new_service_routes_all_traffic_to_its_first_revision_by_name() -> None:
    spec = RevisionSpec.build(image="registry.example.com/a/b:v1")
    service = render_service("iris", "models", spec, {STABLE_ANNOTATION: "x"})
    revision = service["spec"]["template"]["metadata"]["name"]
    assert service["spec"]["traffic"] == [
        {"revisionName": revision, "percent": 100, "latestRevision": False, "tag": "stable"}
    ]
    assert service["metadata"]["labels"][MANAGED_BY_LABEL] == "knative-rollout"


def test_render_traffic_drops_untagged_zero_targets_and_keeps_tagged_ones() -> None:
    targets = render_traffic({"a": 100, "b": 0, "c": 0}, {"a": "stable", "b": "candidate"})
    assert traffic_keys(targets) == {("a", 100, "stable"), ("b", 0, "candidate")}


def test_stable_keeps_its_tag_even_without_traffic() -> None:
    state = RolloutState(stable="a", candidate="b")
    assert traffic_tags({"b": 100}, state, "candidate") == {"a": "stable", "b": "candidate"}
    assert traffic_tags({"a": 100}, state, "canary") == {"a": "stable"}


REVISIONS = {
    "iris-a": RevisionInfo("iris-a", ready=True),
    "iris-b": RevisionInfo("iris-b", ready=True),
    "iris-bad": RevisionInfo("iris-bad", ready=False, reason="ContainerMissing: image not found"),
}
STATE = RolloutState(stable="iris-a", candidate="iris-b")


def test_aliases_resolve_to_recorded_revisions() -> None:
    split = resolve_traffic(
        {"@stable": 90, "@candidate": 10}, state=STATE, revisions=REVISIONS, latest="iris-bad"
    )
    assert split == {"iris-a": 90, "iris-b": 10}
    assert resolve_traffic(
        {"@latest": 0, "iris-a": 100}, state=STATE, revisions=REVISIONS, latest="iris-bad"
    ) == {
        "iris-bad": 0,
        "iris-a": 100,
    }


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"@stable": 90, "@candidate": 20}, "sum to 110, want 100"),
        ({"@stable": 50}, "sum to 50, want 100"),
        ({"@stable": 101, "@candidate": -1}, "between 0 and 100"),
        ({"@stable": 90.5, "@candidate": 9.5}, "integer percent"),
        ({"@stable": True}, "integer percent"),
        ({"@canary": 100}, "unknown traffic alias"),
        ({"iris-zzz": 100}, "does not exist"),
        ({"iris-bad": 100}, "not Ready \\(ContainerMissing"),
        ({"Iris": 100}, "DNS-1035"),
        ({"@stable": 50, "iris-a": 50}, "twice"),
        ({}, "non-empty mapping"),
        ([("a", 100)], "non-empty mapping"),
    ],
)
def test_bad_traffic_is_refused(traffic: object, message: str) -> None:
    with pytest.raises(RolloutInputError, match=message):
        resolve_traffic(traffic, state=STATE, revisions=REVISIONS, latest=None)


def test_alias_without_a_revision_says_what_to_do() -> None:
    with pytest.raises(RolloutInputError, match="no candidate revision yet; deploy one first"):
        resolve_traffic(
            {"@candidate": 100}, state=RolloutState(stable="iris-a"), revisions=REVISIONS, latest=None
        )


def test_pinned_traffic_names_the_revision_latest_targets_serve() -> None:
    service = {
        "metadata": {"name": "iris"},
        "spec": {"traffic": [{"latestRevision": True, "percent": 100}]},
        "status": {"traffic": [{"latestRevision": True, "percent": 100, "revisionName": "iris-00001"}]},
    }
    assert pinned_traffic(service) == [
        {"latestRevision": False, "percent": 100, "revisionName": "iris-00001"}
    ]
    with pytest.raises(RolloutInputError, match="not Ready yet"):
        pinned_traffic({"metadata": {"name": "iris"}, "spec": service["spec"], "status": {}})


def test_check_tag() -> None:
    assert check_tag("canary") == "canary"
    with pytest.raises(RolloutInputError, match="reserved for the stable"):
        check_tag("stable")


def test_tag_url() -> None:
    assert (
        tag_url("http://iris.models.example.com", "candidate") == "http://candidate-iris.models.example.com"
    )


def test_state_round_trips_through_annotations_and_keeps_foreign_ones() -> None:
    state = RolloutState(
        stable="iris-a",
        candidate="iris-b",
        previous_stable=None,
        phase=RolloutPhase.CANARY,
        step=10,
        history=(HistoryEntry("2026-01-01T00:00:00Z", "TrafficSet", "iris-a=90%, iris-b=10%"),),
    )
    annotations = apply_state(
        {"team": "ml", "rollout.knative-rollout.dev/previous-stable-revision": "old"}, state
    )
    assert annotations["team"] == "ml"
    assert "rollout.knative-rollout.dev/previous-stable-revision" not in annotations
    assert state_from_annotations(annotations) == state


@pytest.mark.parametrize(
    "annotations",
    [
        None,
        {},
        {HISTORY_ANNOTATION: "not json"},
        {HISTORY_ANNOTATION: json.dumps({"a": 1})},
        {"rollout.knative-rollout.dev/phase": "Bogus", "rollout.knative-rollout.dev/step": "x"},
    ],
)
def test_unreadable_state_reads_as_empty(annotations: dict[str, str] | None) -> None:
    state = state_from_annotations(annotations)
    assert state.phase is RolloutPhase.NONE and state.history == () and state.step == 0


def test_revision_info_reads_readiness_and_reason() -> None:
    revision = {
        "metadata": {"name": "iris-x", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "boom"}]
        },
    }
    assert revision_info(revision) == RevisionInfo("iris-x", False, "2026-01-01T00:00:00Z", "ExitCode1: boom")


def test_teardown_keeps_protected_and_the_newest() -> None:
    infos = [RevisionInfo(f"r{i}", True, f"2026-01-01T00:00:0{i}Z") for i in range(6)]
    assert deletable_revisions(infos, protected={"r5", "r0"}, keep=2) == ["r2", "r1"]
    assert deletable_revisions(infos, protected=set(), keep=10) == []
    with pytest.raises(RolloutInputError, match="keep must be an integer"):
        deletable_revisions(infos, protected=set(), keep=-1)
