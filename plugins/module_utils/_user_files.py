# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that root reads or writes in places an ordinary user controls (``~/.aws``, PIN files, token stores).

A local user can plant a symbolic link or a hard link, or swap a directory, before or during a run. Every path
is therefore walked from ``/`` one component at a time with directory file descriptors and ``O_NOFOLLOW``:

- a symbolic link is followed only when root owns it and it sits in a directory only root can write (system
  links such as ``/home -> /usr/home``); any other link is refused;
- every directory on the way belongs to root or to the user the file is for, and none is writable by others
  (unless sticky, like ``/tmp``);
- files are read only when they are regular, have one link and belong to root or that user;
- writes go to a new file created in the already opened directory and renamed over the name, so nothing is
  ever written through a link, and ownership and mode are set on descriptors, never on paths.

Pure Python (standard library); host-side code: Python 3.9+.
"""
from __future__ import annotations

import errno
import grp
import os
import pwd
import secrets
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_MAX_LINKS = 16


class UnsafePath(Exception):
    """The path cannot be used safely; the message names the component and the fix."""


class MissingDirectory(UnsafePath):
    """A directory on the path does not exist (and was not to be created)."""


def _root_only(info):
    return info.st_uid == 0 and not info.st_mode & 0o022


def _check_directory(path, info, uids):
    if info.st_uid not in uids:
        raise UnsafePath(f"{path} belongs to uid {info.st_uid}, not to root or the user the file is for: root does "
                         "not write into other users' directories; fix the path or the owner")
    if info.st_mode & 0o002 and not info.st_mode & stat.S_ISVTX:
        raise UnsafePath(f"{path} is writable by everyone: chmod o-w it or choose another path")
    if info.st_mode & 0o020 and info.st_uid == 0 and info.st_gid != 0 and not info.st_mode & stat.S_ISVTX:
        raise UnsafePath(f"{path} is writable by group {info.st_gid}: chmod g-w it or choose another path")


def open_directory(path, uid, gid=None, create_mode=None):
    """A descriptor of directory ``path`` (absolute), reached without following untrusted links.

    ``uid`` is the user the files are for: directories may belong to root or to ``uid``. Missing components are
    created (``create_mode`` None: refused instead): inside the user's tree they are the user's with
    ``create_mode``; elsewhere root's (0755, the last one ``create_mode``) - the caller sets the last one's owner.
    """
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise UnsafePath(f"{path!r} is not an absolute path: give an absolute path")
    uids = {0, uid}
    pending = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in pending:
        raise UnsafePath(f"{path} contains '..': give the path without it")
    walked = "/"
    fd = os.open("/", _DIR_FLAGS)
    trusted = True  # every directory so far is root-only: root-owned links in it are root's own
    links = 0
    try:
        _check_directory("/", os.fstat(fd), uids)
        while pending:
            name = pending.pop(0)
            here = os.path.join(walked, name)
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create_mode is None:
                    raise MissingDirectory(f"directory {here} does not exist: create it or fix the path") from None
                os.mkdir(name, 0o700, dir_fd=fd)
                info = None
            if info is not None and stat.S_ISLNK(info.st_mode):
                if not (trusted and info.st_uid == 0):
                    raise UnsafePath(f"{here} is a symbolic link owned by uid {info.st_uid}: root does not follow "
                                     "links it did not create; remove the link or give the real path")
                links += 1
                if links > _MAX_LINKS:
                    raise UnsafePath(f"{path} has too many symbolic links: give the real path")
                target = os.readlink(name, dir_fd=fd)
                # root's own link in a root-only directory (/var/run -> ../run): resolved like the kernel would
                base = os.path.normpath(os.path.join(walked, target))
                pending = [p for p in base.split("/") if p not in ("", ".")] + pending
                os.close(fd)
                fd, walked, trusted = os.open("/", _DIR_FLAGS), "/", True
                continue
            if info is not None and not stat.S_ISDIR(info.st_mode):
                raise UnsafePath(f"{here} is not a directory: remove it or fix the path")
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            if info is None and not trusted:  # inside the user's tree: the user's
                os.fchown(child, uid, -1 if gid is None else gid)
                os.fchmod(child, create_mode)
            elif info is None:
                os.fchmod(child, create_mode if not pending else 0o755)
            child_info = os.fstat(child)
            try:
                _check_directory(here, child_info, uids)
            except UnsafePath:
                os.close(child)
                raise
            os.close(fd)
            fd, walked = child, here
            trusted = trusted and _root_only(child_info)
        return fd
    except UnsafePath:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        # O_NOFOLLOW | O_DIRECTORY on a link: ELOOP or ENOTDIR, depending on the kernel's order of checks
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"a component of {path} was replaced by a symbolic link or a file during the run: "
                             "remove it and run again") from None
        raise UnsafePath(f"cannot open directory {path}: {exc.strerror}") from None


def split(path):
    directory, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise UnsafePath(f"{path!r} does not name a file: give the file's path")
    return directory or "/", name


def entry_stat(dir_fd, name):
    """lstat of ``name`` in the directory, None if missing."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def read_file(dir_fd, name, uid, path, limit=1 << 20, private=False):
    """Bytes of ``name``, or None when missing. Refuses links, non-regular files and files of other users;
    ``private``: also files group or others may access (a PIN file)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link: root does not follow links it did not create; remove it "
                             "or replace it with a regular file") from None
        raise UnsafePath(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path} is not a regular file: remove it")
        if info.st_nlink != 1:
            raise UnsafePath(f"{path} has {info.st_nlink} hard links: root does not read or replace a file linked "
                             "elsewhere; remove the extra links or the file")
        if info.st_uid not in (0, uid):
            raise UnsafePath(f"{path} belongs to uid {info.st_uid}, not to the user: remove it or fix its owner")
        if private and info.st_mode & 0o077:
            raise UnsafePath(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: it must not be accessible by group "
                             f"or others; run chmod 0600 {path}")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise UnsafePath(f"{path} is larger than {limit} bytes: it is not a file this module manages")
        return data
    finally:
        os.close(fd)


def _remove_stale_temporaries(dir_fd, name, age=60.0):
    """Temporary files of an earlier run killed before its rename (SIGKILL runs no cleanup)."""
    import time

    prefix, cutoff = f".{name}.", time.time() - age
    for entry in os.listdir(dir_fd):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            info = entry_stat(dir_fd, entry)
            if info is not None and stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                os.unlink(entry, dir_fd=dir_fd)


def write_file(dir_fd, name, data, mode, uid, gid, path):
    """Replace ``name`` by a new regular file (mode, owner set before it appears); never writes through a link."""
    existing = entry_stat(dir_fd, name)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise UnsafePath(f"{path} is a directory: remove it or fix the path")
    _remove_stale_temporaries(dir_fd, name)
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            if os.geteuid() == 0:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def set_directory(dir_fd, mode, uid, gid):
    """Mode and owner of an opened directory (on its descriptor: a swapped path changes nothing else)."""
    info = os.fstat(dir_fd)
    changed = False
    if stat.S_IMODE(info.st_mode) != mode:
        os.fchmod(dir_fd, mode)
        changed = True
    if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (uid, gid):
        os.fchown(dir_fd, uid, gid)
        changed = True
    return changed


def chown_tree(dir_fd, uid, gid, path, dry_run=False):
    """Give every directory and regular file below an opened directory to uid/gid. Links are left alone (never
    followed), and a regular file with more than one hard link is refused: it may be another file's inode.
    Returns the number of entries changed."""
    changed = 0
    for entry in os.listdir(dir_fd):
        info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
        where = os.path.join(path, entry)
        if stat.S_ISLNK(info.st_mode):
            continue
        if stat.S_ISDIR(info.st_mode):
            child = os.open(entry, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                changed += chown_tree(child, uid, gid, where, dry_run)
                if (info.st_uid, info.st_gid) != (uid, gid):
                    if not dry_run:
                        os.fchown(child, uid, gid)
                    changed += 1
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            try:
                current = os.fstat(fd)
                if current.st_nlink != 1:
                    raise UnsafePath(f"{where} has {current.st_nlink} hard links: root does not change the owner "
                                     "of a file linked elsewhere; remove the extra link")
                if (current.st_uid, current.st_gid) != (uid, gid):
                    if not dry_run:
                        os.fchown(fd, uid, gid)
                    changed += 1
            finally:
                os.close(fd)
    return changed


def account(owner, group):
    """(uid, gid) of a local user and a group (default: the user's primary group)."""
    try:
        user = pwd.getpwnam(owner)
    except KeyError:
        raise UnsafePath(f"user {owner!r} does not exist on this host: create it or fix owner") from None
    if group is None:
        return user.pw_uid, user.pw_gid
    try:
        return user.pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise UnsafePath(f"group {group!r} does not exist on this host: create it or fix group") from None


def ensure_directory(path, uid, gid, mode, recurse, check_mode):
    """Create or fix a directory for ``uid`` (with ``recurse``, everything below it too); whether it changed."""
    try:
        fd = open_directory(path, uid, gid)
        created = False
    except MissingDirectory:
        if check_mode:
            return True
        fd, created = open_directory(path, uid, gid, create_mode=mode), True
    try:
        if check_mode:
            info = os.fstat(fd)
            changed = (info.st_mode & 0o7777, info.st_uid, info.st_gid) != (mode, uid, gid)
        else:
            changed = set_directory(fd, mode, uid, gid) or created
        if recurse:
            changed = chown_tree(fd, uid, gid, path, dry_run=check_mode) > 0 or changed
        return changed
    finally:
        os.close(fd)


def ensure_file(path, content, uid, gid, mode, check_mode):
    """Missing parent directories are created (root's 0755 in root's tree, the owner's 0700 in the owner's)."""
    directory, name = split(path)
    try:
        fd = open_directory(directory, uid)
    except MissingDirectory:
        if check_mode:
            return True
        fd = open_directory(directory, uid, gid, create_mode=0o755)
    try:
        current = read_file(fd, name, uid, path)
        info = entry_stat(fd, name)
        changed = current != content or (info.st_mode & 0o7777, info.st_uid, info.st_gid) != (mode, uid, gid)
        if changed and not check_mode:
            write_file(fd, name, content, mode, uid, gid, path)
        return changed
    finally:
        os.close(fd)
