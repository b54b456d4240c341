"""What a case page shows at a glance (issue #20, item 12): its counts, and what needs the signed-in
person's attention, by what their role lets them do. It reads evidence, links and traces, so it lives in
the search app (the case page loads it as a partial: cases imports neither app)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_permissions
from evidence.models import DownloadLink, Evidence, EvidenceState, IntegrityStatus, LinkState
from search.models import ExtractionRun, RunState, Trace, TraceTag

LOCKED_VOLUME = Q(**{"properties__encryptedVolume.unlocked": False})
# The attention list stays short: the first few of each kind, with the count of the rest.
ATTENTION_PER_KIND = 5


@dataclass(frozen=True)
class Attention:
    """One thing to do: what, for whom it is meant (the permission it needs), and where to do it."""

    text: str
    url: str
    kind: str


def case_overview(*, user: User, case: Case) -> dict:
    """Counts (only those the user's permissions show) and the attention list for ``user`` on ``case``.
    The caller has checked that the user may view the case."""
    granted = case_permissions(user=user, case=case)
    counts: dict[str, int] = {}
    attention: list[Attention] = []
    locked: list[tuple] = []
    evidence = list(Evidence.objects.filter(case=case).order_by("created_at")) if perms.VIEW_EVIDENCE in granted else []
    labels = {item.pk: item.label for item in evidence}
    if perms.VIEW_EVIDENCE in granted:
        counts["evidence"] = len(evidence)
        locked = list(Trace.objects.filter(case=case).filter(LOCKED_VOLUME).values_list("evidence_id", "name")[:100])
        counts["locked_volumes"] = len(locked)
    if perms.SEARCH_TRACES in granted:
        counts["traces"] = Trace.objects.filter(case=case).count()
        counts["tagged"] = TraceTag.objects.filter(case=case).values("trace_id").distinct().count()
    pending = []
    if perms.ISSUE_LINKS in granted:
        now = timezone.now()
        pending = list(
            DownloadLink.objects.filter(evidence__case=case, state=LinkState.PENDING, expires_at__gt=now)
            .filter(Q(approval_expires_at__isnull=True) | Q(approval_expires_at__gt=now))
            .select_related("issued_by", "recipient")
        )
        counts["pending_approvals"] = len(pending)

    def evidence_url(item_id: object, anchor: str = "") -> str:
        return reverse("evidence:detail", kwargs={"evidence_id": item_id}) + anchor

    if perms.ISSUE_LINKS in granted:
        for link in pending:
            if link.issued_by_id != user.pk and link.recipient_id != user.pk:
                attention.append(
                    Attention(
                        text=f"Approve or refuse the download link of {labels.get(link.evidence_id, '')} "
                        f"for {link.recipient_display} (issued by {link.issued_by})",
                        url=evidence_url(link.evidence_id, "#links"),
                        kind="approval",
                    )
                )
    if perms.REGISTER_EVIDENCE in granted:
        for item in evidence:
            if item.state in (EvidenceState.REGISTERED, EvidenceState.RECEIVING) and item.source == "upload":
                attention.append(
                    Attention(
                        text=f"Finish the upload of {item.label}", url=evidence_url(item.pk, "#upload"), kind="upload"
                    )
                )
            elif item.state == EvidenceState.FAILED:
                attention.append(
                    Attention(
                        text=f"The intake of {item.label} failed: {item.failure_reason[:120]}",
                        url=evidence_url(item.pk),
                        kind="failed",
                    )
                )
    if perms.VIEW_EVIDENCE in granted:
        for item in evidence:
            if item.integrity == IntegrityStatus.MISMATCH:
                attention.append(
                    Attention(text=f"Integrity mismatch on {item.label}", url=evidence_url(item.pk), kind="mismatch")
                )
    if perms.REGISTER_EVIDENCE in granted or perms.EXTRACT_EVIDENCE in granted:
        for evidence_id, name in locked:
            what = (
                "escrow its secret"
                if perms.REGISTER_EVIDENCE in granted
                else "extract again once its secret is escrowed"
            )
            attention.append(
                Attention(
                    text=f"Encrypted volume {name} of {labels.get(evidence_id, '')} is locked: {what}",
                    url=evidence_url(evidence_id, "#secrets-h"),
                    kind="locked",
                )
            )
    if perms.EXTRACT_EVIDENCE in granted:
        runs = {
            row["evidence_id"]: row
            for row in ExtractionRun.objects.filter(evidence__case=case)
            .values("evidence_id")
            .annotate(
                runs=Count("pk"),
                failed=Count("pk", filter=Q(state=RunState.FAILED)),
                succeeded=Count("pk", filter=Q(state=RunState.DONE)),
            )
        }
        for item in evidence:
            row = runs.get(item.pk)
            if item.state == EvidenceState.SEALED and row is None:
                attention.append(
                    Attention(
                        text=f"Extract the traces of {item.label}",
                        url=evidence_url(item.pk, "#traces-h"),
                        kind="extract",
                    )
                )
            elif row and row["failed"] and not row["succeeded"]:
                attention.append(
                    Attention(
                        text=f"The extraction of {item.label} failed: see its runs",
                        url=evidence_url(item.pk, "#traces-h"),
                        kind="extraction_failed",
                    )
                )
    if perms.VIEW_EVIDENCE in granted:
        for link in DownloadLink.objects.filter(evidence__case=case, recipient=user, state=LinkState.ACTIVE).filter(
            expires_at__gt=timezone.now()
        ):
            attention.append(
                Attention(
                    text=f"A download link to {labels.get(link.evidence_id, '')} waits for you "
                    f"(until {link.expires_at:%Y-%m-%d %H:%M})",
                    url=evidence_url(link.evidence_id),
                    kind="link_for_you",
                )
            )
    return {"counts": counts, "attention": _bounded(attention), "granted": granted}


def _bounded(items: list[Attention]) -> list[Attention]:
    """At most ``ATTENTION_PER_KIND`` of each kind, then one line saying how many more."""
    kept: list[Attention] = []
    seen: dict[str, int] = {}
    for item in items:
        seen[item.kind] = seen.get(item.kind, 0) + 1
        if seen[item.kind] <= ATTENTION_PER_KIND:
            kept.append(item)
    for kind, total in seen.items():
        if total > ATTENTION_PER_KIND:
            kept.append(Attention(text=f"… and {total - ATTENTION_PER_KIND} more like these", url="", kind=kind))
    return kept
