"""Hand-offs between pages: one page sends an item (a file name and its bytes) and switches; the target receives it.

send() stores the item, the sending page's title and a "new" flag under the target's key and switches page;
receive() on the target returns (item, is_new): is_new is True exactly once, on the first run after the send, so
the target page can select the hand-off source then and leave the user's later choices alone; sender() names the
page it came from.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st


class Item(NamedTuple):
    name: str
    data: bytes


PAGES = {"explain": "app_pages/explain.py", "slide": "app_pages/slide.py"}


def _key(target: str) -> str:
    return f"handoff_{target}"


def send(target: str, name: str, data: bytes, sender: str) -> None:
    """Hand (name, data) from the page titled `sender` to the page `target` ("explain" or "slide") and switch
    to it."""
    st.session_state[_key(target)] = Item(name, data)
    st.session_state[_key(target) + "_from"] = sender
    st.session_state[_key(target) + "_new"] = True
    st.switch_page(PAGES[target])


def receive(target: str) -> tuple[Item | None, bool]:
    """(the item handed to `target`, or None; True on the first run after it was sent)."""
    return st.session_state.get(_key(target)), bool(st.session_state.pop(_key(target) + "_new", False))


def sender(target: str) -> str:
    """The title of the page that sent the item `target` holds."""
    return str(st.session_state.get(_key(target) + "_from", "another page"))
