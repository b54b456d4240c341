"""Triage pages (issue #20): the folder tree of an evidence item (item 3): the page, and the two partials htmx
loads into it as branches are opened (``_tree_nodes.html``) and folders clicked (``_folder.html``)."""

from __future__ import annotations

from django.shortcuts import render

from cases import permissions as perms
from custodia.web import case_view, evidence_view
from search import overview, tree
from search.api.triage import page_parameter, trace_uid_parameter


@evidence_view(perms.SEARCH_TRACES)
def evidence_folders(request, evidence):
    """The tree's top level, and the folder named by ``?folder=`` listed beside it (so a listing has a URL
    of its own, and the page works when a link is opened in a new tab)."""
    nodes, more = tree.tree_nodes(evidence=evidence)
    folder = trace_uid_parameter(request.GET.get("folder"), name="folder", required=False)
    listing = None
    if folder:
        listing = tree.folder_entries(evidence=evidence, uid=folder, page=page_parameter(request.GET.get("page")))
    context = {"evidence": evidence, "case": evidence.case, "nodes": nodes, "more": more, "listing": listing}
    return render(request, "search/folders.html", context)


@evidence_view(perms.SEARCH_TRACES)
def evidence_tree_nodes(request, evidence):
    """One level of the tree: the branches below ``?parent=``."""
    parent = trace_uid_parameter(request.GET.get("parent"), name="parent", required=False)
    nodes, more = tree.tree_nodes(evidence=evidence, parent_uid=parent)
    return render(request, "search/_tree_nodes.html", {"evidence": evidence, "nodes": nodes, "more": more})


@evidence_view(perms.SEARCH_TRACES)
def evidence_folder_list(request, evidence):
    """A folder's entries, a page at a time, as a file manager lists them."""
    folder = trace_uid_parameter(request.GET.get("folder"), name="folder", required=True)
    listing = tree.folder_entries(evidence=evidence, uid=folder, page=page_parameter(request.GET.get("page")))
    return render(request, "search/_folder.html", {"evidence": evidence, "case": evidence.case, "listing": listing})


@case_view()
def case_overview(request, case):
    """The case page's counts and "needs your attention" list (a partial the case page loads)."""
    return render(
        request, "search/_case_overview.html", {"case": case, **overview.case_overview(user=request.user, case=case)}
    )
