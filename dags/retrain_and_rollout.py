"""Retrain the example model and roll it out only when it beats the model serving now.

Runs every day and also whenever new training data lands (the ``iris_training_data`` Asset; an event's
``extra`` may name the batch: ``{"batch": 7, "label_noise": 0.1}``). Each run:

1. ``prepare_data``: draws a training batch from the bundled data (``model.data``: batch number, label
   noise, drift), so retrains really differ: some are better, some equal, some worse.
2. ``train``: fits the model on it and scores it on the fixed holdout; the artifact goes to the store's
   ``staging/`` area under a version named after the batch (the same inputs reuse it).
3. ``evaluate``: scores the model the Service serves now (its stable revision's ``MODEL_URI``, read from
   the cluster) on the same holdout; ``worth_rolling_out`` stops the run, green, with the reason in its
   log and in ``evaluate``'s XCom, unless the new model is better by ``min_improvement``. The model
   serving already goes on, so the rollout can say "nothing to roll out" (a rerun stays a no-op).
4. ``publish``: copies the artifact to ``models/`` in the store (``file://`` locally, ``gs://`` through
   the google provider's GCS hook on GCP).
5. ``bootstrap``: the very first model becomes the Service; afterwards it leaves it alone.
6. ``rollout``: lock, candidate at 0% on its tag URL, load-test gate (the smoke test too: every answer
   must be a 200 with ``predictions``, so a candidate that answers without predicting fails here), then
   10% -> 50% -> 100%, each step judged against the stable on live metrics (``analysis_<p>``, with
   synthetic load in every window so it decides with no real traffic), promote; on any failure it rolls
   back and ``rollout.outcome`` fails the run, naming the step and why. Alerts go out on a failed
   analysis, the promotion and a rollback. The gate's JSON report and latency plot go to the store's
   ``reports/<service>/<run>/``.
7. ``teardown``: deletes old revisions that serve nothing (stable and rollback target are kept).

A rerun, a retry or a cleared task never deploys twice (revision names are hashes of their spec) and
never moves production backwards (an older revision is refused, a worse model stopped).

Configuration, never edits to this file: the ``kubernetes_default`` connection (its
``ingress_address`` extra where Knative hosts have no DNS), the Variables ``knative_rollout_artifact_store``
(default ``file://$AIRFLOW_HOME/knative-rollout``; ``gs://BUCKET/PREFIX`` on GCP),
``knative_rollout_namespace`` and ``knative_rollout_image`` (used when those Params are empty, as in
scheduled and asset-triggered runs), ``knative_rollout_analysis`` (JSON keys over :data:`ANALYSIS`:
``{"prometheus_url": "http://prometheus:9090", "window": "2m", "interval": "10s"}`` or
``metrics_conn_id`` reads Prometheus instead of local_knative's ``/metrics`` at the connection's
``ingress_address``), ``knative_rollout_alerts`` (JSON, see
:func:`knative_rollout.notifiers.notifiers_from_config`: ``webhook_url``, ``slack_webhook_conn_id``,
``email_to``...; none: no alerts) and the Params below. ``rollout_settings`` reads the two JSON
Variables and refuses a bad one, naming it, before anything is published or deployed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    chain,
    task,
)
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.notifiers import KnativeRolloutVariableNotifier
from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeTeardownOperator
from knative_rollout.task_groups import progressive_rollout

DEFAULT_IMAGE = "registry.example.com/knative-rollout/model-server:v1"
TRAINING_DATA = Asset(name="iris_training_data", uri="knative-rollout://training-data/iris")
STORE_VARIABLE = "knative_rollout_artifact_store"
ANALYSIS_VARIABLE = "knative_rollout_analysis"
ALERTS_VARIABLE = "knative_rollout_alerts"
SERVICE = "{{ params.service_name }}"
# Empty Params fall back to Variables, so one DAG file serves every environment (local, compose, Composer).
NAMESPACE = "{{ params.namespace or var.value.get('knative_rollout_namespace', 'default') }}"
IMAGE = "{{ params.image or var.value.get('knative_rollout_image', '" + DEFAULT_IMAGE + "') }}"
TARGET = {"service_name": SERVICE, "namespace": NAMESPACE}
PREDICTION = json.dumps({"instances": [[5.9, 3.0, 5.1, 1.8]]})
# The gate the candidate must pass on its tag URL before any traffic moves.
GATES: dict[str, Any] = {
    "load_test": {
        "rate": 20,
        "duration": "5s",
        "path": "/v1/models/{{ params.service_name }}:predict",
        "bodies": [PREDICTION],
        "headers": {"Content-Type": "application/json"},
        "expect_json_field": "predictions",
        "slo": "{{ params.slo }}",
        # The JSON report and its PNG latency plot, next to the models in the artifact store.
        "report_path": "{{ artifact_store() }}/reports/{{ params.service_name }}/"
        "{{ run_id | replace(':', '-') | replace('+', '-') }}/load_test.json",
    }
}


# Each traffic step's analysis (canary vs. stable, then the SLO), unless knative_rollout_analysis says
# otherwise: short windows of synthetic load, so a local Service with no users still gets a decision.
ANALYSIS: dict[str, Any] = {
    "window": "10s",
    "interval": "1s",
    "slo": {"max_p99_latency": "300ms", "max_error_rate": 0.01, "min_requests": 20},
    "load": {"rate": 20, "bodies": [PREDICTION], "headers": {"Content-Type": "application/json"}},
}


# Alerts go wherever the Variable knative_rollout_alerts says (read when one goes out; none when unset).
ALERTS = KnativeRolloutVariableNotifier(variable=ALERTS_VARIABLE)


def use_model_package() -> None:
    """Make ``include/`` (the example model's code) importable in the worker that runs a task.

    The DAG file is parsed without it (parsing must stay fast and import no scikit-learn); the tasks
    that train and score import it. On Cloud Composer ``include/`` sits next to ``dags/`` too.
    """
    include = Path(__file__).resolve().parent.parent / "include"
    if include.is_dir() and str(include) not in sys.path:
        sys.path.append(str(include))


def artifact_store() -> str:
    """Return the artifact store's root: the Variable, or a folder in the Airflow home."""
    from airflow.sdk import Variable

    default = "file://" + str(
        Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "knative-rollout"
    )
    return str(Variable.get(STORE_VARIABLE, default=default)).rstrip("/")


def gcs_path(store: str) -> tuple[str, str]:
    """Return the bucket of a ``gs://`` store and its prefix (empty, or ending in ``/``)."""
    bucket, _, prefix = store.removeprefix("gs://").partition("/")
    return bucket, f"{prefix.strip('/')}/" if prefix.strip("/") else ""


def gcs_upload(directory: Path, store: str, path: str) -> str:
    """Upload the files of ``directory`` to ``path`` in a ``gs://`` store (those there already stay)."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    bucket, prefix = gcs_path(store)
    gcs = GCSHook()
    for file in sorted(directory.iterdir()):
        if not gcs.exists(bucket, f"{prefix}{path}/{file.name}"):
            gcs.upload(bucket, f"{prefix}{path}/{file.name}", filename=str(file))
    return f"gs://{bucket}/{prefix}{path}"


def local_dir(uri: str) -> Path:
    """Return the local directory of a ``file://`` URI or a plain path."""
    return Path(uri.removeprefix("file://")).expanduser()


def batch_spec(params: dict[str, Any], extra: dict[str, Any], when: Any) -> Any:
    """Return this run's batch: the asset event's ``extra`` first, then the Params, then the run's day.

    :raises AirflowFailException: naming the setting, when one is not a number in its range.
    """
    use_model_package()
    from model.artifact import ArtifactError
    from model.data import BatchSpec

    settings = {key: extra.get(key, params[key]) for key in ("batch", "label_noise", "drift")}
    if settings["batch"] is None:
        # A scheduled run with no batch given trains on the day's batch, so each day brings new data.
        settings["batch"] = int(when.timestamp() // 86400)
    try:
        return BatchSpec(
            batch=int(settings["batch"]),
            label_noise=float(settings["label_noise"]),
            drift=float(settings["drift"]),
        )
    except (TypeError, ValueError, ArtifactError) as error:
        raise AirflowFailException(
            f"bad training batch settings {settings} (from the asset event's extra or the Params): {error}"
        ) from None


def namespace_of(params: dict[str, Any]) -> str:
    """Return the Service's namespace: the Param, else the Variable, else ``default`` (as NAMESPACE)."""
    from airflow.sdk import Variable

    return str(params.get("namespace") or Variable.get("knative_rollout_namespace", default="default"))


def serving_model_uri(service_name: str, namespace: str) -> str | None:
    """Return the ``MODEL_URI`` of the Service's stable revision, or ``None`` when nothing serves yet."""
    from knative_rollout.hooks import KnativeServingHook
    from knative_rollout.resources import state_from_annotations

    hook = KnativeServingHook()
    service = hook.find_service(service_name, namespace)
    if service is None:
        return None
    stable = state_from_annotations(service["metadata"].get("annotations")).stable
    revision = hook.find_revision(stable, namespace) if stable else None
    for container in ((revision or {}).get("spec") or {}).get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == "MODEL_URI":
                return str(variable.get("value"))
    return None


def analysis_settings(service_name: str) -> dict[str, Any]:
    """Return the rollout's analysis: :data:`ANALYSIS` with the Variable ``knative_rollout_analysis`` over it.

    Without a metrics source of its own it reads local_knative's ``/metrics``, served at the ingress
    address of the ``kubernetes_default`` connection.

    :raises AirflowFailException: naming the Variable, when the result is not a valid analysis.
    """
    from airflow.sdk import Variable

    from knative_rollout.analysis import AnalysisConfig
    from knative_rollout.operators.analysis import metrics_source

    overrides = Variable.get(ANALYSIS_VARIABLE, default={}, deserialize_json=True)
    if not isinstance(overrides, dict):
        raise AirflowFailException(
            f"Variable {ANALYSIS_VARIABLE} must be a JSON object of analysis keys, got {overrides!r}"
        )
    analysis = {**ANALYSIS, **overrides}
    if "load" in analysis and "load" not in overrides:
        analysis["load"] = {**analysis["load"], "path": f"/v1/models/{service_name}:predict"}
    if not any(analysis.get(key) for key in ("prometheus_url", "metrics_conn_id", "scrape_urls")):
        source = metrics_source()
        if source is None:
            raise AirflowFailException(
                f"no metrics for the analysis: set the Variable {ANALYSIS_VARIABLE} to e.g. "
                '{"prometheus_url": "http://prometheus:9090", "window": "2m", "interval": "10s"}, or give '
                "the kubernetes_default connection the extra ingress_address (local_knative's /metrics "
                "is served there)"
            )
        analysis.update(source)
    try:
        AnalysisConfig.of(analysis)
    except (TypeError, ValueError) as error:
        raise AirflowFailException(f"Variable {ANALYSIS_VARIABLE}: analysis: {error}") from None
    return analysis


with DAG(
    dag_id="retrain_and_rollout",
    description="Retrain on new data; roll the model out only if it beats the serving one, else stop",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 * * *", timezone="UTC"), assets=[TRAINING_DATA]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["knative-rollout", "example", "retrain"],
    user_defined_macros={"artifact_store": artifact_store},
    params={
        "service_name": Param(
            "iris",
            type="string",
            pattern="^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
            description="Knative Service that serves the model",
        ),
        "namespace": Param(
            None,
            type=["null", "string"],
            pattern="^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
            description="its namespace; empty: the Variable knative_rollout_namespace, else default",
        ),
        "image": Param(
            None,
            type=["null", "string"],
            minLength=1,
            description="the model server image (the model comes from MODEL_URI); empty: the Variable "
            "knative_rollout_image, else the example image",
        ),
        "batch": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="training batch; empty: the asset event's, else the run's day number",
        ),
        "label_noise": Param(
            0.0,
            type="number",
            minimum=0,
            maximum=1,
            description="share of labels replaced at random (a broken labelling job)",
        ),
        "drift": Param(
            0.0,
            type="number",
            minimum=-5,
            maximum=5,
            description="feature shift in standard deviations (a recalibrated sensor)",
        ),
        "min_improvement": Param(
            0.01,
            type="number",
            minimum=-1,
            maximum=1,
            description="holdout accuracy the new model must gain to be rolled out",
        ),
        "serving_faults": Param(
            {},
            type="object",
            additionalProperties={"type": "string"},
            description="FAULT_* settings of the candidate's server (model.faults), "
            "to try a model that passes offline but fails online; empty in production",
        ),
        "slo": Param(
            "p99<=300ms,error_rate<=0.01,achieved_rate>=18",
            type="string",
            minLength=1,
            description="the load-test gate's thresholds on the candidate's tag URL",
        ),
    },
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=10)},
) as dag:

    @task
    def prepare_data(params: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Draw this run's training batch into the store's ``data/`` folder (the same batch is reused)."""
        use_model_package()
        from model.data import write_batch

        events = context.get("triggering_asset_events") or {}
        latest = [event.extra or {} for event in events.get(TRAINING_DATA, [])][-1:] if events else []
        when = context.get("logical_date") or context["dag_run"].run_after
        spec = batch_spec(params, latest[0] if latest else {}, when)
        store = artifact_store()
        # A gs:// store keeps batches on the worker: train draws the same rows again if it runs elsewhere.
        directory = (
            Path(os.environ.get("TMPDIR", "/tmp")) / "knative-rollout" / "data"
            if store.startswith("gs://")
            else local_dir(store) / "data"
        )
        path = write_batch(spec, directory)
        return {"batch_file": str(path), "name": spec.name, "spec": dataclasses.asdict(spec)}

    @task
    def train(batch: dict[str, Any]) -> dict[str, Any]:
        """Fit the model on the batch and write its artifact (with holdout metrics) to staging."""
        use_model_package()
        from model.data import BatchSpec, write_batch
        from model.train import train_on_batch

        store = artifact_store()
        local = Path(os.environ.get("TMPDIR", "/tmp")) / "knative-rollout"
        staging = local / "staging" if store.startswith("gs://") else local_dir(store) / "staging"
        batch_file = Path(batch["batch_file"])
        if not batch_file.is_file():
            # Drawn on another worker (a gs:// store keeps batches local): the same spec, the same rows.
            batch_file = write_batch(BatchSpec(**batch["spec"]), local / "data")
        artifact = train_on_batch(batch_file, staging, version=batch["name"])
        metadata = json.loads((artifact / "metadata.json").read_text())
        location = str(artifact)
        if store.startswith("gs://"):
            # The next tasks may run on other workers: the staged artifact goes to the bucket.
            location = gcs_upload(artifact, store, f"staging/{metadata['version']}")
        return {"artifact": location, "version": metadata["version"], "metrics": metadata["metrics"]}

    @task
    def evaluate(trained: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Score the model serving now on the same holdout and decide whether the new one is worth it."""
        use_model_package()
        from model.artifact import ArtifactError, load_artifact, resolve_model_uri
        from model.data import score

        new = trained["metrics"]["accuracy"]
        serving_uri = serving_model_uri(params["service_name"], namespace_of(params))
        decision: dict[str, Any] = {
            "candidate_version": trained["version"],
            "candidate_accuracy": new,
            "serving_uri": serving_uri,
        }
        if serving_uri is None:
            return {**decision, "roll_out": True, "reason": "no model serves yet: the first one is deployed"}
        try:
            serving = load_artifact(resolve_model_uri(serving_uri, Path(os.environ.get("TMPDIR", "/tmp"))))
        except ArtifactError as error:
            raise AirflowFailException(
                f"cannot read the model that serves now ({serving_uri}): {error}. Nothing was deployed; "
                "fix the artifact store or deploy a model by hand with the manual_rollout DAG"
            ) from error
        current = score(serving.model, serving.metadata.get("dataset", "iris"))["accuracy"]
        decision.update({"serving_version": serving.version, "serving_accuracy": current})
        margin = float(params["min_improvement"])
        if serving.version == trained["version"]:
            reason = f"model {serving.version} serves already; the rollout will find nothing to roll out"
            return {**decision, "roll_out": True, "reason": reason}
        if new - current >= margin:
            reason = (
                f"new model {trained['version']} scores {new:.3f} on the holdout against {current:.3f} "
                f"for {serving.version}: better by {new - current:+.3f} (at least {margin:+.3f} asked)"
            )
            return {**decision, "roll_out": True, "reason": reason}
        reason = (
            f"not rolled out: new model {trained['version']} scores {new:.3f} on the holdout against "
            f"{current:.3f} for the serving {serving.version} ({new - current:+.3f}; at least "
            f"{margin:+.3f} is asked by min_improvement)"
        )
        return {**decision, "roll_out": False, "reason": reason}

    @task.short_circuit
    def worth_rolling_out(decision: dict[str, Any]) -> bool:
        """Go on with the rollout, or stop the run here (green, every later task skipped)."""
        print(decision["reason"])
        return bool(decision["roll_out"])

    @task
    def rollout_settings(params: dict[str, Any]) -> dict[str, Any]:
        """Check the alert and analysis Variables before anything is published; return the analysis."""
        try:
            ALERTS.notifiers()
        except ValueError as error:
            raise AirflowFailException(str(error)) from None
        return analysis_settings(params["service_name"])

    @task
    def publish(trained: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Copy the artifact to the store's ``models/``; return the candidate's environment."""
        store = artifact_store()
        version = trained["version"]
        source = Path(trained["artifact"])
        if store.startswith("gs://"):
            from airflow.providers.google.cloud.hooks.gcs import GCSHook

            bucket, prefix = gcs_path(store)
            staged, target = f"{prefix}staging/{version}/", f"{prefix}models/{version}/"
            gcs = GCSHook()
            for name in gcs.list(bucket, prefix=staged):
                if not gcs.exists(bucket, target + name.removeprefix(staged)):
                    gcs.copy(bucket, name, bucket, target + name.removeprefix(staged))
            model_uri = f"gs://{bucket}/{target.rstrip('/')}"
        else:
            final = local_dir(store) / "models" / version
            if not final.is_dir():
                copy = final.with_name(f".{version}.copy")
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(source, copy)
                copy.rename(final)
            model_uri = str(final)
        return {"model_uri": model_uri, "env": {"MODEL_URI": model_uri, **params["serving_faults"]}}

    batch = prepare_data()
    trained = train(batch)
    decision = evaluate(trained)
    settings = rollout_settings()
    published = publish(trained)
    bootstrap = KnativeDeployRevisionOperator(
        task_id="bootstrap",
        **TARGET,
        image=IMAGE,
        env=published["env"],
        autoscaling={"min-scale": 1},
        only_if_missing=True,
    )
    rollout = progressive_rollout(
        group_id="rollout",
        **TARGET,
        image=IMAGE,
        env=published["env"],
        autoscaling={"min-scale": 1},
        steps=(10, 50, 100),
        **GATES,
        analysis=settings,
        notifiers=[ALERTS],
    )
    teardown = KnativeTeardownOperator(task_id="teardown", **TARGET, keep=1)
    chain(decision, worth_rolling_out(decision), settings, published, bootstrap, rollout, teardown)
