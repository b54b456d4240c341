"""Alerts and hand-offs: rules over the audit trail tell the people who must act (issue #19 items 6 and 7)."""
