"""Alembic environment: runs the migrations against the URL set by `releasehub.db.upgrade`."""

from __future__ import annotations

from alembic import context

from releasehub.db import Base, migration_engine

# Import every model module so that Base.metadata knows all tables.
from releasehub.accounts import models as _accounts  # noqa: F401
from releasehub.repos import models as _repos  # noqa: F401
from releasehub.access import models as _access  # noqa: F401
from releasehub.auditlog import models as _audit  # noqa: F401
from releasehub.webhooks import models as _webhooks  # noqa: F401
from releasehub.analysis import models as _analysis  # noqa: F401
from releasehub.gateway import models as _gateway  # noqa: F401
from releasehub.xet import models as _xet  # noqa: F401

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = migration_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported; run `releasehub db upgrade`.")
run_migrations_online()
