"""The one access policy.

Who may do what is decided here and nowhere else:
- organisation isolation first: a user never sees anything of another organisation (404, not 403);
- per case, a member's role grants a fixed set of object permissions (django-guardian), listed in
  ``ROLE_PERMISSIONS``; views and API actions each declare the permission they need;
- organisation administrators manage users and memberships of their own organisation and see case
  summaries, but not evidence, traces or audit content unless they are members themselves.
"""

from __future__ import annotations

from cases.models import Role

# Codenames of Case permissions (see Case.Meta.permissions); "view_case" and "change_case" are Django's.
VIEW_CASE = "view_case"
CHANGE_CASE = "change_case"
MANAGE_MEMBERS = "manage_members"
VIEW_AUDIT = "view_audit"
REGISTER_EVIDENCE = "register_evidence"
VIEW_EVIDENCE = "view_evidence"
EXTRACT_EVIDENCE = "extract_evidence"
SEARCH_TRACES = "search_traces"
ANNOTATE_TRACES = "annotate_traces"
ISSUE_LINKS = "issue_links"
REVEAL_SECRETS = "reveal_secrets"
# Set or change a case's retention date and legal hold, which the evidence store enforces on every sealed
# object of the case: the custodian's alone (an investigator may edit a case's title, not its protection).
MANAGE_RETENTION = "manage_retention"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.CUSTODIAN: frozenset(
        {
            VIEW_CASE,
            CHANGE_CASE,
            MANAGE_MEMBERS,
            VIEW_AUDIT,
            REGISTER_EVIDENCE,
            VIEW_EVIDENCE,
            ISSUE_LINKS,
            REVEAL_SECRETS,
            MANAGE_RETENTION,
        }
    ),
    Role.INVESTIGATOR: frozenset(
        {VIEW_CASE, CHANGE_CASE, VIEW_EVIDENCE, EXTRACT_EVIDENCE, SEARCH_TRACES, ANNOTATE_TRACES, REVEAL_SECRETS}
    ),
    Role.DETECTIVE: frozenset({VIEW_CASE, VIEW_EVIDENCE, SEARCH_TRACES, ANNOTATE_TRACES}),
    Role.PROSECUTOR: frozenset({VIEW_CASE, VIEW_EVIDENCE, VIEW_AUDIT, SEARCH_TRACES}),
}

# What an organisation administrator may do on every case of their organisation without a membership.
ORG_ADMIN_PERMISSIONS: frozenset[str] = frozenset({VIEW_CASE, MANAGE_MEMBERS})

ALL_CASE_PERMISSIONS: frozenset[str] = frozenset().union(*ROLE_PERMISSIONS.values())


def permissions_for_role(role: str) -> frozenset[str]:
    try:
        return ROLE_PERMISSIONS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}") from None
