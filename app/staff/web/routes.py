"""Routes of the console (mounted by app/main.py): every /staff/ URL and the handler that answers it."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Route

from app.staff.web import (
    account_change,
    admin,
    batches,
    dashboard,
    enrolment,
    labels,
    paper,
    progress as progress_pages,
    reconciliation,
    recovery,
    review,
    signin,
)
from app.staff.web.common import console_message, jst
from app.staff.web.duplicates import duplicate_list, duplicate_resolve
from app.staff.web.dv import dv_exclude, dv_file, dv_page, dv_refuse
from app.staff.web.holds import hold_decide, hold_list, hold_place, hold_release, hold_rule, hold_stop
from app.staff.web.proxy import proxy_page, proxy_setting, proxy_submit
from app.web.templates import add_template_dir, env

add_template_dir(Path(__file__).resolve().parent / "templates")
env.filters["jst"] = jst
env.filters["console_message"] = console_message
env.filters.update(labels.FILTERS)


def routes(settings) -> list[BaseRoute]:
    return [
        Route("/staff/login", signin.login_page, methods=["GET"]),
        Route("/staff/login", signin.login_submit, methods=["POST"]),
        Route("/staff/logout", signin.logout, methods=["POST"]),
        Route("/staff/", dashboard.dashboard, methods=["GET"]),
        Route("/staff/progress", progress_pages.progress_page, methods=["GET"]),
        Route("/staff/progress.csv", progress_pages.progress_csv, methods=["GET"]),
        Route("/staff/review", review.review_queue, methods=["GET"]),
        Route("/staff/review/search", review.review_search, methods=["POST"]),
        Route("/staff/applications/{application_id}", review.application_page, methods=["GET"]),
        Route("/staff/applications/{application_id}/decision", review.application_decision, methods=["POST"]),
        Route("/staff/applications/{application_id}/account", account_change.account_change_page, methods=["GET"]),
        Route("/staff/applications/{application_id}/account", account_change.account_change_submit, methods=["POST"]),
        Route("/staff/duplicates", duplicate_list, methods=["GET"]),
        Route("/staff/duplicates/resolve", duplicate_resolve, methods=["POST"]),
        Route("/staff/holds", hold_list, methods=["GET"]),
        Route("/staff/applications/{application_id}/hold", hold_place, methods=["POST"]),
        Route("/staff/holds/{hold_id}/stop", hold_stop, methods=["POST"]),
        Route("/staff/holds/{hold_id}/release", hold_release, methods=["POST"]),
        Route("/staff/holds/{hold_id}/decide", hold_decide, methods=["POST"]),
        Route("/staff/holds/rule", hold_rule, methods=["POST"]),
        Route("/staff/programs/{program_id}/draft", batches.draft_page, methods=["GET"]),
        Route("/staff/programs/{program_id}/draft", batches.draft_submit, methods=["POST"]),
        Route("/staff/batches", batches.batch_list, methods=["GET"]),
        Route("/staff/batches/{batch_id}", batches.batch_page, methods=["GET"]),
        *[
            Route(f"/staff/batches/{{batch_id}}/{a}", batches.batch_action(a, *r), methods=["POST"])
            for a, r in (
                ("approve", ("approver",)),
                ("reject", ("approver",)),
                ("resubmit", ("drafter",)),
                ("cancel", ("drafter",)),
                ("release", ("approver",)),
            )
        ],
        Route("/staff/batches/{batch_id}/accounts/{account}/override", batches.account_override, methods=["POST"]),
        Route("/staff/reconciliation", reconciliation.reconciliation_page, methods=["GET"]),
        Route("/staff/payments/{payment_id}/recontact", reconciliation.payment_recontact, methods=["POST"]),
        Route("/staff/payments/{payment_id}/reissue", reconciliation.payment_reissue, methods=["POST"]),
        Route("/staff/proxy", proxy_page, methods=["GET"]),
        Route("/staff/proxy", proxy_submit, methods=["POST"]),
        Route("/staff/proxy/settings", proxy_setting, methods=["POST"]),
        Route("/staff/dv", dv_page, methods=["GET"]),
        Route("/staff/dv/file", dv_file, methods=["POST"]),
        Route("/staff/dv/exclude", dv_exclude, methods=["POST"]),
        Route("/staff/dv/refuse", dv_refuse, methods=["POST"]),
        Route("/staff/recovery", recovery.recovery_list, methods=["GET"]),
        Route("/staff/payments/{payment_id}/recovery", recovery.recovery_case, methods=["GET"]),
        Route("/staff/payments/{payment_id}/recall", recovery.recall_request, methods=["POST"]),
        Route("/staff/payments/{payment_id}/recall/answer", recovery.recall_answer, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt", recovery.debt_open, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt/notice", recovery.debt_notice, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt/repayment", recovery.debt_repayment, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt/write-off", recovery.write_off_request, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt/write-off/approve", recovery.write_off_approve, methods=["POST"]),
        Route("/staff/payments/{payment_id}/debt/write-off/refuse", recovery.write_off_refuse, methods=["POST"]),
        Route("/staff/paper", paper.paper_home, methods=["GET"]),
        Route("/staff/paper/boxes", paper.box_receive, methods=["POST"]),
        Route("/staff/paper/boxes/{box_id}", paper.box_page, methods=["GET"]),
        Route("/staff/paper/boxes/{box_id}/next", paper.box_next, methods=["GET"]),
        Route("/staff/paper/boxes/{box_id}/add", paper.box_add_form, methods=["POST"]),
        Route("/staff/paper/forms/{form_id}/entry", paper.entry_page, methods=["GET"]),
        Route("/staff/paper/forms/{form_id}/entry", paper.entry_submit, methods=["POST"]),
        Route("/staff/paper/forms/{form_id}/resolve", paper.resolve_page, methods=["GET"]),
        Route("/staff/paper/forms/{form_id}/resolve", paper.resolve_submit, methods=["POST"]),
        Route("/staff/paper/deficiencies", paper.deficiency_list, methods=["GET"]),
        Route("/staff/paper/deficiencies/export", paper.deficiency_export, methods=["POST"]),
        Route("/staff/admin/staff", admin.staff_list, methods=["GET"]),
        Route("/staff/admin/staff", admin.staff_create, methods=["POST"]),
        *[
            Route(f"/staff/admin/staff/{{staff_id}}/{a}", admin.staff_action(a), methods=["POST"])
            for a in ("revoke", "disable", "enable", "unlock", "roles", "enroll")
        ],
        *[
            Route(f"/staff/admin/grants/{{grant_id}}/{a}", admin.grant_action(a), methods=["POST"])
            for a in ("confirm", "refuse")
        ],
        Route("/staff/enroll/{code}/{token}", enrolment.enrol_page, methods=["GET"]),
        Route("/staff/enroll/{code}/{token}", enrolment.enrol_submit, methods=["POST"]),
        Route("/staff/admin/bank", admin.bank_page, methods=["GET"]),
        Route("/staff/admin/bank", admin.bank_submit, methods=["POST"]),
        Route("/staff/admin/audit", admin.audit_page, methods=["GET"]),
        Route("/staff/admin/audit/export", admin.audit_export, methods=["GET"]),
    ]
