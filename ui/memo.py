"""Per-session memoisation: results kept in st.session_state (never shared between users), a few per store."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def session_memo(store: str, key: Hashable, compute: Callable[[], T], max_entries: int = 3) -> T:
    """compute() once per key in this session; st.session_state[store] keeps the max_entries most recent values."""
    if max_entries < 1:
        raise ValueError(f"max_entries must be >= 1, got {max_entries}")
    cache: OrderedDict[Hashable, T] = st.session_state.setdefault(store, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > max_entries:
        cache.popitem(last=False)
    return value


def clear_memos(*stores: str) -> None:
    """Forget the values of these stores (e.g. when the input they were computed from changes)."""
    for store in stores:
        st.session_state.pop(store, None)
