"""change_counter: PostgreSQL's signal that a cached row changed (SQLite has PRAGMA data_version)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# What the hot paths cache (the download route's token and file lookups, the gateway's keys and
# engines): a committed change to any of these bumps the counter, and every replica's cache with it.
WATCHED = ("tokens", "users", "memberships", "orgs", "repos", "refs", "access_requests", "xet_files",
           "gateway_keys", "gateway_key_repos", "gateway_hosted")


def upgrade() -> None:
    op.create_table('change_counter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_counter'))
    )
    op.execute("INSERT INTO change_counter (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION releasehub_bump_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE change_counter SET n = n + 1 WHERE id = 1;
            RETURN NULL;
        END $$
    """)
    for table in WATCHED:
        # Deferred to the commit: the counter row is locked only while a transaction commits.
        op.execute(f"CREATE CONSTRAINT TRIGGER bump_change_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION releasehub_bump_change()")
        op.execute(f"CREATE TRIGGER bump_change_truncate_{table} AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION releasehub_bump_change()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS bump_change_{table} ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS bump_change_truncate_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS releasehub_bump_change()")
    op.drop_table('change_counter')
