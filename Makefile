# The two commands of the quickstart: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PYTEST_ARGS ?=

.PHONY: bootstrap test demo clean

bootstrap:
	tests/bootstrap.sh

test: bootstrap
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

demo: bootstrap
	$(VENV)/bin/python -m tests.demo

clean:
	rm -rf .work
