"""Table tests of resources.manifests: deterministic revision names, templates and new Services."""

from __future__ import annotations

import pytest

from knative_rollout.resources import (
    MANAGED_BY_LABEL,
    STABLE_ANNOTATION,
    RevisionSpec,
    RolloutInputError,
    render_service,
    render_template,
)


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
