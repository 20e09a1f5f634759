"""The long-lived objects a running server holds, built once from the settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sqlalchemy import select

from releasehub.db import Database
from releasehub.repos.models import ServerSecret
from releasehub.settings import Settings
from releasehub.storage import BlobStore, open_store
from releasehub.xet.assembly import Assemblies


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    signing_key: bytes
    # Xet uploads being assembled in this process (see releasehub.xet.assembly).
    assemblies: Assemblies = field(init=False)

    def __post_init__(self) -> None:
        self.assemblies = Assemblies(self.settings.xet_assembly_sessions)

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = True) -> "Services":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        if migrate:
            db.upgrade()
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
        return cls(settings=settings, db=db, store=store, signing_key=load_signing_key(db))

    def close(self) -> None:
        self.assemblies.close()
        self.db.dispose()


def load_signing_key(db: Database) -> bytes:
    """The key that signs upload links, created on first start and shared by all replicas."""
    with db.session() as session:
        row = session.get(ServerSecret, "upload-signing-key")
        if row is None:
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
            session.execute(
                insert(ServerSecret)
                .values(name="upload-signing-key", value=secrets.token_hex(32))
                .on_conflict_do_nothing(index_elements=["name"])
            )
            session.flush()
            value = session.scalar(select(ServerSecret.value).where(ServerSecret.name == "upload-signing-key"))
        else:
            value = row.value
    assert value is not None
    return bytes.fromhex(value)
