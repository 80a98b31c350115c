# scaleplane's two everyday commands, each setting itself up on a fresh machine:
#   make plan [STACK=local]   the offline plan (no Pulumi CLI, cloud or cluster needed); STACK=all: every stack
#   make test                 the test suite
#   make reference            fetch the pinned upstream files (CRDs, chart values) into .scaleplane/reference
#                             (needed only where no reference set is beside the project)
PYTHON ?= python3
VENV ?= venv
STACK ?= local
INSTALLED := $(VENV)/.installed

.PHONY: plan test lint reference

$(INSTALLED): requirements.txt requirements-dev.txt policy/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "scaleplane needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1). Run: make PYTHON=python3.12 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	touch $@

plan: $(INSTALLED)
	$(VENV)/bin/python -m deploy plan --stack $(STACK)

reference: $(INSTALLED)
	$(VENV)/bin/python -m deploy reference

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
