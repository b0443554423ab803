#include "ek_quote.h"

#include <stdbool.h>
#include <string.h>

void ek_print_quoted(FILE *f, const char *p, size_t n)
{
    fputc('\'', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\'' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
    fputc('\'', f);
}

static bool printable(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

/* Appends n bytes of esc, if they fit; false when they do not. */
static bool put(char *out, size_t size, size_t *len, const char *esc, size_t n)
{
    if (*len + n > size)
        return false;
    memcpy(out + *len, esc, n);
    *len += n;
    return true;
}

/* The escapers' one loop: printable ASCII as is, but a backslash before
 * a backslash (and, in JSON, a quote); every other byte as \xNN (text)
 * or \u00NN (JSON). An escape that does not fit ends it. */
static void escape(char *out, size_t size, size_t *len, const char *text,
                   bool json)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8] = {(char)*p};
        size_t n = 1;
        if (*p == '\\' || (json && *p == '"')) {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (!printable(*p)) {
            int w = json ? snprintf(esc, sizeof(esc), "\\u%04x", *p)
                         : snprintf(esc, sizeof(esc), "\\x%02x", *p);
            n = (size_t)w;
        }
        if (!put(out, size, len, esc, n))
            return;
    }
}

void ek_escape_text(char *out, size_t size, size_t *len, const char *text)
{
    escape(out, size, len, text, false);
}

void ek_escape_json(char *out, size_t size, size_t *len, const char *text)
{
    escape(out, size, len, text, true);
}
