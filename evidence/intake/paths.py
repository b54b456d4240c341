"""Confine server-side imports to the configured import roots.

A custodian may import images already on the server or on a mounted share, but only from the folders an
administrator configured: not ``/etc/shadow``, not another tenant's share, not through ``..`` and not
through a symlink planted inside a root that points out of it.

Rules, in order:
- the path is not empty and has no NUL; no component is ``..`` (refused even when it would land inside a
  root: a path that needs ``..`` is not one a person meant);
- an absolute path must lie under a root (as configured or as resolved); a relative one is taken relative to
  the roots and must exist under exactly one of them;
- walking from the root, every component that is a symlink must resolve inside some root (symlinks among
  the roots' own files are fine, and roots may themselves be symlinks: an administrator set them);
- the result exists and is a regular file (no directories, devices or FIFOs).

Checking then opening leaves a window in which a symlink could be swapped; ``open_import_path`` closes it
by checking the file actually opened (``/proc/self/fd``) against the roots again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from evidence.intake.errors import ImportPathRefused


def resolve_import_path(*, path: str, roots: Sequence[Path]) -> Path:
    """Return the absolute path (under a resolved root, names kept) of an importable file, or refuse."""
    if not path or "\0" in path:
        raise ImportPathRefused("an import path must be a non-empty string without NUL characters", path=path)
    requested = Path(path)
    if ".." in requested.parts:
        raise ImportPathRefused("'..' is not allowed in import paths", path=path)
    resolved_roots = _existing_roots(roots)
    if not resolved_roots:
        raise ImportPathRefused("no import root is configured, or none exists on this server", path=path)

    if requested.is_absolute():
        located = _locate_absolute(requested=requested, roots=roots, resolved_roots=resolved_roots)
        if located is None:
            raise ImportPathRefused("it is outside the configured import roots", path=path)
        matches = [located]
    else:
        matches = [(root, requested.parts) for root in resolved_roots if os.path.lexists(root / requested)]
        if not matches:
            raise ImportPathRefused("it does not exist under any import root", path=path)
        if len(matches) > 1:
            raise ImportPathRefused("it exists under several import roots; give the absolute path", path=path)

    root, parts = matches[0]
    current = root
    for part in parts:
        if part in ("", "."):
            continue
        candidate = current / part
        if candidate.is_symlink():
            target = Path(os.path.realpath(candidate))
            if not _within(target, resolved_roots):
                # Do not echo where the link points: that is outside what this user may see.
                raise ImportPathRefused(f"{part!r} is a symlink leading outside the import roots", path=path)
            current = target
        else:
            current = candidate
    if not os.path.lexists(current):
        raise ImportPathRefused("it does not exist", path=path)
    final = Path(os.path.realpath(current))
    if not _within(final, resolved_roots):
        raise ImportPathRefused("it resolves outside the import roots", path=path)
    if not final.is_file():
        raise ImportPathRefused("it is not a regular file", path=path)
    return root.joinpath(*[part for part in parts if part not in ("", ".")])


def open_import_path(*, path: str, roots: Sequence[Path]) -> BinaryIO:
    """Resolve and open for reading, then check that the file *opened* is inside the roots and regular."""
    resolved = resolve_import_path(path=path, roots=roots)
    # O_NONBLOCK: should a FIFO have been swapped in since the check, opening must not hang on it.
    descriptor = os.open(resolved, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{descriptor}")) if Path("/proc/self/fd").is_dir() else None
        if opened is not None and not _within(opened, _existing_roots(roots)):
            raise ImportPathRefused("it changed while being opened and now leads outside the roots", path=path)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ImportPathRefused("it changed while being opened and is no longer a regular file", path=path)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _existing_roots(roots: Sequence[Path]) -> list[Path]:
    resolved = []
    for root in roots:
        try:
            resolved.append(Path(root).resolve(strict=True))
        except OSError:
            continue  # a share that is not mounted right now: nothing can be imported from it
    return resolved


def _locate_absolute(
    *, requested: Path, roots: Sequence[Path], resolved_roots: list[Path]
) -> tuple[Path, tuple[str, ...]] | None:
    # Accept the root as configured (/mnt/evidence, maybe a symlink) and as resolved (/srv/nfs/evidence).
    for configured in roots:
        configured = Path(configured)
        try:
            resolved = configured.resolve(strict=True)
        except OSError:
            continue
        for form in (configured.absolute(), resolved):
            if requested == form or form in requested.parents:
                return resolved, requested.relative_to(form).parts
    return None


def _within(path: Path, resolved_roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in resolved_roots)
