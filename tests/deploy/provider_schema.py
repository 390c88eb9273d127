"""The Google provider's resource schemas, read from the npm package ``@cdktf/provider-google``.

``terraform validate`` needs the provider binary, which cannot be downloaded here. The cdktf
package is generated from the same provider schema: each resource's ``synthesizeAttributes()``
and each nested block's ``...ToTerraform(struct)`` function list the Terraform names (snake
case) it accepts, and name the nested blocks' own functions. :func:`load_schemas` turns those
into ``{resource type: {name: nested schema | None}}`` (None for a plain attribute).

The package version is pinned to the provider constraint in ``terraform/versions.tf``:
:data:`PACKAGE_VERSION` is the release whose ``cdktf.provider.version`` is that provider
version (the test checks the two agree). ``fetch()`` downloads it once with ``npm pack`` into
``.cache/`` of the repository.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "@cdktf/provider-google"
PACKAGE_VERSION = "14.13.1"  # cdktf.provider.version 6.14.1, terraform/versions.tf "~> 6.14.1"
CACHE = REPO / ".cache" / f"cdktf-provider-google-{PACKAGE_VERSION}"

# Accepted on every resource and data block by Terraform itself.
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner",
                  "connection"}  # fmt: skip

Schema = dict[str, Any]  # name -> nested Schema | None

_RESOURCE_TYPE = re.compile(r'^\w+\.tfResourceType = "([\w-]+)";$', re.MULTILINE)
_FUNCTION = re.compile(
    r"^function (\w+ToTerraform)\(struct\) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL
)
_SYNTH = re.compile(r"^    synthesizeAttributes\(\) \{\n(.*?)^    \}", re.MULTILINE | re.DOTALL)
_ENTRY = re.compile(r"^\s+(\w+): (.*?),?$", re.MULTILINE)
_NESTED = re.compile(r"(?<![.\w])(\w+ToTerraform)\b")


def package_dir() -> Path:
    return CACHE / "package"


def fetch() -> Path:
    """Download and unpack the pinned package (once); returns its folder."""
    target = package_dir()
    if (target / "package.json").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--silent",
         "--pack-destination", str(CACHE)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    tarball = CACHE / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        archive.extractall(CACHE, filter="data")
    tarball.unlink()
    return target


def provider_version(directory: Path | None = None) -> str:
    meta = json.loads(((directory or package_dir()) / "package.json").read_text())
    version: str = meta["cdktf"]["provider"]["version"]
    return version


def _entries(body: str) -> dict[str, str | None]:
    """``{terraform name: nested function name | None}`` of one returned object literal."""
    start = body.rfind("return {")
    block = body[start:] if start >= 0 else body
    out: dict[str, str | None] = {}
    for name, expr in _ENTRY.findall(block):
        # fooToTerraform(struct.foo) or cdktf.listMapper(fooToTerraform, true)(struct.foo): a
        # nested block; cdktf.stringToTerraform(...) and friends: a plain attribute
        nested = _NESTED.search(expr)
        out[name] = nested.group(1) if nested else None
    return out


def _file_schemas(text: str) -> dict[str, Schema]:
    functions = {name: _entries(body) for name, body in _FUNCTION.findall(text)}

    def build(entries: dict[str, str | None], depth: int = 0) -> Schema:
        schema: Schema = {}
        for name, nested in entries.items():
            if nested is not None and nested in functions and depth < 12:
                schema[name] = build(functions[nested], depth + 1)
            else:
                schema[name] = None
        return schema

    types = _RESOURCE_TYPE.findall(text)
    synth = _SYNTH.search(text)
    if not types or synth is None:
        return {}
    return {types[0]: build(_entries(synth.group(1)))}


def load_schemas(directory: Path | None = None) -> tuple[dict[str, Schema], dict[str, Schema]]:
    """``(resources, data sources)``: every type of the package with its schema."""
    resources: dict[str, Schema] = {}
    data: dict[str, Schema] = {}
    for path in sorted(((directory or package_dir()) / "lib").glob("*/index.js")):
        found = _file_schemas(path.read_text())
        target = data if path.parent.name.startswith("data-google-") else resources
        target.update(found)
    return resources, data


def unknown_names(body: Any, schema: Schema, where: str) -> list[str]:
    """Names used in a parsed HCL body (python-hcl2) that ``schema`` does not know."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return problems
    for key, value in body.items():
        if key.startswith("__"):  # python-hcl2's line bookkeeping
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, block in dynamic.items():
                    if name not in schema:
                        problems.append(f"{where}: unknown dynamic block {name!r}")
                        continue
                    nested = schema[name]
                    for content in block.get("content", []):
                        if isinstance(nested, dict):
                            problems += unknown_names(content, nested, f"{where}.{name}")
            continue
        if key not in schema:
            problems.append(f"{where}: unknown name {key!r}")
            continue
        nested = schema[key]
        if isinstance(nested, dict) and isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    problems += unknown_names(item, nested, f"{where}.{key}")
    return problems
