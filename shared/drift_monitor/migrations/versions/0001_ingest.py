"""Ingest storage: models, batches and their vectors.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_models"),
        sa.CheckConstraint("dimension > 0", name="ck_models_dimension_positive"),
    )
    op.create_table(
        "batches",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("row_offset", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "batch_id", "part", name="pk_batches"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.model_id"],
            name="fk_batches_model_id_models",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("part >= 0 AND part < parts", name="ck_batches_part_in_range"),
        sa.CheckConstraint("count > 0", name="ck_batches_count_positive"),
    )
    op.create_index("ix_batches_model_id_ts", "batches", ["model_id", "ts"])
    op.create_table(
        "batch_vectors",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "batch_id", "part", name="pk_batch_vectors"),
        sa.ForeignKeyConstraint(
            ["model_id", "batch_id", "part"],
            ["batches.model_id", "batches.batch_id", "batches.part"],
            name="fk_batch_vectors_model_id_batches",
            ondelete="CASCADE",
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Float32 bytes barely compress; storing them uncompressed out of line lets
        # substr() fetch just the TOAST chunks holding a sampled row (sample_vectors).
        op.execute("ALTER TABLE batch_vectors ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("batch_vectors")
    op.drop_index("ix_batches_model_id_ts", table_name="batches")
    op.drop_table("batches")
    op.drop_table("models")
