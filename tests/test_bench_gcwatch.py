"""bench/gcwatch: a benchmarked server's full garbage collections counted from outside its
code, and read back per server (summed over its processes)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.modes import ROOT
from bench.stats import full_collections

GCWATCH = os.path.join(ROOT, "bench", "gcwatch")

# Three full collections and two young ones in the parent; a forked child then runs two of its
# own, counted in a file of its own from zero.
SCRIPT = """
import gc, os
for _ in range(3):
    gc.collect()
gc.collect(0); gc.collect(1)
pid = os.fork()
if pid == 0:
    gc.collect(); gc.collect()
    os._exit(0)
os.waitpid(pid, 0)
print(os.getpid(), pid, flush=True)
os._exit(0)  # without the interpreter's own collection at exit
"""


def _run(env: dict[str, str], cwd: str = ROOT) -> list[int]:
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=True)
    return [int(pid) for pid in done.stdout.split()]


def test_each_process_counts_its_full_collections_and_their_cpu(tmp_path):
    prefix = str(tmp_path / "server-gc")
    parent, child = _run({"PYTHONPATH": GCWATCH, "BENCH_GC_LOG": prefix})
    lines = {pid: (tmp_path / f"server-gc.{pid}").read_text().splitlines()
             for pid in (parent, child)}
    assert [line.split()[0] for line in lines[parent]] == ["1", "2", "3"]  # young ones: none
    assert [line.split()[0] for line in lines[child]] == ["1", "2"]
    assert all(float(line.split()[1]) > 0 for line in lines[parent] + lines[child])
    count, seconds = full_collections(prefix)
    assert count == 5
    assert seconds == float(lines[parent][-1].split()[1]) + float(lines[child][-1].split()[1])


def test_a_half_written_line_is_not_read_and_other_servers_files_are_not_summed(tmp_path):
    (tmp_path / "a-gc.1").write_text("1 0.010000\n2 0.030000\n3 0.0")  # mid-write
    (tmp_path / "a-gc.2").write_text("4 0.100000\n")
    (tmp_path / "ab-gc.3").write_text("9 9.000000\n")  # another server's
    count, seconds = full_collections(str(tmp_path / "a-gc"))
    assert (count, round(seconds, 6)) == (6, 0.13)
    assert full_collections(str(tmp_path / "none-gc")) == (0, 0.0)
    assert full_collections(str(tmp_path / "missing" / "x-gc")) == (0, 0.0)


def test_without_the_variable_nothing_is_watched(tmp_path):
    _run({"PYTHONPATH": GCWATCH, "BENCH_GC_LOG": ""}, cwd=str(tmp_path))  # an empty prefix
    assert list(tmp_path.iterdir()) == []  # would have written ./.<pid> here
