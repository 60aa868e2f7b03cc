"""KnativeABTestOperator by ``Knative-Serving-Tag`` header on local_knative: only the audience reaches B.

Everyone else's load (no header) keeps going to the Service's host during the test; the analysis' own
synthetic load sends each side's tag header, so B is judged on the requests of its audience only.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from test_canary_rollout import ECHO, SERVICE, Load, service_state

from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration


def test_ab_by_header_routes_only_the_audience_to_b_and_names_the_winner(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    target = {"service_name": SERVICE, "namespace": kube_namespace, "wait_timeout": 90}
    load = {"rate": 25, "path": "/", "ingress_address": local_knative.ingress_url}
    config = {"scrape_urls": [local_knative.metrics_url], "window": "8s", "interval": "1s", "load": load}
    tasks = [
        ("deploy_a", "KnativeDeployRevisionOperator", {"image": f"{ECHO}:v1", **target}),
        (
            "deploy_b",
            "KnativeDeployRevisionOperator",
            {"image": f"{ECHO}:v2", "env": {"ECHO_DELAY_MS": "120"}, **target},
        ),
        ("ab", "KnativeABTestOperator", {"analysis": config, "route_by": "header", **target}),
    ]
    with Load(local_knative, kube_namespace, rate=20) as everyone_else:
        outcome = run_dag("ab_header", tasks)
    assert outcome.state == "success", outcome.task_states
    result = outcome.results["ab"]
    a, b = outcome.results["deploy_a"]["revision"], outcome.results["deploy_b"]["revision"]
    assert (result["a"], result["b"], result["winner"]) == (a, b, "a"), result["summary"]
    assert (result["route_by"], result["split"]) == ("header", 0)
    assert result["header"] == {"Knative-Serving-Tag": "candidate"}
    assert "latency_p99" in result["summary"]
    # Nobody without the header saw B; the route still sends everyone to A.
    assert everyone_else.by_revision(b) == (0, 0), everyone_else.answers
    assert everyone_else.by_revision(a)[0] > 100
    _, served = service_state(cluster, kube_namespace)
    assert sorted(served) == sorted([(a, 100, "stable"), (b, 0, "candidate")])
    # The synthetic load went to the Service's own host, with the header, and was answered.
    sent = result["analysis"]["load"]
    assert {entry["revision"] for entry in sent} == {a, b}
    assert all(entry["url"].startswith(f"http://{SERVICE}.{kube_namespace}.") for entry in sent), sent
    assert all(entry["succeeded"] > 50 for entry in sent), sent
    # The header the result names is what the audience sends: it reaches B.
    request = urllib.request.Request(
        local_knative.ingress_url + "/",
        headers={"Host": f"{SERVICE}.{kube_namespace}.{local_knative.domain}", **result["header"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["X-Revision"] == b


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"route_by": "cookie"}, "route_by is 'cookie'; use one of weight, header"),
        ({"route_by": "header", "split": 20}, "split is 20 but route_by is 'header'"),
        ({"split": 100}, "split is 100"),
    ],
)
def test_ab_bad_routing_is_refused_before_the_cluster_is_asked(routing: dict[str, Any], message: str) -> None:
    from task_context import task_context

    from knative_rollout.exceptions import KnativeInputError
    from knative_rollout.operators import KnativeABTestOperator

    ab = KnativeABTestOperator(
        task_id="ab",
        service_name=SERVICE,
        namespace="nowhere",
        kubernetes_conn_id="no_such_connection",  # never read: the input is refused first
        analysis={"scrape_urls": ["http://127.0.0.1:1/metrics"], "window": "8s", "interval": "1s"},
        **routing,
    )
    with pytest.raises(KnativeInputError, match=message):
        ab.execute(task_context())
