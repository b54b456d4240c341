"""Bring the search backend's own index up to date with the traces in the database.

The SQL backend keeps its index with triggers and needs none of this; Elasticsearch does, after it was
unreachable while traces or tags were written, or when it starts with an empty index.

    manage.py search_reindex [--case ID]
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from search.backends.base import get_search_backend
from search.models import Trace

CHUNK = 5000


class Command(BaseCommand):
    help = "Send every trace (or every trace of one case) to the search backend's index."

    def add_arguments(self, parser):
        parser.add_argument("--case", type=int, help="Only this case's traces.")

    def handle(self, *args, case=None, **options):
        backend = get_search_backend()
        traces = Trace.objects.order_by("pk")
        if case is not None:
            traces = traces.filter(case_id=case)
        ids = list(traces.values_list("pk", flat=True))
        for start in range(0, len(ids), CHUNK):
            backend.traces_changed(trace_ids=ids[start : start + CHUNK])
        self.stdout.write(f"{len(ids)} traces sent to the {backend.name} search backend.")
