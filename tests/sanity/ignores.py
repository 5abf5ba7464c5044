"""Write tests/sanity/ignore-<core>.txt from an `ansible-test sanity` log: development files only.

Only repository tooling that is not in the built collection (tests/, bench/, ra_local/, aws_gate/,
extensions/) may be ignored, each line with its reason; a finding in shipped code (plugins/, roles/, meta/,
playbooks/, ...) is printed and the script fails: fix it instead. Fix what is cheap to fix first; then
    tests/lint.sh --no-ignores 2>&1 | tee /tmp/sanity.log
    .venv/bin/python tests/sanity/ignores.py /tmp/sanity.log > tests/sanity/ignore-2.19.txt
"""
import re
import sys

DEV_PREFIXES = ("tests/", "bench/", "ra_local/", "aws_gate/", "extensions/")

# Why a development-only finding is accepted, by sanity test and code.
REASONS = {
    "pylint:disallowed-name": "dev tool: `_` names a value deliberately unused",
    "pylint:subprocess-run-check": "dev tool: the caller asserts the return code itself",
    "pylint:unused-import": "dev tool: conftest modules import fixtures so pytest registers them",
    "pylint:use-maxsplit-arg": "dev tool: readability over micro-optimisation in test helpers",
    "pylint:consider-using-from-import": "dev tool: import style of a test helper",
    "pylint:unnecessary-lambda-assignment": "dev tool: a one-line test helper",
    "pylint:repeated-keyword": "dev tool: pylint misreads **dict(defaults, key=value) overrides as repeated keywords",
    "pylint:dangerous-default-value": "dev tool: a module-level constant default that the function only reads",
    "pylint:trailing-newlines": "dev tool: formatting only",
    "pep8:E127": "dev tool: continuation-line alignment (formatting only)",
    "pep8:E128": "dev tool: continuation-line alignment (formatting only)",
    "pep8:E302": "dev tool: blank lines (formatting only)",
    "pep8:E731": "dev tool: a one-line test helper",
    "pep8:W391": "dev tool: formatting only",
    "shebang": "dev script run on the controller, where the interpreter is python3 (Debian has no `python`)",
}

SECTION = re.compile(r"^ERROR: Found \d+ (\S+) issue\(s\)")
FINDING = re.compile(r"^ERROR: ([^:\s]+):\d+:\d+: (.*)$")


def main(log_path):
    ignores, shipped, unknown = {}, [], []
    test = None
    for line in open(log_path, encoding="utf-8"):
        line = line.rstrip("\n")
        section = SECTION.match(line)
        if section:
            test = section.group(1)
            continue
        finding = FINDING.match(line)
        if not finding or test is None:
            continue
        path, message = finding.groups()
        if test in ("pylint", "pep8"):
            key = f"{test}:{message.split(':')[0].strip()}"
        else:
            key = test
        if not path.startswith(DEV_PREFIXES):
            shipped.append(line)
        elif key not in REASONS:
            unknown.append(line)
        else:
            ignores[(path, key)] = REASONS[key]
    for line in shipped:
        print(f"shipped code must pass, fix it: {line}", file=sys.stderr)
    for line in unknown:
        print(f"no accepted reason for this finding (fix it, or add a reason to REASONS): {line}", file=sys.stderr)
    for (path, key), reason in sorted(ignores.items()):
        print(f"{path} {key}  # {reason}")
    return 1 if shipped or unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
