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

# Tests drive real tools: strato top runs in tmux, the MPI tests build and run a program
# with Debian's MPICH (mpicc.mpich), and strato starts under Slurm (slurm-wlm and munge;
# tools/slurm-up.sh starts the daemons). Each package whose command is missing is
# installed with apt where it can be (as root), else those tests skip and say why;
# when all are there, this costs a few `command -v`.
# The suite runs in TEST_WORKERS pytest-xdist workers (most tests wait on the processes
# they start, so two workers finish well before one even on 2 cores); --dist loadgroup
# keeps the tests marked machine_wide (tests/conftest.py) in one worker, one at a time.
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
APT_NEEDS := tmux:tmux mpicc.mpich:mpich mpicc.mpich:libmpich-dev srun:slurm-wlm \
  slurmctld:slurm-wlm slurmd:slurm-wlm munged:munge
test: $(BIN)/strato
	@missing=$$(for need in $(APT_NEEDS); do command -v $${need%%:*} >/dev/null \
	  || echo $${need#*:}; done | sort -u | tr '\n' ' '); \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1; } \
	  || echo "could not apt-get install $${missing}(needs root and apt): the tests needing them skip"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

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
