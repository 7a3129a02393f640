"""The fuzz harness's own logic: what fails a run, and which cases it keeps from the fuzzer."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("schemathesis", reason="pip install -r requirements-dev.txt")

os.environ.setdefault("FUZZ_ADMIN_ID", "3")
os.environ.setdefault("FUZZ_API_KEY_ID", "1")

from proof import fuzz_hooks  # noqa: E402  (reads the FUZZ_* variables at import)
from proof.fuzz_api import Outcome  # noqa: E402

FAILED = """\
Test cases:
  1345 generated, 7 found 7 unique failures, 61 skipped

======================= 7 failures, 1 warning in 26.17s ========================
"""
PASSED = """\
Test cases:
  2937 generated, 2937 passed

============================= 1 warning in 100.12s =============================
"""


def test_an_outcome_fails_on_schemathesis_exit_or_a_server_problem():
    """A run passes only when schemathesis exits 0 and the server showed no problem."""
    failed = Outcome("sqlite", 1, FAILED, [])
    assert not failed.ok and failed.cases == 1345
    assert failed.summary == "7 failures, 1 warning in 26.17s"
    passed = Outcome("postgresql", 0, PASSED, [])
    assert passed.ok and passed.cases == 2937
    assert not Outcome("sqlite", 0, PASSED, ["1 error line(s) in the server's log"]).ok


def test_the_fuzzer_keeps_its_own_key_and_account_and_nothing_else():
    """Only revoking the fuzzer's key and rewriting its admin account are skipped."""
    admin, key = fuzz_hooks.ADMIN_ID, fuzz_hooks.API_KEY_ID
    assert not fuzz_hooks.spare_the_fuzzer("revokeApiKey", {"id": key})
    assert fuzz_hooks.spare_the_fuzzer("revokeApiKey", {"id": key + 1})
    for operation in ("updateUser", "deleteUser", "changeRole"):
        assert not fuzz_hooks.spare_the_fuzzer(operation, {"id": admin})
        assert fuzz_hooks.spare_the_fuzzer(operation, {"id": admin + 1})
    assert fuzz_hooks.spare_the_fuzzer("getUser", {"id": admin})


def test_only_a_404_naming_the_user_is_dropped_after_a_room_is_created():
    """addMember's 404 for a user no one has is not "created room not found"; one naming the
    room, or any answer that is not the error envelope, still counts."""
    assert fuzz_hooks.missing_user_not_missing_room(
        '{"success": false, "error": {"code": "not_found", "message": "user 255 not found"}}')
    for answer in ('{"success": false, "error": {"code": "not_found", '
                   '"message": "room \'p\' not found"}}', "not json", '{"error": null}'):
        assert not fuzz_hooks.missing_user_not_missing_room(answer), answer


ENGINE_CRASH = """\
==================================== ERRORS ====================================
___________________________ PATCH /api/v1/users/{id} ___________________________
Runtime Error

tuple index out of range

    Traceback (most recent call last):
      File "/x/hypothesis/internal/conjecture/optimiser.py", line 201, in <lambda>
        find_integer(lambda k: attempt_replace(k))
                               ^^^^^^^^^^^^^^^^^^
      File "/x/hypothesis/internal/conjecture/optimiser.py", line 124, in attempt_replace
        node = self.current_data.nodes[i]
               ~~~~~~~~~~~~~~~~~~~~~~~^^^
    IndexError: tuple index out of range

======================= 1 error, 1 warning in 100.04s ========================
"""


def test_only_a_crash_inside_hypothesis_with_nothing_else_wrong_is_run_again():
    """A run whose one error is Hypothesis's own crash is run again; one that also found a
    failure, or whose server logged a problem, or that crashed in the server, is not."""
    assert Outcome("postgresql", 1, ENGINE_CRASH, []).engine_fault_only
    with_failure = ENGINE_CRASH.replace("1 error,", "1 failure, 1 error,")
    assert not Outcome("postgresql", 1, with_failure, []).engine_fault_only
    assert not Outcome("postgresql", 1, ENGINE_CRASH, ["1 error line(s)"]).engine_fault_only
    elsewhere = ENGINE_CRASH.replace("hypothesis/internal/conjecture", "proof")
    assert not Outcome("postgresql", 1, elsewhere, []).engine_fault_only
    assert not Outcome("postgresql", 0, PASSED, []).engine_fault_only
    assert not Outcome("sqlite", 1, FAILED, []).engine_fault_only
