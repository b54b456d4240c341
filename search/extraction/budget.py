"""The absolute budget of one extraction of one evidence item: bytes decompressed, images nested, time.

A compression ratio cannot tell a zip bomb from a sparse disk image: a 1 GiB image of a freshly
formatted file system compresses at thousands to one, as a bomb does. Disk images found inside an archive
or a compressed file are therefore not bounded by the ratio (``search.extraction.tools.archives``) but by
this budget, shared by everything the run opens: every byte decompressed out of an image member counts
against ``max_decompressed_bytes``, every image opened inside another file counts one level against
``max_nesting``, and no further image is opened once ``max_seconds`` have passed since the walk began.

A budget that runs out stops only what would exceed it: the trace that would have been opened records
why (an error of tool ``custodia`` whose message starts with ``extraction budget``, on the trace page and
in the error facet), and the rest of the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

GIB = 1024 * 1024 * 1024
# What a budget error's message starts with: the error facet and the trace page show it as it stands.
BUDGET_ERROR_PREFIX = "extraction budget"
BUDGET_TOOL = "custodia"


class BudgetExceeded(Exception):  # a condition of the run, not a programming error
    """The evidence item's budget would be exceeded; the message says which and by how much."""


@dataclass
class ExtractionBudget:
    """What one extraction (one share of a run) may still spend. Not thread-safe: one walk uses it."""

    max_decompressed_bytes: int = 2 * GIB
    max_nesting: int = 4
    max_seconds: float = 4 * 3600.0
    decompressed_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    # Every hit, as recorded on its trace (for the run's own record and for tests).
    hits: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls) -> ExtractionBudget:
        """The budget the deployment sets (``CUSTODIA_EXTRACTION_BUDGET_*``, docs/extraction.md)."""
        from django.conf import settings

        return cls(
            max_decompressed_bytes=settings.CUSTODIA_EXTRACTION_BUDGET_BYTES,
            max_nesting=settings.CUSTODIA_EXTRACTION_BUDGET_NESTING,
            max_seconds=float(settings.CUSTODIA_EXTRACTION_BUDGET_SECONDS),
        )

    def _hit(self, message: str) -> BudgetExceeded:
        text = f"{BUDGET_ERROR_PREFIX}: {message}"
        self.hits.append(text)
        return BudgetExceeded(text)

    def spend_decompressed(self, size: int, *, what: str) -> None:
        """Count ``size`` more bytes decompressed out of a disk image; raise once the budget would be passed."""
        if self.decompressed_bytes + size > self.max_decompressed_bytes:
            raise self._hit(
                f"{what}: more than {self.max_decompressed_bytes} bytes decompressed for this evidence item "
                f"({self.decompressed_bytes} spent before); the image is not opened"
            )
        self.decompressed_bytes += size

    def check_nesting(self, level: int, *, what: str) -> None:
        """Raise when an image at nesting ``level`` (1: inside a file of the evidence) may not be opened."""
        if level > self.max_nesting:
            raise self._hit(f"{what}: images nested more than {self.max_nesting} deep are not opened")

    def check_time(self, *, what: str) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.max_seconds:
            raise self._hit(f"{what}: the run's {self.max_seconds:g} s for opening nested images are spent")
