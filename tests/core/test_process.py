"""Process ids: stable within a process, new in a forked child, found again in claims."""

from __future__ import annotations

import os
import re

import pytest

from pipeline.core.process import (
    PROCESS_ID_LENGTH,
    heartbeat_name,
    holder_of,
    new_claim_owner,
    process_id,
)


def test_the_process_id_is_24_hex_characters_and_stable():
    assert re.fullmatch(r"[0-9a-f]{24}", process_id())
    assert process_id() == process_id()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_process_id():
    parent = process_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, process_id().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    assert re.fullmatch(r"[0-9a-f]{24}", theirs) and theirs != parent
    assert process_id() == parent


def test_the_heartbeat_is_named_after_the_process():
    assert heartbeat_name() == "worker:" + process_id()
    assert heartbeat_name("a" * 24) == "worker:" + "a" * 24


def test_a_claim_owner_is_traced_back_to_this_process():
    owner = new_claim_owner()
    assert owner.startswith(process_id() + ".") and len(owner) == PROCESS_ID_LENGTH + 17
    assert holder_of(owner) == process_id()
    assert new_claim_owner() != owner  # every claim its own


@pytest.mark.parametrize("owner", [None, "", "a" * 24, "a" * 24 + "-rest", "cli-claim"])
def test_a_claim_without_a_process_id_has_no_holder(owner):
    assert holder_of(owner) is None
