"""The files of an edge bundle against its ``manifest.json``: what ``compress verify``, ``load_bundle`` and
``compress generate`` check before anything of a bundle is opened.

The manifest lists plain relative paths inside the bundle folder (no absolute path, no ``..``); each must be a
regular file there, reached without a symbolic link, with the listed sha256 and size. Everything else in the
folder is refused too: an unlisted file, a link, an empty folder; only ``model.sig`` may be there unlisted (it
signs every other file, manifest.json included, so the manifest cannot list it). A file that fails is never
read: nothing outside the bundle is opened, and a link cannot smuggle in a file with the right sha256.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from compress.layout import MANIFEST_FILE, SIGNATURE_FILE
from compress.records import Check, Manifest

LINK = "a symbolic link{}; a bundle holds its files, never links (rebuild it, or copy the file in)"


def entry_problem(bundle: Path, name: str) -> str | None:
    """Why the manifest's ``name`` is not a regular file inside ``bundle`` that may be opened (one line, naming
    it), or None. Refused: an absolute path, ``..`` (or ``.``, an empty part, a backslash), a symbolic link
    anywhere on the way, anything but a regular file, a path that resolves outside the bundle folder."""
    if not name.isprintable():  # a line break or an invisible character would forge or hide part of the line
        return f"{ascii(name)}: not a printable file name in {MANIFEST_FILE}; it lists files inside the bundle folder"
    parts = name.split("/")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        return f"{name}: an absolute path in {MANIFEST_FILE}; it lists paths relative to the bundle folder only"
    if ".." in parts:
        return f"{name}: leads out of the bundle folder ('..') in {MANIFEST_FILE}; it lists files inside it only"
    if "\\" in name or any(part in ("", ".") for part in parts):
        return (f"{name}: not a plain relative path in {MANIFEST_FILE} (a '.', an empty part or a backslash); it "
                f"lists files inside the bundle folder, parts separated by /")
    path = bundle
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return f"{name}: missing from {bundle} (listed in {MANIFEST_FILE})"
        except OSError as exc:
            return f"{name}: cannot be read ({exc.strerror})"
        if stat.S_ISLNK(mode):
            return f"{path.relative_to(bundle).as_posix()}: " + LINK.format(f" (to {_target(path)})")
    if not stat.S_ISREG(mode):
        return f"{name}: not a regular file (a folder, device or pipe); {MANIFEST_FILE} lists files"
    if not path.resolve().is_relative_to(bundle.resolve()):
        return f"{name}: resolves outside the bundle folder ({path.resolve()})"
    return None


def _target(link: Path) -> str:
    """Where a link points, as a line may show it (escaped when it holds a line break or an invisible character)."""
    target = os.readlink(link)
    return target if target.isprintable() else ascii(target)


def _sha256(path: Path) -> tuple[int, str]:
    """Size and sha256, read through a descriptor that refuses a link swapped in since it was checked."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        digest, size = hashlib.sha256(), 0
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def check_files(bundle: Path, manifest: Manifest) -> list[Check]:
    """Each listed file (a plain relative path to a regular file inside the bundle) against its sha256 and size,
    then everything on disk the manifest does not list: files, links, folders. Only model.sig may be there
    unlisted: it signs every other file, manifest.json included, so the manifest cannot list it."""
    checks = []
    for name, entry in sorted(manifest.files.items()):
        problem = entry_problem(bundle, name)
        if problem:
            checks.append(Check(name, problem.removeprefix(f"{name}: "), problem))
            continue
        size, digest = _sha256(bundle / name)
        if size != entry.bytes:
            checks.append(Check(name, f"{size:,} bytes, manifest says {entry.bytes}",
                                f"{name}: {size:,} bytes, {MANIFEST_FILE} says {entry.bytes}: the file was changed"))
        elif digest != entry.sha256:
            checks.append(Check(name, f"sha256 {digest[:16]}..., manifest says {entry.sha256[:16]}...",
                                f"{name}: sha256 {digest} differs from {MANIFEST_FILE} ({entry.sha256}): the file "
                                f"was changed"))
        else:
            checks.append(Check(name, f"sha256 and size ({size:,} bytes) match {MANIFEST_FILE}"))
    return checks + check_unlisted(bundle, manifest)


def check_unlisted(bundle: Path, manifest: Manifest) -> list[Check]:
    """What the bundle folder holds beyond the manifest's files (walked without following links)."""
    listed = set(manifest.files)
    known = listed | {MANIFEST_FILE, SIGNATURE_FILE}
    holding = {"/".join(n.split("/")[:i]) for n in listed for i in range(1, n.count("/") + 1)}  # listed files' folders
    checks = []

    def unreadable(exc: OSError) -> None:  # a folder that cannot be listed may hide anything
        name = Path(exc.filename).relative_to(bundle).as_posix()
        checks.append(Check(name, "cannot be listed", f"{name}/: cannot be listed ({exc.strerror}); its files "
                            "cannot be checked"))

    for folder, dirs, files in os.walk(bundle, onerror=unreadable):
        for entry in sorted(dirs + files):
            path = Path(folder) / entry
            name = path.relative_to(bundle).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                if name not in listed and name not in holding:  # check_files names those on a listed file's path
                    target = f" (to {_target(path)})"
                    checks.append(Check(name, "a symbolic link", f"{name}: " + LINK.format(target)))
            elif stat.S_ISDIR(mode):
                if name not in holding and not os.listdir(path):  # a folder with files: each file is named
                    checks.append(Check(name, "an unlisted folder", f"{name}/: a folder in {bundle} that "
                                        f"{MANIFEST_FILE} does not list; remove it or rebuild the bundle"))
            elif name not in known:
                checks.append(Check(name, f"not listed in {MANIFEST_FILE}", f"{name}: in {bundle} but not listed in "
                                    f"{MANIFEST_FILE}; remove it or rebuild the bundle"))
    return checks
