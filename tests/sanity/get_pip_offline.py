"""Stand-in for the pip bootstrap script ansible-test downloads (get-pip-<version>.py) into its cache.

ansible-test runs it with the fresh sanity virtualenv's Python and get-pip's arguments. Instead of a pip
carried inside the script, this bootstraps the pip wheel the interpreter ships (ensurepip, offline), then
installs the requested packages (pinned pip) from the configured package index.
"""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own environment, which would drop
# the machine's pip configuration (index, certificates) for the install below.
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *pip_args], check=True)
