"""`make fuzz-api`: schemathesis walks the OpenAPI document against running servers.

For each database (SQLite, then PostgreSQL in a schema of its own) it starts main.py on a free
port with `--rate-limits=off`, makes the fuzzer an admin (`create-admin`) and an API key
(`api-key create --json`), and runs schemathesis on /api/v1/openapi.json: every phase
(examples, coverage, fuzzing, stateful, the last following the document's links) and every
check (no 5xx, status codes, content types, headers and bodies as documented, no response
slower than 1 s, refusals of invalid input, acceptance of valid input, ...). A last, short run
with the rate limits on fuzzes register and login, so that their 429 answers are checked too.

The run fails, exit status 1, when schemathesis reports a failure or an error, when a server
logged a traceback or an error, or when it did not answer /health after the run and stop
cleanly on SIGTERM.

    python -m proof.fuzz_api                         # both databases, what CI runs
    python -m proof.fuzz_api --databases sqlite      # one
    python -m proof.fuzz_api --max-examples 100 --max-time 900   # longer, by hand

Reports (JUnit XML, the schemathesis output, each server's log, summary.md):
proof/reports/fuzz/, which git ignores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from proof.fuzzserver import IN_CI, POSTGRES_URL, FuzzServer, PostgresSchema

__all__ = ["main", "run_schemathesis", "Outcome"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTS = os.path.join(ROOT, "proof", "reports", "fuzz")
ST = os.path.join(os.path.dirname(sys.executable), "st")
CONFIG = """\
# Written by proof/fuzz_api.py for one run.
[checks]
max_response_time = 1.0

[generation]
# The fuzzer's credentials come from proof/fuzz_hooks.py, never from generated headers.
with-security-parameters = false
# Nothing kept between runs (no .schemathesis/ in the checkout): each run stands alone.
database = "none"
"""


# A crash of Hypothesis's own search (6.170's hill climbing can index past the end of a test
# case that shrank under it: IndexError in conjecture/optimiser.py), not of the server.
ENGINE_FAULT = re.compile(r"hypothesis/internal/conjecture/\w+\.py\", line \d+, in \w+\n"
                          r"(?:.*\n){0,3}?\s*\w*Error: ")


class Outcome:
    """What one schemathesis run reported."""

    def __init__(self, name: str, code: int, output: str, problems: list[str]) -> None:
        self.name, self.code, self.problems, self.output = name, code, problems, output
        generated = re.search(r"(\d+) generated", output)
        self.cases = int(generated.group(1)) if generated else 0
        self.summary = next((line.strip(" =") for line in reversed(output.splitlines())
                             if line.startswith("=") and " in " in line), "no summary line")

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.problems

    @property
    def engine_fault_only(self) -> bool:
        """Whether the run failed only by a crash inside Hypothesis's own engine: no failure
        found, no server problem, every error a traceback ending in hypothesis/internal/."""
        if self.ok or self.problems or re.search(r"\b\d+ failures?\b", self.summary):
            return False
        return bool(ENGINE_FAULT.search(self.output)) and "Runtime Error" in self.output


def run_schemathesis(server: FuzzServer, name: str, args: argparse.Namespace,
                     extra: list[str] | None = None) -> Outcome:
    """Runs schemathesis against server; returns what it and the server's log say."""
    report_dir = os.path.join(REPORTS, name)
    os.makedirs(report_dir, exist_ok=True)
    config = os.path.join(server.workdir, "schemathesis.toml")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(CONFIG)
    env = {**os.environ, **server.fuzzer_env(), "SCHEMATHESIS_HOOKS": "proof.fuzz_hooks",
           "PYTHONPATH": ROOT, "NO_COLOR": "1"}
    command = [ST, "--config-file", config, "run", server.base + "/api/v1/openapi.json",
               "--workers", "1", "--max-examples", str(args.max_examples),
               "--max-time", str(args.max_time), "--seed", str(args.seed), "--no-color",
               "--report", "junit", "--report-dir", report_dir, *(extra or [])]
    print(f"\n== {name}: {' '.join(command[3:])}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
        code = proc.wait()
    output = "".join(lines)
    with open(os.path.join(report_dir, "schemathesis.txt"), "w", encoding="utf-8") as fh:
        fh.write(output)
    return Outcome(name, code, output, server.problems())


def _fuzz(name: str, args: argparse.Namespace, database_url: str | None = None,
          env: dict[str, str] | None = None, rate_limits: bool = False,
          extra: list[str] | None = None) -> Outcome:
    """Starts a server, fuzzes it, stops it; returns the outcome (server faults included).

    A run that failed only because Hypothesis itself crashed is run once more with the next
    seed; any failure, server problem or second crash stands."""
    outcome = _fuzz_once(name, args, database_url, env, rate_limits, extra)
    if outcome.engine_fault_only:  # once more on a fresh server, with the next seed
        print(f"\n== {name}: Hypothesis's engine crashed (no failure found): "
              f"running again with --seed {args.seed + 1}", flush=True)
        again = argparse.Namespace(**{**vars(args), "seed": args.seed + 1})
        outcome = _fuzz_once(name, again, database_url, env, rate_limits, extra)
        outcome.summary += f" (second run, seed {again.seed}: the first crashed in Hypothesis)"
    return outcome


def _fuzz_once(name: str, args: argparse.Namespace, database_url: str | None,
               env: dict[str, str] | None, rate_limits: bool,
               extra: list[str] | None) -> Outcome:
    workdir = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    server = FuzzServer(workdir, database_url=database_url, env=env, rate_limits=rate_limits)
    try:
        server.start()
        outcome = run_schemathesis(server, name, args, extra)
        outcome.problems.extend(server.stop())
    finally:
        server.kill()
        shutil.copy(server.log_path, os.path.join(REPORTS, name, "server.log"))
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def _write_summary(outcomes: list[Outcome], seconds: float) -> str:
    """Writes summary.md and returns it."""
    lines = ["| run | test cases | result |", "|---|---|---|"]
    for o in outcomes:
        result = "passed" if o.ok else "FAILED: " + "; ".join(
            [f"schemathesis exit {o.code}"] * (o.code != 0) + o.problems)
        lines.append(f"| {o.name} | {o.cases} | {result} ({o.summary}) |")
    lines.append(f"\n{sum(o.cases for o in outcomes)} test cases in {seconds:.0f} s.")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(REPORTS, "summary.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Runs the fuzzer against each database; returns the process's exit status."""
    parser = argparse.ArgumentParser(prog="python -m proof.fuzz_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")
    parser.add_argument("--max-examples", type=int, default=25,
                        help="test cases per operation and phase (default 25)")
    parser.add_argument("--max-time", type=int, default=100,
                        help="seconds each database's run may take (default 100)")
    parser.add_argument("--seed", type=int, default=1,
                        help="schemathesis seed (default 1, so that CI generates the same "
                             "cases each time; pass others to explore)")
    parser.add_argument("--no-limits-run", action="store_true",
                        help="skip the short run with the rate limits on")
    args = parser.parse_args(argv)
    shutil.rmtree(REPORTS, ignore_errors=True)
    os.makedirs(REPORTS)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
        if database == "sqlite":
            outcomes.append(_fuzz("sqlite", args))
        elif database == "postgresql":
            schema = PostgresSchema.create()
            if schema is None:
                message = f"PostgreSQL not reachable at {POSTGRES_URL}"
                if IN_CI:
                    print(f"fuzz-api: {message} (CI=true: this run must not skip)")
                    return 1
                print(f"fuzz-api: {message}: the PostgreSQL run is skipped")
                continue
            try:
                outcomes.append(_fuzz("postgresql", args, POSTGRES_URL, schema.env()))
            finally:
                schema.drop()
        else:
            parser.error(f"unknown database {database!r}")
    if not args.no_limits_run:
        limited = argparse.Namespace(**{**vars(args), "max_examples": 10, "max_time": 30})
        outcomes.append(_fuzz("sqlite-rate-limits", limited, rate_limits=True, extra=[
            "--include-operation-id", "register", "--include-operation-id", "login",
            "--phases", "examples,coverage,fuzzing"]))
    print("\n" + _write_summary(outcomes, time.monotonic() - started))
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
