"""The package: what pyproject.toml ships, and ``pip install .`` into a fresh venv serving the page.

The install test builds the wheel and installs its dependencies from the
package index (pip's cache makes a second run quicker): ``make install-check``
runs it alone, ``make test`` with everything else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import urllib.request
import venv
from pathlib import Path

import pytest

from chat.server import app
from tests.support import REPO, BlockingServerProcess

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# Building the wheel and fetching tornado, prometheus-client and redis takes
# about half a minute; allow for a loaded machine and a slow index.
INSTALL_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 60
# What a checkout holds that is no part of the package's source.
NOT_SOURCE = (".git", ".venv", "data", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "out")


def test_the_wheel_lists_every_package_under_chat() -> None:
    on_disk = {".".join(path.parent.relative_to(REPO).parts) for path in (REPO / "chat").rglob("__init__.py")}
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed - {"chat.static", "chat.templates"} == on_disk


def test_the_wheel_maps_the_page_folders_into_the_package() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"chat.static": "static", "chat.templates": "templates"}
    assert setuptools["package-data"] == {"chat.static": ["**/*"], "chat.templates": ["**/*"]}


def test_a_checkout_serves_the_page_from_its_top_level_folders() -> None:
    assert app.ROOT == REPO
    assert (app.ROOT / "static" / "app.js").is_file()
    assert (app.ROOT / "templates" / "chat.html").is_file()


def test_the_server_needs_none_of_the_load_testers_libraries() -> None:
    server = " ".join(PYPROJECT["project"]["dependencies"])
    for library in ("matplotlib", "hdrhistogram", "websockets", "numpy"):
        assert library not in server


# -- a fresh venv ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install .`` (no extras) done: its bin folder."""
    # pip builds in the source folder (build/, chat.egg-info/): build from a copy.
    source = tmp_path_factory.mktemp("source") / "chat"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    where = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(where)
    bin_dir = where / "bin"
    done = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        cwd=where,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir


def _outside_env() -> dict[str, str]:
    """This environment without anything that would put the checkout or our venv on the path."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("CHAT_")}


def _run(bin_dir: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*map(str, args)],
        cwd=bin_dir.parent,  # not the checkout: nothing may be imported from it
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


@pytest.mark.install
@pytest.mark.subprocess
def test_chat_server_help_runs_from_a_fresh_install(installed: Path) -> None:
    result = _run(installed, installed / "chat-server", "--help")
    assert result.returncode == 0, result.stderr
    assert "--redis" in result.stdout
    assert "--workers" in result.stdout


@pytest.mark.install
@pytest.mark.subprocess
def test_the_install_has_the_commands_and_the_server_libraries_but_no_load_test_tools(installed: Path) -> None:
    for command in ("chat-server", "chat-client", "chat-loadtest"):
        assert (installed / command).is_file(), command
    probe = (
        "import importlib.util, json; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None "
        "for m in ['tornado', 'prometheus_client', 'redis', 'matplotlib', 'hdrh', 'websockets', 'numpy']}))"
    )
    result = _run(installed, installed / "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "tornado": True,
        "prometheus_client": True,
        "redis": False,  # the redis extra: only --redis imports it
        "matplotlib": False,
        "hdrh": False,
        "websockets": False,
        "numpy": False,
    }


@pytest.mark.install
@pytest.mark.subprocess
def test_the_installed_chat_server_serves_the_page_from_the_package(installed: Path, tmp_path: Path) -> None:
    where = _run(installed, installed / "python", "-c", "from chat.server import app; print(app.ROOT)")
    assert where.returncode == 0, where.stderr
    root = Path(where.stdout.strip())
    assert root.is_relative_to(installed.parent), root  # site-packages/chat, not the checkout

    server = BlockingServerProcess(
        tmp_path, (), command=[str(installed / "chat-server")], cwd=tmp_path, env=_outside_env()
    )
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/", timeout=COMMAND_TIMEOUT_S) as response:
            page = response.read().decode()
        assert "<title>Chat" in page
        stylesheet = (REPO / "static" / "style.css").read_bytes()
        with urllib.request.urlopen(f"{server.url}/static/style.css", timeout=COMMAND_TIMEOUT_S) as response:
            assert response.read() == stylesheet
    finally:
        server.stop()
