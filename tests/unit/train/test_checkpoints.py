"""The data fingerprint a run records (lorawiz.train.checkpoints.DataFingerprint): a resume on the same files is
accepted from the cache's content keys without reading the files, one on a touched but unchanged copy from the
full hash, and one on other bytes is refused, as are runs recorded before keys existed."""

from __future__ import annotations

import json
import os

import pytest

from lorawiz.data.cache import content_key
from lorawiz.errors import LorawizError
from lorawiz.train.checkpoints import DataFingerprint, check_fingerprints, hash_files


def _fingerprint(path, background=True):
    return DataFingerprint([path, None], [content_key(path), None], background=background)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(50)))
    return path


def test_the_same_file_matches_by_key_without_hashing(data, monkeypatch):
    recorded = _fingerprint(data).record()
    calls = []
    monkeypatch.setattr("lorawiz.train.checkpoints.hash_files", lambda paths: calls.append(paths))
    again = _fingerprint(data, background=False)
    assert again.same_as(recorded) and calls == []


def test_a_touched_file_with_the_same_bytes_matches_by_its_full_hash(data):
    recorded = _fingerprint(data).record()
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = _fingerprint(data)
    assert touched.key != recorded["data_key"] and touched.same_as(recorded)


def test_other_bytes_are_refused_even_with_the_same_size_and_mtime(data):
    recorded = _fingerprint(data).record()
    stat = data.stat()
    data.write_text(data.read_text().replace("row 1\"", "row 7\"", 1))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.stat().st_size == stat.st_size
    assert not _fingerprint(data).same_as(recorded)


def test_runs_recorded_before_keys_compare_the_full_hash(data, tmp_path):
    """run.json of earlier versions holds only data_fingerprint, the same SHA-256 of the files."""
    (tmp_path / "run.json").write_text(json.dumps({"config_fingerprint": "c", "data_fingerprint":
                                                   hash_files([data, None])}))
    check_fingerprints(tmp_path, "c", _fingerprint(data))
    data.write_text(data.read_text() + json.dumps({"text": "one more"}) + "\n")
    with pytest.raises(LorawizError, match="its data changed"):
        check_fingerprints(tmp_path, "c", _fingerprint(data))


def test_a_hub_dataset_has_no_full_hash_and_matches_by_its_commit(tmp_path):
    by_commit = DataFingerprint(["org/set", None], ["hub:org/set:abc", None])
    assert by_commit.full() is None
    assert by_commit.same_as(by_commit.record())
    assert not DataFingerprint(["org/set", None], ["hub:org/set:def", None]).same_as(by_commit.record())


def test_nothing_recorded_is_nothing_to_compare(data):
    assert _fingerprint(data).same_as({})
