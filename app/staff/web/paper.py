"""紙の申請書 (/staff/paper...): boxes of returned forms, keying each form twice (ベリファイ入力), the third
clerk's decision and the 不備返戻 letters. The rules are app/intake/paper.py's; this module parses, calls
it and renders.

Keying is keyboard-first: the entry page puts the fields in the order of the paper form, the first field
has focus, Enter moves to the next field (app/web/static/keying.js; without script Enter saves and the
server lists what is missing), and saving opens the next form of the box with the previous form's outcome
shown at the top.
"""

from __future__ import annotations

from starlette.responses import Response

from app.intake import paper
from app.staff.web.common import cipher, form_date, int_param, page, redirect
from app.web.templates import render


def _common() -> dict:
    return {
        "state_labels": paper.STATE_LABELS,
        "resolve_reasons": paper.RESOLVE_REASONS,
        "deficiency_labels": paper.DEFICIENCY_LABELS,
        "field_labels": paper.FIELD_LABELS,
        "illegible_items": paper.ILLEGIBLE_LABELS,
    }


@page(*paper.VIEWERS)
async def paper_home(request, conn, staff, ctx):
    code = staff.municipality_code
    return render(
        request,
        "staff_paper.html",
        ctx
        | _common()
        | {
            "title": "紙の申請書",
            "boxes": await paper.boxes(conn, code),
            "programs": await paper.programs(conn, code),
        },
    )


@page(*paper.RECEIVERS, back=paper_home)
async def box_receive(request, conn, staff, ctx):
    form = ctx["form"]
    received_on = form_date(form.get("received_on"), "受付日")
    box_id = await paper.receive_box(
        conn,
        staff.municipality_code,
        staff,
        form.get("program_id"),
        str(form.get("box_no", "") or ""),
        received_on,
        form.get("form_count"),
    )
    return redirect(f"/staff/paper/boxes/{box_id}", flash="paper.box_receive")


@page(*paper.VIEWERS)
async def box_page(request, conn, staff, ctx):
    box_id = int_param(request, "box_id")
    detail = await paper.box(conn, staff.municipality_code, box_id)
    return render(
        request,
        "staff_paper_box.html",
        ctx
        | _common()
        | detail
        | {
            "title": f"箱 {detail['box']['box_no']}",
            "nothing_left": request.query_params.get("done") == "1",
            "previous": await _previous(conn, staff.municipality_code, request),
        },
    )


@page(*paper.RECEIVERS, back=box_page)
async def box_add_form(request, conn, staff, ctx):
    """One more form found in the box after it was counted."""
    box_id = int_param(request, "box_id")
    await paper.add_form(conn, staff.municipality_code, staff, box_id)
    return redirect(f"/staff/paper/boxes/{box_id}", flash="paper.box_add_form")


@page(*paper.KEYERS)
async def box_next(request, conn, staff, ctx):
    """The next form of the box for this clerk, or the box page saying there is none."""
    box_id = int_param(request, "box_id")
    form_id = await paper.next_form(conn, staff.municipality_code, staff, box_id)
    prev = _prev(request)
    if form_id is None:
        return redirect(f"/staff/paper/boxes/{box_id}?done=1" + (f"&prev={prev}" if prev else ""))
    return redirect(f"/staff/paper/forms/{form_id}/entry" + (f"?prev={prev}" if prev else ""))


def _prev(request) -> int | None:
    raw = request.query_params.get("prev", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


async def _previous(conn, code: str, request):
    """The outcome of the form this clerk saved just before (its id in ?prev=), read from the database."""
    prev = _prev(request)
    return await paper.outcome(conn, code, prev) if prev else None


@page(*paper.KEYERS)
async def entry_page(request, conn, staff, ctx):
    form_id = int_param(request, "form_id")
    code = staff.municipality_code
    detail = await paper.entry_page(conn, code, staff, form_id)
    return render(
        request,
        "staff_paper_entry.html",
        ctx
        | _common()
        | detail
        | {
            "title": f"申請書の入力 箱 {detail['paper_form']['box_no']} 通番 {detail['paper_form']['seq']}",
            "previous": await _previous(conn, code, request),
            "prefill": {},
            "action": f"/staff/paper/forms/{form_id}/entry",
        },
    )


@page(*paper.KEYERS, back=entry_page)
async def entry_submit(request, conn, staff, ctx):
    form_id = int_param(request, "form_id")
    settings, code = request.app.state.settings, staff.municipality_code
    keyed = await paper.key_entry(conn, settings, code, staff, form_id, ctx["form"])
    return redirect(f"/staff/paper/boxes/{keyed.box_id}/next?prev={keyed.form_id}")


@page(*paper.RESOLVERS)
async def resolve_page(request, conn, staff, ctx):
    form_id = int_param(request, "form_id")
    code = staff.municipality_code
    view = await paper.resolution_view(conn, await cipher(request, conn, code), code, staff, form_id)
    return render(
        request,
        "staff_paper_resolve.html",
        ctx
        | _common()
        | view
        | {
            "title": f"裁定 箱 {view['paper_form']['box_no']} 通番 {view['paper_form']['seq']}",
            "action": f"/staff/paper/forms/{form_id}/resolve",
        },
    )


@page(*paper.RESOLVERS, back=resolve_page)
async def resolve_submit(request, conn, staff, ctx):
    form_id = int_param(request, "form_id")
    settings, code = request.app.state.settings, staff.municipality_code
    keyed = await paper.resolve(conn, settings, code, staff, form_id, ctx["form"])
    return redirect(f"/staff/paper/boxes/{keyed.box_id}?prev={keyed.form_id}", flash="paper.resolve")


@page(*paper.LETTER_EXPORTERS)
async def deficiency_list(request, conn, staff, ctx):
    return render(
        request,
        "staff_paper_deficiencies.html",
        ctx | _common() | {"title": "不備・不備返戻", "rows": await paper.deficiencies(conn, staff.municipality_code)},
    )


@page(*paper.LETTER_EXPORTERS, back=deficiency_list)
async def deficiency_export(request, conn, staff, ctx):
    encoding = str(ctx["form"].get("encoding", "utf-8"))
    code = staff.municipality_code
    rows = await paper.export_deficiency_letters(conn, code, staff)
    body = paper.export_csv(rows, encoding)
    charset = "utf-8" if encoding == "utf-8" else "shift_jis"
    return Response(
        body,
        media_type=f"text/csv; charset={charset}",
        headers={
            "content-disposition": f'attachment; filename="fubi-henrei-{code}.csv"',
            "cache-control": "no-store",
        },
    )
