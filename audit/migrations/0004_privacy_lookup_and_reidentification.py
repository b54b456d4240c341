"""The privacy model's look-up table and re-identification requests; room for the replaced actor and address.

The audit table refuses UPDATE and a rebuild would drop its triggers, so the wider ``actor`` and
``client_address`` are a change of the column type on PostgreSQL only (no rewrite: a longer varchar), and
of Django's state alone on SQLite, which does not enforce a varchar's length.
"""

from django.db import migrations, models

WIDEN_ON_POSTGRESQL = [
    "ALTER TABLE audit_auditevent ALTER COLUMN actor TYPE varchar(255)",
    "ALTER TABLE audit_auditevent ALTER COLUMN client_address TYPE varchar(200)",
]


def widen_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in WIDEN_ON_POSTGRESQL:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_case_chain_and_checkpoints"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="actor",
                    field=models.CharField(blank=True, help_text="Username at the time, or 'system'.", max_length=255),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="client_address",
                    field=models.CharField(blank=True, max_length=200),
                ),
            ],
            database_operations=[migrations.RunPython(widen_columns, migrations.RunPython.noop)],
        ),
        migrations.CreateModel(
            name="PrivacyLookupEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("message_id", models.CharField(max_length=32)),
                ("number", models.PositiveIntegerField()),
                ("ciphertext", models.TextField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("message_id", "number"), name="audit_privacy_lookup_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="ReIdentificationRequest",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("organization_id", models.BigIntegerField(db_index=True)),
                ("event_sequence", models.BigIntegerField()),
                ("field", models.CharField(max_length=200)),
                ("reason", models.TextField()),
                ("requested_by_id", models.BigIntegerField()),
                ("requested_at", models.DateTimeField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "waiting for a second person"),
                            ("approved", "approved"),
                            ("refused", "refused"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("decided_by_id", models.BigIntegerField(blank=True, null=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"ordering": ["-requested_at", "-id"]},
        ),
    ]
