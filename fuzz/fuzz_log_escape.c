/*
 * Fuzz target: the log's escapers (ek_quote.h), which stand between a
 * peer's bytes (a PROXY v2 unix path, 108 of anything) and the log.
 *
 * Any bytes in (up to the first NUL, as a log message ends there), and
 * each escaper must give: printable ASCII only (one line, no terminal
 * escape, valid UTF-8), escapes that decode back to exactly the input
 * when the output had room, to a prefix of it when it did not, and never
 * a byte past the room it was given. The JSON one must also be a valid
 * JSON string body: no bare " or \.
 */
#include "ek_quote.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes out[0..n) into dec; returns the decoded length, aborting on any
 * byte or escape the escaper must not produce. */
static size_t decode(const char *out, size_t n, bool json, char *dec)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c >= 0x7f)
            abort(); /* not printable ASCII */
        if (json && c == '"')
            abort(); /* a bare quote ends the JSON string */
        if (c != '\\') {
            dec[d++] = (char)c;
            continue;
        }
        if (i + 1 >= n)
            abort(); /* an escape cut in half */
        char e = out[++i];
        if (e == '\\' || (json && e == '"')) {
            dec[d++] = e;
        } else if (!json && e == 'x' && i + 2 < n && hex(out[i + 1]) >= 0 &&
                   hex(out[i + 2]) >= 0) {
            dec[d++] = (char)(hex(out[i + 1]) * 16 + hex(out[i + 2]));
            i += 2;
        } else if (json && e == 'u' && i + 4 < n && out[i + 1] == '0' &&
                   out[i + 2] == '0' && hex(out[i + 3]) >= 0 &&
                   hex(out[i + 4]) >= 0) {
            dec[d++] = (char)(hex(out[i + 3]) * 16 + hex(out[i + 4]));
            i += 4;
        } else {
            abort(); /* an escape the escaper does not make */
        }
    }
    return d;
}

static void check(const char *text, size_t tlen, size_t room, bool json)
{
    size_t size = 6 * tlen + 8; /* \u00NN: 6 bytes a byte at most */
    char *out = malloc(size + 1), *dec = malloc(tlen + 1);
    if (out == NULL || dec == NULL)
        abort();
    size_t cap = room < size ? room : size, len = 0;
    memset(out, 0x55, size + 1);
    if (json)
        ek_escape_json(out, cap, &len, text);
    else
        ek_escape_text(out, cap, &len, text);
    if (len > cap || (cap < size && out[cap] != 0x55))
        abort(); /* wrote past its room */
    size_t d = decode(out, len, json, dec);
    if (d > tlen || memcmp(dec, text, d) != 0)
        abort(); /* not the input, or not a prefix of it */
    if (cap == size && d != tlen)
        abort(); /* room enough, yet not all of it */
    free(out);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t room = data[0]; /* a small room too: the cut path */
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t tlen = strlen(text);
    for (int json = 0; json <= 1; json++) {
        check(text, tlen, room, json);
        check(text, tlen, (size_t)-1, json);
    }
    free(text);
    return 0;
}
