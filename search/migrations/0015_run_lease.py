from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0014_stream_words_batch_triggers"),
    ]

    operations = [
        migrations.AddField(
            model_name="extractionrun",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="extractionrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="extractionrun",
            name="worker",
            field=models.CharField(blank=True, help_text="host:pid of the worker that last renewed", max_length=200),
        ),
    ]
