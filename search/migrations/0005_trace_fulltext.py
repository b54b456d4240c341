"""Full-text indexes of traces kept by triggers (search/backends/fulltext.py): FTS5 or tsvector + GIN."""

from django.db import migrations


def install(apps, schema_editor):
    from search.backends import fulltext

    fulltext.install(schema_editor)


def uninstall(apps, schema_editor):
    from search.backends import fulltext

    fulltext.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("search", "0004_trace_facet_columns")]

    operations = [migrations.RunPython(install, uninstall)]
