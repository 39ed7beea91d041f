"""`schemas.guards.text_problem`: the text a database refuses, named with where."""

from __future__ import annotations

import pytest

from schemas.guards import text_problem


@pytest.mark.parametrize("value,problem", [
    ("", None),
    ("http://a.example/ščž/日本/😀", None),  # astral characters are pairs in UTF-16 only
    ("a\x00b", "contains a NUL character (U+0000), which cannot be stored"),
    ("ab\ud83dc", "contains a lone surrogate (U+D83D at position 2), which is not text"),
    ("\udfff", "contains a lone surrogate (U+DFFF at position 0), which is not text"),
    ("x\ud7ff\ue000\udc00\ud800", "contains a lone surrogate (U+DC00 at position 3), "
     "which is not text"),  # the first one, and not its neighbours outside the range
    ("\ud800\x00", "contains a NUL character (U+0000), which cannot be stored"),
])
def test_text_a_database_refuses_is_named_with_the_first_place_it_occurs(value, problem):
    assert text_problem(value) == problem
