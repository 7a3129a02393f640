"""Start-up: --version, one-line failures with status 2 that write nothing, and create-admin's
password from a prompt or the environment."""

from __future__ import annotations

import os
import pty
import select
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import TEST_SECRET
from serverproc import ServerProcess, free_port

from auth import passwords
from config import VERSION, env_of, option_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "startup-test-secret-" + "z" * 32


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any option variable, plus `extra`."""
    names = {env_of(f) for f in option_fields()} | {"ADMIN_PASSWORD"}
    return {**{k: v for k, v in os.environ.items() if k not in names}, **extra}


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs `python main.py args...` with no terminal attached and returns the result."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env or clean_env(), timeout=60,
                          stdin=subprocess.DEVNULL)


def test_version_prints_the_version():
    """`python main.py --version` prints `events-server <version>` and exits 0."""
    result = run_main("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"events-server {VERSION}\n"


# -- one line, status 2, nothing written ---------------------------------------------------


@pytest.fixture
def held_port():
    """A loopback port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def refused_url() -> str:
    """A PostgreSQL URL nothing listens on."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/test"


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Checks status 2, no output, and one stderr line with every fragment; returns it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("main.py: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_nothing_written(data_dir) -> None:
    """Checks the data directory holds no secret and no database file."""
    if os.path.exists(data_dir):
        assert sorted(os.listdir(data_dir)) == [], os.listdir(data_dir)


def test_port_in_use_is_one_line_naming_port(tmp_path, held_port):
    """A port in use: `port N is in use: choose another with --port`, status 2, and no
    secret or database written."""
    data = tmp_path / "data"
    result = run_main(f"--port={held_port}", f"--data-dir={data}")
    line = assert_refused(result, f"port {held_port} is in use", "--port")
    assert line == f"main.py: error: port {held_port} is in use: choose another with --port"
    assert not data.exists()


def test_metrics_port_in_use_names_metrics_port(tmp_path, held_port):
    """The metrics port in use names --metrics-port and writes nothing either."""
    data = tmp_path / "data"
    result = run_main(f"--port={free_port()}", f"--metrics-port={held_port}",
                      f"--data-dir={data}")
    assert_refused(result, f"port {held_port} is in use", "--metrics-port")
    assert not data.exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_short_jwt_secret_is_one_line_naming_the_option(tmp_path, how):
    """A JWT secret under 32 characters, as a flag or JWT_SECRET, stops the start with one
    line that names it and never shows the secret."""
    data = tmp_path / "data"
    if how == "flag":
        result = run_main(f"--port={free_port()}", f"--data-dir={data}", "--jwt-secret=tooshort1")
        line = assert_refused(result, "--jwt-secret", "at least 32 characters")
    else:
        result = run_main(f"--port={free_port()}", f"--data-dir={data}",
                          env=clean_env(JWT_SECRET="tooshort1"))
        line = assert_refused(result, "JWT_SECRET", "at least 32 characters")
    assert "tooshort1" not in line
    assert not data.exists()


def test_short_stored_secret_is_one_line(tmp_path):
    """A hand-edited <data-dir>/jwt_secret under 32 characters names the file and
    --jwt-secret, and no database is created."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "jwt_secret").write_text("short\n")
    result = run_main(f"--port={free_port()}", f"--data-dir={data}")
    assert_refused(result, str(data / "jwt_secret"), "--jwt-secret")
    assert sorted(os.listdir(data)) == ["jwt_secret"]


def test_unreachable_postgresql_is_one_line_naming_database_url(tmp_path):
    """An unreachable PostgreSQL names --database-url, and no secret is generated."""
    data = tmp_path / "data"
    url = refused_url()
    result = run_main(f"--port={free_port()}", f"--data-dir={data}", f"--database-url={url}")
    assert_refused(result, "cannot connect to the database", url, "--database-url")
    assert_nothing_written(data)


def test_data_dir_that_cannot_be_created_is_one_line_naming_data_dir(tmp_path):
    """A data directory under a regular file cannot be created: one line names it and
    --data-dir."""
    (tmp_path / "file").write_text("")
    data = tmp_path / "file" / "data"
    result = run_main(f"--port={free_port()}", f"--data-dir={data}")
    assert_refused(result, f"cannot create the directory {data}", "--data-dir")


def test_unusable_sqlite_directory_names_database_url(tmp_path):
    """A SQLite URL whose directory cannot be created names --database-url."""
    (tmp_path / "file").write_text("")
    url = f"sqlite:///{tmp_path}/file/db/app.db"
    result = run_main(f"--port={free_port()}", f"--data-dir={tmp_path / 'data'}",
                      f"--database-url={url}", env=clean_env(JWT_SECRET=SECRET))
    assert_refused(result, "cannot create the directory", "--database-url")


def test_create_admin_with_unreachable_database_is_one_line(tmp_path):
    """create-admin on an unreachable database says so in one line, status 2."""
    result = run_main("create-admin", "--email=a@example.com", f"--data-dir={tmp_path}",
                      f"--database-url={refused_url()}",
                      env=clean_env(ADMIN_PASSWORD="adminpass1"))
    assert_refused(result, "cannot connect to the database", "--database-url")


# -- create-admin's password ---------------------------------------------------------------


def stored_hash(data_dir, email: str) -> str | None:
    """Returns the stored password hash of email, or None (no such user, or no database)."""
    path = os.path.join(data_dir, "app.db")
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def test_create_admin_reads_admin_password_from_the_environment(tmp_path):
    """create-admin without --password takes ADMIN_PASSWORD and creates the admin with it."""
    result = run_main("create-admin", "--email=env@example.com", f"--data-dir={tmp_path}",
                      env=clean_env(ADMIN_PASSWORD="from-the-env-1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created env@example.com")
    assert passwords.verify_password("from-the-env-1", stored_hash(tmp_path, "env@example.com"))


def test_create_admin_without_password_or_terminal_says_how(tmp_path):
    """With no --password, no ADMIN_PASSWORD and no terminal, create-admin exits 2 with one
    line naming both ways, creating nobody."""
    result = run_main("create-admin", "--email=none@example.com", f"--data-dir={tmp_path}")
    assert_refused(result, "ADMIN_PASSWORD", "--password")
    assert stored_hash(tmp_path, "none@example.com") is None


def run_in_terminal(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Runs `python main.py args` on a pseudo-terminal, answering each prompt (a line ending
    in ': ') with the next answer; returns (exit status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "main.py", *args], clean_env())
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown.rstrip(b" ").endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_create_admin_asks_for_the_password_twice_at_a_terminal(tmp_path):
    """At a terminal create-admin asks twice, shows neither answer, and stores the password."""
    code, shown = run_in_terminal(
        ["create-admin", "--email=tty@example.com", f"--data-dir={tmp_path}"],
        ["typed-at-tty-1", "typed-at-tty-1"])
    assert code == 0, shown
    assert "Password for tty@example.com:" in shown and "Repeat the password:" in shown
    assert "created tty@example.com" in shown
    assert "typed-at-tty-1" not in shown  # not echoed
    assert passwords.verify_password("typed-at-tty-1", stored_hash(tmp_path, "tty@example.com"))


def test_create_admin_refuses_two_different_answers(tmp_path):
    """Two different answers at the prompt change nothing and exit 2."""
    code, shown = run_in_terminal(
        ["create-admin", "--email=typo@example.com", f"--data-dir={tmp_path}"],
        ["first-answer-1", "second-answer-2"])
    assert code == 2, shown
    assert "the two passwords differ" in shown
    assert stored_hash(tmp_path, "typo@example.com") is None


@pytest.mark.parametrize("choice, name", [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                          ("auto", "uvloop")])
def test_the_start_up_line_names_the_loop_that_runs(tmp_path, choice, name):
    """--loop picks the event loop (auto: uvloop, which the package installs)."""
    server = ServerProcess(str(tmp_path), f"--loop={choice}")
    try:
        assert f"{name} loop)" in server.output()
    finally:
        server.stop()


def test_an_unknown_loop_is_refused_in_one_line(tmp_path):
    """--loop=trio is a configuration error: one line, status 2."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--loop=trio",
                             f"--data-dir={tmp_path}"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "JWT_SECRET": TEST_SECRET})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--loop" in result.stderr
