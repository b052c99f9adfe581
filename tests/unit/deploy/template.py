"""Reading the deployment template for the tests: every .bicep parsed with pycep-parser, the app settings
main.bicep gives the Function app, and the settings the app itself reads."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one .bicep file (raises on a syntax error)."""
    return BicepParser().parse(file_path=path)


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar nested in a parsed template."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def app_settings() -> dict[str, Any]:
    """name -> value (a literal, or pycep's expression JSON) of every `{name, value}` entry of main.bicep's
    `appSettings` variable, the conditional ones included."""
    variable = parse(INFRA / "main.bicep")["variables"]["appSettings"]["value"]
    found = {}
    for node in walk(variable):
        if isinstance(node, dict) and set(node) == {"name", "value"} and isinstance(node["name"], str):
            found[node["name"]] = node["value"]
    return found


def variables(path: Path) -> dict[str, Any]:
    return {name: v["value"] for name, v in parse(path).get("variables", {}).items()}


class RecordingEnv(dict):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def settings_read_by_load_settings() -> set[str]:
    from provisioning.settings import load_settings

    env = RecordingEnv()
    load_settings(env)
    return env.read


_ENV_CALL = re.compile(
    r"os\.(?:environ\.get|getenv)\(\s*[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']|os\.environ\[[\"']([^\"']+)"
)
_BINDING_SETTING = re.compile(r"^%([A-Za-z_][A-Za-z0-9_]*)%$")


def settings_read_elsewhere() -> set[str]:
    """Names the deployed code reads straight from the environment, and the bindings' `%SETTING%` names."""
    names = set()
    for path in [ROOT / "function_app.py"] + [
        p for d in ("activities", "orchestrations", "provisioning") for p in sorted((ROOT / d).rglob("*.py"))
    ]:
        text = path.read_text(encoding="utf-8")
        for match in _ENV_CALL.finditer(text):
            names.add(match.group(1) or match.group(2))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(_BINDING_SETTING.findall(node.value))
    return names


def connection_names() -> set[str]:
    """The `connection=` names of the app's bindings (each an app setting or an identity-based group)."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / "function_app.py").read_text(encoding="utf-8"))):
        is_connection = isinstance(node, ast.keyword) and node.arg == "connection"
        if is_connection and isinstance(node.value, ast.Constant):
            names.add(node.value.value)
    return names


def documented_rows(heading: str) -> set[str]:
    """The `NAME` cells of the table under `heading` in docs/settings.md."""
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", line.split("|")[1]))
    return names
