"""The Hub reachability probe (lorawiz/hub.py): a listening endpoint is reachable, a closed one and offline mode not."""

from __future__ import annotations

import os
import socket

import pytest

from lorawiz.hub import hub_reachable


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "")  # recorded, so that the probe's own setting is undone afterwards
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def test_listening_endpoint_is_reachable_and_a_closed_one_is_not(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_reachable() is True
    hub_reachable.cache_clear()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # the server is closed now
    assert hub_reachable() is False
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # later lookups go straight to the cache


def test_offline_mode_is_never_reachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
