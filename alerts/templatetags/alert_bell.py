"""``{% alert_bell %}``: the bell in the top bar, with the count of the user's open alerts."""

from django import template

from alerts import selectors

register = template.Library()


@register.inclusion_tag("alerts/_bell.html", takes_context=True)
def alert_bell(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    count = selectors.alert_open_count(user=user) if user is not None and user.is_authenticated else 0
    return {"open_count": count}
