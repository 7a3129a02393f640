"""`make conformance`: the Autobahn|Testsuite cases against the server's real WebSocket stack.

Starts the echo application (proof/echo.py) in a process of its own on a free port, registers
a user over its REST API, and points kosoku's fuzzing client (Autobahn's own case files,
reports in Autobahn's format) at `/echo?token=...`. The run fails, exit status 1, when a case
is not OK, NON-STRICT or INFORMATIONAL (or its closing handshake not OK or INFORMATIONAL),
when a selected case has no result, when the server logged a traceback or an error, or when
it did not answer /health after the cases and stop cleanly on SIGTERM.

    python -m proof.conformance            # groups 1-7, 12.1 and 13.1 (what CI runs)
    python -m proof.conformance --full     # groups 1-7, 9, 10, 12 and 13
    python -m proof.conformance -i 7.9.*   # chosen cases

Reports: proof/reports/ (index.html, index.json, one file per case, the server's log and
summary.md), which git ignores.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from proof import summary

__all__ = ["CI_CASES", "FULL_CASES", "EchoServer", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTS = os.path.join(ROOT, "proof", "reports")
KOSOKU = os.path.join(ROOT, ".venv-conformance", "bin", "kosoku")
CI_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "12.1.*", "13.1.*")
FULL_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*")
# Lines of the server's log that fail the run: a traceback, or anything logged as an error.
LOG_PROBLEMS = ("Traceback (most recent call last)", " ERROR ")


def free_port() -> int:
    """Returns a loopback port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    """Sends a GET (or a JSON POST when body is given); returns (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class EchoServer:
    """The echo application in a child process, logging to a file."""

    def __init__(self, log_path: str, data_dir: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = {**os.environ, "JWT_SECRET": secrets.token_urlsafe(48), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proof.echo", f"--port={self.port}", f"--data-dir={data_dir}"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits until /health answers 200; raises if the server exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the echo server exited ({self.proc.returncode}); "
                                   f"see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the echo server did not answer /health in {timeout:.0f} s")

    def healthy(self) -> bool:
        """Tells whether the server answers GET /health with 200."""
        try:
            return _request(self.base + "/health", timeout=2.0)[0] == 200
        except OSError:
            return False

    def token(self) -> str:
        """Registers a user over the REST API and returns its access token."""
        status, body = _request(self.base + "/api/v1/auth/register", {
            "name": "Conformance", "email": f"conformance-{secrets.token_hex(4)}@example.com",
            "password": secrets.token_urlsafe(16), "age": 30})
        if status != 201:
            raise RuntimeError(f"register answered {status}: {body}")
        return body["data"]["access_token"]

    def stop(self, timeout: float = 20.0) -> int | None:
        """Sends SIGTERM and returns the exit status (None if it had to be killed)."""
        status: int | None = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            status = self.proc.returncode
        self._log.close()
        return status

    def log_problems(self) -> list[str]:
        """Returns the log lines that fail the run."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip() for line in f if any(p in line for p in LOG_PROBLEMS)]


def run_cases(kosoku: str, url: str, cases: list[str], reports: str, parallelism: int) -> int:
    """Runs kosoku's fuzzing client on the selected cases; returns its exit status."""
    command = [kosoku, "-m", "fuzzingclient", url, "-o", reports, "-p", str(parallelism)]
    for case in cases:
        command += ["-i", case]
    return subprocess.run(command, cwd=ROOT).returncode


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m proof.conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="every group: 1-7, 9, 10, 12 and 13 (default: 1-7, 12.1, 13.1)")
    parser.add_argument("-i", "--case", action="append", metavar="CASE",
                        help="case id or glob instead of a group list (repeatable)")
    parser.add_argument("--reports", default=REPORTS, help="report directory (emptied first)")
    parser.add_argument("--kosoku", default=os.environ.get("KOSOKU", KOSOKU),
                        help="the kosoku executable (default .venv-conformance/bin/kosoku)")
    parser.add_argument("-p", "--parallelism", type=int, default=1,
                        help="cases run at once (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the cases and prints the summary; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.access(args.kosoku, os.X_OK):
        print(f"conformance: {args.kosoku} not found: make conformance installs kosoku into "
              ".venv-conformance", file=sys.stderr)
        return 2
    cases = args.case or list(FULL_CASES if args.full else CI_CASES)
    shutil.rmtree(args.reports, ignore_errors=True)
    os.makedirs(args.reports)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conformance-") as data_dir:
        server = EchoServer(os.path.join(args.reports, "server.log"), data_dir)
        try:
            server.wait_ready()
            url = f"ws://127.0.0.1:{server.port}/echo?token={server.token()}"
            kosoku_status = run_cases(args.kosoku, url, cases, args.reports, args.parallelism)
            alive = server.healthy()
        except RuntimeError as exc:  # the server did not start, or refused to register
            print(f"conformance: {exc}", file=sys.stderr)
            kosoku_status, alive = -1, False
        finally:
            exit_status = server.stop()
    elapsed = time.monotonic() - started
    return report(args.reports, cases, kosoku_status, alive, exit_status,
                  server.log_problems(), elapsed)


def report(reports: str, cases: list[str], kosoku_status: int, alive: bool,
           exit_status: int | None, log_problems: list[str], elapsed: float) -> int:
    """Prints and saves the summary (summary.md); returns 0 only if everything conformed."""
    index = os.path.join(reports, "index.json")
    verdicts = summary.load_file(index) if os.path.exists(index) else []
    failures = [f"{v.case}: behaviour {v.behavior}, close {v.close}"
                for v in summary.problems(verdicts)]
    if not verdicts:
        failures.append("no case reported a result")
    if kosoku_status != 0:
        failures.append(f"kosoku exited with status {kosoku_status}")
    if not alive:
        failures.append("the server did not answer /health after the cases")
    if exit_status != 0:
        failures.append(f"the server did not stop cleanly on SIGTERM (status {exit_status})")
    failures += [f"server log: {line}" for line in log_problems]
    lines = [f"Cases {' '.join(cases)}: {len(verdicts)} run in {elapsed:.0f} s.", "",
             summary.table(verdicts), ""]
    lines += [f"- {v.case}: {v.behavior} (close {v.close})" for v in verdicts
              if v.behavior != "OK" or v.close != "OK"]
    lines += ["", "FAILED:" if failures else "Every case conformed; no traceback in the log."]
    lines += [f"- {failure}" for failure in failures]
    text = "\n".join(lines).rstrip() + "\n"
    with open(os.path.join(reports, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text, end="")
    print(f"reports: {os.path.relpath(reports, ROOT)}/index.html")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
