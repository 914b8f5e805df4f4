"""The README's quick start: what a new user types, in order, and what it says of the server is what Streamlit does."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def _quick_start() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Two commands", 1)[1].split("Run the tests", 1)[0]


def test_the_quick_start_clones_makes_a_venv_and_installs_from_the_clones_folder_in_that_order():
    commands = [line.strip() for line in _quick_start().splitlines() if line.startswith("    ")]
    steps = ["git clone ", "cd ", "python3 -m venv ", ". .venv/bin/activate", "-r requirements.txt",
             "streamlit run app.py"]
    places = [next(i for i, line in enumerate(commands) if step in line) for step in steps]
    assert places == sorted(places), commands
    assert "-e ." in (REPO / "requirements.txt").read_text()  # why the clone's folder must be the working one


def test_the_quick_start_names_the_url_and_how_to_keep_the_server_local_as_streamlit_serves_it():
    from streamlit import config

    text = _quick_start()
    settings = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert "address" not in settings.get("server", {})  # so Streamlit listens on every interface, as said
    assert config.get_option("server.address") is None
    port = settings.get("server", {}).get("port", config.get_option("server.port"))
    assert re.search(rf"open http://localhost:{port}\b", text)
    assert "every network interface" in text and "streamlit run app.py --server.address 127.0.0.1" in text
