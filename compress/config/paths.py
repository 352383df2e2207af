"""The folders a run will write, checked at load before anything is: each must be a folder or not exist yet (its
nearest existing parent a writable folder), and every name and path compress derives from the config must fit the
file system (``os.pathconf``: PC_NAME_MAX for one name, PC_PATH_MAX for a whole path). Also what a Windows path
looks like, refused on POSIX as a source or an output."""

from __future__ import annotations

import os
import re
from pathlib import Path

from compress.config.schema import PipelineConfig
from compress.config.sweep import expand

DEFAULT_RUNS = Path("runs")  # compress run's --runs-dir when not given (compress validate checks this one)
TEMPORARY = len("..tmp")  # a folder is written as .<name>.tmp beside <name>, then renamed (compress.io.atomic_dir)
# The longest path compress writes below a folder the config names, besides the names it sets (a variant's, added
# where it counts): measured on a finished run of pipelines/tiny.yaml, the teacher-output cache's
# .cache/teacher-outputs/<sha256>.safetensors below the runs folder (99 characters) is the longest; below the run
# folder .quantize.tmp/<variant>/special_tokens_map.json (38 + the variant's name).
DEEPEST = 100
_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\[^\\]+\\)")  # C:\data, D:/data, \\server\share


def is_windows_path(text: str) -> bool:
    """A drive-letter (``C:\\data``, ``D:/data``) or UNC (``\\\\server\\share``) path: on POSIX such a string is
    neither a path nor a hub id."""
    return os.name == "posix" and bool(_WINDOWS.match(text))


def windows_problem(key: str, text: str) -> str:
    return (f"{key}: '{text}' is a Windows path, but this system is POSIX (paths look like /data/sst2 or "
            f"./data/sst2); give the folder's path here (under WSL, C:\\data is /mnt/c/data)")


def check_paths(cfg: PipelineConfig) -> list[str]:
    """The output folders the config names (ship.dir, distill.cache.dir) and the names it derives folders from
    (the run's, its variants', a sweep's points'), one line each."""
    problems = _names(cfg)
    if cfg.ship.enabled:
        problems += output_problems("ship.dir", Path(cfg.ship.dir).expanduser(), "bundles", cfg.name)
    if cfg.distill.cache.dir:
        problems += output_problems("distill.cache.dir", Path(cfg.distill.cache.dir).expanduser(), "teacher outputs")
    return problems


def check_run_paths(cfg: PipelineConfig, runs_dir: Path) -> list[str]:
    """The run folder ``runs_dir/<name>`` (and the shared teacher-output cache under ``runs_dir`` when
    distill.cache.dir is unset)."""
    variant = max((len(v.name) for v in cfg.quantize.variants), default=0)
    problems = output_problems("--runs-dir", Path(runs_dir).expanduser(), "run folders", cfg.name, DEEPEST + variant)
    if not problems and not cfg.distill.cache.dir:
        problems += output_problems("distill.cache.dir", Path(runs_dir).expanduser() / ".cache" / "teacher-outputs",
                                    "teacher outputs (the default: <runs-dir>/.cache/teacher-outputs)")
    return problems


def output_problems(key: str, folder: Path, what: str, child: str | None = None, below: int = DEEPEST) -> list[str]:
    """``folder`` (and ``folder/child``) can be made or written into: not a file, the nearest existing parent a
    writable folder, each name to make within PC_NAME_MAX, the whole path with what compress writes below it
    within PC_PATH_MAX (``below``: the longest path compress writes inside)."""
    if is_windows_path(str(folder)):
        return [windows_problem(key, str(folder))]
    target = folder / child if child else folder
    parts = [folder, target] if child else [folder]
    for path in parts:
        if _exists(path) and not path.is_dir():
            return [f"{key}: {path} is a {_kind(path)}; {what} go to {folder}/{'<name>/' if child else ''}, so it must "
                    f"be a folder (or not exist yet)"]
    existing = _nearest_existing(target)
    target = target.absolute()
    if not existing.is_dir():
        return [f"{key}: {existing} is a {_kind(existing)}, so {folder} cannot be made in it; {what} need a folder"]
    if existing != target and not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}: {folder} cannot be made: {existing} is not writable by this user"]
    name_max, path_max = _limits(existing)
    made = target.relative_to(existing).parts if existing != target else ()
    long = [p for p in made if len(os.fsencode(p)) + TEMPORARY > name_max and p != child]  # name: says it
    if long:
        return [f"{key}: the folder name '{long[0][:40]}...' is {len(os.fsencode(long[0]))} bytes; the file system "
                f"allows {name_max} in one name ({name_max - TEMPORARY} here: compress writes .<name>.tmp first)"]
    full = len(os.fsencode(str(target)))
    if full + below > path_max:
        return [f"{key}: {what} would go to a path of {full} bytes ({str(target)[:60]}...), and compress "
                f"writes up to {below} more below it; the file system allows {path_max} in a path: use a shorter "
                f"{key}"]
    return []


def _names(cfg: PipelineConfig) -> list[str]:
    """The run's name (runs/<name>/, <ship.dir>/<name>/), every variant's (quantize/<variant>/) and every sweep
    point's (runs/<name>/points/<point>/) are folder names: each within the file system's PC_NAME_MAX, less the
    5 characters of the temporary name (.<name>.tmp) it is first written as."""
    name_max, _ = _limits(_nearest_existing(Path.cwd()))
    limit = name_max - TEMPORARY
    named = [("name", cfg.name, "the run folder runs/<name>/ and the bundle <ship.dir>/<name>/")]
    named += [(f"quantize.variants.{i}.name", v.name, "its folder quantize/<name>/")
              for i, v in enumerate(cfg.quantize.variants)]
    if cfg.sweep is not None:
        named += [(f"sweep: the point {p.name[:40]}...", p.name, "its folder runs/<name>/points/<point>/")
                  for p in expand(cfg.sweep)]
    return [f"{key}: {len(os.fsencode(value))} characters, but it names {where}, and the file system allows "
            f"{name_max} characters in one name ({limit} here: compress writes .<name>.tmp first); shorten it"
            for key, value, where in named if len(os.fsencode(value)) > limit]


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not _exists(path) and path != path.parent:
        path = path.parent
    return path


def _exists(path: Path) -> bool:
    """Path.exists, where a name longer than the file system allows (ENAMETOOLONG) does not exist."""
    try:
        return path.exists()
    except OSError:
        return False


def _limits(existing: Path) -> tuple[int, int]:
    """(PC_NAME_MAX, PC_PATH_MAX) of the file system holding ``existing``; 255 and 4096 (Linux's) where the
    system does not say."""
    limits = []
    for name, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(os.pathconf(existing, name) or default)
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def _kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "file"
