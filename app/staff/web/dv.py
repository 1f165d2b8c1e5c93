"""DV等避難者の申出 (/staff/dv): both sides of app/registry/dv.py in one page.

As the municipality the evacuee lives in: record a 申出 (reviewers), list the requests filed here with the
registered municipality's answer, open one (its people and address: an audited personal-data view).
As the registered municipality: the requests naming its residents (a reference and a count, never who
filed them), one with its own members found by their hashes, and the answer (exclude them, or say why not).
"""

from __future__ import annotations

from urllib.parse import quote

from app.errors import Conflict
from app.intake import proxy
from app.registry import dv
from app.settings import SettingsError
from app.staff.web.common import cipher, page, redirect
from app.web.templates import render

FORM_ROWS = 4  # the 申出者 and up to three members who fled with them on the form (the domain takes ten)


def _key(request) -> bytes:
    try:
        return request.app.state.settings.duplicate_key_bytes
    except SettingsError:
        raise Conflict("重複照合キー（KYUFU_DUPLICATE_KEY）が設定されていないため、他団体と照合できません。") from None


@page("reviewer", "admin")
async def dv_page(request, conn, staff, ctx):
    code = staff.municipality_code
    q = request.query_params
    filed_detail = incoming_detail = None
    if q.get("filed"):
        filed_detail = await dv.filed_detail(conn, await cipher(request, conn, code), code, staff, q["filed"])
    if q.get("incoming"):
        incoming_detail = await dv.incoming_detail(conn, _key(request), code, staff, q["incoming"])
    return render(
        request,
        "staff_dv.html",
        ctx
        | {
            "title": "DV等避難者の申出",
            "programs": [p for p in await proxy.programs(conn, code)],
            "filed": await dv.filed(conn, code),
            "incoming": await dv.incoming(conn, code),
            "filed_detail": filed_detail,
            "incoming_detail": incoming_detail,
            "evidence": dv.EVIDENCE,
            "states": dv.STATES,
            "refusals": dv.REFUSALS,
            "rows": range(FORM_ROWS),
            "done": q.get("done", "")[:20],
        },
    )


@page("reviewer", back=dv_page)
async def dv_file(request, conn, staff, ctx):
    data = dict(ctx["form"])
    form = dv.parse(data)
    account = proxy.account(data)
    code = staff.municipality_code
    filed = await dv.file_request(conn, _key(request), await cipher(request, conn, code), code, staff, form, account)
    return redirect(f"/staff/dv?done={quote(filed.reference)}#filed", flash="dv.file")


@page("reviewer", back=dv_page, keep_query=("incoming",))
async def dv_exclude(request, conn, staff, ctx):
    reference = str(ctx["form"].get("incoming", ""))
    await dv.exclude(conn, _key(request), staff.municipality_code, staff, reference)
    return redirect(f"/staff/dv?incoming={quote(dv.parse_reference(reference))}#incoming", flash="dv.answer")


@page("reviewer", back=dv_page, keep_query=("incoming",))
async def dv_refuse(request, conn, staff, ctx):
    form = ctx["form"]
    reference = str(form.get("incoming", ""))
    await dv.refuse(conn, staff.municipality_code, staff, reference, str(form.get("outcome", "")))
    return redirect(f"/staff/dv?incoming={quote(dv.parse_reference(reference))}#incoming", flash="dv.answer")
