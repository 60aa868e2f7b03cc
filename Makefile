# One command per job: `make demo`, `make test`, `make bench`, `make lint`.
# Everything installs into .venv at the repo root, created from nothing on first use.

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
UV     := $(VENV)/bin/uv

.PHONY: install demo test test-full lint bench soak chaos clean composer

# uv installs everything (downloads in parallel, links from its cache); pip only bootstraps uv at the version
# requirements-dev.txt pins. Bytecode is compiled at install, as pip did: with PYTHONDONTWRITEBYTECODE set,
# every process of the tests would compile Airflow again.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml include/pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "$$(grep -oE '^uv==[^[:space:]#]+' requirements-dev.txt)"
	$(UV) pip install --quiet --python $(PYTHON) --compile-bytecode -r requirements-dev.txt
	# The product and the development-only local_knative and model (include/), editable, so that
	# subprocesses (python -m local_knative) import them.
	$(UV) pip install --quiet --python $(PYTHON) --no-deps --no-build-isolation -e . -e include
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PYTHON) include/demo.py

# The pure modules are listed once, in pyproject.toml's import-linter contract.
PURE_PACKAGES := import tomllib; contract = tomllib.load(open("pyproject.toml", "rb"))["tool"]["importlinter"]["contracts"][0]; print(*("-p " + name for name in contract["source_modules"]))

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict $$($(PYTHON) -c '$(PURE_PACKAGES)')
	$(VENV)/bin/lint-imports

test: lint
	$(PYTHON) -m pytest -p no:cacheprovider --durations=25 -m "not full"

# Everything make test runs, plus the longer cases marked `full` (about 5 minutes more).
test-full: lint
	$(PYTHON) -m pytest -p no:cacheprovider --durations=25

# The rollout soak: SOAK_RUNS runs of the example DAG on one Service (make test runs a sample of 7).
soak: install
	SOAK_RUNS=$${SOAK_RUNS:-30} SOAK_SEED=$${SOAK_SEED:-1} $(PYTHON) -m pytest -p no:cacheprovider -s \
		tests/integration/knative_rollout/test_rollout_soak.py

bench: install
	$(PYTHON) benchmarks/local_knative_api.py
	$(PYTHON) benchmarks/ingress.py
	$(PYTHON) benchmarks/loadgen/run.py
	$(PYTHON) benchmarks/canary_judge/run.py

# One DAG run rolls out to 10, 50 and 100 Services on the Celery topology (PostgreSQL, Redis, two
# workers) against local_knative; about 15 minutes on 2 cores. `make test` runs a 5-Service sample.
bench-fleet: install
	$(PYTHON) benchmarks/fleet.py

# The product's wheel (knative_rollout only) in dist/, as Cloud Composer or the Dockerfile installs it.
wheel: install
	rm -rf dist
	$(PYTHON) -m build --wheel --no-isolation --outdir dist .

# Deploy to Cloud Composer (README, "Cloud Composer / GKE deployment"): ENV, LOCATION, PROJECT, CLUSTER and
# SERVICE_ACCOUNT (the environment's) are required; NAMESPACE (default models), CLUSTER_LOCATION, GUARDRAILS
# (JSON), TRIGGERERS, FROM (resume at a step) optional. DRY_RUN=1 (any value but 0) only prints the commands.
composer: install
	$(PYTHON) include/composer_deploy.py --environment "$(ENV)" --location "$(LOCATION)" --project "$(PROJECT)" \
		--cluster "$(CLUSTER)" --service-account "$(SERVICE_ACCOUNT)" $(if $(NAMESPACE),--namespace "$(NAMESPACE)") \
		$(if $(CLUSTER_LOCATION),--cluster-location "$(CLUSTER_LOCATION)") $(if $(GUARDRAILS),--guardrails '$(GUARDRAILS)') \
		$(if $(TRIGGERERS),--triggerer-count "$(TRIGGERERS)") $(if $(FROM),--from "$(FROM)") $(if $(filter-out 0,$(DRY_RUN)),--dry-run)

clean:
	rm -rf $(VENV) .demo build dist *.egg-info plugins/*.egg-info include/*.egg-info

# The chaos suite: CHAOS_TRIALS seeded rollouts under random API, watch, ingress and pod faults, invariants
# checked after each (about 10-40 s a trial on 2 cores; make test runs 3). CHAOS_REPLAY=SEED,... reruns the
# trials a broken run printed. The summary goes to benchmarks/results/chaos.json. Also every crash-resume case.
chaos: install
	CHAOS_TRIALS=$${CHAOS_TRIALS:-200} CHAOS_SEED=$${CHAOS_SEED:-1} CHAOS_REPORT=$${CHAOS_REPORT:-benchmarks/results/chaos.json} \
		CHAOS_FULL=1 $(PYTHON) -m pytest -p no:cacheprovider -s tests/integration/knative_rollout/test_chaos.py \
		tests/integration/knative_rollout/test_chaos_crash.py
