# Issue #17: per-organisation SAML identity providers, the NameID links and the assertion replay cache.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0002_manage_retention'),
    ]

    operations = [
        migrations.CreateModel(
            name='IdentityProvider',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='Shown on the sign-in page: "Sign in with <name>".', max_length=100)),
                ('enabled', models.BooleanField(default=True)),
                ('listed_on_login_page', models.BooleanField(default=True, help_text='Offer the button on the shared sign-in page (otherwise only at its own URL).')),
                ('entity_id', models.CharField(help_text="The IdP's entity ID (its Issuer).", max_length=500)),
                ('sso_url', models.URLField(help_text='Single sign-on URL (HTTP-Redirect binding).', max_length=500)),
                ('slo_url', models.URLField(blank=True, help_text='Single logout URL (HTTP-Redirect binding).', max_length=500)),
                ('x509_cert', models.TextField(help_text="The IdP's full signing certificate, PEM or base64 (a fingerprint is not accepted).")),
                ('username_attribute', models.CharField(blank=True, help_text='Attribute holding the username; empty: the NameID.', max_length=200)),
                ('email_attribute', models.CharField(blank=True, default='email', max_length=200)),
                ('display_name_attribute', models.CharField(blank=True, default='displayName', max_length=200)),
                ('groups_attribute', models.CharField(blank=True, default='groups', help_text="Attribute listing the user's groups or roles.", max_length=200)),
                ('member_groups', models.TextField(blank=True, help_text='Groups (one per line) whose members may sign in; empty: every user the IdP vouches for.')),
                ('org_admin_groups', models.TextField(blank=True, help_text="Groups (one per line) whose members administer the organisation's users.")),
                ('case_opener_groups', models.TextField(blank=True, help_text='Groups (one per line) whose members may open cases.')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('organization', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='identity_provider', to='cases.organization')),
            ],
            options={
                'ordering': ['organization__name'],
            },
        ),
        migrations.CreateModel(
            name='SamlAssertionSeen',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('assertion_id', models.CharField(max_length=255, unique=True)),
                ('expires_at', models.DateTimeField(db_index=True)),
                ('seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('identity_provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='cases.identityprovider')),
            ],
        ),
        migrations.CreateModel(
            name='SamlIdentity',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name_id', models.CharField(max_length=255)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_login_at', models.DateTimeField(blank=True, null=True)),
                ('identity_provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='identities', to='cases.identityprovider')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='saml_identities', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('identity_provider', 'name_id'), name='one_user_per_saml_name_id')],
            },
        ),
    ]
