"""Entries are RFC 8785 canonical: the fast encoder agrees with the reference encoder, byte for byte."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from audit.entries import Actor, Decision, EntryDraft, canonical_json, seal_entry

text = st.text(max_size=30)  # any Unicode, control characters and astral planes included
names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
integers = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)


@given(
    principal=text,
    purpose=st.none() | text,
    reasons=st.lists(text, max_size=3),
    detail=st.dictionaries(
        names.filter(lambda n: n not in ("seq", "time")), text | integers | st.booleans(), max_size=5
    ),
    seq=st.integers(0, 2**53 - 1),
)
def test_fast_canonical_form_equals_rfc8785(
    principal: str, purpose: str | None, reasons: list[str], detail: dict[str, str | int | bool], seq: int
) -> None:
    draft = EntryDraft(
        type="access.decision",
        actor=Actor(agency="police", principal=principal, role="officer"),
        purpose=purpose,
        decision=Decision(result="deny", policy="p", reasons=tuple(reasons)),
        detail=detail,
    )
    sealed = seal_entry(draft, seq)
    assert sealed.body == rfc8785.dumps(sealed.entry().model_dump(mode="json", exclude_none=True))


plain_text = st.text(max_size=30).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
payload_values = st.recursive(
    st.none() | st.booleans() | integers | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)


@given(payload=payload_values)
def test_canonical_json_of_a_released_payload_is_rfc8785(payload: Any) -> None:
    """The release digest's bytes: what a partner recomputing the digest with any RFC 8785 encoder gets."""
    assert canonical_json(payload) == rfc8785.dumps(payload)
