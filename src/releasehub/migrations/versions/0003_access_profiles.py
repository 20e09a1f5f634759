"""access profile cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 03:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('commit_sha', sa.String(length=64), nullable=False),
    sa.Column('view_digest', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repo_id', 'commit_sha', 'view_digest', 'version', name='uq_access_profiles_key')
    )
    with op.batch_alter_table('access_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_profiles_repo_id'), ['repo_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('access_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_profiles_repo_id'))
    op.drop_table('access_profiles')
