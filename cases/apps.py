from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Organisations and cases"

    def ready(self) -> None:
        from cases import schema, signals  # noqa: F401
