from django import template

from evidence.models import Evidence

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``properties|get_item:"file.size"``: property names contain dots, which template lookups cannot."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def is_list(value) -> bool:
    """Multi-valued properties (``email.to``) are shown joined."""
    return isinstance(value, list | tuple)


@register.filter
def evidence_label(value, case) -> str:
    """``entry.value|evidence_label:case``: an evidence facet's value (its id) as the item's label, for the
    evidence of ``case`` only; the value itself when it names none."""
    label = Evidence.objects.filter(case=case, pk=str(value)).values_list("label", flat=True).first() if value else None
    return label if label is not None else str(value)
