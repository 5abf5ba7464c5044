# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate rotation on a host: the run lock, the due decision and the journal that makes a killed run safe.

Used by the rolesanywhere_rotation module. Pure Python (stdlib) for the decision; proving a generation and
deleting keys import python-pkcs11, cryptography and the CreateSession signer (_sigv4x509) when they run.

A rotation builds a new *generation* (key label, certificate and chain paths) next to the current one,
proves it, switches the users' ~/.aws/config files to it (each rewritten atomically) and only then retires
the old generation. The journal (key ``rotation`` of the host state file) records each step, so the next
run knows what a killed run left behind:

    pending, phase "started"    -> the new generation is incomplete (its key may exist): discard it (the host
                                   still uses the current one) and start again
    pending, phase "switching"  -> installed and proven; some configs may already use it: finish the switch
                                   (each profile is checked again), or roll the configs back
    retiring                    -> the switch is done: retire the old generation

The generations' files live in the signing user's directory; this module writes and deletes them as root
through a descriptor of that directory (never through a link the user planted). The new key is proven and
old keys are deleted with the signing user's identity, in a child process (run_as); without a token the
caller deletes the keys.
"""
import datetime
import fcntl
import hashlib
import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import time

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _host_state
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _metrics
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _user_files


class RotationError(Exception):
    """A problem that stops the rotation; the message names it and the fix."""


class LockBusy(RotationError):
    """Another run held the host's lock for longer than this run would wait."""


class RunLock:
    """A lock held across the tasks of one run: a lease record (owner, expiry) guarded by flock.

    Each task of a run renews the lease; a run that dies leaves a lease that expires after ``ttl`` seconds,
    so a later run never waits forever. ``ttl`` must exceed the longest gap between two tasks of a run.
    """

    def __init__(self, path):
        self.path = path

    def _update(self, decide):
        """Run ``decide(current_record) -> new_record | None`` under flock; returns what decide returned."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 65536)
            try:
                record = json.loads(raw) if raw.strip() else {}
            except ValueError:
                record = {}  # a torn write from a killed run: the lease is void
            new = decide(record)
            if new is not None:
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(new).encode())
                os.fsync(fd)
            return new
        finally:
            os.close(fd)  # releases the flock

    def acquire(self, owner, ttl, wait, clock=time.time, sleep=time.sleep):
        """Take or renew the lease for ``owner``; wait up to ``wait`` seconds for another run's lease to end.

        Returns the seconds spent waiting. Raises LockBusy naming the holder when the wait runs out.
        """
        started = clock()
        holder = {}

        def take(record):
            now = clock()
            if record.get("owner") in (None, owner) or record.get("expires_at", 0) <= now:
                return {"owner": owner, "acquired_at": record.get("acquired_at", now) if record.get("owner") == owner
                        else now, "expires_at": now + ttl}
            holder.update(record)
            return None

        while True:
            if self._update(take) is not None:
                return round(clock() - started, 1)
            if clock() - started >= wait:
                raise LockBusy(
                    f"another rotation run ({holder.get('owner')}) has held {self.path} since "
                    f"{_when(holder.get('acquired_at'))}; waited {wait}s. Runs on one host take turns: rerun later. "
                    f"If that run died, its lock expires at {_when(holder.get('expires_at'))}.")
            sleep(min(1.0, max(0.1, wait / 50)))

    def renew(self, owner, ttl, clock=time.time):
        """Extend this run's lease; RotationError when another run has taken it over (ours had expired)."""
        lost = {}

        def extend(record):
            # Even an expired lease is still ours if no other run took it; a free one was released by another
            # run after ours expired, and what this run knows of the host may be stale.
            if record.get("owner") == owner:
                return dict(record, expires_at=clock() + ttl)
            lost.update(record)
            return None

        if self._update(extend) is None:
            raise RotationError(
                f"this run lost its lock on {self.path} (it expired and run {lost.get('owner') or 'another run'} took "
                "over): this run stops without touching the host. Raise rotate_lock_ttl above the longest gap "
                "between two tasks of a run.")

    def release(self, owner):
        """Drop the lease if this run holds it (another run's lease is left alone)."""
        self._update(lambda record: {} if record.get("owner") == owner else None)


def _when(epoch):
    if epoch is None:
        return "an unknown time"
    return _host_state.timestamp(datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc))


def jitter_fraction(host, serial):
    """A stable number in [0, 1) per host and certificate: spreads a fleet's renewals over the window."""
    digest = hashlib.sha256(f"{host}\0{serial}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def due_decision(summary, renew_before, jitter, host, now, force=False):
    """(due, reason) for the current certificate's summary (see _host_state.certificate_summary).

    The renewal window (``renew_before``) shrinks per host by up to ``jitter`` (0..1) of itself, so hosts
    whose certificates were issued together do not all renew in the same run.
    """
    if force:
        return True, "forced"
    not_after = datetime.datetime.strptime(summary["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    left = (not_after - now).total_seconds()
    window = renew_before.window_seconds(summary["lifetime_seconds"])
    window *= 1 - jitter * jitter_fraction(host, summary["serial"])
    if left <= window:
        return True, f"{left / 86400:.1f} days left, inside the renewal window of {window / 86400:.1f} days"
    return False, f"{left / 86400:.1f} days left, renewal window {window / 86400:.1f} days"


def generation(name, key_label, pki_dir, chain):
    """Where one generation lives: its key label on the token and its files."""
    return {
        "name": name,
        "key_label": key_label,
        "certificate": os.path.join(pki_dir, name + ".pem"),
        "chain": os.path.join(pki_dir, name + "-chain.pem") if chain else None,
        "csr": os.path.join(pki_dir, name + ".csr"),
    }


def new_generation_name(base, now, taken):
    name = f"{base}-{now:%Y%m%d%H%M%S}"
    suffix = 1
    while name in taken:  # two rotations within one second (forced reruns)
        name = f"{base}-{now:%Y%m%d%H%M%S}-{suffix}"
        suffix += 1
    return name


class Rotation:
    """The host state file and its rotation journal, for one run (``owner``)."""

    def __init__(self, state_path, lock, owner, ttl, dry_run=False):
        self.state_path = state_path
        self.lock = lock
        self.owner = owner
        self.ttl = ttl
        self.dry_run = dry_run  # check mode: decide, write nothing, take no lock
        self.original = _host_state.read_state(state_path)
        self.state = json.loads(json.dumps(self.original))
        self.journal = self.state.get("rotation") or {}

    def save(self, **fields):
        """Write the journal and monitoring fields atomically, after renewing this run's lease."""
        self.state = dict(self.state, rotation=self.journal, **fields)
        if not self.dry_run:
            self.lock.renew(self.owner, self.ttl)
            _host_state.write_state(self.state_path, self.state)

    @property
    def changed(self):
        """Whether the host's state changed; the journal a first run starts (nothing due, nothing pending) and
        fields set to None are bookkeeping, so the first scheduled run after enrol reports no change either."""
        original = {k: v for k, v in self.original.items() if v is not None}
        state = {k: v for k, v in self.state.items() if v is not None}
        journal = state.get("rotation") or {}
        first_run_skeleton = (
            "rotation" not in original and set(journal) <= {"current", "discard"} and not journal.get("discard")
            and journal.get("current", {}).get("name") == journal.get("current", {}).get("key_label")
            and state.get("rotation_state") in (None, "ok"))
        if first_run_skeleton:
            original.update((k, state[k]) for k in ("rotation", "rotation_state") if k in state)
        return _host_state.merge_state(original, state)[1]

    def begin(self, *, host, base_label, pki_dir, chain, renew_before, jitter, force, rekey, now):
        """Decide what this run does on the host; records a new pending generation when one is due.

        With nothing due and nothing left over, the run is done here: the state says ok and the lock is free.
        """
        current = self.journal.setdefault("current", generation(base_label, base_label, pki_dir, chain))
        discard = self.journal.setdefault("discard", [])
        pending = self.journal.get("pending")
        plan = {"current": current, "discard": discard, "retire": self.journal.get("retiring"), "new": None,
                "resume": False, "done": False}
        if pending and self.journal.get("phase") == "switching":
            plan.update(new=pending, resume=True, due=True, reason="finishing the switch of a run that stopped")
            self.save(last_attempt_at=_host_state.timestamp(now))
            return plan
        if pending:  # unproven leftovers of a run that stopped: the host never used them
            self._queue_discard(delete_key=True)
        summary = read_certificate(current["certificate"], self.state)
        due, reason = due_decision(summary, renew_before, jitter, host, now, force)
        plan.update(due=due, reason=reason)
        fields = {"last_attempt_at": _host_state.timestamp(now)}
        if due:
            taken = {g["name"] for g in [current] + discard + ([plan["retire"]] if plan["retire"] else [])}
            name = new_generation_name(base_label, now, taken)
            plan["new"] = generation(name, name if rekey else current["key_label"], pki_dir, chain)
            self.journal.update(pending=plan["new"], phase="started")
            try:  # whatever the user left at the new names (the CSR step, as the user, must not trip on it)
                self.remove_files([plan["new"]])
            except (RotationError, OSError):
                pass  # the step that writes there names the problem, inside the role's rescue
            fields["rotation_state"] = "due"
        elif not (discard or plan["retire"]):
            # "renewed" stays until the next attempt that has work to do: reruns change nothing.
            fields.update(summary, last_error=None, stuck_since=None,
                          rotation_state="renewed" if self.state.get("rotation_state") == "renewed" else "ok",
                          attempts=self._attempt(True, fields["last_attempt_at"]))
            plan["done"] = True
        self.save(**fields)
        if plan["done"]:
            self.release()
        return plan

    def install(self, certificate, chain, owner, token=None, session=None):
        """Write the new generation's certificate (and chain) for ``owner``, 0644, and with ``session`` prove it
        (see prove); then the switch may begin."""
        pending = self.journal.get("pending")
        if not pending or self.journal.get("phase") != "started":
            raise RotationError("no new generation is being made on this host: the run lost track; rerun the rotation")
        self._hold()
        contents = [(pending["certificate"], certificate)]
        if pending["chain"]:
            contents.append((pending["chain"], chain))
        for path, content in contents:
            if "-----BEGIN CERTIFICATE-----" not in (content or ""):
                raise RotationError(f"no PEM certificate was given for {path}: the issuer returned none")
        try:
            uid, gid = _user_files.account(owner, None)
            for path, content in contents if not self.dry_run else ():
                directory, name = _user_files.split(path)
                fd = _open_directory(directory, uid)
                try:
                    _user_files.write_file(fd, name, content.encode(), 0o644, uid, gid, path)
                finally:
                    os.close(fd)
        except _user_files.UnsafePath as exc:
            raise RotationError(str(exc)) from None
        if session is not None and not self.dry_run:
            prove(token, pending, session)
        self.journal["phase"] = "switching"
        self.save()

    def remove_files(self, generations):
        """Delete the generations' certificate, chain and CSR files. Each name is unlinked in the directory's
        descriptor: a link the user put there is removed, never followed."""
        for path in [p for g in generations for p in (g["certificate"], g["chain"], g["csr"]) if p]:
            directory, name = _user_files.split(path)
            try:
                fd = _open_directory(directory)
            except _user_files.MissingDirectory:
                continue
            try:
                if not self.dry_run:
                    _unlink(fd, name, path)
            finally:
                os.close(fd)

    def switched(self, confirm=lambda: None):
        """The new generation is in every config and proven: it becomes current, the old one is to retire.

        ``confirm()`` (write the profiles, check each) runs once this run is known to hold the lock and a proven
        generation; its exception stops the switch. Returns what it returned."""
        pending = self.journal.get("pending")
        if not pending or self.journal.get("phase") != "switching":
            raise RotationError("switched without a proven pending generation: rerun the rotation")
        self._hold()
        confirmed = confirm()
        old = self.journal["current"]
        if self.journal.get("retiring"):  # a stopped run's retirement, not finished: discarded with the rest
            self.journal.setdefault("discard", []).append(self.journal["retiring"])
        self.journal.update(current=pending, retiring=dict(old, delete_key=old["key_label"] != pending["key_label"]))
        self.journal.pop("pending")
        self.journal.pop("phase")
        self.save(last_verified_at=_host_state.timestamp())
        return confirmed

    def finish(self, now, token=None):
        """Retire the old generation and discard the leftovers (their keys deleted on ``token``, see delete_keys;
        without it the caller deleted them): the host runs on its current generation."""
        self._hold()
        retiring = self.journal.get("retiring")
        leftovers = self.journal.get("discard", []) + ([retiring] if retiring else [])
        if token is not None:
            delete_keys(token, leftovers)
        self.remove_files(leftovers)
        renewed = self.journal.pop("retiring", None) is not None
        self.journal["discard"] = []
        fields = dict(read_certificate(self.journal["current"]["certificate"]), last_error=None, stuck_since=None,
                      key_label=self.journal["current"]["key_label"],
                      rotation_state="renewed" if renewed or self.state.get("rotation_state") == "renewed" else "ok")
        if renewed:
            fields["renewed_at"] = _host_state.timestamp(now)
        fields["attempts"] = self._attempt(True, self.state.get("last_attempt_at") or _host_state.timestamp(now))
        self.save(**fields)
        self.release()

    def fail(self, error, now, new_key_made=True):
        """Record a failed attempt; unproven work is queued for discarding. Returns what the caller must undo.

        ``new_key_made`` False: the step that makes the new key failed before making it (its token refused the
        PIN), so there is no key to delete and the token is never logged in to again for it.
        After the switch started, the configs must point back at the current generation (the caller does
        that, then calls rolled_back) before the pending one may be discarded.
        """
        phase = self.journal.get("phase")
        if self.journal.get("pending") and phase != "switching":
            self._queue_discard(delete_key=new_key_made)
        self.save(rotation_state="failed", last_error=str(error)[:2000],
                  stuck_since=self.state.get("stuck_since") or _host_state.timestamp(now),
                  last_attempt_at=_host_state.timestamp(now),
                  attempts=self._attempt(False, _host_state.timestamp(now)))
        return {"phase": phase, "rollback_configs": phase == "switching", "discard": self.journal.get("discard", [])}

    def _attempt(self, success, when):
        return _metrics.record_attempt(self.state, "rotation", success, when)

    def _queue_discard(self, delete_key):
        """Move the pending generation to the discard list; its key goes too unless the current one shares it."""
        pending = dict(self.journal.pop("pending"))
        self.journal.pop("phase", None)
        pending["delete_key"] = delete_key and pending["key_label"] != self.journal["current"]["key_label"]
        self.journal.setdefault("discard", []).append(pending)

    def rolled_back(self):
        """The configs point at the current generation again: the pending one can be discarded."""
        if self.journal.get("pending"):
            self._queue_discard(delete_key=True)
        self.save()
        return self.journal["discard"]

    def release(self, keep_discard=False, token=None):
        """End the run on this host: the leftovers' files go, and their keys (on ``token``, or by the caller),
        unless ``keep_discard``: then the keys stay queued for the next run (after a refused PIN). Returns a
        warning when the keys could not be deleted (they stay queued; the lock is freed all the same)."""
        self._hold()
        warning = None
        if token is not None and not keep_discard:
            try:
                delete_keys(token, self.journal.get("discard", []))
            except RotationError as exc:
                warning, keep_discard = f"{exc}; the next run deletes them", True
        try:
            self.remove_files(self.journal.get("discard", []))
        finally:
            if self.journal.get("discard") and not keep_discard:
                self.journal["discard"] = []
                self.save()
            if not self.dry_run:
                self.lock.release(self.owner)
        return warning

    def _hold(self):
        """Before touching the host: this run must still hold its lock (it may have expired and been taken)."""
        if not self.dry_run:
            self.lock.renew(self.owner, self.ttl)


def delete_keys(token, generations):
    """Delete the keys of ``generations`` marked ``delete_key`` from the signing user's token, as that user.

    ``token``: ``user`` (the token's owner), ``module_path``, ``token_label``, ``token_env``, ``pin_file``. The
    token is opened in a child process that has dropped root's identity first: root never logs in to the user's
    token (files it wrote there would be root's), and a refused PIN is tried once.
    """
    labels = sorted({g["key_label"] for g in generations if g.get("delete_key")})
    if not labels:
        return
    # Imported here, as root: the child cannot read the module's payload once it is the user.
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _key_pairs, _pkcs11, _token_options

    def delete():
        spec = _token_options.token_spec_from_params(token)
        with _pkcs11.key_creation_lock(spec), _pkcs11.open_token_session(spec, rw=True) as session:
            for label in labels:
                _key_pairs.ensure(session, dict(label=label, id=None, token_label=spec.token_label, state="absent"),
                                  False)

    try:
        run_as(token["user"], delete)
    except RotationError as exc:
        raise RotationError(f"deleting the old keys {', '.join(labels)} as {token['user']}: {exc}") from None


def prove(token, generation, session):
    """CreateSession with the generation's key (on ``token``, as its user, see delete_keys) and certificate:
    the new generation works before any config uses it. ``session``: trust_anchor_arn, profile_arn, role_arn,
    region, endpoint, ca_bundle, session_duration. RotationError carries the service's refusal."""
    if token is None:
        raise RotationError("proving the new generation needs its token: give token")
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11, _token_options
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509 as sigv4

    def create():
        certificate = sigv4.load_certificate_file(generation["certificate"])
        sigv4.check_validity(certificate)
        chain = sigv4.load_chain_file(generation["chain"]) if generation["chain"] else []
        with _pkcs11.open_token_session(_token_options.token_spec_from_params(token)) as token_session:
            key = _pkcs11.token_private_key(token_session, generation["key_label"], None)
            sigv4.check_key_matches(key, certificate)
            sigv4.create_session(
                key, certificate, chain=chain, trust_anchor_arn=session["trust_anchor_arn"],
                profile_arn=session["profile_arn"], role_arn=session["role_arn"], region=session.get("region"),
                endpoint=session.get("endpoint"), ca_bundle=session.get("ca_bundle"),
                duration_seconds=session.get("session_duration") or 3600)

    try:
        run_as(token["user"], create)
    except RotationError as exc:
        raise RotationError(f"CreateSession with the new key and certificate: {exc}") from None


def _become(account):
    """Take ``account``'s identity (in a child process): groups first, the user last."""
    if os.geteuid() == 0 and account.pw_uid != 0:
        os.setgid(account.pw_gid)
        os.initgroups(account.pw_name, account.pw_gid)
        os.setuid(account.pw_uid)


def run_as(user, function):
    """Run ``function()`` in a forked child with ``user``'s identity; RotationError with the child's error."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise RotationError(f"user {user!r} does not exist on this host") from None
    if os.geteuid() not in (0, account.pw_uid):
        raise RotationError(f"acting as {user} needs root: run the task with become")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to the module's code
        status = 1
        try:
            os.close(read_end)
            _isolate(write_end)
            _become(account)
            os.chdir("/")
            path = os.environ.get("PATH", "/usr/bin:/bin")
            os.environ.clear()  # the token library (set up from token_env) sees nothing of root's environment
            os.environ.update(PATH=path, HOME=account.pw_dir, USER=user, LOGNAME=user, LANG="C.UTF-8")
            function()
            status = 0
        except BaseException as exc:  # whatever it was, the parent reports it
            os.write(write_end, (str(exc) or type(exc).__name__).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        ended = f"was killed by signal {-code}" if code < 0 else f"ended with status {code}"
        raise RotationError(message or f"the child process acting as {user} {ended}")


def _isolate(keep):
    """In the child: standard streams to /dev/null (nothing it prints reaches the module's JSON result), every
    other descriptor root had open closed, except ``keep``."""
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)
    sys.stdout = sys.stderr = os.fdopen(1, "w", closefd=False)  # Python's streams too (pytest replaces them)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the descriptor listdir itself used


def _open_directory(directory, uid=None):
    """The generations' directory (by default as its owner's), reached without following untrusted links."""
    if uid is None:
        try:
            uid = os.stat(directory, follow_symlinks=False).st_uid
        except FileNotFoundError:
            raise _user_files.MissingDirectory(f"{directory} does not exist") from None
    try:
        return _user_files.open_directory(directory, uid)
    except _user_files.MissingDirectory:
        raise
    except _user_files.UnsafePath as exc:
        raise RotationError(f"the generations' directory cannot be used safely: {exc}") from None


def _unlink(dir_fd, name, path):
    """Remove ``name`` if it is there (a file or a link, never what it points to)."""
    info = _user_files.entry_stat(dir_fd, name)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        raise RotationError(f"{path} is a directory, where the rotation keeps a file: remove it")
    os.unlink(name, dir_fd=dir_fd)


def read_certificate(path, known=None):
    """Summary of the host's current certificate (``known``: the state's, used when the SHA-256 matches). Its
    directory belongs to the signing user: read without following that user's links (root must not read a
    planted target), refusing hard links and others' files."""
    missing = RotationError(f"the host's certificate {path} is missing: enrol the host first (playbooks/enrol.yml) "
                            "or fix rotate_key_label / rotate_pki_dir")
    try:
        directory, name = _user_files.split(path)
        fd = _open_directory(directory)
        try:
            data = _user_files.read_file(fd, name, os.fstat(fd).st_uid, path)
        finally:
            os.close(fd)
    except (FileNotFoundError, _user_files.MissingDirectory):
        raise missing from None
    except _user_files.UnsafePath as exc:
        raise RotationError(f"the host's certificate cannot be read safely: {exc}") from None
    if data is None:
        raise missing
    try:
        return _host_state.certificate_summary(data, known)
    except ValueError:
        raise RotationError(f"{path} is not a PEM certificate: enrol the host again (playbooks/enrol.yml) or fix "
                            "rotate_key_label / rotate_pki_dir") from None


def read_profile_command(config_path, profile, uid):
    """The credential_process line of ``profile`` in the AWS config file of the user ``uid``, read without
    following that user's links (root must not run another user's command line, which may hold a PIN)."""
    import configparser

    parser = configparser.RawConfigParser()
    try:
        directory, name = _user_files.split(config_path)
        fd = _user_files.open_directory(directory, uid)
        try:
            data = _user_files.read_file(fd, name, uid, config_path)
        finally:
            os.close(fd)
        if data is None:
            raise FileNotFoundError
        parser.read_string(data.decode("utf-8", "replace"), source=config_path)
    except (FileNotFoundError, _user_files.MissingDirectory):
        raise RotationError(f"{config_path} is missing: the profile {profile!r} was never written") from None
    except _user_files.UnsafePath as exc:
        raise RotationError(str(exc)) from None
    except configparser.Error as exc:
        raise RotationError(f"{config_path} is not a valid AWS config file ({exc.message.splitlines()[0]}): fix it") from None
    section = "default" if profile == "default" else f"profile {profile}"
    if not parser.has_option(section, "credential_process"):
        raise RotationError(f"profile {profile!r} in {config_path} has no credential_process line")
    return parser.get(section, "credential_process")


def run_credential_process(user, config_path, profile, timeout=60):
    """Run a profile's credential_process as ``user``, as the AWS SDK would; returns the credentials' expiry.

    Raises RotationError with the helper's own message when it gives no credentials.
    """
    account = pwd.getpwnam(user)
    command = read_profile_command(config_path, profile, account.pw_uid)

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": account.pw_dir, "USER": user, "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=timeout, env=env, check=False,
                              preexec_fn=lambda: _become(account), cwd=account.pw_dir)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RotationError(f"profile {profile!r} of {user}: the credential_process did not run ({exc})") from None
    try:
        output = json.loads(proc.stdout) if proc.returncode == 0 else {}
    except ValueError:
        output = {}
    if output.get("Version") != 1 or not output.get("AccessKeyId"):
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        raise RotationError(f"profile {profile!r} of {user} gives no credentials: {message}")
    return output.get("Expiration")
