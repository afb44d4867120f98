# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv and install strato (editable, with test extras) first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench docs coverage clean

$(BIN)/strato: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# PSI/J finds executors in psij-descriptors folders of sys.path, which an editable
	# install does not create (a wheel does): link strato's into the venv
	sp=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  mkdir -p "$$sp/psij-descriptors" && \
	  ln -sf "$(CURDIR)/psij-descriptors/strato_descriptor.py" "$$sp/psij-descriptors/"
	touch $@

demo: $(BIN)/strato
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/strato start --config examples/demo.toml sh examples/workflow.sh

# strato top's tests drive it in a real terminal, tmux, and the MPI tests build and run
# a program with Debian's MPICH (mpicc.mpich): installed with apt where they are missing
# and can be (as root), else those tests skip and say why.
test: $(BIN)/strato
	@command -v tmux >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq tmux >/dev/null 2>&1; } \
	  || echo "tmux is missing and cannot be installed: the strato top tests will skip"
	@command -v mpicc.mpich >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq >/dev/null 2>&1 \
	  && apt-get install -y -qq mpich libmpich-dev >/dev/null 2>&1; } \
	  || echo "MPICH is missing and cannot be installed: the MPI tests will skip"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The documentation site, in site/: MkDocs with --strict (mkdocs.yml), so a broken
# link or an API reference that cannot be collected fails, naming page and link.
# Installs the optional [docs] extra into .venv first (once).
$(VENV)/.docs-installed: $(BIN)/strato pyproject.toml
	$(BIN)/pip install -q -e '.[test,docs]'
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Branch coverage of the whole suite, the instances and commands it starts included,
# reported per package (htmlcov/index.html for the lines).
coverage: $(BIN)/strato
	rm -rf .coverage .coverage.* htmlcov
	$(BIN)/coverage run -m pytest -p no:cacheprovider --timeout=300
	$(BIN)/coverage combine -q
	$(BIN)/coverage html -q
	$(BIN)/python tests/coverage_report.py

bench: $(BIN)/strato
	$(BIN)/python tests/bench/run_all.py

clean:
	rm -rf $(VENV) build site *.egg-info .coverage .coverage.* htmlcov
