#!/usr/bin/env bash
# The oldest ansible-core the collection supports (requires_ansible in meta/runtime.yml), in .venv-compat:
# ansible-test sanity and units, then module and role tests (one test file per module family and role kind;
# no fleet). make compat; make test runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-compat
if [ ! -x $VENV/bin/python ] || ! cmp -s tests/requirements-compat.txt $VENV/.requirements.txt; then
  echo "compat: creating $VENV from tests/requirements-compat.txt"
  python3 -m venv $VENV
  $VENV/bin/pip install -q --disable-pip-version-check -r tests/requirements-compat.txt
  cp tests/requirements-compat.txt $VENV/.requirements.txt
fi
core=$($VENV/bin/python -c 'import ansible; print(ansible.__version__)')
floor=$($VENV/bin/python -c 'import yaml; print(yaml.safe_load(open("meta/runtime.yml"))["requires_ansible"])')
echo "compat: ansible-core $core (requires_ansible $floor)"
$VENV/bin/python - "$core" "$floor" <<'PYEOF'
import sys
from ansible.module_utils.compat.version import LooseVersion
core, floor = sys.argv[1], sys.argv[2].lstrip(">=").strip()
assert LooseVersion(core).version[:2] == LooseVersion(floor).version[:2], f"{core} is not the floor {floor}"
PYEOF

tests/sanity/run.sh $VENV

export PATH="$PWD/$VENV/bin:$PATH"
$VENV/bin/python -m pytest -p no:cacheprovider -m "not fleet and not tpm" "$@" \
  tests/unit \
  tests/integration/x509/test_x509_issue.py tests/integration/x509/test_x509_crl.py tests/integration/x509/test_role_ca.py \
  tests/integration/pkcs11/test_pkcs11_modules.py tests/integration/pkcs11/test_token_role.py \
  tests/integration/aws/test_rolesanywhere_trust_anchor.py tests/integration/aws/test_rolesanywhere_profile.py \
  tests/integration/aws/test_aws_setup_playbook.py tests/release
