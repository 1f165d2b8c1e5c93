"""Japanese words for the codes the console shows (issue 18, point 10): account types, channels, audit
actions and objects, bank and branch names. Registered as template filters by routes.py; an unknown code
is shown as it is, never hidden."""

from __future__ import annotations

from app.intake import banks

# 預金種目 as the Zengin format numbers them (app/intake/banks.py is the resident form's list).
ACCOUNT_TYPES = banks.ACCOUNT_TYPES
CHANNELS = {"online": "オンライン", "paper": "紙（確認書）", "push": "プッシュ型"}
AUDIT_ACTIONS = {
    "login": "ログイン",
    "login.failed": "ログイン失敗",
    "logout": "ログアウト",
    "personal_data.view": "個人情報の閲覧",
    "application.search": "受付番号で検索",
    "application.account_change": "振込先口座の変更",
    "review.approve": "審査: 承認",
    "review.reject": "審査: 却下",
    "batch.draft": "振込起案",
    "batch.draft_refused": "振込起案（作成できず）",
    "batch.prepared": "支払データ作成",
    "batch.approve": "振込承認",
    "batch.reject": "差戻し",
    "batch.resubmit": "再度承認を依頼",
    "batch.cancel": "起案の取消",
    "batch.release_request": "送信の依頼",
    "batch.release": "送信",
    "batch.account_override": "同一口座への複数支払の確認",
    "payment.recontact": "振込不能: 再連絡",
    "payment.reissue": "振込不能: 再発行",
    "recall.request": "組戻し依頼",
    "recall.answer": "組戻し: 銀行の回答",
    "debt.open": "返還請求",
    "debt.notice": "返還請求: 通知",
    "debt.repayment": "返還請求: 返還の受領",
    "debt.write_off_request": "償却の申請",
    "debt.write_off_approve": "償却の承認",
    "debt.write_off_refuse": "償却を認めない・申請の取下げ",
    "duplicate.resolve": "重複の疑い: 回答",
    "hold.place": "支給保留",
    "hold.stop": "支給停止",
    "hold.release": "支給保留の解除",
    "hold.decide": "住基照合の保留: 判断",
    "screening.run": "住基照合",
    "programs.after_base_date_rule": "給付の設定: 基準日後の死亡の扱い",
    "staff.create": "職員の追加",
    "staff.revoke": "全セッション・端末の信頼を終了",
    "staff.disable": "職員の無効化",
    "staff.enable": "職員の有効化",
    "staff.unlock": "ログイン待機の解除",
    "staff.roles": "権限の変更",
    "enrolment.issue": "登録用リンクの発行",
    "enrolment.complete": "登録の完了",
    "enrolment.expired_attempt": "期限切れの登録用リンクの使用",
    "enrolment.reuse_attempt": "使用済みの登録用リンクの使用",
    "enrolment.disabled_attempt": "無効な職員の登録用リンクの使用",
    "grant.request": "権限付与の申請",
    "grant.confirm": "権限付与の確認",
    "grant.refuse": "権限付与の却下",
    "grant.cancel": "権限付与の取消",
    "grant.bootstrap": "初期管理者の登録",
    "settings.bank": "金融機関設定の変更",
    "audit.export": "監査ログの出力",
    "letters.issue": "確認書の発行",
    "letters.export": "確認書の出力",
    "letters.reissue": "確認書の再発行",
    "push.settle": "プッシュ型: 確定",
    "push.decline": "プッシュ型: 辞退",
    "programs.add": "給付事業の登録",
    "programs.eligibility": "対象世帯の判定",
    "programs.scheme": "全国事業の設定",
    "registry.import": "住民記録の取込",
    "registry.import_rejected": "住民記録の取込（拒否）",
    "duplicates.contribute": "重複照合のハッシュ提供",
    "paper.box_receive": "紙の申請書: 箱の受付",
    "paper.box_add_form": "紙の申請書: 箱に1枚追加",
    "paper.entry": "紙の申請書: 入力",
    "paper.mismatch": "紙の申請書: 裁定待ち",
    "paper.resolve": "紙の申請書: 裁定",
    "paper.submit": "紙の申請書: 受付",
    "paper.duplicate": "紙の申請書: 申請済の世帯（重複）",
    "paper.closed": "紙の申請書: 辞退・取下げ済",
    "paper.deficient": "紙の申請書: 不備",
    "paper.letters_export": "不備返戻通知の出力",
}
OBJECT_TYPES = {
    "application": "申請",
    "batch": "起案",
    "payment": "支払",
    "debt": "返還請求",
    "staff": "職員",
    "staff_enrolment": "登録用リンク",
    "staff_role_grant": "権限付与",
    "duplicate_case": "重複の疑い",
    "hold": "支給保留",
    "registry_snapshot": "住民記録",
    "program": "給付",
    "audit_log": "監査ログ",
    "municipality_bank_settings": "金融機関設定",
    "paper_box": "紙の申請書の箱",
    "paper_form": "紙の申請書",
    "paper_deficiency": "不備返戻",
}


def account_type(code: object) -> str:
    """預金種目: 1 → 普通."""
    try:
        return ACCOUNT_TYPES.get(int(str(code)), f"種目{code}")
    except ValueError:
        return f"種目{code}"


def channel(code: str) -> str:
    return CHANNELS.get(code, code)


def audit_action(code: str) -> str:
    return AUDIT_ACTIONS.get(code, code)


def object_type(code: str) -> str:
    return OBJECT_TYPES.get(code, code)


def bank_name(code: str | None) -> str:
    """The bank's name as the Zengin data gives it (passbook form: みずほ), or "" if the code is unknown."""
    found = banks.bank(code) if code else None
    return found.name if found else ""


def branch_name(bank_code: str | None, branch_code: str | None) -> str:
    found = banks.branch(bank_code, branch_code) if bank_code and branch_code else None
    return found.name if found else ""


FILTERS = {
    "account_type": account_type,
    "channel": channel,
    "audit_action": audit_action,
    "object_type": object_type,
    "bank_name": bank_name,
    "branch_name": branch_name,  # {{ bank_code | branch_name(branch_code) }}
}
