import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.base")

app = Celery("custodia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
