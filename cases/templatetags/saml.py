"""``{% saml_sign_in_buttons %}``: a "Sign in with <IdP>" button for each organisation whose identity
provider is enabled and listed on the shared sign-in page."""

from __future__ import annotations

from django import template

from cases.models import IdentityProvider

register = template.Library()


@register.inclusion_tag("registration/_saml_buttons.html", takes_context=True)
def saml_sign_in_buttons(context) -> dict:
    providers = (
        IdentityProvider.objects.filter(enabled=True, listed_on_login_page=True)
        .select_related("organization")
        .order_by("name")
    )
    return {"providers": list(providers), "next": context.get("next", "")}
