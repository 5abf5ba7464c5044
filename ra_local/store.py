"""Resource state (trust anchors, profiles, CRLs, subjects, tags), optionally persisted to a JSON file.

Records are kept in the service's wire form (camelCase keys, ISO-8601 timestamps, base64 blobs) so
that responses are the records themselves.
"""
import json
import os
import tempfile
import threading
from contextlib import contextmanager

KINDS = ("trustAnchors", "profiles", "crls", "subjects")


class StateError(Exception):
    pass


class Store:
    def __init__(self, path=None):
        self.path = path
        self._lock = threading.RLock()
        self.data = {kind: {} for kind in KINDS}
        self.data["tags"] = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                try:
                    loaded = json.load(fh)
                except ValueError as exc:
                    raise StateError(f"state file {path} is not JSON ({exc}); move it away to start empty") from None
            for key in self.data:
                self.data[key].update(loaded.get(key, {}))

    @contextmanager
    def reading(self):
        with self._lock:
            yield self.data

    @contextmanager
    def writing(self):
        """Hold the lock for a change; the file is rewritten atomically when the change succeeds."""
        with self._lock:
            yield self.data
            self._save()

    def _save(self):
        if not self.path:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".ra_local-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh, indent=1, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
