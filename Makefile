# The two commands a newcomer needs: `make demo` and `make test`.
# Everything they need is installed here, from pinned versions.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all install browser test test-quick demo bench package clean

all: test

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# asl-validator (npm) checks every state machine the tests compile.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

# The dashboard's browser tests (tests/ui) drive the system's Chromium through Playwright, which
# never downloads a browser of its own. Installed here where apt-get may run without a prompt
# (root, or password-less sudo); elsewhere the tests skip, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "chromium is not installed and apt-get cannot run here: the browser tests will be skipped"; exit 0; fi; \
	  echo "installing chromium (apt-get) for the browser tests"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || echo "apt-get could not install chromium: the browser tests will be skipped"; }

# Property tests run more examples here than in test-quick (tests/support/hostile_strategies.py).
test: install browser
	FLOWPLANE_HYPOTHESIS=full $(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

# The fast subset to run while working: no end-to-end tests, no in-process AWS.
test-quick: install
	$(PY) -m pytest -q -n 2 -m "not slow and not aws" $(PYTEST_ARGS)

demo: install
	$(PY) -m flowplane.demo

# Metaflow, the reference, lives in its own environment so it never leaks into ours.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed-stamp: bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: install $(BENCH_VENV)/.installed-stamp
	$(PY) bench/run.py --metaflow-python $(BENCH_VENV)/bin/python

# The CloudFormation (SAM) template and Lambda bundle of a stage, in out/: deploy them with
# `aws cloudformation deploy` (README, "Deploying to AWS"). Nothing here calls AWS: chalice
# only needs some credentials to exist, so dummy ones stop it looking for real ones.
STAGE ?= dev
package: install
	rm -rf out
	env -u AWS_PROFILE AWS_ACCESS_KEY_ID=packaging AWS_SECRET_ACCESS_KEY=packaging AWS_SESSION_TOKEN= \
	  AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
	  $(VENV)/bin/chalice package --stage $(STAGE) --merge-template infra/resources.json out/
	@echo "out/sam.json and out/deployment.zip ($$(du -k out/deployment.zip | cut -f1) KB) for stage $(STAGE)"

clean:
	rm -rf $(VENV) $(BENCH_VENV) node_modules .flowplane .pytest_cache
