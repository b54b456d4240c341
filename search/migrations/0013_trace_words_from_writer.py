"""PostgreSQL: the word trigger keeps a vector its writer computed (search/backends/fulltext.py)."""

from django.db import migrations

from search.backends import fulltext


def replace(apps, schema_editor):
    fulltext.replace_postgres_word_function(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("search", "0012_trace_number_index")]

    # Back to 0012, the function may keep its first lines: the writer of that code never sets the vector.
    operations = [migrations.RunPython(replace, migrations.RunPython.noop)]
