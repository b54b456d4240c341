"""The per-case chain and the checkpoint index.

Existing events with a case get their case links here. The audit table refuses UPDATE, so the
append-only triggers of 0002 are dropped for the fill and created again, with the same SQL, in the same
transaction. The canonical form of a row is written out below rather than imported from audit.chain, so
that this migration means the same thing forever.
"""

import hashlib
import json
from datetime import UTC, datetime

import django.db.models.deletion
from django.db import migrations, models

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor",
    "organization_id",
    "action",
    "target_type",
    "target_id",
    "case_id",
    "outcome",
    "request_id",
    "client_address",
    "details",
)
BATCH = 5000

TRIGGERS_DOWN = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_event_no_update", "DROP TRIGGER IF EXISTS audit_event_no_delete"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent",
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent",
    ],
}
TRIGGERS_UP = {
    "sqlite": [
        """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END""",
        """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END""",
    ],
    "postgresql": [
        """CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_auditevent
       FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change()""",
        """CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
       FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change()""",
    ],
}


def _canonical_json(row):
    body = {name: row[name] for name in HASHED_FIELDS}
    if isinstance(body["occurred_at"], datetime):
        body["occurred_at"] = body["occurred_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash(prev_hash, canonical):
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def link_existing_events_to_their_case_chains(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    vendor = schema_editor.connection.vendor
    heads = {}  # case id -> (case_sequence, case_hash) of its last event so far
    with schema_editor.connection.cursor() as cursor:
        for statement in TRIGGERS_DOWN[vendor]:
            cursor.execute(statement)
        last = 0
        while True:
            rows = list(
                AuditEvent.objects.filter(sequence__gt=last, case_id__isnull=False)
                .order_by("sequence")
                .values(*HASHED_FIELDS)[:BATCH]
            )
            if not rows:
                break
            updates = []
            for row in rows:
                case_sequence, case_prev_hash = heads.get(row["case_id"], (0, GENESIS_HASH))
                case_hash = _hash(case_prev_hash, _canonical_json(row))
                heads[row["case_id"]] = (case_sequence + 1, case_hash)
                updates.append((case_sequence + 1, case_prev_hash, case_hash, row["sequence"]))
            cursor.executemany(
                "UPDATE audit_auditevent SET case_sequence = %s, case_prev_hash = %s, case_hash = %s "
                "WHERE sequence = %s",
                updates,
            )
            last = rows[-1]["sequence"]
        for statement in TRIGGERS_UP[vendor]:
            cursor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_triggers'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditCaseCheckpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('case_id', models.BigIntegerField()),
                ('case_sequence', models.BigIntegerField()),
                ('case_hash', models.CharField(max_length=64)),
                ('statement_digest', models.CharField(max_length=64)),
            ],
            options={
                'ordering': ['checkpoint_id'],
            },
        ),
        migrations.CreateModel(
            name='AuditCheckpoint',
            fields=[
                ('number', models.BigIntegerField(primary_key=True, serialize=False)),
                ('sequence', models.BigIntegerField()),
                ('hash', models.CharField(max_length=64)),
                ('signed_at', models.DateTimeField()),
                ('statement_digest', models.CharField(help_text='SHA-256 of the signed global statement.', max_length=64)),
                ('algorithm', models.CharField(max_length=40)),
                ('key_fingerprint', models.CharField(max_length=64)),
            ],
            options={
                'ordering': ['number'],
            },
        ),
        migrations.AddField(
            model_name='auditevent',
            name='case_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='case_prev_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='case_sequence',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(condition=models.Q(('case_id__isnull', False)), fields=('case_id', 'case_sequence'), name='audit_case_sequence_unique'),
        ),
        migrations.AddField(
            model_name='auditcasecheckpoint',
            name='checkpoint',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='case_heads', to='audit.auditcheckpoint'),
        ),
        migrations.AddIndex(
            model_name='auditcasecheckpoint',
            index=models.Index(fields=['case_id', 'checkpoint'], name='audit_audit_case_id_cc7d34_idx'),
        ),
        migrations.AddConstraint(
            model_name='auditcasecheckpoint',
            constraint=models.UniqueConstraint(fields=('checkpoint', 'case_id'), name='audit_case_checkpoint_unique'),
        ),
        migrations.RunPython(link_existing_events_to_their_case_chains, migrations.RunPython.noop),
    ]
