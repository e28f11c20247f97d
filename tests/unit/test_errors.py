"""lorawiz.errors: which OS errors are the user's (one line naming the path and the fix) and which stay bugs."""

from __future__ import annotations

import errno
import os

import pytest

from lorawiz.errors import find_os_error, os_error_as_user_error


def message(exc: BaseException) -> str:
    error = os_error_as_user_error(exc)
    assert error is not None, f"{exc!r} should be a user error"
    assert "\n" not in error.message and error.hint
    return error.message


def test_permission_denied_reading_names_the_file_and_chmod(tmp_path, monkeypatch):
    locked = tmp_path / "train.jsonl"
    locked.write_text("{}\n")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root reads anything: ask as a user would
    error = os_error_as_user_error(PermissionError(errno.EACCES, "Permission denied", str(locked)))
    assert error.message == f"cannot read {locked}: permission denied."
    assert f"chmod u+r {locked}" in error.hint


def test_permission_denied_creating_names_the_folder_and_the_real_name_not_the_temp_file(tmp_path):
    temp = tmp_path / "out" / ".clean.jsonl.0a1b2c3d.tmp"  # data/writers.py's temporary name
    (tmp_path / "out").mkdir()
    text = message(PermissionError(errno.EACCES, "Permission denied", str(temp)))
    assert text == f"cannot create {tmp_path / 'out' / 'clean.jsonl'}: no permission to write in {tmp_path / 'out'}."


def test_a_file_where_a_folder_should_be(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert message(NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "afile" / "run"))) == (
        f"{tmp_path / 'afile'} is a file, where a folder is needed (in {tmp_path / 'afile' / 'run'}).")
    assert message(FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "afile"))) == (
        f"{tmp_path / 'afile'} is a file, where a folder is needed.")
    assert message(IsADirectoryError(errno.EISDIR, "Is a directory", str(tmp_path))) == (
        f"{tmp_path} is a folder, where a file is needed.")


def test_read_only_and_full_disks(tmp_path):
    target = tmp_path / "run" / "adapter.safetensors"
    assert message(OSError(errno.EROFS, "Read-only file system", str(target))) == (
        f"cannot write {target}: it is on a read-only file system.")
    text = message(OSError(errno.ENOSPC, "No space left on device", str(target)))
    assert text.startswith(f"no space left on the disk holding {tmp_path} (writing {target}; ") and "free" in text
    assert message(OSError(errno.ENOSPC, "No space left on device")) == (
        "no space left on the disk (No space left on device).")


def test_errors_of_rust_libraries_and_wrapped_errors_are_found():
    class SafetensorError(Exception):
        pass

    assert find_os_error(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
                         ) == (errno.ENOSPC, None)
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied", "/x")
    assert find_os_error(wrapped) == (errno.EACCES, "/x")


@pytest.mark.parametrize("exc", [
    FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere"),  # lorawiz's own files: could be a bug
    FileExistsError(errno.EEXIST, "File exists", "/"),  # a folder: a name taken, not a user's file in the way
    ConnectionError("Hub unreachable"),
    ValueError("boom"),
    RuntimeError("boom"),
])
def test_other_errors_stay_bugs(exc):
    assert os_error_as_user_error(exc) is None


def test_an_implicit_context_is_not_followed():
    """A bug raised while handling a user's OSError is still a bug."""
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/x")
        except PermissionError:
            raise TypeError("a bug") from None
    except TypeError as exc:
        assert os_error_as_user_error(exc) is None
