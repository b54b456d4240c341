import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.dev")  # as manage.py; production sets it

app = Celery("custodia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_privacy_filter(logger: logging.Logger, **kwargs) -> None:
    """A worker replaces the root logger's handlers (Django's LOGGING) by its own: they get the privacy filter
    too, so that a task's log lines and tracebacks are replaced as the web's are (docs/privacy.md)."""
    from audit.privacy import PrivacyLogFilter

    for handler in logger.handlers:
        if not any(isinstance(existing, PrivacyLogFilter) for existing in handler.filters):
            handler.addFilter(PrivacyLogFilter())
