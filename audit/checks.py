"""Deployment checks of the audit trail: the append-only triggers are in place and enabled, and the
checkpoint signing key can be read (``manage.py check --deploy``)."""

from django.core import checks
from django.db import connection

from audit.checkpoints import CheckpointError, signer_public_key
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
