from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    name = "evidence"
    verbose_name = "Evidence custody"

    def ready(self) -> None:
        from evidence import checks, receivers  # noqa: F401 - registers the start-up checks and the receivers
