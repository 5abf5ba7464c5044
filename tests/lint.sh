#!/usr/bin/env bash
# The checks a collection release needs, over the whole repository (make lint; make test runs it first):
#   ansible-test sanity and units (tests/sanity/run.sh), ansible-lint --profile production (.ansible-lint),
#   antsibull-docs lint-collection-docs, antsibull-changelog lint and lint-changelog-yaml.
# Offline apart from PyPI; nothing is installed into a collections path. Every step runs; any finding in any
# step fails the script (the failed steps are listed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.work/collections"   # bootstrap links the working tree there
export ANSIBLE_NOCOLOR=1 NO_COLOR=1

failed=()
step() { printf '\n=== lint: %s\n' "$1"; shift; "$@" || failed+=("$*"); }

step "ansible-test sanity + units (ansible-core $(.venv/bin/python -c 'import ansible; print(ansible.__version__)'))" \
  tests/sanity/run.sh .venv
step "ansible-lint --profile production" ansible-lint --nocolor --offline --profile production
step "antsibull-docs lint-collection-docs" antsibull-docs lint-collection-docs --plugin-docs .
step "antsibull-changelog lint" antsibull-changelog lint
step "antsibull-changelog lint-changelog-yaml" antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

if [ ${#failed[@]} -gt 0 ]; then
  printf '\n=== lint FAILED: %s\n' "${failed[@]}"
  exit 1
fi
printf '\n=== lint: all clean\n'
