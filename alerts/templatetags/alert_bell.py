"""``{% alert_bell %}``: the bell in the top bar, with the count of the user's open alerts."""

from django import template
from django.db import DatabaseError

from alerts import selectors

register = template.Library()


@register.inclusion_tag("alerts/_bell.html", takes_context=True)
def alert_bell(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"shown": False}
    try:
        count = selectors.alert_open_count(user=user)
    except DatabaseError:
        # The error page of a database outage extends the base template too: it shows no bell rather than fail.
        return {"shown": False}
    return {"shown": True, "open_count": count}
