"""SQLite: the full-text triggers leave the traces a writer inserts in bulk to that writer, which indexes
them in one statement (search/backends/fulltext.py: defer_words, index_deferred_words)."""

from django.db import migrations

from search.backends import fulltext


def reinstall(apps, schema_editor):
    fulltext.install(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("search", "0009_trace_case_unindexed")]

    # Back to 0009, the triggers keep their condition: with no deferral row, it always holds.
    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
