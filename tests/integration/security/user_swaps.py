"""Class 1, directories swapped DURING a run: the user replaces ~/.aws and ~/.config by links to a root-owned
directory while root is working for that user.

- Between two tasks of one play (``play_with_swap``): a task signals that the first write is done and waits;
  the user swaps both directories; the play goes on. The next writes must be refused by name.
- Inside one module run (``module_with_swap``, localhost): the module runs with ``os.open`` hooked so that the
  swap happens at an exact point: after the walk saw the directory and before it opens it (the kernel refuses
  the link: O_NOFOLLOW), or after the directory was opened and before the file is created in it (the write lands
  in the user's moved directory through the descriptor, never in the link's target).

Either way nothing may appear in the root-owned directory and the root-only secret keeps its content, owner and
mode (``user_links.state``).
"""
import json

from tests.integration.security.user_links import credential_args, places

SWAP = "mv {home}/{name} {home}/{name}-moved && ln -s {victim} {home}/{name}"


def swap_command(user, home, names):
    victim = places(user)[2]
    return " && ".join(SWAP.format(home=home, name=name, victim=victim) for name in names)


def pin_args(user, home):
    return dict(path=f"{home}/.config/ra/pin", content="97315", owner=user, mode="0600")


def play_with_swap(user, home, signal_dir):
    """A play (JSON is YAML): write ~/.aws/config and the PIN file, signal, wait for the swap, write both again."""
    first = credential_args(user, home)
    second = dict(first, profile="ra-second")
    tasks = [
        {"name": "First write of the AWS config", "rolesanywhere.fleet.aws_credential_process": first},
        {"name": "First write of the PIN file", "rolesanywhere.fleet.owned_path": pin_args(user, home),
         "no_log": True},
        {"name": "Signal: first writes done", "ansible.builtin.file": {"path": f"{signal_dir}/ready", "state": "touch",
                                                                       "mode": "0600"}},
        {"name": "Wait for the swap", "ansible.builtin.wait_for": {"path": f"{signal_dir}/go", "timeout": 300}},
        {"name": "Second write of the AWS config", "rolesanywhere.fleet.aws_credential_process": second,
         "register": "second_config", "ignore_errors": True},
        {"name": "Second write of the PIN file", "rolesanywhere.fleet.owned_path": dict(pin_args(user, home),
                                                                                        content="13579"),
         "register": "second_pin", "ignore_errors": True},
        {"name": "Outcome", "ansible.builtin.debug": {
            "msg": "OUTCOME {{ {'config': second_config.msg | default('written'), "
                   "'pin': second_pin.msg | default('written')} | to_json }}"}},
    ]
    return [{"hosts": "all", "gather_facts": False, "tasks": tasks}]


def outcome(stdout):
    """The second writes' messages from the play's last task."""
    for line in stdout.splitlines():
        if '"msg": "OUTCOME ' in line:
            return json.loads(json.loads("{" + line.strip().rstrip(",") + "}")["msg"][len("OUTCOME "):])
    raise AssertionError(f"the play printed no outcome:\n{stdout[-6000:]}")


# Runs as root on localhost: the module, with os.open hooked to run the user's swap at one point (see above).
HOOKED_MODULE = r'''
import os, runpy, subprocess, sys
module, args, trigger, is_dir, swap = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "dir", sys.argv[5]
user = sys.argv[6]
real_open, fired = os.open, []

def hooked(path, flags, mode=0o777, *, dir_fd=None):
    matches = path == trigger if is_dir else str(path).startswith(trigger) and str(path).endswith(".tmp")
    if matches and dir_fd is not None and not fired:
        fired.append(path)
        subprocess.run(["runuser", "-u", user, "--", "sh", "-c", swap], check=True)
    return real_open(path, flags, mode, dir_fd=dir_fd)

os.open = hooked
sys.argv = [module, args]
try:
    runpy.run_module(module, run_name="__main__")
finally:
    sys.stderr.write("FIRED %r\n" % fired)
'''
