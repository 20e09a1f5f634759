from __future__ import annotations

from pathlib import Path

import pytest

from releasehub.settings import Settings


def test_from_env_round_trip(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://x/y", multipart_chunk_bytes=123)
    assert Settings.from_env(settings.to_env()) == settings


def test_bad_integer_says_which_variable() -> None:
    with pytest.raises(ValueError, match="RELEASEHUB_MAX_FILE_BYTES"):
        Settings.from_env({"RELEASEHUB_MAX_FILE_BYTES": "lots"})


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_database_url.endswith(str(tmp_path / "releasehub.db"))
