"""Where pinbench finds its data: one rule for every command and task.

A *data root* holds the layout of ``../shared/data/README.md``: ``few-shot/``, ``style-transfer/``
and ``inversion/lexica/``. A task reads one subfolder of it (``SUBFOLDERS``). The places, in order:

1. an explicit directory (``--data-dir`` / ``task.data_dir``): the task's folder, as it always
   was (``.../few-shot``), or a data root (its subfolder is then used);
2. ``$PINBENCH_DATA_DIR``, a data root: when set, it is the only place looked in (the user said
   where the data is; falling through to other copies would hide a mistake);
3. ``../shared/data`` beside the checkout, when it exists;
4. the download cache, ``$PINBENCH_CACHE_DIR/data`` (default ``~/.cache/pinbench/data``), which
   ``pinbench data download`` fills;
5. the demo split shipped inside the package (SST-2, split seed 13 only).

Places 3-5 are tried per file: the first that holds the requested file wins, so the embedded demo
split serves ``sst-2`` seed 13 while other seeds come from the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

ENV_DATA_DIR = "PINBENCH_DATA_DIR"
SUBFOLDERS = {"few-shot": "few-shot", "style-transfer": "style-transfer", "inversion": "inversion/lexica"}
"""Each kind of data's folder inside a data root."""

_PACKAGE = Path(__file__).resolve().parent
CHECKOUT = _PACKAGE.parent
SHARED_DATA = CHECKOUT.parent / "shared" / "data"
"""``../shared/data`` beside the checkout (the project's layout; tests monkeypatch it)."""
EMBEDDED_DATA = _PACKAGE / "embedded_data"
"""The data root shipped in the package: the demo's one split (see its NOTICE.md)."""


def cache_home() -> Path:
    """pinbench's cache (converted models, classifiers, downloaded data): ``$PINBENCH_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/pinbench``, else ``~/.cache/pinbench``."""
    if os.environ.get("PINBENCH_CACHE_DIR"):
        return Path(os.environ["PINBENCH_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "pinbench"


def data_cache() -> Path:
    """The data root that ``pinbench data download`` fills."""
    return cache_home() / "data"


@dataclass(frozen=True)
class Place:
    """One place of the rule: a data root and how it was chosen."""

    label: str
    """``--data-dir``, ``PINBENCH_DATA_DIR``, ``../shared/data``, ``cache`` or ``embedded``."""
    root: Path

    def folder(self, kind: str) -> Path:
        return self.root if self.label == "--data-dir" else self.root / SUBFOLDERS[kind]

    def describe(self, kind: str) -> str:
        return f"{self.label} ({self.folder(kind)})"


def absolute_data_root_env() -> dict[str, str]:
    """``PINBENCH_DATA_DIR`` made absolute, for processes that start elsewhere (a sweep's local
    Ray workers run in Tune's trial directories); empty when it is unset or already absolute."""
    env = os.environ.get(ENV_DATA_DIR)
    if not env or os.path.isabs(os.path.expanduser(env)):
        return {}
    return {ENV_DATA_DIR: os.path.abspath(env)}


def implicit_places() -> list[Place]:
    """The places looked in when no directory is given, in order (see the module docstring)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        root = Path(env).expanduser()
        if root.exists() and not root.is_dir():
            raise DataError(f"{ENV_DATA_DIR} '{env}' is a file; set it to a data root (a directory)")
        return [Place(ENV_DATA_DIR, root)]
    places = [Place("../shared/data", SHARED_DATA)] if SHARED_DATA.is_dir() else []
    return places + [Place("cache", data_cache()), Place("embedded", EMBEDDED_DATA)]


def data_roots() -> list[Path]:
    """The data roots this machine reads from when no directory is given (``PINBENCH_DATA_DIR``,
    ``../shared/data``, the download cache; the embedded split is inside the package): no command
    writes results into them."""
    return [p.root for p in implicit_places() if p.label != "embedded" and p.root.is_dir()]


def explicit_folder(kind: str, data_dir: str | Path, rel: str = "") -> Path:
    """An explicit ``--data-dir``: the task's folder as given, or, when it is a data root (it has
    the kind's subfolder and not ``rel`` itself), that subfolder."""
    given = Path(data_dir).expanduser()
    sub = given / SUBFOLDERS[kind]
    if sub.is_dir() and not (rel and (given / rel).exists()):
        return sub
    return given


def find(kind: str, rel: str) -> tuple[Place, Path] | None:
    """The first implicit place whose ``kind`` folder holds ``rel`` (a file or directory), with
    that folder; None when none does."""
    for place in implicit_places():
        folder = place.folder(kind)
        if (folder / rel).exists():
            return place, folder
    return None


def download_name(kind: str, dataset: str) -> str:
    """The name ``pinbench data download`` knows a dataset by."""
    return "lexica" if kind == "inversion" else dataset


def not_found(kind: str, rel: str, dataset: str, what: str | None = None) -> DataError:
    """The one-line error for data that no place holds: the places tried and the download command."""
    env = os.environ.get(ENV_DATA_DIR)
    tried = [p.describe(kind) for p in implicit_places()]
    if not env:
        tried.insert(0, f"{ENV_DATA_DIR} (unset)")
        if not SHARED_DATA.is_dir():
            tried.insert(1, f"../shared/data ({SHARED_DATA}: absent)")
    return DataError(f"{what or f'dataset {dataset!r}'}: '{SUBFOLDERS[kind]}/{rel}' not found; tried "
                     f"{', '.join(tried)}; run `pinbench data download {download_name(kind, dataset)}`, "
                     f"or pass --data-dir DIR or set {ENV_DATA_DIR}=DIR")


def locate(kind: str, rel: str, dataset: str, data_dir: str | Path | None = None,
           what: str | None = None) -> Path:
    """The folder of ``kind`` data to read ``rel`` from: ``data_dir``'s (whether or not ``rel`` is
    there: the caller's own errors name the missing file) or the first implicit place holding it;
    a DataError naming the places tried when none does."""
    if data_dir is not None:
        return explicit_folder(kind, data_dir, rel)
    found = find(kind, rel)
    if found is None:
        raise not_found(kind, rel, dataset, what)
    return found[1]
