# The two commands of the quickstart: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PYTEST_ARGS ?=

.PHONY: bootstrap test demo ee clean

bootstrap:
	tests/bootstrap.sh

test: bootstrap
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

demo: bootstrap
	$(VENV)/bin/python -m tests.demo

# The execution environment localhost/rolesanywhere-fleet-ee:<version>, built offline (docs/execution-environment.md).
ee: bootstrap
	$(VENV)/bin/python tests/ee/build.py

clean:
	rm -rf .work
