"""The deployment package: `infra/package.py` (what `make package` runs) builds the zip a deployment uploads,
honouring .funcignore, and it holds the app and nothing else."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.unit.deploy.template import ROOT

ALLOWED_TOP = {
    "function_app.py",
    "host.json",
    "requirements.txt",
    "activities",
    "entry",
    "orchestrations",
    "provisioning",
    "schemas",
}
NEVER_TOP = {"devstack", "tests", "bench", "node_modules", ".venv", ".devstack", "docs", "infra", ".git"}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> zipfile.ZipFile:
    output = tmp_path_factory.mktemp("package") / "app.zip"
    done = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "package.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "files" in done.stdout
    return zipfile.ZipFile(output)


def test_the_package_holds_exactly_the_app(package):
    names = package.namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == ALLOWED_TOP
    for required in ("function_app.py", "host.json", "requirements.txt", "schemas/request.schema.json"):
        assert required in names
    for folder in ("activities", "orchestrations", "provisioning"):
        shipped = {n for n in names if n.startswith(folder + "/")}
        on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")}
        assert shipped == on_disk, f"{folder}: shipped {sorted(shipped ^ on_disk)} differently from the tree"


def test_nothing_from_the_dev_stack_tests_or_local_state_ships(package):
    names = package.namelist()
    assert not [n for n in names if n.split("/", 1)[0] in NEVER_TOP]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.endswith("local.settings.json") or n.endswith(".env")]
    assert ".funcignore" not in names and "azure.yaml" not in names


def test_no_private_key_or_key_file_ships(package):
    for name in package.namelist():
        assert not name.rsplit("/", 1)[-1].startswith(("id_rsa", "id_ed25519", "id_ecdsa")), name
        assert not name.endswith((".pem", ".key", ".pfx")), name
        assert b"PRIVATE KEY-----" not in package.read(name), f"{name} holds a private key"


def test_funcignore_is_honoured_for_files_created_later(tmp_path):
    """A dev-stack key, a local settings file and a cache dropped into the tree do not ship."""
    spec = importlib.util.spec_from_file_location("deploy_packager", ROOT / "infra" / "package.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    funcignore = (ROOT / ".funcignore").read_text(encoding="utf-8")
    (tmp_path / ".funcignore").write_text(funcignore, encoding="utf-8")
    for rel, text in {
        "function_app.py": "app = None\n",
        "host.json": "{}",
        "requirements.txt": "",
        "provisioning/__init__.py": "",
        "provisioning/__pycache__/x.cpython-313.pyc": "",
        "provisioning/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----",
        ".devstack/demo/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "local.settings.json": "{}",
        "node_modules/azurite/package.json": "{}",
        "tests/test_x.py": "",
        "notes.txt": "",
    }.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert packager.package_files(tmp_path) == [
        "function_app.py",
        "host.json",
        "provisioning/__init__.py",
        "requirements.txt",
    ]


def local_imports(path: Path) -> set[str]:
    """Top-level names imported by a module that are the repository's own modules or packages."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".", 1)[0]
            if (ROOT / top).is_dir() or (ROOT / f"{top}.py").is_file():
                found.add(top)
    return found


def test_every_local_module_the_app_imports_is_in_the_package(package):
    """The allow-list in .funcignore must grow with the app: a new top-level package it imports fails here."""
    shipped = {n.split("/", 1)[0].removesuffix(".py") for n in package.namelist()}
    for name in package.namelist():
        if name.endswith(".py"):
            missing = local_imports(ROOT / name) - shipped
            assert not missing, f"{name} imports {sorted(missing)}, which .funcignore leaves out"


def test_the_package_is_reproducible(tmp_path):
    outputs = []
    for n in (1, 2):
        output = tmp_path / f"app{n}.zip"
        command = [sys.executable, str(ROOT / "infra" / "package.py"), "--output", str(output)]
        subprocess.run(command, check=True, timeout=120, capture_output=True)
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
