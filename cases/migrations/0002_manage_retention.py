"""Split retention and legal hold from editing a case: a permission of its own, held by custodians.

Custodians of existing cases get it here (new memberships get it from their role); the data step
uses the historical models only, so it means the same thing whatever the application code becomes."""

from django.db import migrations

CASE_PERMISSIONS = [
    ("manage_members", "Add, change and remove case members"),
    ("view_audit", "Read the case's audit trail"),
    ("register_evidence", "Register, upload and seal evidence"),
    ("view_evidence", "See evidence items and their custody"),
    ("extract_evidence", "Start extraction runs"),
    ("search_traces", "Search and read traces"),
    ("annotate_traces", "Tag and annotate traces"),
    ("issue_links", "Issue and approve download links"),
    ("reveal_secrets", "Reveal escrowed secrets"),
    ("manage_retention", "Set the retention date and legal hold"),
]


def grant_custodians(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    CaseMembership = apps.get_model("cases", "CaseMembership")
    UserObjectPermission = apps.get_model("guardian", "UserObjectPermission")
    custodians = list(CaseMembership.objects.filter(role="custodian").values_list("case_id", "user_id"))
    if not custodians:
        return
    content_type, _ = ContentType.objects.get_or_create(app_label="cases", model="case")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="manage_retention",
        defaults={"name": "Set the retention date and legal hold"},
    )
    for case_id, user_id in custodians:
        UserObjectPermission.objects.get_or_create(
            permission=permission, content_type=content_type, object_pk=str(case_id), user_id=user_id
        )


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("guardian", "0002_generic_permissions_index"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="case",
            options={"ordering": ["-created_at", "-id"], "permissions": CASE_PERMISSIONS},
        ),
        migrations.RunPython(grant_custodians, migrations.RunPython.noop),
    ]
