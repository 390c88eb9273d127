#!/usr/bin/env python3
"""Build the deployable source archive of each Cloud Function, reproducibly.

Every function deploys the same source with its own entry point, so each archive holds::

    main.py                                   functions/main.py (the five entry points)
    requirements.txt                          pinned runtime dependencies + the wheel below
    wheels/embedding_drift_monitor-<v>-py3-none-any.whl   the shared package, built here

The Cloud Functions Python build runs ``pip install -r requirements.txt`` in the source
directory, so the relative wheel path installs this repository's ``drift_monitor`` package
exactly as committed, and the pins (taken from the environment this script runs in, which is
the one the tests ran in) make the deployed dependency set the tested one.

Reproducible: the wheel and the archives are written by this script with sorted entries, fixed
timestamps (``SOURCE_DATE_EPOCH``, default 1980-01-01), fixed permissions and a fixed
compression level, so two builds of the same tree are byte-identical and the archive's hash
(which Terraform puts in the object name) changes only when the source does.

Usage::

    python scripts/package_functions.py                 # all five into build/functions/
    python scripts/package_functions.py --out DIR ingest detect
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = ("ingest", "persist", "stats", "detect", "check", "api")
PACKAGE = "drift_monitor"
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold


def _epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    return max(int(raw), ZIP_EPOCH) if raw else ZIP_EPOCH


def _zip_bytes(entries: Iterable[tuple[str, bytes]], epoch: int) -> bytes:
    """A zip of ``entries`` (sorted by name) whose bytes depend only on names and contents."""
    stamp = time.gmtime(epoch)[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.create_system = 3  # unix, whatever the build host
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def _project() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    project: dict[str, Any] = pyproject["project"]
    tool = pyproject.get("tool", {}).get("setuptools", {})
    project["_package_data"] = tool.get("package-data", {}).get(PACKAGE, [])
    return project


def package_files(package_data: Sequence[str]) -> list[tuple[str, Path]]:
    """Files of the ``drift_monitor`` package as (path inside the wheel, source path).

    All ``.py`` modules plus the ``package-data`` patterns from pyproject.toml (migrations,
    openapi.yaml, py.typed), so the wheel matches what ``pip install .`` would ship.
    """
    root = REPO / "shared" / PACKAGE
    found: set[Path] = {p for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    for pattern in package_data:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted((f"{PACKAGE}/{p.relative_to(root).as_posix()}", p) for p in found)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(epoch: int) -> tuple[str, bytes]:
    """Build the ``drift_monitor`` wheel in memory; return (file name, bytes)."""
    project = _project()
    name = str(project["name"])
    version = str(project["version"])
    dist = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{dist}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.11')}",
        *(f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])),
    ]
    scripts = project.get("scripts", {})
    entries: dict[str, bytes] = {
        arc: src.read_bytes() for arc, src in package_files(project["_package_data"])
    }
    entries[f"{dist_info}/METADATA"] = ("\n".join(metadata_lines) + "\n").encode()
    entries[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: package_functions\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    entries[f"{dist_info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    if scripts:
        lines = ["[console_scripts]", *(f"{k} = {v}" for k, v in sorted(scripts.items()))]
        entries[f"{dist_info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in sorted(entries.items())]
    record.append(f"{dist_info}/RECORD,,")
    entries[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    return f"{dist}-{version}-py3-none-any.whl", _zip_bytes(entries.items(), epoch)


def pinned_requirements(dependencies: Sequence[str]) -> list[str]:
    """``name==version`` for the runtime dependency closure, as installed here.

    Walks the installed distributions from the project's direct dependencies (with their
    extras), evaluating markers for the running interpreter; dev-only packages never appear.
    """
    env = default_environment()
    pins: dict[str, str] = {}
    queue: list[Requirement] = [Requirement(d) for d in dependencies]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        req = queue.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise SystemExit(f"{req.name} is not installed; install the project first") from exc
        pins[canonicalize_name(req.name)] = dist.version
        for raw in dist.requires or []:
            child = Requirement(raw)
            if child.marker is None:
                queue.append(child)
                continue
            extras = req.extras or {""}
            if any(child.marker.evaluate({**env, "extra": e}) for e in extras):
                queue.append(child)
    return [f"{n}=={v}" for n, v in sorted(pins.items())]


def build(out: Path, functions: Sequence[str] = FUNCTIONS) -> dict[str, Path]:
    """Write ``<out>/<function>.zip`` for each function; return the paths."""
    epoch = _epoch()
    project = _project()
    wheel_name, wheel = build_wheel(epoch)
    requirements = [
        "# Generated by scripts/package_functions.py: the tested dependency set, pinned.",
        *pinned_requirements(project["dependencies"]),
        f"./wheels/{wheel_name}",
    ]
    entries = {
        "main.py": (REPO / "functions" / "main.py").read_bytes(),
        "requirements.txt": ("\n".join(requirements) + "\n").encode(),
        f"wheels/{wheel_name}": wheel,
    }
    archive = _zip_bytes(entries.items(), epoch)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for function in functions:
        if function not in FUNCTIONS:
            raise SystemExit(f"unknown function {function!r}; expected one of {FUNCTIONS}")
        path = out / f"{function}.zip"
        tmp = path.with_suffix(".zip.tmp")
        tmp.write_bytes(archive)
        tmp.replace(path)
        written[function] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("functions", nargs="*", default=list(FUNCTIONS), help="default: all five")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "functions")
    args = parser.parse_args(argv)
    for function, path in build(args.out, args.functions).items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{function:8} {path}  {path.stat().st_size:>9} bytes  sha256:{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
