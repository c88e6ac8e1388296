# Two entry points a new user needs: `make app` and `make test`.
# Each one builds .venv/ on first use; nothing has to be installed by hand beforehand.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: app test venv system-deps bench clean

# Debian packages: the Fashion-MNIST files and a headless Chromium for the browser tests.
system-deps:
	@bash scripts/system-deps.sh

$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	# torch first, pinned to the CPU build on this machine's disk (a bare `torch` would pull CUDA).
	.venv/bin/pip install -q torch==2.13.0
	.venv/bin/pip install -q -e '.[test,ray]'
	touch $(VENV_STAMP)

venv: $(VENV_STAMP)

# app/serve.py is `streamlit run app/Home.py` that first starts warming the app's caches (imports, the default
# graph, model and spectra), so that they are ready by the first visit rather than started by it.
app: system-deps venv
	$(PY) app/serve.py --server.address 127.0.0.1 --server.port $${PORT:-8501} --server.headless true --browser.gatherUsageStats false

test: system-deps venv
	.venv/bin/python -m pytest -q tests

bench: venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv build *.egg-info
