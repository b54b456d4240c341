from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Traces and search"

    def ready(self) -> None:
        from evidence.signals import evidence_sealed

        evidence_sealed.connect(_start_extraction, dispatch_uid="search.extract_on_seal")


def _start_extraction(sender, evidence, **kwargs) -> None:
    from search.services import extract_on_seal

    extract_on_seal(evidence=evidence)
