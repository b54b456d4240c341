"""Signals of the cases app: sign-ins and sign-outs of the browser are audit events too, and a case's
retention or legal hold changing is announced to the apps above (evidence applies it in the store)."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import Signal, receiver

from audit.models import Outcome
from audit.privacy import Tagged
from audit.services import audit_record

# Sent by ``cases.services.case_update`` inside its transaction, after the case row is saved and before the
# change's audit rows are written, when the retention date or the legal hold changed; kwargs: ``case``
# (with the new values), ``actor``, ``previous_retention_until`` and ``previous_legal_hold``. Receivers run
# synchronously; one raises a ``custodia.errors.ServiceError`` to refuse the change (the transaction then
# rolls back and the refusal is audited), and may return a dict of what it applied, which goes into the
# audit row. Evidence receives it (evidence/receivers.py) to protect every sealed object of the case.
case_retention_changed = Signal()


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=user, target_type="user", target_id=user.pk)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, target_type="user", target_id=user.pk)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # The password never reaches the trail; the username does, cut to the column's size.
    audit_record(
        action="auth.login",
        outcome=Outcome.DENIED,
        details={"username": Tagged("user", str(credentials.get("username", ""))[:150])},
    )


@receiver(user_locked_out)
def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    # django-axes refused a login: the account or the client address is over the limit of failures.
    with transaction.atomic():
        audit_record(
            action="auth.lockout",
            outcome=Outcome.DENIED,
            details={
                "username": Tagged("user", str(username or "")[:150]),
                "client": Tagged("client_address", str(ip_address or "")[:64]),
            },
        )
