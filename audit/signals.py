"""Signals the audit trail sends, for apps above it that react to what is recorded (the alerts app's rules).

``audit`` imports no app of ours: it announces, the apps above listen (as ``evidence.signals`` does for
search). Receivers run synchronously inside ``audit_record``'s caller's transaction, so whatever they write
commits or rolls back with the event; they must never raise into the writer (send_robust is used).

- ``event_recorded``: sent after each row is appended; kwargs ``event`` (the stored ``AuditEvent``) and
  ``details`` (the details as the caller gave them, before they were made JSON-safe), ``actor_name`` and
  ``client_address`` (in clear: the event's are stored replaced by the privacy model, so a listener that
  writes them anew tags these, and the policy transforms them once).
- ``write_failed``: sent when a row could not be written (the caller's change is refused and rolls back);
  kwargs ``action``, ``organization_id``, ``case_id`` and ``error`` (the exception's class name only).
"""

from django.dispatch import Signal

event_recorded = Signal()
write_failed = Signal()
