from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Traces and search"

    def ready(self) -> None:
        from evidence.signals import evidence_sealed
        from hashsets.signals import hashset_imported

        evidence_sealed.connect(_start_extraction, dispatch_uid="search.extract_on_seal")
        hashset_imported.connect(_mark_known_traces, dispatch_uid="search.mark_traces_for_hash_set")


def _start_extraction(sender, evidence, **kwargs) -> None:
    from search.services import extract_on_seal

    extract_on_seal(evidence=evidence)


def _mark_known_traces(sender, hash_set, **kwargs) -> None:
    # Sent after the import committed: a worker marks the traces already extracted.
    from search.tasks import mark_traces_for_hash_set

    mark_traces_for_hash_set.delay(hash_set.pk)
