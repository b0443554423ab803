#include "ek_json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
/* Values recorded at most: bench's result has about a hundred; a file of
 * millions (a huge array) is refused before its fields take gigabytes. */
#define MAX_FIELDS 65536

/* The parse: where it is, and where the fields go (NULL: check only). */
struct parser {
    struct ek_json *out;
    int err; /* -ENOMEM or -E2BIG once recording failed */
};

static const char *value(struct parser *ps, const char *p, const char *path,
                         int depth);

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 4;
            } else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *digits(const char *p)
{
    while (isdigit((unsigned char)*p))
        p++;
    return p;
}

static const char *number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (isdigit((unsigned char)*p))
        p = digits(p);
    else
        return NULL;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return NULL;
        p = digits(p);
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        p = digits(p);
    }
    return p;
}

static void record(struct parser *ps, const char *path, const char *v,
                   const char *end)
{
    struct ek_json *j = ps->out;
    if (j == NULL || ps->err != 0 || strlen(path) >= sizeof(j->fields->path))
        return;
    if (j->n == MAX_FIELDS) {
        ps->err = -E2BIG;
        return;
    }
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 32;
        struct ek_json_field *f = realloc(j->fields, cap * sizeof(*f));
        if (f == NULL) {
            ps->err = -ENOMEM;
            return;
        }
        j->fields = f;
        j->cap = cap;
    }
    struct ek_json_field *f = &j->fields[j->n++];
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->value = v;
    f->len = (size_t)(end - v);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Appends code point cp as UTF-8 to out[*n..size - 1). */
static void put_utf8(char *out, size_t size, size_t *n, unsigned cp)
{
    unsigned char b[4];
    size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
    for (size_t i = len; i-- > 1; cp >>= 6)
        b[i] = (unsigned char)(0x80 | (cp & 0x3f));
    b[0] = (unsigned char)(lead[len] | cp);
    for (size_t i = 0; i < len && *n + 1 < size; i++)
        out[(*n)++] = (char)b[i];
}

/* Four hex digits (checked by string()) at p. */
static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++)
        v = v << 4 | (unsigned)hex_digit(p[k]);
    return v;
}

/* The contents of a checked string (in: after its opening quote, len
 * bytes up to its closing one) with escapes undone, into out
 * (NUL-terminated, cut at size - 1 bytes). A lone surrogate becomes
 * U+FFFD. Returns the length. */
static size_t unescape(const char *in, size_t len, char *out, size_t size)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        if (in[i] != '\\') {
            out[n++] = in[i];
            continue;
        }
        char c = in[++i];
        if (c != 'u') {
            out[n++] = to[strchr(from, c) - from];
            continue;
        }
        unsigned cp = hex4(in + i + 1);
        i += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < len && in[i + 1] == '\\' &&
            in[i + 2] == 'u') { /* a surrogate pair */
            unsigned lo = hex4(in + i + 3);
            if (lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
        }
        if (cp >= 0xd800 && cp < 0xe000)
            cp = 0xfffd;
        put_utf8(out, size, &n, cp);
    }
    out[n] = '\0';
    return n;
}

/* path + "." + a key (the checked string at key, quotes included, up to
 * end) or an index. Cut at size - 1 characters, too long for a field
 * (record leaves it out), and so are its children's. */
static void child_path(char *out, size_t size, const char *path,
                       const char *key, const char *end)
{
    int n = snprintf(out, size, "%s%s", path, path[0] ? "." : "");
    if (n < 0 || (size_t)n >= size)
        return;
    if (key[0] == '"')
        unescape(key + 1, (size_t)(end - key) - 2, out + n, size - (size_t)n);
    else
        snprintf(out + n, size - (size_t)n, "%.*s", (int)(end - key), key);
}

static const char *members(struct parser *ps, const char *p, const char *path,
                           int depth, char close)
{
    bool keyed = close == '}';
    p = ws(p + 1);
    if (*p == close)
        return p + 1;
    for (unsigned index = 0;; index++) {
        char sub[sizeof(((struct ek_json_field *)0)->path) + 1];
        if (keyed) {
            const char *key = ws(p);
            const char *key_end = string(key);
            if (key_end == NULL || *(p = ws(key_end)) != ':')
                return NULL;
            child_path(sub, sizeof(sub), path, key, key_end);
            p++;
        } else {
            char num[16];
            int len = snprintf(num, sizeof(num), "%u", index);
            child_path(sub, sizeof(sub), path, num, num + len);
        }
        p = value(ps, p, sub, depth + 1);
        if (p == NULL)
            return NULL;
        p = ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *value(struct parser *ps, const char *p, const char *path,
                         int depth)
{
    if (depth > MAX_DEPTH)
        return NULL;
    p = ws(p);
    const char *end;
    switch (*p) {
    case '{':
        return members(ps, p, path, depth, '}');
    case '[':
        return members(ps, p, path, depth, ']');
    case '"':
        end = string(p);
        break;
    case 't':
        end = strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
        break;
    case 'f':
        end = strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
        break;
    case 'n':
        end = strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
        break;
    default:
        end = number(p);
        break;
    }
    if (end != NULL && path[0] != '\0')
        record(ps, path, p, end);
    return end;
}

int ek_json_parse(const char *text, struct ek_json *out)
{
    struct parser ps = {.out = out};
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    const char *end = value(&ps, text, "", 0);
    if (end == NULL || *ws(end) != '\0')
        return -EINVAL;
    return ps.err;
}

const struct ek_json_field *ek_json_get(const struct ek_json *j,
                                        const char *path)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->fields[i].path, path) == 0)
            return &j->fields[i];
    return NULL;
}

bool ek_json_u64(const struct ek_json *j, const char *path, uint64_t *out)
{
    const struct ek_json_field *f = ek_json_get(j, path);
    if (f == NULL || !isdigit((unsigned char)f->value[0]))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < f->len; i++) {
        unsigned d = (unsigned)(f->value[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false; /* a fraction, an exponent, or past 2^64 */
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool ek_json_double(const struct ek_json *j, const char *path, double *out)
{
    const struct ek_json_field *f = ek_json_get(j, path);
    if (f == NULL ||
        (f->value[0] != '-' && !isdigit((unsigned char)f->value[0])))
        return false;
    *out = strtod(f->value, NULL);
    return true;
}

char *ek_json_string(const struct ek_json *j, const char *path)
{
    const struct ek_json_field *f = ek_json_get(j, path);
    if (f == NULL || f->value[0] != '"')
        return NULL;
    /* Unescaped, it is never longer: \uXXXX (6) gives 3 bytes at most,
     * a pair (12) 4. */
    char *out = malloc(f->len);
    if (out != NULL)
        unescape(f->value + 1, f->len - 2, out, f->len);
    return out;
}

void ek_json_free(struct ek_json *j)
{
    free(j->fields);
    memset(j, 0, sizeof(*j));
}
