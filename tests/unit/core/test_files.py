"""Atomic files: the target is the old or the new content, never a partial one, and no temp file is left."""

from __future__ import annotations

import os

import pytest

from vvbench.core.files import replacing, write_atomic


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "run.json"
    write_atomic(path, "old")
    os.chmod(path, 0o640)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o640  # an existing file keeps its mode
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "requests.parquet"
    path.write_text("complete")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["requests.parquet"]


def test_a_new_file_gets_ordinary_permissions(tmp_path):
    path = write_atomic(tmp_path / "summary.md", "x", durable=True)
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
