# The two commands of the quickstart: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PYTEST_ARGS ?=

.PHONY: bootstrap test lint compat build demo ee clean

bootstrap:
	tests/bootstrap.sh

# Release checks first (sanity, ansible-lint, docs and changelog lints; then the oldest supported
# ansible-core), then the whole pytest suite.
test: bootstrap lint compat
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: bootstrap
	tests/lint.sh

compat: bootstrap
	tests/compat.sh

# The collection tarball as users install it (ansible-galaxy collection install <tarball>).
build: bootstrap
	$(VENV)/bin/ansible-galaxy collection build --force --output-path .work/dist .

demo: bootstrap
	$(VENV)/bin/python -m tests.demo

# The execution environment localhost/rolesanywhere-fleet-ee:<version>, built offline (docs/execution-environment.md).
ee: bootstrap
	$(VENV)/bin/python tests/ee/build.py

clean:
	rm -rf .work
