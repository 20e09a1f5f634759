"""gateway: hosted engines, API keys, daily usage

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_hosted',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('backend_url', sa.String(length=2000), nullable=False),
    sa.Column('engine_model', sa.String(length=300), nullable=False),
    sa.Column('api_key_env', sa.String(length=200), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('timeout_s', sa.Float(), nullable=False),
    sa.Column('store_prompts', sa.Boolean(), nullable=False),
    sa.Column('blocklist', sa.JSON(), nullable=True),
    sa.Column('moderation_url', sa.String(length=2000), nullable=True),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repo_id')
    )
    op.create_table('gateway_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', releasehub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', releasehub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id'),
    sa.UniqueConstraint('secret_hash')
    )
    with op.batch_alter_table('gateway_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_keys_user_id'), ['user_id'], unique=False)
    op.create_table('gateway_key_repos',
    sa.Column('key_pk', sa.Integer(), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['key_pk'], ['gateway_keys.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key_pk', 'repo_id')
    )
    op.create_table('gateway_usage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_pk', sa.Integer(), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['key_pk'], ['gateway_keys.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_pk', 'repo_id', 'day', name='uq_gateway_usage_key_repo_day')
    )
    with op.batch_alter_table('gateway_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_usage_key_pk'), ['key_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_gateway_usage_repo_id'), ['repo_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gateway_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_usage_repo_id'))
        batch_op.drop_index(batch_op.f('ix_gateway_usage_key_pk'))
    op.drop_table('gateway_usage')
    op.drop_table('gateway_key_repos')
    with op.batch_alter_table('gateway_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_keys_user_id'))
    op.drop_table('gateway_keys')
    op.drop_table('gateway_hosted')
