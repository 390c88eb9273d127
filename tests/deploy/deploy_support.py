"""Helpers for the deployment tests: the parsed Terraform module and the function entry points.

Terraform cannot run here (no provider downloads), so the tests read the HCL with python-hcl2
and evaluate the few expression shapes the module uses for names and environment variables:
``${var.X}``, ``${tostring(var.X)}``, ``${local.X}``, ``merge(local.A, local.B, {...})`` and
``${google_T.N.name}``. Anything else resolves to ``None`` and a test decides what that means.
The workflow helpers read the function calls out of a parsed workflows/*.yaml.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcl2.api import load as load_hcl

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
WORKFLOWS = REPO / "workflows"
MAIN_PY = REPO / "functions" / "main.py"

_VAR = re.compile(r"^\$\{(?:tostring\()?var\.(\w+)\)?\}$")
_LOCAL = re.compile(r"^\$\{local\.(\w+)\}$")
_RESOURCE_NAME = re.compile(r"^\$\{(google_\w+)\.(\w+)\.name\}$")
_INTERPOLATED_VAR = re.compile(r"\$\{var\.(\w+)\}")


def one(value: Any) -> Any:
    """python-hcl2 wraps every attribute value in a one-element list."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


@dataclass
class TerraformModule:
    """Everything declared in terraform/*.tf, by kind."""

    files: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> TerraformModule:
        files = {}
        for path in sorted(directory.glob("*.tf")):
            with path.open() as f:
                files[path.name] = load_hcl(f)
        module = cls(files)
        for parsed in files.values():
            for block in parsed.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        module.resources.setdefault(rtype, {})[name] = body
            for block in parsed.get("data", []):
                for dtype, named in block.items():
                    for name, body in named.items():
                        module.data.setdefault(dtype, {})[name] = body
            for block in parsed.get("locals", []):
                for key, value in block.items():
                    if not key.startswith("__"):
                        module.locals[key] = one(value)
            for block in parsed.get("variable", []):
                module.variables.update(block)
            for block in parsed.get("output", []):
                module.outputs.update(block)
        return module

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[rtype][name]

    def default(self, variable: str) -> Any:
        body = self.variables[variable]
        return one(body["default"]) if "default" in body else None

    def resolve(self, expr: Any) -> Any:
        """Value of a simple expression with variables at their defaults, else None."""
        if not isinstance(expr, str):
            return expr
        if "${" not in expr:
            return expr
        if m := _VAR.match(expr):
            value = self.default(m.group(1))
            return None if value is None else (str(value) if "tostring" in expr else value)
        if m := _LOCAL.match(expr):
            return self.resolve(self.locals[m.group(1)])
        if m := _RESOURCE_NAME.match(expr):
            body = self.resources.get(m.group(1), {}).get(m.group(2))
            return self.resolve(one(body["name"])) if body else None
        if expr.count("${") == len(_INTERPOLATED_VAR.findall(expr)):
            # "${var.a}-suffix": every interpolation is a plain variable
            def sub(m: re.Match[str]) -> str:
                value = self.default(m.group(1))
                return "" if value is None else str(value)

            return _INTERPOLATED_VAR.sub(sub, expr)
        return None

    def map_keys(self, expr: Any) -> set[str]:
        """Keys of a map expression: a literal, a local, or merge() of locals and literals."""
        if isinstance(expr, dict):
            return {k for k in expr if not k.startswith("__")}
        if not isinstance(expr, str):
            raise TypeError(f"not a map expression: {expr!r}")
        if m := _LOCAL.match(expr):
            return self.map_keys(self.locals[m.group(1)])
        if expr.startswith("${merge("):
            keys: set[str] = set()
            for name in re.findall(r"local\.(\w+)", expr):
                keys |= self.map_keys(self.locals[name])
            keys |= set(re.findall(r"""['"]([A-Z][A-Z0-9_]*)['"]\s*:""", expr))
            return keys
        raise ValueError(f"cannot list the keys of {expr!r}")

    def map_values(self, expr: Any) -> dict[str, Any]:
        """Like map_keys, with each value as written (resolve() it for a value)."""
        if isinstance(expr, dict):
            return {k: v for k, v in expr.items() if not k.startswith("__")}
        if m := _LOCAL.match(expr):
            return self.map_values(self.locals[m.group(1)])
        if isinstance(expr, str) and expr.startswith("${merge("):
            values: dict[str, Any] = {}
            for name in re.findall(r"local\.(\w+)", expr):
                values.update(self.map_values(self.locals[name]))
            for key in re.findall(r"""['"]([A-Z][A-Z0-9_]*)['"]\s*:""", expr):
                values.setdefault(key, None)
            return values
        raise ValueError(f"cannot read the map {expr!r}")


def entry_points(main_py: Path = MAIN_PY) -> dict[str, str]:
    """``{function name: "http" | "cloud_event"}`` from the functions_framework decorators."""
    tree = ast.parse(main_py.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "functions_framework"
                and target.attr in ("http", "cloud_event")
            ):
                found[node.name] = target.attr
    return found


# --- workflows/*.yaml ------------------------------------------------------------------------


def path_template(expr: str) -> str:
    """'${"/models/" + model_id + "/baseline"}' -> '/models/{model_id}/baseline'.

    A query string is not part of the route: '/drift/check?fanout=true' -> '/drift/check'.
    """
    if not expr.startswith("${"):
        return expr.split("?", 1)[0]
    parts = [p.strip() for p in expr[2:-1].split("+")]
    out = ""
    for part in parts:
        if part.startswith('"') and part.endswith('"'):
            out += part[1:-1]
        else:
            out += "{" + part.split(".")[-1] + "}"
    return out


def function_calls(node: Any) -> Iterator[dict[str, Any]]:
    """Every `call: call_function` step's args in a parsed workflow."""
    if isinstance(node, dict):
        if node.get("call") == "call_function":
            yield node["args"]
        for value in node.values():
            yield from function_calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from function_calls(value)


def assigned_paths(node: Any) -> Iterator[str]:
    """Every literal or templated ``path`` value in a parsed workflow (not ``${path}`` itself)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path" and isinstance(value, str) and value != "${path}":
                yield value
            yield from assigned_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from assigned_paths(value)
