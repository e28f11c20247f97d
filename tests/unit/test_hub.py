"""The Hub reachability probe (lorawiz/hub.py): an answering endpoint is reachable, a closed or silent one and offline
mode not; the probe goes through huggingface_hub's session (proxies honoured) and never turns the process offline."""

from __future__ import annotations

import http.server
import os
import socket
import threading

import pytest
from huggingface_hub import constants
from huggingface_hub.utils import close_session

from lorawiz.hub import cache_only, hub_reachable


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub_reachable.cache_clear()
    close_session()  # the session reads the proxy settings when it is made
    yield
    hub_reachable.cache_clear()
    close_session()


class _Answer(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 - the name http.server calls
        _Answer.seen.append(self.path)
        self.send_response(401)  # what the Hub says to a HEAD without a token: an answer all the same
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Answer.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answering_endpoint_is_reachable_and_a_closed_one_is_not(monkeypatch, http_server):
    monkeypatch.setenv("HF_ENDPOINT", http_server)
    assert hub_reachable() is True
    hub_reachable.cache_clear()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # nothing listens there now
    assert hub_reachable() is False
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False  # the process stays online


def test_a_port_that_accepts_but_never_answers_is_unreachable(monkeypatch):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert hub_reachable() is False


def test_the_probe_goes_through_the_proxy(monkeypatch, http_server):
    # hub.invalid cannot resolve: only a proxy that answers for it makes the Hub reachable.
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    assert hub_reachable() is False
    hub_reachable.cache_clear()
    close_session()
    monkeypatch.setenv("HTTP_PROXY", http_server)
    assert hub_reachable() is True
    assert _Answer.seen and _Answer.seen[-1].startswith("http://hub.invalid/")  # a proxy request: the full URL


def test_offline_mode_is_never_reachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


def test_cache_only_is_undone_after_the_block(monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    with cache_only():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
        assert datasets.config.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False
    assert datasets.config.HF_HUB_OFFLINE is False
    with cache_only(False):
        assert "HF_HUB_OFFLINE" not in os.environ
    with pytest.raises(RuntimeError), cache_only():
        raise RuntimeError("a failed load")
    assert "HF_HUB_OFFLINE" not in os.environ  # restored on the way out of an error too
