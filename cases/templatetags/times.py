"""``{{ value|when }}``: a time as every page writes it (cases/times.py)."""

from django import template
from django.utils.html import format_html

from cases.times import format_recorded_time, format_time

register = template.Library()


@register.filter
def when(value) -> str:
    return format_time(value)


@register.filter
def when_tag(value) -> str:
    """The time in a ``<time>`` element whose ``datetime`` is the exact instant (ISO, with its offset)."""
    text = format_time(value)
    iso = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return format_html('<time datetime="{}">{}</time>', iso, text) if text else ""


@register.filter
def when_recorded(event) -> str:
    """An event of the events page (``time`` and the ``zone`` its clock was read on) in a ``<time>`` element."""
    text = format_recorded_time(str(event.get("time", "")), str(event.get("zone", "")))
    return format_html('<time datetime="{}">{}</time>', event.get("time", ""), text) if text else ""
