"""The paired-rounds benchmark's pieces: round order, the per-round ratios and their medians,
the targets read from them, and its docs section."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest

from bench.modes import MODES, ROOT, Clock
from bench.report import render_sections
from bench.report.targets import paired_targets
from bench.workloads import paired
from bench.workloads.paired import checkout, rotation, summarize

SERVERS = ["product", "websockets", "floor"]


def _round(product: float, peer: float, floor: float) -> dict:
    return {"product": {"cpu_us": product}, "websockets": {"cpu_us": peer},
            "floor": {"cpu_us": floor}}


def _report() -> dict:
    # The peer's CPU swings from round to round (a noisy machine); this server's ratio to it
    # is 1.5 in every handshake round and 0.6 in every broadcast round.
    h = [_round(300.0, 200.0, 250.0), _round(600.0, 400.0, 500.0), _round(450.0, 300.0, 400.0)]
    b = [_round(6.0, 10.0, 7.0), _round(12.0, 20.0, 14.0), _round(9.0, 15.0, 10.0)]
    return {"kind": "paired", "started": "2026-11-27T01:00:00Z", "mode": "quick", "rounds": 3,
            "handshakes": 300, "tabs": 3, "broadcasts": 4, "connections": 1000,
            "servers": SERVERS,
            "peer": "websockets", "loadavg_start": (1.5, 1.0, 1.0),
            "loadavg_end": (2.0, 1.0, 1.0), "handshake": {"rounds": h, **summarize(h)},
            "broadcast": {"rounds": b, **summarize(b)}}


def test_each_round_starts_with_another_server():
    assert [rotation(SERVERS, i)[0] for i in range(4)] == ["product", "websockets", "floor",
                                                           "product"]
    assert sorted(rotation(SERVERS, 2)) == sorted(SERVERS)


def test_ratios_are_taken_within_each_round_then_the_median():
    report = _report()
    h, b = report["handshake"], report["broadcast"]
    assert h["median_cpu_us"] == {"product": 450.0, "websockets": 300.0, "floor": 400.0}
    assert h["ratio_to_peer"]["product"] == pytest.approx(1.5)
    assert b["ratio_to_peer"]["product"] == pytest.approx(0.6)
    assert b["ratio_to_peer"]["floor"] == pytest.approx(0.7)
    assert "websockets" not in h["ratio_to_peer"]


def test_a_round_without_a_value_is_left_out_of_its_ratio():
    rounds = [_round(6.0, 10.0, 7.0), {**_round(1.0, 1.0, 1.0), "product": {"cpu_us": None}}]
    out = summarize(rounds)
    assert out["ratio_to_peer"]["product"] == pytest.approx(0.6)
    assert out["median_cpu_us"]["product"] == 6.0


def test_targets_are_read_from_the_paired_ratios():
    got = {t["id"]: (round(t["value"], 2), t["met"]) for t in paired_targets(_report())}
    assert got == {"paired_broadcast": (0.6, True), "paired_handshake": (1.5, False)}
    assert [t["met"] for t in paired_targets({"handshake": {}, "broadcast": {}})] == [None, None]


def test_the_delivery_target_shows_the_floor_and_a_miss_its_cause():
    report = _report()
    assert paired_targets(report)[0]["detail"] == "bare send() floor 0.70x"
    report["broadcast"]["ratio_to_peer"] = {"product": 0.74, "floor": 0.74}
    broadcast = paired_targets(report)[0]
    assert broadcast["met"] is False and "one send() per socket" in broadcast["cause"]
    assert paired_targets({"handshake": {}, "broadcast": {}})[0]["detail"] == "not measured"


def test_the_handshake_target_shows_the_bare_handshake_floor():
    handshake = paired_targets(_report())[1]  # the floor's rounds: 1.25x, 1.25x, 1.33x the peer
    assert handshake["detail"] == "bare handshake floor 1.25x"
    assert handshake["met"] is False and "floor" in handshake["cause"]


def _collected(report: dict) -> dict:
    # The peer ran a full collection in rounds 2 and 3, taking 200 and 150 us per handshake of
    # its 400 and 300; without them its rounds cost 200, 200 and 150 us, and this server's
    # ratio is 1.5, 3.0 and 3.0 (it collected nothing).
    h = report["handshake"]["rounds"]
    for row, (gcs, gc) in zip(h, ((0, 0.0), (1, 200.0), (2, 150.0)), strict=True):
        row["websockets"].update(full_gcs=gcs, gc_us=gc)
        for name in ("product", "floor"):
            row[name].update(full_gcs=0, gc_us=0.0)
    report["handshake"].update(summarize(h))
    return report


def test_full_collections_are_left_out_of_a_second_ratio_round_by_round():
    h = _collected(_report())["handshake"]
    assert h["ratio_to_peer"]["product"] == pytest.approx(1.5)  # the target's, unchanged
    assert h["ratio_to_peer_no_gc"]["product"] == pytest.approx(3.0)
    assert h["median_cpu_us_no_gc"] == {"product": 450.0, "websockets": 200.0, "floor": 400.0}
    # Rounds that did not count collections (the B rounds, older reports) have no second ratio.
    assert "ratio_to_peer_no_gc" not in _report()["handshake"]


def test_the_handshake_target_and_the_section_show_the_ratio_without_collections():
    report = _collected(_report())
    assert paired_targets(report)[1]["detail"] == (
        "bare handshake floor 1.25x; 3.00x with full garbage collections left out")
    block = render_sections(report, "paired-x.json")["paired"]
    assert "| H: vs websockets, full collections left out |" in block
    assert "| 2 | 600 | 400 (gc 200) | 500 |" in block  # the round's cell shows its share
    assert "| 1 | 300 | 200 | 250 |" in block  # no collection: the CPU alone


def _with_reconnects(report: dict) -> dict:
    # R rounds: this server's known sessions cost 0.8x, 0.9x and 0.7x its new users' handshakes.
    r = []
    for (new, known), peer, floor in zip(((300.0, 240.0), (500.0, 450.0), (400.0, 280.0)),
                                         (200.0, 500.0, 350.0), (100.0, 100.0, 100.0),
                                         strict=True):
        row = _round(known, peer, floor)
        for name, first in (("product", new), ("websockets", peer), ("floor", floor)):
            row[name].update(new_cpu_us=first, known_vs_new=row[name]["cpu_us"] / first)
        r.append(row)
    report["reconnect"] = {"rounds": r, **summarize(r),
                           "known_vs_new": {"product": 0.8, "websockets": 1.0, "floor": 1.0}}
    return report


class _Waves:
    """A PairedRun stand-in whose connect() returns the next wave's outcome."""

    def __init__(self, *waves: tuple[int, float]) -> None:
        self.waves, self.calls = list(waves), []

    async def connect(self, count: int, offset: int = 0) -> dict:
        self.calls.append((count, offset))
        ok, cpu = self.waves.pop(0)
        return {"ok": ok, "cpu_us": cpu}


def test_a_reconnect_round_connects_the_same_sessions_twice_and_reads_the_second_wave():
    run = _Waves((40, 300.0), (40, 240.0))
    got = asyncio.run(paired.reconnect(run, 40, 120))
    assert run.calls == [(40, 120), (40, 120)]  # the same tokens, the same count
    assert got["cpu_us"] == 240.0 and got["new_cpu_us"] == 300.0
    assert got["known_vs_new"] == pytest.approx(0.8)


def test_a_reconnect_round_whose_first_wave_fell_short_measures_nothing():
    run = _Waves((39, 300.0))
    got = asyncio.run(paired.reconnect(run, 40, 0))
    assert run.calls == [(40, 0)]  # no second wave: it would not be all known sessions
    assert got["cpu_us"] is None and got["known_vs_new"] is None


def test_the_known_session_target_compares_this_servers_two_waves():
    report = _with_reconnects(_report())
    known = {t["id"]: t for t in paired_targets(report)}["paired_reconnect"]
    assert (known["value"], known["limit"], known["op"], known["met"]) == (0.8, 1.0, "<", True)
    report["reconnect"]["known_vs_new"]["product"] = 1.0  # not cheaper: missed
    assert {t["id"]: t for t in paired_targets(report)}["paired_reconnect"]["met"] is False
    assert "paired_reconnect" not in {t["id"] for t in paired_targets(_report())}  # no R rounds


def test_the_docs_section_shows_the_reconnect_rounds():
    block = render_sections(_with_reconnects(_report()), "paired-x.json")["paired"]
    assert ("| server | H: CPU us per handshake (median) | H: vs websockets | R: CPU us per "
            "known session's reconnect (median) | R: vs websockets | B: CPU us per delivery "
            "(median) | B: vs websockets | R: known / new, same round (median) |") in block
    # R: this server 240, 450, 280 us (median 280), 1.2x, 0.9x and 0.8x the peer's
    assert "| this server (Tornado + hub) | 450 | 1.50 | 280 | 0.90 | 9.00 | 0.60 | 0.80 |" in block
    assert "| 0.80 | < 1.00 | **met** |" in block
    assert "| R round |" in block and "| 3 | 280 | 350 | 100 |" in block
    assert "then the same sessions again" in block


def test_the_docs_section_shows_medians_ratios_targets_and_every_round():
    sections = render_sections(_report(), "paired-x.json")
    assert list(sections) == ["paired"]  # its servers are a list of names, not a run's
    block = sections["paired"]
    assert block.startswith("## Paired rounds")
    assert "load average 1.50 at the start, 2.00 at the end" in block
    assert "300 handshakes a round, 3 tabs a user, 4 alerts a round" in block
    assert "| this server (Tornado + hub) | 450 | 1.50 | 9.00 | 0.60 |" in block
    assert "| 0.60 | <= 0.70 | **met** |" in block and "| 1.50 | <= 0.67 | **MISSED** |" in block
    assert "| 2 | 600 | 400 | 500 |" in block  # every round


# -- --base REV: this tree against a git revision's build, in the same rounds ---------------

GIT = shutil.which("git") is not None and os.path.isdir(os.path.join(ROOT, ".git"))
needs_git = pytest.mark.skipif(not GIT, reason="needs a git checkout of the project")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@needs_git
def test_checkout_writes_the_revisions_tree_and_a_bad_revision_says_why(tmp_path):
    commit = checkout("HEAD", str(tmp_path / "base"))
    assert commit == _git("rev-parse", "HEAD")
    assert (tmp_path / "base" / "main.py").read_text() == _git("show", "HEAD:main.py") + "\n"
    with pytest.raises(SystemExit, match="--base no-such-rev: fatal"):
        checkout("no-such-rev", str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_a_base_run_starts_main_py_from_its_own_tree(tmp_path, monkeypatch):
    """product@REV runs the revision's main.py in its tree, on the default loop; product-asyncio
    this tree's on the stock loop."""
    started, envs = [], []

    class FakeProc:
        def __init__(self, name, argv, log_path, core=None, pipes=False, cwd=ROOT, env=None):
            started.append((name, argv, cwd))
            envs.append(env)

        async def start(self):
            pass

        async def wait_port(self, port):
            pass

    monkeypatch.setattr("bench.server.Proc", FakeProc)
    for name in ("product@abc", "product-asyncio"):
        run = paired.PairedRun(name, MODES["quick"], str(tmp_path), Clock(), 1e12)
        run.pool = object()  # load generators already running
        if "@" in name:
            run.root = str(tmp_path / "base")
        asyncio.run(run.launch())
    (base, argv, cwd), (_, argv2, cwd2) = started
    assert cwd == str(tmp_path / "base") and "main.py" in argv and "--loop" not in argv
    assert cwd2 == ROOT and argv2[argv2.index("--loop") + 1] == "asyncio"
    # Both counted by bench/gcwatch (this tree's), each under a prefix of its own.
    assert [env["PYTHONPATH"].split(os.pathsep)[0] for env in envs] == [
        os.path.join(ROOT, "bench", "gcwatch")] * 2
    assert [env["BENCH_GC_LOG"] for env in envs] == [
        str(tmp_path / "product@abc-gc"), str(tmp_path / "product-asyncio-gc")]


def test_the_section_shows_this_tree_against_the_base():
    report = _report()
    report["servers"] = [*SERVERS, "product@HEAD~2"]
    report["base"] = {"rev": "HEAD~2", "commit": "0123456789abcdef"}
    for part, mine in (("handshake", (270.0, 540.0, 405.0)), ("broadcast", (5.0, 10.0, 7.5))):
        for r, us in zip(report[part]["rounds"], mine, strict=True):
            r["product@HEAD~2"] = {"cpu_us": us}
        report[part].update(summarize(report[part]["rounds"]))
        report[part]["ratio_to_base"] = summarize(report[part]["rounds"], "product@HEAD~2")[
            "ratio_to_peer"]["product"]
    block = render_sections(report, "paired-x.json")["paired"]
    assert ("This tree against this server at HEAD~2 (0123456789ab): 1.11x the CPU per "
            "handshake, 1.20x per delivery (medians of the per-round ratios).") in block
    assert "| this server at HEAD~2 | 405 | 1.35 | 7.50 | 0.50 |" in block


def test_rounds_that_would_hold_more_sockets_than_a_process_may_are_refused():
    with pytest.raises(SystemExit, match="30 rounds of 800 handshakes hold 24,800 sockets"):
        paired.main(["--rounds", "30", "--handshakes", "800", "--results-dir", "/nonexistent"])


@needs_git
@pytest.mark.timeout(240)
def test_a_paired_run_against_a_base_measures_both_builds_and_leaves_the_docs(tmp_path):
    """A small paired run with --base HEAD: every server, the base too, accepts every
    handshake and gets every delivery; both ratios to the base are read; the page is left."""
    docs = tmp_path / "benchmarks.md"
    docs.write_text("<!-- paired: written by bench from one run; do not edit by hand -->\nold\n"
                    "<!-- /paired -->\n")
    argv = [sys.executable, "-m", "bench.workloads.paired", "--quick", "--base", "HEAD",
            "--servers", "product,websockets", "--rounds", "2", "--handshakes", "40",
            "--connections", "60", "--results-dir", str(tmp_path), "--docs", str(docs)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("paired-*.json")).read_text())
    assert report["servers"] == ["product", "websockets", "product@HEAD"]
    assert report["tabs"] == paired.PAIRED_TABS == 3  # one session check in three misses the cache
    assert report["base"] == {"rev": "HEAD", "commit": _git("rev-parse", "HEAD")}
    assert report["opened"]["product@HEAD"] == 60
    for part in ("handshake", "reconnect", "broadcast"):
        for r in report[part]["rounds"]:
            assert r["product@HEAD"]["cpu_us"] > 0, r
            for row in r.values():  # every server watched: its collections' share counted
                assert row["full_gcs"] >= 0 and 0 <= row["gc_us"] <= row["cpu_us"], r
        assert set(report[part]["ratio_to_peer_no_gc"]) == {"product", "product@HEAD"}
        assert 0 < report[part]["ratio_to_base"] < 10
    for r in report["reconnect"]["rounds"]:  # both waves whole on every server
        assert all(r[name]["ok"] == 40 and r[name]["new_cpu_us"] > 0 for name in r), r
    assert report["reconnect"]["known_vs_new"]["product"] > 0
    assert all(r["product@HEAD"]["delivered"] == r["product@HEAD"]["expected"]
               for r in report["broadcast"]["rounds"])
    assert "old" in docs.read_text()  # a before/after is not the page's run
    assert "This tree against this server at HEAD" in done.stdout
