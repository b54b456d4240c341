from django.apps import AppConfig


class HashSetsConfig(AppConfig):
    name = "hashsets"
    verbose_name = "Hash sets"
