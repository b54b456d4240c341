"""The number index: one row per numeric property of a trace, kept by triggers like the full-text index
(search/backends/fulltext.py), so comparisons and ranges on properties read an index."""

from django.db import migrations

from search.backends import fulltext


def install(apps, schema_editor):
    fulltext.install_numbers(schema_editor)


def uninstall(apps, schema_editor):
    fulltext.uninstall_numbers(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("search", "0011_trace_sent_on_partial")]

    operations = [migrations.RunPython(install, uninstall)]
