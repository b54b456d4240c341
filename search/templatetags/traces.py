from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``properties|get_item:"file.size"``: property names contain dots, which template lookups cannot."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def is_list(value) -> bool:
    """Multi-valued properties (``email.to``) are shown joined."""
    return isinstance(value, list | tuple)
