"""The resident site in English alongside Japanese (issue 18): catalogues with the same keys, every key a
page uses present, every message the domains make translatable, the language chosen and remembered."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from app.intake import banks, forms, identity, signin, status
from app.intake.web import i18n
from app.registry.imports import RELATIONSHIPS
from app.web import admission, errors as web_errors
from app.web.responses import STATUS_MESSAGES
from payouts import kana
from tests.intake.helpers import make_letters
from tests.intake.identify_world import apply, csrf, identify, make_world, person, typed

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [
    *sorted((ROOT / "app" / "intake" / "web" / "templates").glob("*.html")),
    ROOT / "app" / "web" / "templates" / "error.html",
]
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")
EN = i18n.Translator("en")


def test_both_catalogues_have_the_same_keys_and_the_same_placeholders():
    ja, en = i18n.catalogue("ja"), i18n.catalogue("en")
    assert sorted(set(ja) ^ set(en)) == []
    differing = [k for k in ja if i18n.placeholders(ja[k]) != i18n.placeholders(en[k])]
    assert differing == []
    # Every English text is English: Japanese only where it names what to type or look for (kana examples,
    # the Japanese name of a document in brackets), never a whole sentence left untranslated.
    untranslated = [k for k, text in en.items() if JAPANESE.search(text) and not re.search(r"[A-Za-z]{3}", text)]
    assert untranslated == []


def _keys_used(text: str) -> set[str]:
    sections = {key.split(".")[0] for key in i18n.catalogue("ja")}
    quoted = set(re.findall(r"""["']([a-z_]+(?:\.[a-z_0-9]+)+)["']""", text))
    return {k for k in quoted if k.split(".")[0] in sections}


def test_every_key_the_pages_use_is_in_the_catalogues():
    used: set[str] = set()
    for path in TEMPLATES:
        used |= _keys_used(path.read_text())
    for path in (ROOT / "app" / "intake" / "web").glob("*.py"):
        used |= _keys_used(path.read_text())
    assert len(used) > 140  # the scan found the pages' keys at all
    assert sorted(used - set(i18n.catalogue("ja"))) == []
    # And no page text is left in the catalogues that no page shows (the [domain] entries are found by
    # their wording, below).
    assert sorted({k for k in i18n.catalogue("ja") if not k.startswith("domain.")} - used) == []
    # Keys are only ever written out: a key assembled from pieces would escape this check.
    for path in TEMPLATES:
        assert not re.search(r"\bt\([^)\"']*~", path.read_text()), path.name


def test_no_words_are_left_in_the_templates_outside_the_catalogues():
    for path in TEMPLATES:
        text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)  # comments
        if path.name == "error.html":  # its Japanese-only branch serves the staff console's paths
            text = text.split("{% else %}\n<h1>")[0]
        text = text.replace("（", "").replace("）", "")  # around a bank's code: （0001）
        assert not JAPANESE.search(text), f"{path.name}: {JAPANESE.findall(text)[:10]}"


# ---- messages made in code ------------------------------------------------------------------------


def _field_errors(fn, *args) -> list[str]:
    try:
        fn(*args)
    except forms.FormInvalid as exc:
        return [e.message for e in exc.errors]
    except ValidationError as exc:
        return [e.message for e in forms.translate(exc)]
    return []


def _domain_messages() -> list[str]:
    """Every message the domains can give a resident page, made by the domains' own code."""
    out: list[str] = []
    for template in forms._GENERIC.values():
        out += [template.format(label=label) for label in (*forms.LABELS.values(), "入力項目")]
    out += list(forms.CHANGE_LABELS.values()) + forms.describe_changes(("unknown",))
    out += list(banks.ACCOUNT_TYPES.values())
    for reason in ("empty", "too_long", "kanji", "wo", "latin", "unsupported_symbol", "invalid_voicing", "?"):
        for field in ("party", "bank", "salary"):
            out.append(str(kana.ZenginKanaError(reason, 0, field, 30)))
    for bad in (
        {},
        {"bank_code": "12"},
        {"bank_code": "9999", "branch_code": "001", "account_number": "1", "holder_kana": "ヤマダ"},
        {
            "bank_code": "0001",
            "branch_code": "1",
            "account_type": "7",
            "account_number": "12345678",
            "holder_kana": "山田",
        },
        {"bank_code": "0001", "branch_code": "999", "account_number": "1234567", "holder_kana": "ﾔﾏﾀﾞ ｦ"},
        {"bank_code": "0001", "branch_code": "001", "account_number": "1234567", "holder_kana": "ﾔﾏﾀﾞ!"},
        {"bank_code": "0001", "branch_code": "001", "account_number": "1234567", "holder_kana": "ヤマダ" * 20},
        {"bank_code": "0001", "branch_code": "001", "account_number": "1234567", "holder_kana": "YAMADA"},
        {"bank_code": "0001", "branch_code": "001", "account_number": "1234567", "holder_kana": ""},
        {"bank_code": "0001", "branch_code": "001", "account_number": "1234567", "holder_kana": "ヤマダ", "x": 1},
        {"bank_code": "9900", "yucho_kigou": "123", "yucho_bangou": "1", "holder_kana": "ヤマダ"},
        {"bank_code": "9900", "yucho_kigou": "10000", "yucho_bangou": "abc", "holder_kana": "ヤマダ"},
    ):
        out += _field_errors(forms.parse_bank, bad)
    for kigou, bangou in (("123", "1"), ("12345", "x"), ("12340", "12"), ("01234", "123456789"), ("51234", "1")):
        try:
            banks.yucho_to_zengin(kigou, bangou)
        except banks.YuchoError as exc:
            out.append(str(exc))
    today = dt.date(2026, 6, 1)
    for form in (
        {},
        {"family_kana": "山田", "given_kana": "ｱ" * 200, "birth_year": "2026", "birth_month": "2", "birth_day": "30"},
        {
            "family_kana": "ヤマダ",
            "given_kana": "タロウ",
            "birth_year": "2030",
            "birth_month": "1",
            "birth_day": "1",
            "address": "あ" * 400,
        },
    ):
        out += _field_errors(identity.parse_identity, form, "テスト市", today)
    out += [identity.identify_failed_message(None)] + [identity.identify_failed_message(n) for n in (1, 2, 3, 4)]
    now = dt.datetime.now(ZoneInfo("Asia/Tokyo"))
    for what in ("この確認書番号", "この氏名（カナ）と生年月日での本人確認"):
        for until in (now + dt.timedelta(minutes=30), now + dt.timedelta(days=1)):
            out.append(signin.locked_message(what, until, "千代田区（デモ）"))
    out.append(signin.SIGNIN_FAILED_MESSAGE)
    base = {"payment_status": None, "status": "received", "transfer_date": None, "paid_on": None, "held": False}
    for row in (
        {"payment_status": "paid"},
        {"held": True},
        {"payment_status": "returned"},
        {"payment_status": "in_batch", "transfer_date": dt.date(2026, 7, 10)},
        {"status": "approved"},
        {"status": "needs_review"},
        {"status": "verifying"},
        {"status": "rejected"},
        {"status": "withdrawn"},
        {},
    ):
        found = status.progress({**base, **row})
        assert found is not None
        out += [found.label, found.detail]
    out += list(STATUS_MESSAGES.values())
    out += [admission.busy_message(30), admission.busy_message(600), admission.BODY_TIMEOUT_MESSAGE]
    out += [admission.PER_CLIENT_MESSAGE, web_errors.CsrfError().message, web_errors.TooManyRequests(5).message]
    out += list(RELATIONSHIPS)
    return out


def _pages_strings() -> list[str]:
    """Every Japanese string constant in the resident pages' handlers (titles, buttons, messages)."""
    tree = ast.parse((ROOT / "app" / "intake" / "web" / "pages.py").read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if JAPANESE.search(node.value):
                found.append(node.value)
    return found


def test_every_message_made_in_code_has_its_english():
    messages = _domain_messages() + _pages_strings()
    assert len(messages) > 200
    missing = sorted({m for m in messages if i18n.domain_key(m) is None})
    assert missing == []
    for message in messages:
        english = EN.tr(message)
        assert english != message and re.search(r"[A-Za-z]{2}", english), (message, english)
        assert i18n.Translator("ja").tr(message) == message  # Japanese exactly as the domain wrote it


def test_values_inside_a_message_are_translated_too():
    assert EN.tr("口座番号を入力してください。") == "Enter the account number."
    assert EN.tr("2026年7月10日に振込予定") == "Transfer scheduled for 10 July 2026"
    until = dt.datetime(2026, 6, 1, 10, 5, tzinfo=ZoneInfo("Asia/Tokyo"))
    locked = signin.locked_message("この確認書番号", until, "千代田区（デモ）")
    english = EN.tr(locked)
    assert english.startswith("This letter number could not be confirmed 5 times in a row")
    assert "10:05" in english and "千代田区（デモ）" in english  # a municipality's name stays as it is
    # A message no entry matches (none should exist) is shown as it is rather than lost, and like every
    # Japanese part of an English page it is marked as Japanese for screen readers (WCAG 3.1.2).
    assert EN.text("未知のメッセージ") == "未知のメッセージ"
    assert EN.tr("未知のメッセージ") == '<span lang="ja">未知のメッセージ</span>'
    assert str(EN("bank.type_ordinary")) == 'Ordinary (<span lang="ja">普通</span>)'
    header = '&lt;b&gt;<span lang="ja">市</span> Emergency benefit online application'
    assert str(EN("site.header", municipality="<b>市")) == header


def test_the_language_comes_from_the_choice_then_the_browser_then_japanese():
    assert i18n.from_accept_language("") == "ja"
    assert i18n.from_accept_language("en-US,en;q=0.9") == "en"
    assert i18n.from_accept_language("ja,en-US;q=0.9,en;q=0.8") == "ja"
    assert i18n.from_accept_language("vi,en;q=0.8,ja;q=0.5") == "en"
    assert i18n.from_accept_language("fr-FR,fr;q=0.9") == "ja"
    assert i18n.from_accept_language("en;q=0, ja;q=0.1") == "ja"
    assert i18n.from_accept_language("en;q=abc") == "ja"


# ---- over HTTP ------------------------------------------------------------------------------------


def _client(live_server, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30, **kwargs)


async def test_japanese_by_default_and_english_when_the_browser_prefers_it(municipality, live_server):
    code = await municipality()
    async with _client(live_server) as client:
        ja = await client.get(f"/m/{code}/signin")
        assert '<html lang="ja">' in ja.text and "確認書番号" in ja.text
        assert f'href="/lang/en?next=%2Fm%2F{code}%2Fsignin"' in ja.text and ">English</a>" in ja.text
    async with _client(live_server, headers={"accept-language": "en-GB,en;q=0.9"}) as client:
        en = await client.get(f"/m/{code}/signin")
        assert '<html lang="en">' in en.text and "Letter number" in en.text and "<h1>Sign in</h1>" in en.text
        assert ">日本語</a>" in en.text and 'lang="ja"' in en.text  # the switch names its language in it
        assert not JAPANESE.search(re.sub(r"\([^)]*\)|「[^」]*」|テスト市", "", _visible(en.text)))


def _visible(html: str) -> str:
    """The text a reader sees, without the municipality's name, the switch and bracketed Japanese terms."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
    html = re.sub(r'<a class="lang-switch".*?</a>', "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


async def test_the_choice_is_remembered_and_only_leads_back_into_the_site(municipality, live_server):
    code = await municipality()
    async with _client(live_server, headers={"accept-language": "ja"}) as client:
        r = await client.get("/lang/en", params={"next": f"/m/{code}/status"})
        assert r.status_code == 303 and r.headers["location"] == f"/m/{code}/status"
        cookie = r.headers["set-cookie"]
        assert "kyufu_lang=en" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        page = await client.get(f"/m/{code}/")  # the cookie wins over the browser's Japanese
        assert '<html lang="en">' in page.text and "Sign in with your letter number to apply" in page.text
        back = await client.get("/lang/ja", params={"next": f"/m/{code}/"})
        assert back.status_code == 303
        page = await client.get(f"/m/{code}/")
        assert '<html lang="ja">' in page.text and "確認書番号でログインして申請する" in page.text
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "x:y"):
            r = await client.get("/lang/en", params={"next": target})
            assert r.headers["location"] == "/", target
        r = await client.get("/lang/xx", params={"next": "/"})
        assert r.status_code == 303 and "set-cookie" not in r.headers


async def test_errors_and_error_pages_are_in_english(app_pool, settings, municipality, live_server):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with _client(live_server, cookies={"kyufu_lang": "en"}) as client:
        missing = await client.get("/m/999999/")
        assert missing.status_code == 404 and '<html lang="en">' in missing.text
        assert "Page not found" in missing.text and "The page you are looking for was not found." in missing.text
        page = await client.get(f"/m/{code}/signin")
        r = await client.post(f"/m/{code}/signin", data={"csrf_token": csrf(page.text), "access_code": "", "pin": ""})
        assert r.status_code == 422 and "Enter the letter number." in r.text and "Enter the PIN." in r.text
        r = await client.post(
            f"/m/{code}/signin", data={"csrf_token": csrf(page.text), "access_code": letter.access_code, "pin": "0"}
        )
        assert r.status_code == 401 and "The letter number or the PIN is not correct." in r.text
        stale = await client.post(f"/m/{code}/signin", data={"csrf_token": "x", "access_code": "A", "pin": "1"})
        assert stale.status_code == 403 and "This page has expired." in stale.text

        page = await client.get(f"/m/{code}/signin")
        r = await client.post(
            f"/m/{code}/signin",
            data={"csrf_token": csrf(page.text), "access_code": letter.access_code, "pin": letter.pin},
        )
        assert r.status_code == 303
        bank = await client.get(f"/m/{code}/bank")
        r = await client.post(f"/m/{code}/bank", data={"csrf_token": csrf(bank.text), "holder_kana": "山田"})
        assert r.status_code == 422
        for english in (
            "Enter the bank code as 4 digits.",
            "Enter the branch code.",
            "Enter the account number.",
            "The account holder (katakana) contains characters that cannot be used. Kanji cannot be used",
        ):
            assert english in r.text, english
        errors = re.search(r'<div class="error-summary".*?</div>', r.text, re.S)
        assert errors and not JAPANESE.search(re.sub(r"→ \S+\)", "", errors.group(0)))


@pytest.mark.parametrize("header", ["ja", ""])
async def test_japanese_pages_keep_their_wording(municipality, live_server, header):
    code = await municipality()
    async with _client(live_server, headers={"accept-language": header}) as client:
        start = await client.get(f"/m/{code}/")
        assert "<title>給付金のご案内 | 給付金オンライン申請</title>" in start.text
        footer = (
            "お問い合わせはテスト市の給付金担当窓口へ。"
            "このサイトの操作で、暗証番号や口座番号をお電話でお聞きすることはありません。"
        )
        assert footer in start.text
        assert '<ol class="steps"' not in start.text
        signin_page = await client.get(f"/m/{code}/signin")
        assert '<ol class="steps" aria-label="申請の手順">' in signin_page.text and "1. ログイン" in signin_page.text


async def test_identification_without_a_letter_in_english(app_pool, settings, municipality, live_server):
    """The 申請型 form in English: what to type in the kana fields is explained, its errors and the failed
    match are in English, and a resident identified in English applies in English."""
    world = await make_world(app_pool, settings.master_key_bytes, await municipality("千代田区"))
    async with _client(live_server, cookies={"kyufu_lang": "en"}) as client:
        page = await client.get(f"/m/{world.code}/identify", params={"program": world.program_id})
        assert "Family name in katakana" in page.text and "SMITH → " in page.text
        r = await identify(client, world, {})
        assert r.status_code == 422
        for english in (
            "Enter the family name (katakana).",
            "Enter the given name (katakana).",
            "Enter the date of birth",
            "Enter the address.",
        ):
            assert english in r.text, english
        r = await identify(client, world, typed(person("taro"), family_kana="SMITH"))
        assert r.status_code == 422 and "Enter the family name (katakana) in katakana or hiragana" in r.text
        r = await identify(client, world, typed(person("taro"), birth_day="2"))
        assert r.status_code == 401 and "We could not find an eligible person with what you entered." in r.text
        assert "After 4 more failed attempts" in r.text
        r = await identify(client, world, typed(person("taro")))
        assert r.status_code == 303
        receipt, _ = await apply(client, world)
        status = await client.get(f"/m/{world.code}/status")
        assert (
            receipt in status.text and '<html lang="en">' in status.text and "Status of your application" in status.text
        )
