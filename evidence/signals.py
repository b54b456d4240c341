"""Signals the evidence app sends, so that higher apps (search) can react without evidence importing them."""

from django.dispatch import Signal

# Sent after the transaction that sealed an evidence item commits; kwargs: evidence.
evidence_sealed = Signal()
