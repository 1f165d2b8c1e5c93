/*
 * payouts._fastrender — the payout stage's per-row work in C: COPY text rows → Zengin data records.
 *
 * Why C: the stage must stay within 2x of a bare COPY of the same rows (issue 6). In Python every
 * payment cost about 6.4 µs of CPU (parse, one AES-GCM decryption, checks, format); here it is well
 * under 1 µs, and the key schedule is built once per chunk instead of once per row.
 *
 * Contract (payouts/_chunk.py is the only caller): render() either returns the exact bytes the
 * Python reference path would produce for a chunk in which every row is valid and in the common
 * shape, or None. None means "let Python look": a bad row, a failed decryption, a short account
 * number, anything unexpected. So this file never decides that a payment is invalid and never builds
 * an error message; it only has a fast way to say "all good". tests/payouts/test_fastrender.py checks
 * it against the Python path byte for byte, and row by row for every kind of deviation.
 *
 * Input rows: `COPY (SELECT payment_id, bank_code, branch_code, account_type, bank_enc, amount_yen)`
 * in text format with bytea_output = hex: six tab-separated fields, newline-terminated, the bytea as
 * `\\x<hex>` (the backslash doubled by COPY's escaping).
 * bank_enc (app/crypto.py): version (1) || key version (4) || nonce (12) || ciphertext || tag (16),
 * AAD = "<municipality>|payments|bank|<payment_id>"; plaintext = 7-digit account NUL holder name
 * (UTF-8, already Zengin half-width kana).
 *
 * Nothing here touches personal data beyond copying it into the output buffer; nothing is logged.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>

#define RECORD 120
#define HEADER 5
#define NONCE 12
#define TAG 16
#define MAX_PLAIN 256 /* 7 digits + NUL + 30 half-width kana at 3 UTF-8 bytes each = 98; generous */
#define MAX_AAD 128
/* The shortest row the loop can accept: a 1-digit id, bank, branch, type, "\\x" + the hex of header,
 * nonce, one byte and tag, a 1-digit amount, 5 tabs and the newline. render() refuses a chunk with more
 * lines than len / MIN_ROW before sizing the output by its line count. */
#define MIN_ROW (1 + 4 + 3 + 1 + 3 + 2 * (HEADER + NONCE + 1 + TAG) + 1 + 5 + 1)
#define MAX_SEP 2 /* "\r\n" or "" */

typedef struct {
    const unsigned char *p;
    Py_ssize_t n;
} span;

static int all_digits(span s) {
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
    return 1;
}

/* A positive decimal without leading zeros and at most 10 digits, as COPY prints a bigint. */
static int parse_positive(span s, unsigned long long *out) {
    if (s.n < 1 || s.n > 10 || !all_digits(s) || s.p[0] == '0') return 0;
    unsigned long long v = 0;
    for (Py_ssize_t i = 0; i < s.n; i++) v = v * 10 + (unsigned long long)(s.p[i] - '0');
    *out = v;
    return 1;
}

/* Hex digit values, 0xFF for anything else. PostgreSQL writes lower-case hex; anything else goes to
 * the Python path. A table because the decode runs ~150 times per row. */
static unsigned char HEX[256];

static void init_hex(void) {
    memset(HEX, 0xFF, sizeof HEX);
    for (int c = '0'; c <= '9'; c++) HEX[c] = (unsigned char)(c - '0');
    for (int c = 'a'; c <= 'f'; c++) HEX[c] = (unsigned char)(c - 'a' + 10);
}

static void put_zero_filled(unsigned char *dst, int width, unsigned long long v) {
    for (int i = width - 1; i >= 0; i--) {
        dst[i] = (unsigned char)('0' + v % 10);
        v /= 10;
    }
}

/* Left-justified decimal padded with spaces (the EDI reference, "%-20d"). */
static void put_left(unsigned char *dst, int width, span digits) {
    memcpy(dst, digits.p, (size_t)digits.n);
    memset(dst + digits.n, ' ', (size_t)(width - digits.n));
}

/*
 * The holder name: UTF-8 half-width kana and ASCII → cp932 single bytes, checked like
 * payouts.kana.is_normalised for a 'party' field: every character in the allowed set, 1-30 of them,
 * no leading, trailing or double space, every ﾞ after a kana it can voice (ｶ-ﾄ ﾊ-ﾎ ｳ) and every ﾟ
 * after ﾊ-ﾎ. Returns the byte count, or -1.
 */
static int name_to_cp932(const unsigned char *s, Py_ssize_t n, const unsigned char *ascii_ok,
                         const unsigned char *kana_ok, unsigned char *out) {
    int len = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char b, c = s[i];
        if (c < 0x80) {
            if (!ascii_ok[c]) return -1;
            b = c;
            i += 1;
        } else if (c == 0xEF && i + 2 < n) {
            /* U+FF61..U+FF9F: EF BD A1..BF → A1..BF, EF BE 80..9F → C0..DF */
            unsigned char c1 = s[i + 1], c2 = s[i + 2];
            if (c1 == 0xBD && c2 >= 0xA1 && c2 <= 0xBF) b = c2;
            else if (c1 == 0xBE && c2 >= 0x80 && c2 <= 0x9F) b = (unsigned char)(c2 + 0x40);
            else return -1;
            if (!kana_ok[b - 0xA1]) return -1;
            i += 3;
        } else {
            return -1;
        }
        if (len == 30) return -1;
        if (b == ' ' && (len == 0 || out[len - 1] == ' ')) return -1;
        if (b == 0xDE) { /* ﾞ */
            unsigned char prev = len ? out[len - 1] : 0;
            if (!((prev >= 0xB6 && prev <= 0xC4) || (prev >= 0xCA && prev <= 0xCE) || prev == 0xB3)) return -1;
        } else if (b == 0xDF) { /* ﾟ */
            unsigned char prev = len ? out[len - 1] : 0;
            if (!(prev >= 0xCA && prev <= 0xCE)) return -1;
        }
        out[len++] = b;
    }
    if (len == 0 || out[len - 1] == ' ') return -1;
    return len;
}

/* Cut the next tab-terminated field out of one row (pos .. row end); 0 if there is none. */
static int next_field(const unsigned char **pos, const unsigned char *eol, span *out) {
    const unsigned char *p = *pos;
    const unsigned char *q = memchr(p, '\t', (size_t)(eol - p));
    if (q == NULL) return 0;
    out->p = p;
    out->n = q - p;
    *pos = q + 1;
    return 1;
}

typedef struct {
    Py_buffer data, key, header, aad_prefix, tmpl, sep, ascii_ok, kana_ok, types_ok;
    int edi;
    Py_ssize_t bank_at, branch_at, type_at, account_at, name_at, amount_at, ref_at;
} args_t;

/* The loop proper, without the GIL. Writes at most `capacity` records (the size of `out`, whatever
 * the data buffer holds by now). Returns rows written, or -1 for "not the fast shape". */
static Py_ssize_t render_rows(args_t *a, unsigned char *out, Py_ssize_t capacity, unsigned long long *total,
                              unsigned long long *last) {
    const unsigned char *pos = a->data.buf, *end = pos + a->data.len;
    const unsigned char *tmpl = a->tmpl.buf, *hdr = a->header.buf;
    const unsigned char *types_ok = a->types_ok.buf;
    Py_ssize_t seplen = a->sep.len, rows = 0;
    unsigned char aad[MAX_AAD], ct[MAX_PLAIN + HEADER + NONCE + TAG], plain[MAX_PLAIN], name[30];
    Py_ssize_t prefix = a->aad_prefix.len;
    unsigned long long sum = 0, ref = 0;
    int ok = 1, outl = 0;

    if (prefix + 10 > MAX_AAD) return -1;
    memcpy(aad, a->aad_prefix.buf, (size_t)prefix);

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return -1;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, a->key.buf, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return -1;
    }

    while (ok && pos < end) {
        span pid, bank, branch, kind, enc, amount;
        unsigned long long yen;
        const unsigned char *eol = memchr(pos, '\n', (size_t)(end - pos));
        ok = eol != NULL && next_field(&pos, eol, &pid) && next_field(&pos, eol, &bank) &&
             next_field(&pos, eol, &branch) && next_field(&pos, eol, &kind) && next_field(&pos, eol, &enc);
        if (!ok) break;
        amount.p = pos; /* the sixth field is the rest of the row; a seventh would leave a tab in it */
        amount.n = eol - pos;
        pos = eol + 1;
        ok = parse_positive(pid, &ref) && ref <= 9999999999ULL && parse_positive(amount, &yen) &&
             yen <= 9999999999ULL && bank.n == 4 && all_digits(bank) && branch.n == 3 && all_digits(branch) &&
             kind.n == 1 && types_ok[kind.p[0]];
        /* bytea: "\\x" + hex of header || nonce || ciphertext || tag */
        Py_ssize_t hexlen = enc.n - 3, ctlen = hexlen / 2;
        ok = ok && enc.n > 3 && enc.p[0] == '\\' && enc.p[1] == '\\' && enc.p[2] == 'x' && hexlen % 2 == 0 &&
             ctlen > HEADER + NONCE + TAG && ctlen <= (Py_ssize_t)sizeof(ct);
        if (!ok) break;
        unsigned char bad = 0;
        const unsigned char *h = enc.p + 3;
        for (Py_ssize_t i = 0; i < ctlen; i++) {
            unsigned char hi = HEX[h[2 * i]], lo = HEX[h[2 * i + 1]];
            bad |= (unsigned char)(hi | lo); /* 0xFF marks a non-hex character: bit 7 survives the OR */
            ct[i] = (unsigned char)(hi << 4 | lo);
        }
        if ((bad & 0x80) || memcmp(ct, hdr, HEADER) != 0) { ok = 0; break; }

        Py_ssize_t bodylen = ctlen - HEADER - NONCE - TAG;
        memcpy(aad + prefix, pid.p, (size_t)pid.n);
        ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, ct + HEADER) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)(prefix + pid.n)) == 1 &&
             EVP_DecryptUpdate(ctx, plain, &outl, ct + HEADER + NONCE, (int)bodylen) == 1 && outl == bodylen &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, ct + ctlen - TAG) == 1 &&
             EVP_DecryptFinal_ex(ctx, plain + outl, &outl) == 1; /* 1 only if the tag matches */
        if (!ok) break;

        /* account (7 digits) NUL name */
        span account = {plain, 7};
        ok = bodylen > 8 && plain[7] == 0 && all_digits(account) &&
             memchr(plain + 8, 0, (size_t)(bodylen - 8)) == NULL;
        int namelen = ok ? name_to_cp932(plain + 8, bodylen - 8, a->ascii_ok.buf, a->kana_ok.buf, name) : -1;
        if (namelen < 0 || rows >= capacity) { ok = 0; break; }

        unsigned char *rec = out + rows * (RECORD + seplen);
        memcpy(rec, tmpl, RECORD);
        memcpy(rec + a->bank_at, bank.p, 4);
        memcpy(rec + a->branch_at, branch.p, 3);
        rec[a->type_at] = kind.p[0];
        memcpy(rec + a->account_at, plain, 7);
        memcpy(rec + a->name_at, name, (size_t)namelen);
        memset(rec + a->name_at + namelen, ' ', (size_t)(30 - namelen));
        put_zero_filled(rec + a->amount_at, 10, yen);
        if (a->edi) put_left(rec + a->ref_at, 20, pid);
        else put_zero_filled(rec + a->ref_at, 10, ref);
        memcpy(rec + RECORD, a->sep.buf, (size_t)seplen);
        sum += yen;
        rows++;
    }
    OPENSSL_cleanse(plain, sizeof plain);
    OPENSSL_cleanse(name, sizeof name);
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) return -1;
    *total = sum;
    *last = ref;
    return rows;
}

static PyObject *render(PyObject *self, PyObject *args) {
    args_t a;
    memset(&a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*pnnnnnnn", &a.data, &a.key, &a.header, &a.aad_prefix, &a.tmpl,
                          &a.sep, &a.ascii_ok, &a.kana_ok, &a.types_ok, &a.edi, &a.bank_at, &a.branch_at,
                          &a.type_at, &a.account_at, &a.name_at, &a.amount_at, &a.ref_at))
        return NULL;
    PyObject *result = NULL;
    /* offset > RECORD - width, not offset + width > RECORD: no signed overflow for a huge offset */
    if (a.key.len != 32 || a.header.len != HEADER || a.tmpl.len != RECORD || a.sep.len > MAX_SEP ||
        a.ascii_ok.len != 128 || a.kana_ok.len != 63 || a.types_ok.len != 256 || a.bank_at < 0 ||
        a.bank_at > RECORD - 4 || a.branch_at < 0 || a.branch_at > RECORD - 3 || a.type_at < 0 ||
        a.type_at > RECORD - 1 || a.account_at < 0 || a.account_at > RECORD - 7 || a.name_at < 0 ||
        a.name_at > RECORD - 30 || a.amount_at < 0 || a.amount_at > RECORD - 10 || a.ref_at < 0 ||
        a.ref_at > RECORD - (a.edi ? 20 : 10)) {
        PyErr_SetString(PyExc_ValueError, "render: bad layout arguments");
        goto done;
    }
    Py_ssize_t lines = 0;
    const char *p = a.data.buf, *end = p + a.data.len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) { lines++; p++; }
    if (a.data.len && ((const char *)a.data.buf)[a.data.len - 1] != '\n') { result = Py_NewRef(Py_None); goto done; }
    /* More lines than whole rows could fill (e.g. a chunk of blank lines): not the fast shape, and no
     * output buffer sized 120x the input. The second test keeps lines * width within Py_ssize_t. */
    if (lines > a.data.len / MIN_ROW || lines > PY_SSIZE_T_MAX / (RECORD + MAX_SEP)) {
        result = Py_NewRef(Py_None);
        goto done;
    }

    PyObject *out = PyBytes_FromStringAndSize(NULL, lines * (RECORD + a.sep.len));
    if (out == NULL) goto done;
    unsigned char *buf = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned long long total = 0, last = 0;
    Py_ssize_t rows;
    Py_BEGIN_ALLOW_THREADS
    rows = render_rows(&a, buf, lines, &total, &last);
    Py_END_ALLOW_THREADS
    if (rows < 0 || rows != lines) {
        OPENSSL_cleanse(buf, (size_t)PyBytes_GET_SIZE(out)); /* names and account numbers of the rows before */
        Py_DECREF(out);
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = Py_BuildValue("(NnKK)", out, rows, total, last);
done:
    PyBuffer_Release(&a.data); PyBuffer_Release(&a.key); PyBuffer_Release(&a.header);
    PyBuffer_Release(&a.aad_prefix); PyBuffer_Release(&a.tmpl); PyBuffer_Release(&a.sep);
    PyBuffer_Release(&a.ascii_ok); PyBuffer_Release(&a.kana_ok); PyBuffer_Release(&a.types_ok);
    return result;
}

/* references(data, width, edi, previous) -> (refs, last) | None — for payouts.sealing.ReferenceDigest.
 *
 * `data` is whole data records of a Zengin plaintext (width 120, or 122 with CR LF), in file order. For
 * each it reads the 支払番号 the way sealing.py's regular expressions do — 顧客コード1 (bytes 92-101, ten
 * digits) with 識別表示 (113) a space, or, with `edi`, EDI情報 (92-111: 1-10 digits then spaces) with 識別表示
 * 'Y' — and writes it as ten zero-filled digits and a LF. Each must be above the one before it, the first
 * above `previous` (ten digits). Returns the joined references and the last one, or None for anything
 * else: the Python path then reads the same records and says what is wrong. It runs without the GIL,
 * beside the encryption. No personal data: only the payment numbers are read. */
static PyObject *references(PyObject *self, PyObject *args) {
    Py_buffer data, previous;
    Py_ssize_t width;
    int edi;
    if (!PyArg_ParseTuple(args, "y*npy*", &data, &width, &edi, &previous)) return NULL;
    PyObject *result = NULL;
    if ((width != RECORD && width != RECORD + 2) || previous.len != 10 || data.len % width != 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t n = data.len / width;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 11);
    if (out == NULL) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *src = data.buf;
    unsigned char last[10];
    memcpy(last, previous.buf, 10);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n && ok; r++) {
        const unsigned char *p = src + r * width;
        unsigned char *ref = dst + r * 11;
        ok = p[0] == '2' && p[112] == (edi ? 'Y' : ' ') && (width == RECORD || (p[120] == '\r' && p[121] == '\n'));
        if (!ok) break;
        if (edi) {
            int k = 0;
            while (k < 10 && p[91 + k] >= '0' && p[91 + k] <= '9') k++;
            for (int i = 91 + k; i < 111; i++) ok = ok && p[i] == ' ';
            ok = ok && k > 0;
            if (!ok) break;
            memset(ref, '0', (size_t)(10 - k));
            memcpy(ref + 10 - k, p + 91, (size_t)k);
        } else {
            for (int i = 91; i < 101; i++) ok = ok && p[i] >= '0' && p[i] <= '9';
            if (!ok) break;
            memcpy(ref, p + 91, 10);
        }
        ref[10] = '\n';
        ok = memcmp(ref, last, 10) > 0; /* equal-width digit strings compare as the numbers do */
        memcpy(last, ref, 10);
    }
    Py_END_ALLOW_THREADS
    if (!ok) {
        Py_DECREF(out);
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = Py_BuildValue("(Ny#)", out, (const char *)last, (Py_ssize_t)10);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&previous);
    return result;
}

static PyMethodDef methods[] = {
    {"render", render, METH_VARARGS,
     "render(data, key, header, aad_prefix, template, sep, ascii_ok, kana_ok, types_ok, edi, bank_at, branch_at,"
     " type_at, account_at, name_at, amount_at, ref_at) -> (records, count, total_yen, last_payment_id) | None"},
    {"references", references, METH_VARARGS,
     "references(data, width, edi, previous) -> (b'<10 digits>\\n' per record, last reference) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "payouts._fastrender", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastrender(void) {
    init_hex();
    return PyModule_Create(&module);
}
