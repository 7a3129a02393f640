"""The command line: option parsing, create-admin, the generated secret and token-free logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from serverproc import free_port
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from app import ROOT
from auth import passwords
from auth.jwt import load_or_create_secret
from config import ConfigError, Settings, build_parser, env_of, flag_of, option_fields, parse_args
from edge.access_log import redact

# Every environment variable the CLI reads; subprocesses run without any of them.
CLI_ENV = tuple(env_of(f) for f in option_fields())


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any CLI variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV}
    return {**env, **extra}


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs `python main.py args...` to completion and returns the result."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env or clean_env(), timeout=60)


# -- parsing ------------------------------------------------------------------------------


def test_defaults_without_flags_or_environment():
    """With no flags and no environment the settings are the documented defaults."""
    command, settings, _ = parse_args([], environ={})
    assert command == "serve"
    assert settings == Settings()
    assert (settings.port, settings.address, settings.data_dir) == (8080, "127.0.0.1", "data")
    assert settings.effective_database_url == "sqlite:///" + os.path.join("data", "app.db")
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (900, 7 * 24 * 3600)
    assert settings.rate_limits is True and settings.debug is False and settings.jwt_secret == ""


def test_environment_variables_set_options():
    """PORT, DATABASE_URL, JWT_SECRET, token lifetimes and RATE_LIMITS come from the environment."""
    env = {"PORT": "9000", "ADDRESS": "0.0.0.0", "DATA_DIR": "/tmp/x",
           "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test", "JWT_SECRET": "s" * 40,
           "ACCESS_TOKEN_TTL": "60", "REFRESH_TOKEN_TTL": "3600", "RATE_LIMITS": "off",
           "DEBUG": "on"}
    _, settings, _ = parse_args([], environ=env)
    assert settings.port == 9000 and settings.address == "0.0.0.0"
    assert settings.data_dir == "/tmp/x"
    assert settings.effective_database_url == "postgresql://postgres@127.0.0.1:5432/test"
    assert settings.jwt_secret == "s" * 40
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (60, 3600)
    assert settings.rate_limits is False and settings.debug is True


def test_flags_override_environment():
    """A flag wins over the environment variable of the same option."""
    _, settings, _ = parse_args(["--port", "7000", "--rate-limits=on"],
                                environ={"PORT": "9000", "RATE_LIMITS": "off"})
    assert settings.port == 7000 and settings.rate_limits is True


def test_bare_switch_means_on():
    """A bare on/off switch such as --debug means on."""
    _, settings, _ = parse_args(["--debug"], environ={})
    assert settings.debug is True


def test_empty_environment_variable_means_default():
    """An empty environment variable is ignored rather than rejected."""
    _, settings, _ = parse_args([], environ={"PORT": "", "RATE_LIMITS": ""})
    assert settings.port == 8080 and settings.rate_limits is True


@pytest.mark.parametrize(
    "argv",
    [["--port", "abc"], ["--port", "70000"], ["--port", "-1"], ["--access-token-ttl", "0"],
     ["--refresh-token-ttl", "x"], ["--rate-limits", "maybe"], ["--database-url", "mysql://x"],
     ["--db-workers", "0"], ["--ping-interval", "5", "--ping-timeout", "10"]],
    ids=lambda a: " ".join(a),
)
def test_bad_flag_values_exit_with_status_2(argv, capsys):
    """Each bad flag value stops parsing with exit status 2 and a one-line reason on stderr."""
    with pytest.raises(SystemExit) as info:
        parse_args(argv, environ={})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("main.py: error:"), err


@pytest.mark.parametrize(
    "env, name",
    [({"PORT": "abc"}, "PORT"), ({"ACCESS_TOKEN_TTL": "-5"}, "ACCESS_TOKEN_TTL"),
     ({"DATABASE_URL": "redis://x"}, "DATABASE_URL"), ({"RATE_LIMITS": "sometimes"},
                                                       "RATE_LIMITS")],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_bad_environment_values_raise_config_error(env, name):
    """A bad environment value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        parse_args([], environ=env)


def test_bad_port_flag_exits_non_zero_with_one_line():
    """`python main.py --port abc` exits 2 with a single stderr line naming --port and the value."""
    result = run_main("--port", "abc")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--port" in lines[0] and "'abc'" in lines[0]
    assert result.stdout == ""


def test_bad_port_environment_exits_non_zero_with_one_line():
    """PORT=abc exits 2 with a single stderr line naming PORT."""
    result = run_main(env=clean_env(PORT="abc"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0], result.stderr


def test_help_mentions_every_option_and_command():
    """`python main.py --help` lists every option, its environment variable and both commands."""
    result = run_main("--help")
    assert result.returncode == 0
    flags = [a.option_strings[0] for a in build_parser({})._actions if a.option_strings]
    assert len(flags) > 10
    for flag in flags:
        assert flag in result.stdout, flag
    text = " ".join(result.stdout.split())
    for env in CLI_ENV:
        assert f"[env {env}]" in text, env
    assert "create-admin" in result.stdout and "serve" in result.stdout


def test_create_admin_help_mentions_its_options():
    """`python main.py create-admin --help` lists email, password, name, role and data options."""
    result = run_main("create-admin", "--help")
    assert result.returncode == 0
    for flag in ("--email", "--password", "--name", "--role", "--data-dir", "--database-url"):
        assert flag in result.stdout, flag


def test_every_option_is_in_the_readme_configuration_table():
    """Each option declared in Settings has a README row naming its flag, variable and default."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        rows = [line for line in fh if line.startswith("| `--")]
    documented = {row.split("`")[1]: row for row in rows}
    for field in option_fields():
        row = documented.get(flag_of(field))
        assert row is not None, f"README has no row for {flag_of(field)}"
        assert f"`{env_of(field)}`" in row, row


def test_settings_and_parser_agree_on_every_default():
    """The parser's defaults are the Settings defaults: each option is declared once."""
    args = build_parser({}).parse_args([])
    for field in option_fields():
        assert getattr(args, field.name) == field.default, field.name


# -- create-admin -------------------------------------------------------------------------


def fetch_user(db_path, email: str) -> dict | None:
    """Reads one user row from the SQLite file the CLI wrote."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def test_create_admin_creates_then_promotes(tmp_path):
    """create-admin creates an admin, then promotes it to superadmin keeping its password."""
    data = str(tmp_path / "data")
    result = run_main("create-admin", "--email=Boss@Example.com", "--password=adminpass1",
                      "--name=Boss", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created boss@example.com")
    db_path = os.path.join(data, "app.db")
    row = fetch_user(db_path, "boss@example.com")
    assert (row["name"], row["role"]) == ("Boss", "admin")
    assert passwords.verify_password("adminpass1", row["password_hash"])

    result = run_main("create-admin", "--email=boss@example.com", "--password=otherpass1",
                      "--role=superadmin", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("promoted boss@example.com")
    promoted = fetch_user(db_path, "boss@example.com")
    assert promoted["id"] == row["id"] and promoted["role"] == "superadmin"
    assert promoted["password_hash"] == row["password_hash"]

    result = run_main("create-admin", "--email=boss@example.com", "--password=otherpass1",
                      "--role=superadmin", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert "already superadmin; nothing changed" in result.stdout


def test_create_admin_promotes_an_existing_user(tmp_path):
    """create-admin on a registered user's email makes that user an admin."""
    data = str(tmp_path / "data")
    assert run_main("create-admin", "--email=first@example.com", "--password=adminpass1",
                    "--data-dir", data).returncode == 0
    db_path = os.path.join(data, "app.db")
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO users (name, email, password_hash, role, token_version, created_at,"
        " updated_at) VALUES ('Amy', 'amy@example.com', ?, 'user', 1, '2024-01-01 00:00:00',"
        " '2024-01-01 00:00:00')", (passwords.hash_password("password123"),))
    conn.commit()
    conn.close()
    result = run_main("create-admin", "--email=amy@example.com", "--password=whatever1",
                      "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert "promoted amy@example.com" in result.stdout and "as admin" in result.stdout
    row = fetch_user(db_path, "amy@example.com")
    assert row["role"] == "admin" and row["name"] == "Amy"
    assert passwords.verify_password("password123", row["password_hash"])


@pytest.mark.parametrize(
    "args, fragment",
    [(["--email=bad", "--password=adminpass1"], "email"),
     (["--email=a@example.com", "--password=short"], "password"),
     (["--email=a@example.com", "--password=adminpass1", "--role=user"], "--role"),
     (["--password=adminpass1"], "--email")],
    ids=["bad-email", "short-password", "bad-role", "no-email"],
)
def test_create_admin_rejects_bad_input(tmp_path, args, fragment):
    """create-admin with invalid input exits 2 with a one-line reason and creates nobody."""
    data = str(tmp_path / "data")
    result = run_main("create-admin", *args, "--data-dir", data)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    db_path = os.path.join(data, "app.db")
    if os.path.exists(db_path):
        conn = sqlite3.connect(db_path)
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
        conn.close()


# -- the generated JWT secret ---------------------------------------------------------------


def test_secret_is_generated_once_with_mode_0600(tmp_path, caplog):
    """Without a configured secret one is generated into the data dir, mode 0600, and logged."""
    data = tmp_path / "fresh" / "data"
    with caplog.at_level(logging.WARNING, logger="auth"):
        secret = load_or_create_secret(str(data))
    path = data / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 32 and path.read_text().strip() == secret
    assert any("generated a new JWT secret" in r.getMessage() for r in caplog.records)
    assert secret not in caplog.text
    caplog.clear()
    assert load_or_create_secret(str(data)) == secret
    assert not caplog.records


def test_secret_generation_ignores_a_permissive_umask(tmp_path):
    """The secret file is 0600 even when the process umask would allow group/other access."""
    old = os.umask(0)
    try:
        load_or_create_secret(str(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600


# -- tokens never reach the logs ------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, expected",
    [("/ws?token=abc.def.ghi", "/ws?token=REDACTED"),
     ("/ws?x=1&token=abc&y=2", "/ws?x=1&token=REDACTED&y=2"),
     ("/ws?TOKEN=abc", "/ws?TOKEN=REDACTED"),
     ("/a?access_token=abc&refresh_token=def", "/a?access_token=REDACTED&refresh_token=REDACTED"),
     ("/ws?notatoken=abc", "/ws?notatoken=abc"),
     ("/ws?%74oken=abc", "/ws?%74oken=REDACTED"),
     ("/ws?token", "/ws?token=REDACTED"),
     ("/health", "/health")],
)
def test_redact_hides_token_values(uri, expected):
    """redact() replaces the values of token parameters and leaves everything else alone."""
    assert redact(uri) == expected


@pytest.mark.gen_test
async def test_logs_never_contain_tokens(api, caplog, monkeypatch):
    """Log lines for requests carrying ?token= (accepted, refused, 404, 400, 500) show REDACTED."""

    async def crash() -> None:
        raise RuntimeError("boom")

    user = await api.register()
    token = user["access_token"]
    forged = token[:-4] + "AAAA"
    caplog.set_level(logging.DEBUG)
    conn = await websocket_connect(f"{api.ws_url}/ws?token={token}")
    await conn.read_message()
    conn.close()
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(f"{api.ws_url}/ws?token={forged}")
    assert info.value.code == 401
    status, _, _ = await api.call("GET", f"/ws?token={forged}")
    assert status == 401
    status, _, _ = await api.call("GET", f"/ws/?token={token}")  # a typo'd path: 404
    assert status == 404
    status, _, _ = await api.call("POST", f"/api/v1/users/me/password?token={token}",
                                  raw=b"not json", token=token)
    assert status == 400
    monkeypatch.setattr(api.ctx.health, "check", crash)
    status, _, _ = await api.call("GET", f"/health?token={token}")  # an unexpected crash: 500
    assert status == 500
    messages = [r.getMessage() for r in caplog.records]
    access = [m for m in messages if "/ws" in m]
    assert access, messages
    assert any("token=REDACTED" in m and m.startswith("101 ") for m in access), access
    assert any("token=REDACTED" in m and m.startswith("401 ") for m in access), access
    for text in (token, forged, token.split(".")[2]):
        assert text not in caplog.text


# -- the real server ----------------------------------------------------------------------


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    """A blocking JSON request for talking to the subprocess server."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def wait_healthy(proc: subprocess.Popen, base: str, log_path) -> tuple[int, dict]:
    """Polls GET /health until the subprocess server answers; fails if it exits or after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            return http("GET", base + "/health")
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)  # polling the subprocess until it listens


def test_serve_runs_generates_secret_and_stops_on_sigterm(tmp_path):
    """`python main.py` serves the API, creates a 0600 secret, keeps tokens out of its log,
    and exits 0 on SIGTERM."""
    port = free_port()
    data = tmp_path / "data"
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(port), "--data-dir", str(data)],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=clean_env())
        try:
            base = f"http://127.0.0.1:{port}"
            status, parsed = wait_healthy(proc, base, log_path)
            assert status == 200 and parsed["status"] == "ok"
            status, parsed = http("POST", base + "/api/v1/auth/register",
                                  {"name": "John Doe", "email": "john@example.com",
                                   "password": "secure123", "age": 25})
            assert status == 201, parsed
            status, parsed = http("POST", base + "/api/v1/auth/login",
                                  {"email": "john@example.com", "password": "secure123"})
            token = parsed["data"]["access_token"]
            assert status == 200
            status, _ = http("GET", f"{base}/ws?token={token}")  # valid token, no upgrade
            assert status == 400
            status, _ = http("GET", f"{base}/ws/?token={token}")  # a mistyped path
            assert status == 404
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    log = log_path.read_text()
    assert code == 0, log
    assert stat.S_IMODE((data / "jwt_secret").stat().st_mode) == 0o600
    assert (data / "app.db").exists()
    assert "generated a new JWT secret" in log
    assert "token=REDACTED" in log and token not in log
    assert (data / "jwt_secret").read_text().strip() not in log


def test_tune_gc_freezes_startup_objects_and_raises_the_young_threshold():
    """tune_gc() freezes start-up objects and raises the young threshold, keeping GC enabled."""
    import gc

    import main

    before = gc.get_threshold()
    try:
        main.tune_gc()
        assert gc.isenabled()
        assert gc.get_threshold()[0] == main.GC_THRESHOLD_YOUNG
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
