"""A client-side sequence checker: numbered events must arrive with no gap, no duplicate, in
order; it also counts resumes that recovered and the events they replayed."""

from __future__ import annotations

__all__ = ["Sequence"]


class Sequence:
    """Records numbered events as a client receives them and checks them."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.offsets: list[int] = []
        self.recovered = 0
        self.not_recovered = 0
        self.missed = 0

    def add(self, number: int, offset: str | None = None) -> None:
        """Records one event; fails at once on a duplicate or an out-of-order number."""
        assert number not in self.seen, f"duplicate event {number} after {self.seen[-5:]}"
        assert not self.seen or number > self.seen[-1], f"{number} after {self.seen[-1]}"
        self.seen.append(number)
        if offset is not None:
            assert not self.offsets or int(offset) > self.offsets[-1], "offsets must increase"
            self.offsets.append(int(offset))

    def resumed(self, position: dict) -> None:
        """Counts a welcome or subscribe reply's recovery outcome."""
        if position["recovered"]:
            self.recovered += 1
            self.missed += position["missed"]
        else:
            self.not_recovered += 1

    def assert_complete(self, count: int) -> None:
        """Asserts that exactly 0..count-1 arrived: no gap, no duplicate, in order."""
        missing = sorted(set(range(count)) - set(self.seen))
        assert not missing, f"gap: {len(missing)} missing, first {missing[:5]}"
        assert self.seen == list(range(count))
