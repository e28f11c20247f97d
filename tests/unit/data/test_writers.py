"""Atomic writes (lorawiz/data/writers.py): all or nothing, no clobbering, ordinary file permissions."""

from __future__ import annotations

import os

import pytest

from lorawiz.data.writers import atomic_output
from lorawiz.errors import LorawizError


def test_output_gets_the_permissions_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.jsonl") as handle:
            handle.write("x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644


def test_failure_leaves_neither_output_nor_temp_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.jsonl") as handle:
        handle.write("partial\n")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(LorawizError, match="already exists"), atomic_output(target):
        pass
    assert target.read_text() == "old\n"
    with atomic_output(target, overwrite=True) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    with pytest.raises(LorawizError, match="does not exist"), atomic_output(tmp_path / "no" / "out.jsonl"):
        pass
