"""The installable package: `pip install .` into a fresh virtual environment, then
`events-server` runs from it and serves its pages from the installed files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest
from conftest import TEST_SECRET
from serverproc import free_port, wait_for

from config import VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a checkout holds besides its tracked files (a virtual environment, build output,
# dependencies of the Node script): never copied, so the build sees a clean tree.
NOT_SOURCE = (".venv", ".git", ".hypothesis", ".pytest_cache", ".ruff_cache", "node_modules",
              "build", "dist", "*.egg-info", "__pycache__", "data", "artifacts", "results")
# The only top-level entries the server adds to site-packages.
INSTALLED = {"events_server", f"events_server-{VERSION}.dist-info"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> str:
    """A fresh virtual environment with the package installed by `pip install <checkout>`."""
    base = tmp_path_factory.mktemp("package")
    source, env_dir = base / "src", base / "venv"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    # No pip of its own (creating one costs ~15 s): this pip installs into it via --python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=60)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
         "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return str(env_dir)


def site_packages(env_dir: str) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(env_dir, "lib", version, "site-packages")


def run(env_dir: str, *args: str, cwd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([os.path.join(env_dir, "bin", "events-server"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30, env=env)


def test_events_server_version_and_help_run_from_a_fresh_environment(venv, tmp_path):
    """`events-server --version` prints `events-server 3.0.0` and `--help` lists the options
    and commands, run outside the checkout."""
    result = run(venv, "--version", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"events-server {VERSION}"
    result = run(venv, "--help", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: events-server")
    for text in ("--port", "--data-dir", "create-admin", "serve"):
        assert text in result.stdout, text
    result = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "events_server",
                             "--version"], cwd=str(tmp_path), capture_output=True, text=True,
                            timeout=30)
    assert result.stdout.strip() == f"events-server {VERSION}", result.stderr


def test_the_wheel_holds_the_server_under_one_directory_and_nothing_else(venv):
    """site-packages gains events_server/ (modules, templates, static, proto, the client
    library the pages load) and its dist-info only: no top-level `models` or `config`, no
    tests, bench or docs, and of clients/ nothing but clients/js/index.js."""
    packages = site_packages(venv)
    with open(os.path.join(packages, f"events_server-{VERSION}.dist-info", "RECORD")) as fh:
        files = [line.split(",")[0] for line in fh if line.strip()]
    top = {path.split("/")[0] for path in files if not path.startswith("../")}
    assert top == INSTALLED, top
    inside = {path.split("/")[1] for path in files
              if path.startswith("events_server/") and "__pycache__" not in path}
    assert inside == {"__main__.py", "main.py", "app.py", "config.py", "context.py", "auth",
                      "edge", "handlers", "hub", "models", "openapi", "services", "templates",
                      "static", "proto", "clients"}, inside
    assert [p for p in files if p.startswith("events_server/clients/")] == [
        "events_server/clients/js/index.js"]
    for needed in ("templates/dashboard.html", "static/test.js", "static/favicon.svg",
                   "proto/events.proto", "hub/redis/broker.py", "hub/events_pb2.py",
                   "models/migrate.py", "edge/__init__.py", "openapi/document.py",
                   "templates/docs.html", "static/docs.js",
                   "static/vendor/swagger-ui/swagger-ui-bundle.js",
                   "static/vendor/swagger-ui/swagger-ui.css", "static/vendor/swagger-ui/LICENSE"):
        assert f"events_server/{needed}" in files, needed
    assert not [p for p in files if p.startswith("../") and "events-server" not in p], files


def test_the_installed_server_serves_its_pages(venv, tmp_path):
    """The installed events-server, started outside the checkout, serves the dashboard, a
    static file, /health, the API document and its reader with the vendored renderer, then
    stops on SIGTERM with status 0."""
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "JWT_SECRET": TEST_SECRET}
    env.pop("PYTHONPATH", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [os.path.join(venv, "bin", "events-server"), f"--port={port}",
             f"--data-dir={tmp_path / 'data'}"],
            cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str, bytes]:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()

    def up() -> bool:
        try:
            return get("/health")[0] == 200
        except OSError:
            return proc.poll() is not None

    try:
        assert wait_for(up, 20) and proc.poll() is None, log_path.read_text()
        status, kind, body = get("/")
        assert status == 200 and kind.startswith("text/html") and b"<html" in body
        status, kind, body = get("/static/style.css")
        assert status == 200 and kind.startswith("text/css") and body
        status, kind, body = get("/clients/js/index.js")  # the module the pages import
        assert status == 200 and "javascript" in kind and b"export function connect" in body
        status, kind, body = get("/api/v1/openapi.json")
        assert status == 200 and kind.startswith("application/json") and b'"3.1.0"' in body
        status, kind, body = get("/docs")
        assert status == 200 and b'data-openapi-url="/api/v1/openapi.json"' in body
        status, kind, body = get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
        assert status == 200 and len(body) > 1_000_000
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, log_path.read_text()
    assert os.path.exists(tmp_path / "data" / "app.db")
