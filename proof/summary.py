"""Reads an Autobahn-format report (index.json) and counts each case's verdict, per group."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["CaseVerdict", "load", "by_group", "problems", "table", "PASSING", "PASSING_CLOSE"]

# What Autobahn counts as conformant: a behaviour of OK, NON-STRICT (a SHOULD not followed)
# or INFORMATIONAL (nothing required), with a closing handshake OK or INFORMATIONAL.
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})
# Columns of the table, in Autobahn's order; anything else lands in the last one.
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


@dataclass(frozen=True)
class CaseVerdict:
    """One case's outcome as the report states it."""

    case: str
    behavior: str
    close: str
    duration_ms: int
    remote_close_code: int | None

    @property
    def group(self) -> str:
        """The case's group: 1 to 13, the first number of its id."""
        return self.case.split(".")[0]

    @property
    def passed(self) -> bool:
        """Whether both the behaviour and the closing handshake conform."""
        return self.behavior in PASSING and self.close in PASSING_CLOSE


def _case_key(case: str) -> list[int]:
    return [int(part) for part in case.split(".")]


def load(index: dict[str, Any]) -> list[CaseVerdict]:
    """Returns every case of an index.json (one agent, the server under test), in id order."""
    verdicts = [CaseVerdict(case, entry["behavior"], entry["behaviorClose"],
                            int(entry.get("duration") or 0), entry.get("remoteCloseCode"))
                for cases in index.values() for case, entry in cases.items()]
    return sorted(verdicts, key=lambda v: _case_key(v.case))


def load_file(path: str) -> list[CaseVerdict]:
    """Returns the cases of the index.json at path."""
    with open(path, encoding="utf-8") as f:
        return load(json.load(f))


def by_group(verdicts: list[CaseVerdict]) -> dict[str, Counter[str]]:
    """Returns, per group in order, how many cases got each behaviour."""
    groups: dict[str, Counter[str]] = {}
    for verdict in verdicts:
        groups.setdefault(verdict.group, Counter())[verdict.behavior] += 1
    return groups


def problems(verdicts: list[CaseVerdict]) -> list[CaseVerdict]:
    """Returns the cases that did not pass."""
    return [v for v in verdicts if not v.passed]


def table(verdicts: list[CaseVerdict]) -> str:
    """Returns a Markdown table: cases per group and behaviour, with a total row."""
    head = ["group", "cases", *COLUMNS, "close not OK"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total: Counter[str] = Counter()
    groups = by_group(verdicts)
    for group, counts in groups.items():
        cases = [v for v in verdicts if v.group == group]
        row = _row(counts, len(cases), sum(1 for v in cases if v.close not in PASSING_CLOSE))
        lines.append(f"| {group} | " + " | ".join(row) + " |")
        total += counts
    bad_close = sum(1 for v in verdicts if v.close not in PASSING_CLOSE)
    lines.append("| all | " + " | ".join(_row(total, len(verdicts), bad_close)) + " |")
    return "\n".join(lines)


def _row(counts: Counter[str], cases: int, bad_close: int) -> list[str]:
    other = sum(n for name, n in counts.items() if name not in COLUMNS)
    cells = [str(counts.get(name, 0)) for name in COLUMNS]
    cells[-1] = str(counts.get("FAILED", 0) + other)  # ERROR and anything unknown count here
    return [str(cases), *cells, str(bad_close)]
