"""Memoisation: per session (results kept in st.session_state, never shared between users, a few per store), and
per process for results of files on the server that every visitor may open (the bundled samples)."""

from __future__ import annotations

import threading
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


@st.cache_resource(show_spinner=False)
def _process_store() -> tuple[threading.Lock, OrderedDict[Hashable, object], dict[Hashable, threading.Lock]]:
    """(the lock of the two dicts, the values, a lock per key being computed): one set per app process."""
    return threading.Lock(), OrderedDict(), {}


def process_memo(key: Hashable, compute: Callable[[], T], max_entries: int = 4) -> T:
    """compute() once per key in this app process, the value shared by every session: only for results of files on
    the server (never an upload) that no page modifies. Sessions asking for one key at once compute it once; other
    keys do not wait for it."""
    lock, cache, computing = _process_store()
    with lock:
        key_lock = computing.setdefault(key, threading.Lock())
    with key_lock:
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]  # type: ignore[return-value]
        try:
            value = compute()
        except BaseException:
            with lock:
                computing.pop(key, None)
            raise
        with lock:
            cache[key] = value
            while len(cache) > max_entries:
                cache.popitem(last=False)
            computing.pop(key, None)
        return value
