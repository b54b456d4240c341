"""What hash sets announce to the apps above them (search listens; hashsets never imports search)."""

from django.dispatch import Signal

# Sent after the transaction that finished a hash set's import commits; kwargs: hash_set.
# search marks the traces already extracted that the set holds (search/hashset_marks.py).
hashset_imported = Signal()
