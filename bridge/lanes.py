"""More than four SIP calls per process: independent pjsua2 instances ("lanes").

The PyPI pjsua2 wheel is built with PJSUA_MAX_CALLS = 4 and links pjsip
statically into `_pjsua2.so`, so one Endpoint holds four calls and a process
has one Endpoint. A second copy of the package under another name (another
`.so` file: the dynamic loader shares a library only by path or inode, and
Python loads extensions RTLD_LOCAL) is a second pjlib, pjsip and pjsua with
its own globals: its own Endpoint, four more calls, driven by its own thread.

Two things make a copy load cleanly:

* its folder needs a sibling `pjsua2_python.libs` (the `.so`'s RPATH is
  `$ORIGIN/../pjsua2_python.libs`, where the wheel keeps OpenSSL): a symlink
  to the installed one;
* SWIG shares its type table between modules through the Python module
  `swig_runtime_data5`: imported while lane 0's table is there, a copy would
  adopt lane 0's types (objects of one copy, methods of the other: pjlib's
  "unknown thread" assertion). It is taken out of `sys.modules` while a copy
  loads and lane 0's put back after.

Copies live in a per-user cache (`$XDG_CACHE_HOME/unidesk`, else
`~/.cache/unidesk`), one folder per pjsua2 build and lane, made once: each
is written to a temporary folder and renamed into place, so two processes
starting at once both end with a complete copy.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import pjsua2

# The wheel's PJSUA_MAX_CALLS: pjsua clamps uaConfig.maxCalls to it.
WHEEL_MAX_CALLS = 4
_FILES = ("__init__.py", "_version.py", "pjsua2.py")
_lock = threading.Lock()
_loaded: dict[int, ModuleType] = {}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "unidesk"


def _installed() -> tuple[Path, Path]:
    """The installed package's folder and its `.so`."""
    src = Path(pjsua2.__file__).resolve().parent
    (so,) = [p for p in src.iterdir() if p.name.startswith("_pjsua2") and p.suffix == ".so"]
    return src, so


def _build_key(so: Path) -> str:
    st = so.stat()
    version = getattr(pjsua2, "__version__", "0")
    ident = hashlib.sha1(f"{so}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"pjsua2-{version}-{ident}"


def _copy(lane: int) -> Path:
    """The folder holding `pjsua2_lane<lane>` (made once per build)."""
    src, so = _installed()
    root = cache_root() / _build_key(so)
    final = root / f"lane{lane}"
    name = f"pjsua2_lane{lane}"
    if (final / name / so.name).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".lane{lane}-", dir=root))
    try:
        (tmp / name).mkdir()
        for f in _FILES:
            shutil.copy2(src / f, tmp / name / f)
        shutil.copy2(so, tmp / name / so.name)
        libs = src.parent / "pjsua2_python.libs"
        if libs.is_dir():
            os.symlink(libs, tmp / "pjsua2_python.libs")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / name / so.name).is_file():  # not another process's complete copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _swig_key() -> str | None:
    return next((k for k in sys.modules if k.startswith("swig_runtime_data")), None)


def load(lane: int) -> ModuleType:
    """The pjsua2 module of `lane` (0: the installed one), loaded once per process."""
    if lane == 0:
        return pjsua2
    with _lock:
        mod = _loaded.get(lane)
        if mod is not None:
            return mod
        # Lane 0's bindings (and its SWIG table) first: the table put back below must be its.
        importlib.import_module("pjsua2.pjsua2")
        folder = _copy(lane)
        name = f"pjsua2_lane{lane}"
        key = _swig_key()
        saved = sys.modules.pop(key) if key else None
        try:
            spec = importlib.util.spec_from_file_location(
                name, folder / name / "__init__.py", submodule_search_locations=[str(folder / name)]
            )
            assert spec is not None and spec.loader is not None
            pkg = importlib.util.module_from_spec(spec)
            sys.modules[name] = pkg
            spec.loader.exec_module(pkg)
            importlib.import_module(f"{name}.pjsua2")
        finally:
            own = _swig_key()
            if own is not None:
                sys.modules.pop(own)
            if saved is not None and key is not None:
                sys.modules[key] = saved
        _loaded[lane] = pkg
        return pkg
