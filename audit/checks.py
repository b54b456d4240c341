"""Deployment checks of the audit trail: the append-only triggers are in place and enabled, and the
checkpoint signing key and the privacy model's key can be read (``manage.py check --deploy``)."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from audit.checkpoints import CheckpointError, signer_public_key
from audit.privacy import keys_from_settings
from audit.verify import append_only_trigger_problem


@checks.register(deploy=True)
def append_only_triggers(app_configs=None, **kwargs):
    if "audit_auditevent" not in connection.introspection.table_names():
        return []  # not migrated yet: the migrations create the table and its triggers together
    problem = append_only_trigger_problem()
    if problem:
        return [checks.Error(f"The audit trail is not protected: {problem}.", id="audit.E001")]
    return []


@checks.register(deploy=True)
def checkpoint_signer_ready(app_configs=None, **kwargs):
    try:
        signer_public_key()
    except (CheckpointError, ImportError, TypeError) as error:
        return [checks.Error(f"Audit checkpoints cannot be signed: {error}", id="audit.E002")]
    return []


@checks.register(deploy=True)
def privacy_key_ready(app_configs=None, **kwargs):
    """The privacy model's system-wide key can be loaded (a key file, or the key vault): without it no audit
    row or log line with a tagged value could be written as the policy says."""
    from django.conf import settings

    try:
        keys = keys_from_settings()
        keys.master_key()
    except (ImproperlyConfigured, ImportError, TypeError) as error:
        return [checks.Error(f"The privacy model has no key: {error}", id="audit.E003")]
    if settings.DEBUG and not getattr(settings, "CUSTODIA_PRIVACY_KEYS_OPTIONS", {}).get("key", True):
        return [
            checks.Warning(
                "The privacy key is derived from SECRET_KEY (debug mode): set CUSTODIA_PRIVACY_KEY_FILE.",
                id="audit.W003",
            )
        ]
    return []
