"""xet: when each xorb was last used, and a foreign key from the files that use a xorb, for its collection

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('xet_xorbs') as batch:
        batch.add_column(sa.Column('last_used_at', releasehub.db.UTCDateTime(timezone=True), nullable=True))
    # Nothing recorded a use before: a xorb was last relied on when it was stored, as far as we know.
    op.execute("UPDATE xet_xorbs SET last_used_at = created_at")
    with op.batch_alter_table('xet_xorbs') as batch:
        batch.alter_column('last_used_at', existing_type=releasehub.db.UTCDateTime(timezone=True), nullable=False)
        batch.create_index('ix_xet_xorbs_last_used_at', ['last_used_at'], unique=False)
    # Xorbs were never deleted, so every use names a stored xorb; a row that does not names nothing.
    op.execute("DELETE FROM xet_file_xorbs WHERE xorb_hash NOT IN (SELECT hash FROM xet_xorbs)")
    with op.batch_alter_table('xet_file_xorbs') as batch:
        batch.create_foreign_key(op.f('fk_xet_file_xorbs_xorb_hash_xet_xorbs'), 'xet_xorbs', ['xorb_hash'], ['hash'])


def downgrade() -> None:
    with op.batch_alter_table('xet_file_xorbs') as batch:
        batch.drop_constraint(op.f('fk_xet_file_xorbs_xorb_hash_xet_xorbs'), type_='foreignkey')
    with op.batch_alter_table('xet_xorbs') as batch:
        batch.drop_index('ix_xet_xorbs_last_used_at')
        batch.drop_column('last_used_at')
