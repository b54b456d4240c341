"""Sign-ins and sign-outs of the browser are audit events too."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.models import Outcome
from audit.services import audit_record


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
        details={"username": str(credentials.get("username", ""))[:150]},
    )
