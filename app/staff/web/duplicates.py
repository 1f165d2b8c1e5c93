"""重複の疑い (/staff/duplicates): this municipality's side of its cross-municipality duplicate cases
(app/registry/duplicates.py), one case with the matched member of its household, and a reviewer's answer.

The list shows no personal data (the entitlement, the other municipality's name, the case reference); the
member is shown to reviewers and admins on the case itself, as an audited personal-data view.
"""

from __future__ import annotations

from urllib.parse import quote

from app.registry import duplicates
from app.settings import SettingsError
from app.staff.web.common import page, redirect
from app.web.templates import render


def _key(request) -> bytes | None:
    # The member is found by hashing the household again; without the key the case is still shown.
    try:
        return request.app.state.settings.duplicate_key_bytes
    except SettingsError:
        return None


@page()
async def duplicate_list(request, conn, staff, ctx):
    code = staff.municipality_code
    reference = request.query_params.get("reference")
    detail = None
    if reference and (staff.has("reviewer") or staff.has("admin")):
        detail = await duplicates.case_detail(conn, _key(request), code, staff, reference)
    return render(
        request,
        "staff_duplicates.html",
        ctx
        | {
            "title": "重複の疑い（他団体）",
            "cases": await duplicates.cases(conn, code),
            "held": await duplicates.held_count(conn, code),
            "detail": detail,
            "saved": request.query_params.get("saved") == "1",
            "kind_labels": duplicates.KIND_LABELS,
            "resolution_labels": duplicates.RESOLUTION_LABELS,
            "entitlement_labels": duplicates.ENTITLEMENT_LABELS,
        },
    )


@page("reviewer", back=duplicate_list, keep_query=("reference",))
async def duplicate_resolve(request, conn, staff, ctx):
    form = ctx["form"]
    reference = duplicates.parse_reference(str(form.get("reference", "")))
    await duplicates.resolve(
        conn,
        staff.municipality_code,
        staff,
        reference,
        str(form.get("resolution", "")),
        str(form.get("comment", "")),
    )
    return redirect(f"/staff/duplicates?reference={quote(reference)}&saved=1#case")
