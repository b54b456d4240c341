import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0005_intake_worker"),
    ]

    operations = [
        migrations.AddField(
            model_name="evidence",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="evidence.evidence",
            ),
        ),
    ]
