# Images of docker-compose.yaml, built from this checkout (no _PIP_ADDITIONAL_REQUIREMENTS at start-up).
#
#   target airflow        apache/airflow with the knative-rollout wheel (knative_rollout only), installed
#                         against the pinned requirements, as on Cloud Composer
#   target local-knative  the same image plus include/ (local_knative, the example model) and
#                         scikit-learn, running the one-machine Knative cluster and its model servers
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2

FROM ${AIRFLOW_IMAGE} AS wheel
COPY --chown=airflow:0 pyproject.toml README.md /src/
COPY --chown=airflow:0 plugins /src/plugins
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist /src

FROM ${AIRFLOW_IMAGE} AS airflow
ARG AIRFLOW_VERSION=3.3.2
COPY requirements.txt /tmp/requirements.txt
COPY --from=wheel /tmp/dist /tmp/dist
# Keep the image's Airflow where it is; everything else at the versions this project tests with.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /tmp/dist/knative_rollout-*.whl \
        --constraint /tmp/requirements.txt \
    && python -c "import knative_rollout, knative_rollout.plugin"

FROM airflow AS local-knative
COPY --chown=airflow:0 include /opt/knative-rollout/include
RUN pip install --no-cache-dir --no-deps /opt/knative-rollout/include \
    && pip install --no-cache-dir scikit-learn joblib --constraint /tmp/requirements.txt
# The named volume takes this folder's owner: the Airflow containers (same uid) read the kubeconfig.
USER root
RUN mkdir -p /opt/local-knative && chown airflow:0 /opt/local-knative
USER airflow
WORKDIR /opt/knative-rollout/include
# Not Airflow: the base image's entrypoint would run `airflow ...`.
ENTRYPOINT []
CMD ["python", "-m", "local_knative", "serve", "--data-dir", "/opt/local-knative"]
