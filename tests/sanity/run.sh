#!/usr/bin/env bash
# ansible-test sanity and units for the whole repository, with the ansible-core of a virtualenv:
#   tests/sanity/run.sh [VENV] [--no-ignores]      (VENV: .venv by default; .venv-compat for the oldest core)
# ansible-test needs the collection at .../ansible_collections/rolesanywhere/fleet: the committed and
# untracked (not ignored) files are copied there, under .work/ansible-test/<venv>/, as a git repository of
# their own so ansible-test lists exactly them. Offline apart from PyPI: the pip bootstrap script that
# ansible-test would download is replaced by tests/sanity/get_pip_offline.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
VENV=${1:-.venv}
NO_IGNORES=${2:-}
PY=$REPO/$VENV/bin/python

pip_version=$("$PY" - <<'PYEOF'
import re, pathlib, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PYEOF
)
mkdir -p "$HOME/.ansible/test/cache"
cp tests/sanity/get_pip_offline.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

COPY=$REPO/.work/ansible-test/$(basename "$VENV")/ansible_collections/rolesanywhere/fleet
rm -rf "$COPY"
mkdir -p "$COPY"
git ls-files -co --exclude-standard | while IFS= read -r path; do [ -e "$path" ] && printf '%s\n' "$path"; done \
  | tar -cf - -T - | tar -xf - -C "$COPY"
if [ "$NO_IGNORES" = "--no-ignores" ]; then rm -f "$COPY"/tests/sanity/ignore-*.txt; fi
cd "$COPY"
git init -q && git add -A

export PATH="$REPO/$VENV/bin:$PATH"
python_version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
status=0
ansible-test sanity --local --python "$python_version" --color no || status=1
ansible-test units --local --python "$python_version" --color no || status=1
exit $status
