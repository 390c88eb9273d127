"""Monitoring state: model configurations, baselines, drift results and alert state.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_configs",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_model_configs"),
    )
    op.create_table(
        "baselines",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_baselines"),
        sa.CheckConstraint('"start" < "end"', name="ck_baselines_window_ordered"),
    )
    op.create_table(
        "drift_results",
        # SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("drift_detected", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("baseline_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("baseline_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_baseline", sa.BigInteger(), nullable=False),
        sa.Column("n_current", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_results"),
        sa.CheckConstraint(
            "status IN ('ok', 'drift', 'insufficient_data', 'error')",
            name="ck_drift_results_status_known",
        ),
    )
    op.create_index(
        "ix_drift_results_model_id_checked_at", "drift_results", ["model_id", "checked_at"]
    )
    op.create_table(
        "alert_state",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "channel", name="pk_alert_state"),
        sa.CheckConstraint("state IN ('triggered', 'resolved')", name="ck_alert_state_state_known"),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_index("ix_drift_results_model_id_checked_at", table_name="drift_results")
    op.drop_table("drift_results")
    op.drop_table("baselines")
    op.drop_table("model_configs")
