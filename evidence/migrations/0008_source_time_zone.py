from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0007_registration_facts"),
    ]

    operations = [
        migrations.AddField(
            model_name="evidence",
            name="source_time_zone",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
