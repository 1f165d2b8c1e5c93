/*
 * app.registry._residentcsv — a 住民基本台帳 extract (the UTF-8 CSV body, header line removed) checked
 * against every line rule of the import and encoded as one PostgreSQL binary COPY payload of the 16
 * typed residents columns, sorted by 住民票コード.
 *
 * Why C: a million-line extract is ~116 MB. PostgreSQL spends most of an import parsing the CSV text,
 * generating the typed columns, checking the rules as CHECK constraints and sorting for the primary key.
 * Here it is two passes over the bytes (check, then write each line's tuple at its place in code order)
 * and a radix sort of the codes in between, about half a second for a million lines with the GIL
 * released, and the rows arrive typed and in key order, which makes the primary-key build several times
 * cheaper. In Python the same checks cost several seconds.
 *
 * Contract: encode() either returns the payload for a file that the SQL path (app/registry/imports.py
 * _LINE_CHECKS / REPORT_RESIDENTS and the CHECK constraints of kyufu_residents_publish and
 * kyufu_load_date_sql in migrations/0011_residents_partitioned.sql) would accept, with the values that path
 * would store, or None. None means "let PostgreSQL look": a bad line, a repeated code, two current heads,
 * or anything structurally unusual (wrong field count, blank line, invalid UTF-8, NUL, a lone CR, mixed
 * LF / CRLF, a quote anywhere but around a whole field). So this file never decides that a file is
 * invalid and never builds an error message; the SQL path does that. Being stricter than SQL in a corner
 * only costs speed; being laxer would import a bad file, so every check errs on the strict side.
 * tests/registry/test_residentcsv.py decodes the payload and compares it with Python's reading of the
 * file, and checks every rule (also with random single-field mutations).
 *
 * CSV as COPY (FORMAT csv) reads it: ',' delimiter, '"' quote, "" inside quotes is one quote, CR and LF
 * inside quotes are data, values verbatim; an unquoted empty field is NULL, "" the empty string, and both
 * count as empty for every rule (the SQL says coalesce(x, '') = ''). The line ending is fixed by the
 * first line, as COPY does.
 *
 * Nothing here logs or keeps any value; every buffer is freed on every path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The payload's fields, in this fixed order. */
enum {
    F_CODE, F_HOUSEHOLD, F_REL, F_HEAD, F_FAMILY, F_GIVEN, F_FKANA, F_GKANA, F_BIRTH, F_SEX, F_ADDRESS,
    F_MOVED, F_REMOVED, F_REASON, F_PREV, F_CHANGED, NFIELDS
};
static const char *const FIELD_NAMES[NFIELDS] = {
    "resident_code", "household_no", "relationship", "is_head", "family_name", "given_name", "family_kana",
    "given_kana", "birth_date", "sex", "address", "moved_in_on", "removed_on", "removal_reason",
    "prev_household_no", "household_changed_on",
};
#define NREQUIRED 14 /* all but prev_household_no and household_changed_on */

/* Per tuple: int16 field count + 16 int32 lengths, then the values. */
#define ROW_OVERHEAD (2 + 4 * NFIELDS)
/* The shortest line that passes every rule: 11-digit code, 1-byte household, a relationship, the flag,
 * 1-byte names, 3-byte kana, an 8-digit date, sex, 1-byte address and 13 commas is 44 bytes (a 1-byte
 * relationship): the key arrays hold len / MIN_ROW + 1 lines, and the count is checked on each line. */
#define MIN_ROW 40

static const unsigned char SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0};
#define HEADER_LEN 19 /* signature, int32 flags, int32 header-extension length */
#define TRAILER_LEN 2

/* Character classes. */
#define C_SPECIAL 1 /* ends an unquoted field or makes it malformed: , " CR LF */
#define C_HOUSE 2   /* [0-9A-Za-z-] */
#define C_DIGIT 4
static unsigned char CLS[256];

static void init_classes(void) {
    memset(CLS, 0, sizeof CLS);
    CLS[','] = CLS['"'] = CLS['\r'] = CLS['\n'] = C_SPECIAL;
    for (int c = '0'; c <= '9'; c++) CLS[c] = C_HOUSE | C_DIGIT;
    for (int c = 'A'; c <= 'Z'; c++) CLS[c] = C_HOUSE;
    for (int c = 'a'; c <= 'z'; c++) CLS[c] = C_HOUSE;
    CLS['-'] = C_HOUSE;
}

typedef struct {
    const unsigned char *p; /* the raw bytes (inside the quotes of a quoted field) */
    size_t n;
    size_t nesc;            /* doubled quotes in it: the value is n - nesc bytes */
    int present;            /* the column is in the file */
} field;

typedef struct {
    const unsigned char *p;
    size_t n;
} str;

typedef struct {
    uint64_t code;
    uint64_t row; /* the line's index in the file */
} rowkey;

typedef struct {
    const unsigned char *body;
    size_t len;
    int ncols;
    int map[NFIELDS]; /* file column -> payload field */
    str *rels, *reasons;
    size_t nrels, nreasons;
} args_t;

/* What the checking pass leaves for the writing pass. */
typedef struct {
    rowkey *keys;   /* (code, line index), sorted by code */
    uint32_t *size; /* each line's tuple size, in file order */
    size_t *dest;   /* where each line's tuple goes in the rows part of the result, in file order */
    size_t nrows;
    size_t total;   /* the rows' tuples, in bytes */
    int eol;        /* the file's line ending */
} parsed_t;

/* The result (~1.4x the file) is fresh memory, written in scattered order: ask for huge pages for its
 * interior whole 2 MB pages (glibc maps a buffer this large by itself, so the range is this object's
 * alone). With 4 kB pages a million-line file took ~40,000 page faults instead of ~6,000 and two to three
 * times the kernel time. Only a hint. */
static void hint_huge(void *p, size_t n) {
#if defined(MADV_HUGEPAGE)
    uintptr_t start = ((uintptr_t)p + ((1u << 21) - 1)) & ~(uintptr_t)((1u << 21) - 1);
    uintptr_t stop = ((uintptr_t)p + n) & ~(uintptr_t)((1u << 21) - 1);
    if (stop > start) (void)madvise((void *)start, (size_t)(stop - start), MADV_HUGEPAGE);
#endif
}

static int all_class(const unsigned char *p, size_t n, unsigned char cls) {
    for (size_t i = 0; i < n; i++)
        if (!(CLS[p[i]] & cls)) return 0;
    return 1;
}

static int in_list(const field *f, const str *list, size_t count) {
    if (f->nesc) return 0;
    for (size_t i = 0; i < count; i++)
        if (list[i].n == f->n && memcmp(list[i].p, f->p, f->n) == 0) return 1;
    return 0;
}

/* Strict UTF-8 (no overlong forms, surrogates, code points above U+10FFFF or NUL), as PostgreSQL's
 * verifier; returns the number of code points, or -1. */
static long long utf8_chars(const unsigned char *s, size_t n) {
    long long chars = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return -1;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return -1;
            if (c == 0xE0 && s[i + 1] < 0xA0) return -1; /* overlong */
            if (c == 0xED && s[i + 1] > 0x9F) return -1; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return -1;
            if (c == 0xF0 && s[i + 1] < 0x90) return -1; /* overlong */
            if (c == 0xF4 && s[i + 1] > 0x8F) return -1; /* above U+10FFFF */
            i += 4;
        } else {
            return -1; /* NUL, a stray continuation byte, C0, C1, F5..FF */
        }
        chars++;
    }
    return chars;
}

/* Non-empty text of at most `max` characters (a doubled quote is one). */
static int text_ok(const field *f, long long max) {
    if (f->n == 0) return 0;
    long long chars = utf8_chars(f->p, f->n);
    return chars >= 0 && chars - (long long)f->nesc <= max;
}

/* Non-empty, at most 50 characters, each in U+30A1..U+30FC (ァ..ヺ, ・, ー): E3 82 A1..BF or E3 83 80..BC. */
static int kana_ok(const field *f) {
    const unsigned char *s = f->p;
    size_t n = f->n;
    if (n == 0 || n % 3 != 0 || n / 3 > 50) return 0;
    for (size_t i = 0; i < n; i += 3) {
        if (s[i] != 0xE3) return 0;
        if (s[i + 1] == 0x82) {
            if (s[i + 2] < 0xA1 || s[i + 2] > 0xBF) return 0;
        } else if (s[i + 1] == 0x83) {
            if (s[i + 2] < 0x80 || s[i + 2] > 0xBC) return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

/* [0-9A-Za-z-], 1-20 bytes. */
static int household_ok(const field *f) {
    return f->n >= 1 && f->n <= 20 && all_class(f->p, f->n, C_HOUSE);
}

/* The calendar as tables (both passes parse every date): days from 2000-01-01 to 1 January of each year
 * 1..9999, leap years, and the months. */
static int32_t YEAR_START[10000];
static unsigned char LEAP[10000];
static const int MONTH_DAYS[2][12] = {{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
                                      {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}};
static int MONTH_START[2][12];

static void init_calendar(void) {
    int32_t days = 0; /* 1 January 2000 */
    for (int y = 1; y < 10000; y++) LEAP[y] = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    YEAR_START[2000] = 0;
    for (int y = 2000; y < 9999; y++) YEAR_START[y + 1] = YEAR_START[y] + 365 + LEAP[y];
    for (int y = 2000; y > 1; y--) {
        days -= 365 + LEAP[y - 1];
        YEAR_START[y - 1] = days;
    }
    for (int l = 0; l < 2; l++)
        for (int m = 1; m < 12; m++) MONTH_START[l][m] = MONTH_START[l][m - 1] + MONTH_DAYS[l][m - 1];
}

/* kyufu_load_date_sql: YYYYMMDD, or YYYY-MM-DD / YYYY/MM/DD with the same separator twice; year not 0000,
 * month 01-12, day 01 to the month's last (Gregorian leap years). Sets days since 2000-01-01. */
static int parse_date(const field *f, int32_t *days) {
    const unsigned char *p = f->p;
    unsigned d[8];
    if (f->n == 8) {
        for (int i = 0; i < 8; i++) d[i] = (unsigned)p[i] - '0';
    } else if (f->n == 10) {
        if ((p[4] != '-' && p[4] != '/') || p[7] != p[4]) return 0;
        d[0] = (unsigned)p[0] - '0', d[1] = (unsigned)p[1] - '0', d[2] = (unsigned)p[2] - '0';
        d[3] = (unsigned)p[3] - '0', d[4] = (unsigned)p[5] - '0', d[5] = (unsigned)p[6] - '0';
        d[6] = (unsigned)p[8] - '0', d[7] = (unsigned)p[9] - '0';
    } else {
        return 0;
    }
    unsigned bad = 0;
    for (int i = 0; i < 8; i++) bad |= d[i] > 9; /* a non-digit wraps to a large unsigned */
    if (bad) return 0;
    int y = (int)(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]), m = (int)(d[4] * 10 + d[5]);
    int dd = (int)(d[6] * 10 + d[7]);
    if (y < 1 || m < 1 || m > 12 || dd < 1 || dd > MONTH_DAYS[LEAP[y]][m - 1]) return 0;
    *days = YEAR_START[y] + MONTH_START[LEAP[y]][m - 1] + dd - 1;
    return 1;
}

/* "\." at the start of a physical line inside a quoted value: COPY's old end-of-data marker. Legal data in
 * PostgreSQL 18, refused here as a corner not worth reasoning about. */
static int has_eod_marker(const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 2 < n; i++)
        if ((p[i] == '\n' || p[i] == '\r') && p[i + 1] == '\\' && p[i + 2] == '.') return 1;
    return 0;
}

enum { EOL_UNKNOWN, EOL_LF, EOL_CRLF };

/* Finds the bytes that end or break an unquoted field (, " CR LF) 64 at a time: a line of ~120 bytes
 * takes two 64-byte masks instead of a search per field. `base` and `mask` cache the last block. */
typedef struct {
    const unsigned char *base;
    uint64_t mask;
} scanner;

#ifdef __SSE2__
static inline uint64_t special_mask(const unsigned char *q) {
    const __m128i comma = _mm_set1_epi8(','), quote = _mm_set1_epi8('"'), cr = _mm_set1_epi8('\r'),
                  lf = _mm_set1_epi8('\n');
    uint64_t m = 0;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, comma), _mm_cmpeq_epi8(x, quote)),
                                   _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, lf)));
        m |= (uint64_t)(unsigned)_mm_movemask_epi8(hit) << (16 * k);
    }
    return m;
}
#else
static inline uint64_t special_mask(const unsigned char *q) {
    uint64_t m = 0;
    for (int k = 0; k < 64; k++)
        if (CLS[q[k]] & C_SPECIAL) m |= 1ULL << k;
    return m;
}
#endif

/* The first , " CR or LF at or after q, or end. */
static inline const unsigned char *scan_unquoted(scanner *s, const unsigned char *q, const unsigned char *end) {
    for (;;) {
        if (s->base != NULL && q >= s->base && q - s->base < 64) {
            uint64_t m = s->mask & (~0ULL << (q - s->base));
            if (m) return s->base + __builtin_ctzll(m);
            q = s->base + 64;
        }
        if (end - q < 64) break;
        s->base = q;
        s->mask = special_mask(q);
    }
    while (q < end && !(CLS[*q] & C_SPECIAL)) q++;
    return q;
}

/* Split one line (which may span physical lines inside quotes) into ncols fields. Returns 1 and moves
 * *pos past the line ending, or 0 for anything malformed. */
static int split_line(scanner *sc, const unsigned char **pos, const unsigned char *end, int ncols, const int *map,
                      field *out, int *eol) {
    const unsigned char *p = *pos;
    for (int c = 0; c < ncols; c++) {
        field *f = &out[map[c]];
        const unsigned char *q;
        f->nesc = 0;
        if (p < end && *p == '"') {
            const unsigned char *start = p + 1, *r = start;
            for (;;) {
                const unsigned char *qt = memchr(r, '"', (size_t)(end - r));
                if (qt == NULL) return 0; /* unterminated */
                if (qt + 1 < end && qt[1] == '"') {
                    f->nesc++;
                    r = qt + 2;
                    continue;
                }
                q = qt + 1;
                f->p = start;
                f->n = (size_t)(qt - start);
                break;
            }
            if ((memchr(f->p, '\n', f->n) != NULL || memchr(f->p, '\r', f->n) != NULL) && has_eod_marker(f->p, f->n))
                return 0;
        } else {
            q = scan_unquoted(sc, p, end);
            if (q < end && *q == '"') return 0; /* a quote inside an unquoted field */
            f->p = p;
            f->n = (size_t)(q - p);
        }
        if (c < ncols - 1) {
            if (q >= end || *q != ',') return 0;
            p = q + 1;
            continue;
        }
        /* the last field: the line ends here */
        if (q == end) {
            p = end;
        } else if (*q == '\n') {
            if (*eol == EOL_CRLF) return 0;
            *eol = EOL_LF;
            p = q + 1;
        } else if (*q == '\r') {
            if (*eol == EOL_LF || q + 1 >= end || q[1] != '\n') return 0;
            *eol = EOL_CRLF;
            p = q + 2;
        } else {
            return 0; /* a delimiter or quote after the last field */
        }
    }
    *pos = p;
    return 1;
}

static unsigned char *put32(unsigned char *o, uint32_t v) {
    o[0] = (unsigned char)(v >> 24);
    o[1] = (unsigned char)(v >> 16);
    o[2] = (unsigned char)(v >> 8);
    o[3] = (unsigned char)v;
    return o + 4;
}

static unsigned char *put_text(unsigned char *o, const unsigned char *oend, const field *f,
                               const unsigned char *bend) {
    o = put32(o, (uint32_t)(f->n - f->nesc));
    if (f->nesc == 0) {
        /* Most values are short: one fixed 16-byte copy when both sides have 16 bytes left (it reads past
         * the value, never past the body, and what it writes past the value, never past the tuple, is
         * overwritten next). */
        if (f->n <= 16 && bend - f->p >= 16 && oend - o >= 16) memcpy(o, f->p, 16);
        else memcpy(o, f->p, f->n);
        return o + f->n;
    }
    /* at most the counted length, whatever the bytes say now */
    size_t want = f->n - f->nesc, k = 0;
    for (size_t i = 0; i < f->n && k < want; i++, k++) {
        o[k] = f->p[i];
        if (f->p[i] == '"') i++; /* the second of a doubled quote */
    }
    if (k < want) memset(o + k, 0, want - k);
    return o + want;
}

static unsigned char *put_null(unsigned char *o) { return put32(o, 0xFFFFFFFFu); }

static unsigned char *put_date(unsigned char *o, int32_t days) {
    o = put32(o, 4);
    return put32(o, (uint32_t)days);
}

/* One line's rules, as _LINE_CHECKS and kyufu_residents_publish state them (a value that is empty for one
 * rule is empty for all). Sets the dates, the code and whether the resident is a current head. */
static int check_line(const args_t *a, const field *v, int32_t dates[4], uint64_t *code, int *current_head) {
    static const unsigned char HEAD[] = "\xe4\xb8\x96\xe5\xb8\xaf\xe4\xb8\xbb"; /* 世帯主 */
    const field *f = &v[F_CODE];
    if (f->n != 11 || !all_class(f->p, 11, C_DIGIT)) return 0;
    uint64_t c = 0;
    for (int i = 0; i < 11; i++) c = c * 10 + (uint64_t)(f->p[i] - '0');
    *code = c;
    if (!household_ok(&v[F_HOUSEHOLD])) return 0;
    if (v[F_REL].n == 0 || !in_list(&v[F_REL], a->rels, a->nrels)) return 0;
    f = &v[F_HEAD];
    if (f->n != 1 || (f->p[0] != '0' && f->p[0] != '1')) return 0;
    int is_head = f->p[0] == '1';
    int rel_head = v[F_REL].n == sizeof HEAD - 1 && memcmp(v[F_REL].p, HEAD, sizeof HEAD - 1) == 0;
    if (is_head != rel_head) return 0;
    if (!text_ok(&v[F_FAMILY], 50) || !text_ok(&v[F_GIVEN], 50)) return 0;
    if (!kana_ok(&v[F_FKANA]) || !kana_ok(&v[F_GKANA])) return 0;
    int32_t born, moved, removed, changed;
    if (!parse_date(&v[F_BIRTH], &born)) return 0;
    f = &v[F_SEX];
    if (f->n != 1 || (f->p[0] != '1' && f->p[0] != '2' && f->p[0] != '9')) return 0;
    if (!text_ok(&v[F_ADDRESS], 200)) return 0;
    int has_moved = v[F_MOVED].n > 0, has_removed = v[F_REMOVED].n > 0;
    if (has_moved && (!parse_date(&v[F_MOVED], &moved) || moved < born)) return 0;
    if (has_removed && (!parse_date(&v[F_REMOVED], &removed) || removed < (has_moved ? moved : born))) return 0;
    if ((v[F_REASON].n > 0) != has_removed) return 0;
    if (has_removed && !in_list(&v[F_REASON], a->reasons, a->nreasons)) return 0;
    int has_prev = v[F_PREV].present && v[F_PREV].n > 0;
    int has_changed = v[F_CHANGED].present && v[F_CHANGED].n > 0;
    if (has_prev != has_changed) return 0;
    if (has_prev && !household_ok(&v[F_PREV])) return 0;
    if (has_changed && !parse_date(&v[F_CHANGED], &changed)) return 0;
    dates[0] = born;
    dates[1] = has_moved ? moved : 0;
    dates[2] = has_removed ? removed : 0;
    dates[3] = has_changed ? changed : 0;
    *current_head = is_head && !has_removed;
    return 1;
}

/* The tuple's exact size. */
static size_t row_size(const field *v) {
    static const int text[] = {F_CODE, F_HOUSEHOLD, F_REL, F_FAMILY, F_GIVEN, F_FKANA, F_GKANA, F_SEX, F_ADDRESS};
    size_t n = ROW_OVERHEAD + 1 + 4; /* header and lengths, the bool, birth_date */
    for (size_t i = 0; i < sizeof text / sizeof *text; i++) n += v[text[i]].n - v[text[i]].nesc;
    if (v[F_MOVED].n) n += 4;
    if (v[F_REMOVED].n) n += 4;
    if (v[F_REASON].n) n += v[F_REASON].n - v[F_REASON].nesc;
    if (v[F_PREV].present && v[F_PREV].n) n += v[F_PREV].n - v[F_PREV].nesc;
    if (v[F_CHANGED].present && v[F_CHANGED].n) n += 4;
    return n;
}

/* Writes row_size(v) bytes at o; oend is the tuple's end (the caller checked that it fits). */
static unsigned char *write_row(unsigned char *o, const unsigned char *oend, const field *v, const int32_t dates[4],
                                const unsigned char *bend) {
    *o++ = 0;
    *o++ = NFIELDS;
    o = put_text(o, oend, &v[F_CODE], bend);
    o = put_text(o, oend, &v[F_HOUSEHOLD], bend);
    o = put_text(o, oend, &v[F_REL], bend);
    o = put32(o, 1);
    *o++ = v[F_HEAD].p[0] == '1';
    o = put_text(o, oend, &v[F_FAMILY], bend);
    o = put_text(o, oend, &v[F_GIVEN], bend);
    o = put_text(o, oend, &v[F_FKANA], bend);
    o = put_text(o, oend, &v[F_GKANA], bend);
    o = put_date(o, dates[0]);
    o = put_text(o, oend, &v[F_SEX], bend);
    o = put_text(o, oend, &v[F_ADDRESS], bend);
    o = v[F_MOVED].n ? put_date(o, dates[1]) : put_null(o);
    o = v[F_REMOVED].n ? put_date(o, dates[2]) : put_null(o);
    o = v[F_REASON].n ? put_text(o, oend, &v[F_REASON], bend) : put_null(o);
    o = v[F_PREV].present && v[F_PREV].n ? put_text(o, oend, &v[F_PREV], bend) : put_null(o);
    o = v[F_CHANGED].present && v[F_CHANGED].n ? put_date(o, dates[3]) : put_null(o);
    return o;
}

/* LSD radix sort on the code (< 10^11 < 2^39: three 13-bit digits). */
static int sort_keys(rowkey *keys, size_t n) {
    size_t i;
    for (i = 1; i < n; i++)
        if (keys[i - 1].code > keys[i].code) break;
    if (i >= n) return 1; /* already in order */
    rowkey *tmp = malloc(n * sizeof *tmp);
    size_t *count = malloc((1u << 13) * sizeof *count);
    if (tmp == NULL || count == NULL) {
        free(tmp);
        free(count);
        return 0;
    }
    rowkey *src = keys, *dst = tmp;
    for (int shift = 0; shift < 39; shift += 13) {
        memset(count, 0, (1u << 13) * sizeof *count);
        for (i = 0; i < n; i++) count[(src[i].code >> shift) & 0x1FFF]++;
        size_t sum = 0;
        for (i = 0; i < (1u << 13); i++) {
            size_t c = count[i];
            count[i] = sum;
            sum += c;
        }
        for (i = 0; i < n; i++) dst[count[(src[i].code >> shift) & 0x1FFF]++] = src[i];
        rowkey *t = src;
        src = dst;
        dst = t;
    }
    if (src != keys) memcpy(keys, src, n * sizeof *keys); /* three passes: the result is in tmp */
    free(tmp);
    free(count);
    return 1;
}

/* A household_no is at most 20 bytes: three zero-padded words, mixed. */
static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t w[3] = {0, 0, 0};
    memcpy(w, p, n < sizeof w ? n : sizeof w);
    uint64_t h = (w[0] * 0x9E3779B97F4A7C15ULL) ^ (w[1] * 0xC2B2AE3D27D4EB4FULL) ^
                 (w[2] * 0x165667B19E3779F9ULL) ^ n;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

/* 1 if no household_no occurs twice among the current heads; -1 on allocation failure. The table does
 * not fit the caches: hashes first, then inserts with the slot a few heads ahead prefetched. */
static int heads_unique(const str *heads, size_t n) {
    if (n < 2) return 1;
    size_t cap = 4;
    while (cap < 2 * n) cap <<= 1; /* n <= len / MIN_ROW: no overflow */
    uint64_t *slots = calloc(cap, sizeof *slots), *hashes = malloc(n * sizeof *hashes);
    int ok = 1;
    if (slots == NULL || hashes == NULL) {
        ok = -1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) hashes[i] = hash_bytes(heads[i].p, heads[i].n);
    for (size_t i = 0; i < n && ok == 1; i++) {
        if (i + 16 < n) __builtin_prefetch(&slots[(size_t)hashes[i + 16] & (cap - 1)]);
        uint64_t h = hashes[i], tag = h >> 32;
        size_t s = (size_t)h & (cap - 1);
        for (;;) {
            uint64_t e = slots[s];
            if (e == 0) {
                slots[s] = tag << 32 | (uint64_t)(i + 1);
                break;
            }
            if (e >> 32 == tag) {
                const str *o = &heads[(e & 0xFFFFFFFFu) - 1];
                if (o->n == heads[i].n && memcmp(o->p, heads[i].p, o->n) == 0) {
                    ok = 0;
                    break;
                }
            }
            s = (s + 1) & (cap - 1);
        }
    }
done:
    free(slots);
    free(hashes);
    return ok;
}

/* The checking pass, without the GIL. 1: every line valid, no repeated code, no two current heads (p is
 * filled, keys sorted); 0: not plainly valid; -1: out of memory. */
static int check_all(const args_t *a, parsed_t *p) {
    const unsigned char *pos = a->body, *end = a->body + a->len;
    size_t maxrows = a->len / MIN_ROW + 1;
    str *heads = NULL;
    size_t nheads = 0;
    int rc = -1;
    field v[NFIELDS];
    scanner sc = {NULL, 0};

    memset(p, 0, sizeof *p);
    p->eol = EOL_UNKNOWN;
    if (maxrows > SIZE_MAX / sizeof *p->keys || maxrows > UINT32_MAX - 1) return 0;
    p->keys = malloc(maxrows * sizeof *p->keys);
    p->size = malloc(maxrows * sizeof *p->size);
    heads = malloc(maxrows * sizeof *heads);
    if (p->keys == NULL || p->size == NULL || heads == NULL) goto done;

    memset(v, 0, sizeof v);
    for (int c = 0; c < a->ncols; c++) v[a->map[c]].present = 1;

    rc = 0;
    while (pos < end) {
        int32_t dates[4];
        uint64_t code;
        int current_head;
        if (!split_line(&sc, &pos, end, a->ncols, a->map, v, &p->eol)) goto done;
        if (!check_line(a, v, dates, &code, &current_head)) goto done;
        size_t size = row_size(v);
        if (p->nrows >= maxrows || size > UINT32_MAX || size > SIZE_MAX / 2 - p->total) goto done;
        p->total += size;
        p->size[p->nrows] = (uint32_t)size;
        p->keys[p->nrows].code = code;
        p->keys[p->nrows].row = p->nrows;
        if (current_head) {
            heads[nheads].p = v[F_HOUSEHOLD].p;
            heads[nheads].n = v[F_HOUSEHOLD].n;
            nheads++;
        }
        p->nrows++;
    }
    if (p->nrows == 0) goto done;

    rc = -1;
    if (!sort_keys(p->keys, p->nrows)) goto done;
    rc = 0;
    for (size_t i = 1; i < p->nrows; i++)
        if (p->keys[i].code == p->keys[i - 1].code) goto done;
    rc = heads_unique(heads, nheads);
    if (rc != 1) goto done;
    /* each line's place in the result */
    rc = -1;
    if ((p->dest = malloc(p->nrows * sizeof *p->dest)) == NULL) goto done;
    size_t at = 0;
    for (size_t i = 0; i < p->nrows; i++) {
        size_t r = (size_t)p->keys[i].row;
        p->dest[r] = at;
        at += p->size[r];
    }
    rc = 1;
done:
    free(heads);
    return rc;
}

/* The writing pass, without the GIL: the lines again in file order (each was checked above; only the
 * split and the dates are redone), each tuple written at its place in code order. Reading the body in
 * order and scattering the writes (prefetched for writing a few lines ahead) measured faster than
 * gathering the lines in code order, where every scattered read stalls. 0 if anything differs from the
 * first pass (a buffer changed under us): the result is then not used. */
static int write_all(const args_t *a, const parsed_t *p, unsigned char *out, size_t outlen) {
    const unsigned char *pos = a->body, *bend = a->body + a->len;
    unsigned char *rows = out + HEADER_LEN, *trailer = out + outlen - TRAILER_LEN;
    field v[NFIELDS];
    scanner sc = {NULL, 0};
    int eol = p->eol;

    if (outlen != HEADER_LEN + p->total + TRAILER_LEN) return 0;
    memset(v, 0, sizeof v);
    for (int c = 0; c < a->ncols; c++) v[a->map[c]].present = 1;
    memcpy(out, SIGNATURE, sizeof SIGNATURE);
    memset(out + sizeof SIGNATURE, 0, HEADER_LEN - sizeof SIGNATURE);
    for (size_t r = 0; r < p->nrows; r++) {
        int32_t dates[4] = {0, 0, 0, 0};
        if (r + 6 < p->nrows && p->dest[r + 6] < p->total) { /* the places are scattered: claim them early */
            unsigned char *ahead = rows + p->dest[r + 6];
            __builtin_prefetch(ahead, 1);
            __builtin_prefetch(ahead + 64, 1); /* a tuple is at least 70 bytes */
            if (p->size[r + 6] > 128) __builtin_prefetch(ahead + 128, 1);
        }
        if (pos >= bend || !split_line(&sc, &pos, bend, a->ncols, a->map, v, &eol)) return 0;
        if (!parse_date(&v[F_BIRTH], &dates[0]) || (v[F_MOVED].n && !parse_date(&v[F_MOVED], &dates[1])) ||
            (v[F_REMOVED].n && !parse_date(&v[F_REMOVED], &dates[2])) ||
            (v[F_CHANGED].present && v[F_CHANGED].n && !parse_date(&v[F_CHANGED], &dates[3])) ||
            v[F_HEAD].n != 1)
            return 0;
        size_t size = row_size(v);
        if (size != p->size[r] || p->dest[r] > p->total || size > p->total - p->dest[r]) return 0;
        unsigned char *o = rows + p->dest[r];
        /* the row's end bounds the 16-byte copies too: the tuple after it may be written already */
        if ((size_t)(write_row(o, o + size, v, dates, bend) - o) != size) return 0;
    }
    if (pos != bend) return 0;
    trailer[0] = 0xFF;
    trailer[1] = 0xFF;
    return 1;
}

static void free_parsed(parsed_t *p) {
    free(p->keys);
    free(p->size);
    free(p->dest);
    memset(p, 0, sizeof *p);
}

static int utf8_list(PyObject *tuple, str **out, size_t *count) {
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    *out = PyMem_Malloc((size_t)(n ? n : 1) * sizeof **out);
    *count = 0;
    if (*out == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyTuple_GET_ITEM(tuple, i);
        Py_ssize_t len;
        const char *u;
        if (!PyUnicode_Check(s)) {
            PyErr_SetString(PyExc_TypeError, "encode: lists must hold str");
            return 0;
        }
        if ((u = PyUnicode_AsUTF8AndSize(s, &len)) == NULL) return 0;
        (*out)[i].p = (const unsigned char *)u; /* kept alive by the tuple */
        (*out)[i].n = (size_t)len;
    }
    *count = (size_t)n;
    return 1;
}

static PyObject *encode(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *columns, *rels, *reasons, *result = NULL;
    args_t a;
    parsed_t p;
    memset(&a, 0, sizeof a);
    memset(&p, 0, sizeof p);
    if (!PyArg_ParseTuple(args, "y*O!O!O!", &body, &PyTuple_Type, &columns, &PyTuple_Type, &rels, &PyTuple_Type,
                          &reasons))
        return NULL;
    a.body = body.buf;
    a.len = (size_t)body.len;

    Py_ssize_t ncols = PyTuple_GET_SIZE(columns);
    int seen[NFIELDS] = {0}, required = 0;
    if (ncols > NFIELDS) {
        PyErr_SetString(PyExc_ValueError, "encode: too many columns");
        goto done;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        PyObject *name = PyTuple_GET_ITEM(columns, c);
        const char *u = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        int k;
        if (u == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "encode: column names must be str");
            goto done;
        }
        for (k = 0; k < NFIELDS && strcmp(u, FIELD_NAMES[k]) != 0; k++) {
        }
        if (k == NFIELDS || seen[k]) {
            PyErr_Format(PyExc_ValueError, "encode: unknown or repeated column %R", name);
            goto done;
        }
        seen[k] = 1;
        required += k < NREQUIRED;
        a.map[c] = k;
    }
    if (required != NREQUIRED) {
        PyErr_SetString(PyExc_ValueError, "encode: a required column is missing");
        goto done;
    }
    a.ncols = (int)ncols;
    if (!utf8_list(rels, &a.rels, &a.nrels) || !utf8_list(reasons, &a.reasons, &a.nreasons)) goto done;

    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = check_all(&a, &p);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (rc == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (p.total > (size_t)PY_SSIZE_T_MAX - HEADER_LEN - TRAILER_LEN) {
        PyErr_NoMemory();
        goto done;
    }
    size_t outlen = HEADER_LEN + p.total + TRAILER_LEN;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)outlen);
    if (out == NULL) goto done;
    unsigned char *buf = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    hint_huge(buf, outlen);
    rc = write_all(&a, &p, buf, outlen);
    Py_END_ALLOW_THREADS
    if (!rc) {
        Py_DECREF(out);
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = out;
done:
    free_parsed(&p);
    PyMem_Free(a.rels);
    PyMem_Free(a.reasons);
    PyBuffer_Release(&body);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(body, columns, relationships, removal_reasons) -> bytes | None\n\n"
     "The CSV body (UTF-8, from line 2 on) as a PostgreSQL binary COPY payload of the 16 residents columns,\n"
     "sorted by resident_code; None if any line breaks a rule or the file is not plainly shaped."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "app.registry._residentcsv", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__residentcsv(void) {
    init_classes();
    init_calendar();
    return PyModule_Create(&module);
}
