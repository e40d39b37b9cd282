"""Each alarm type's resolution link: the console page that fixes it (the vendor
documents' "this alarm contains a hyperlink which you can use to launch ...")."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

ELEMENT_PAGE = "/ui/elements/{resource}"
SYNC_ACTIONS = "/ui/elements/{resource}#sync"

_LINKS: dict[str, tuple[str, str]] = {
    "sync-reconcile-required": ("/ui/reconcile", "Open the Sync and Reconcile wizard"),
    "distribution-errors": (
        "/ui/distribution-errors?element={resource}",
        "Open the distribution errors",
    ),
    "element-updated-activation-required": ("/ui/activation", "Open the activation page"),
    "auth-failed-incorrect": (ELEMENT_PAGE, "Set the element's credentials"),
    "auth-failed-missing": (ELEMENT_PAGE, "Set the element's credentials"),
    "element-unreachable": (ELEMENT_PAGE, "Check the element's address"),
    "sync-required": (SYNC_ACTIONS, "Sync the element"),
    "init-sync-required": (SYNC_ACTIONS, "Run an initialization"),
    "element-emptied": (SYNC_ACTIONS, "Decide: forced initialization (dry run first)"),
    "sync-failed": (SYNC_ACTIONS, "Sync the element again"),
    "ftp-inactive": ("/ui/sharing", "Open the sharing page"),
}


def resolution_link(alarm: Mapping[str, object]) -> tuple[str, str] | None:
    """(href, label) of the page that resolves ``alarm`` (a type and a resource), or
    None when no console page does."""
    found = _LINKS.get(str(alarm.get("type", "")))
    if found is None:
        return None
    href, label = found
    resource = quote(str(alarm.get("resource", "")), safe="")
    return href.format(resource=resource), label
