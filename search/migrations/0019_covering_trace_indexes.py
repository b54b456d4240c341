"""Issue #21 item 4: the (case, …) indexes of deleted, types, file size, modification and sent dates also hold the
columns of a search's hits table (PostgreSQL INCLUDE), so PostgreSQL fills it from the index alone. SQLite
ignores INCLUDE: there the indexes are the same columns under new names, whose statistics ANALYZE gathers."""

from django.db import migrations, models


def sqlite_statistics(apps, schema_editor):
    # SQLite's planner keeps per-index statistics by name (sqlite_stat1): the new names need theirs.
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("ANALYZE search_trace")


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0004_user_time_zone"),
        ("evidence", "0008_source_time_zone"),
        ("search", "0018_event_types"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="trace",
            name="search_trac_case_id_139ac0_idx",
        ),
        migrations.RemoveIndex(
            model_name="trace",
            name="search_trac_case_id_66d594_idx",
        ),
        migrations.RemoveIndex(
            model_name="trace",
            name="search_trac_case_id_67d11d_idx",
        ),
        migrations.RemoveIndex(
            model_name="trace",
            name="search_trac_case_id_1261d5_idx",
        ),
        migrations.RemoveIndex(
            model_name="trace",
            name="search_trace_sent_on",
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                fields=["case", "deleted"],
                include=("id", "evidence", "types", "extension", "mime_type"),
                name="search_trace_deleted_hits",
            ),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                fields=["case", "types"],
                include=("id", "evidence", "extension", "mime_type", "deleted"),
                name="search_trace_types_hits",
            ),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                fields=["case", "file_size"],
                include=("id", "evidence", "types", "extension", "mime_type", "deleted"),
                name="search_trace_file_size_hits",
            ),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                fields=["case", "modified_on"],
                include=("id", "evidence", "types", "extension", "mime_type", "deleted"),
                name="search_trace_modified_on_hits",
            ),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                condition=models.Q(("sent_on__isnull", False)),
                fields=["case", "sent_on"],
                include=("id", "evidence", "types", "extension", "mime_type", "deleted"),
                name="search_trace_sent_on_hits",
            ),
        ),
        migrations.RunPython(sqlite_statistics, migrations.RunPython.noop),
    ]
