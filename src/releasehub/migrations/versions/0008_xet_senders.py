"""xet: who sent each xorb, kept when the repo it was sent to is deleted

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:15:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_xorb_senders',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_xet_xorb_senders_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash'], name=op.f('fk_xet_xorb_senders_xorb_hash_xet_xorbs')),
    sa.PrimaryKeyConstraint('user_id', 'xorb_hash', name=op.f('pk_xet_xorb_senders'))
    )
    # Every xorb a user sent to a repo that still exists, sent again by nobody: the same facts.
    op.execute(
        "INSERT INTO xet_xorb_senders (user_id, xorb_hash, created_at) "
        "SELECT c.user_id, c.xorb_hash, MIN(c.created_at) FROM xet_xorb_claims c "
        "JOIN users u ON u.id = c.user_id GROUP BY c.user_id, c.xorb_hash"
    )


def downgrade() -> None:
    op.drop_table('xet_xorb_senders')
