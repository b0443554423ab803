/*
 * Fuzz target: the PROXY protocol parser (ek_proxy.h), the one parser that
 * reads what a stranger sends before anything else.
 *
 * The input is fed in pieces whose sizes come from the input's first byte,
 * and the parser must: never take more than it was given; agree with
 * itself when the same bytes come in one piece; never take a byte past a
 * header it accepts (what follows is the client's); give addresses of the
 * family it claims.
 */
#include "ek_proxy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int feed(const uint8_t *d, size_t n, size_t step, size_t *used,
                struct ek_proxy_result *res)
{
    struct ek_proxy_parser p;
    const char *why = NULL;
    size_t off = 0;
    memset(&p, 0, sizeof(p));
    for (;;) {
        size_t piece = step == 0 || n - off < step ? n - off : step;
        size_t u = 0;
        int rc = ek_proxy_feed(&p, d + off, piece, &u, res, &why);
        if (u > piece)
            abort(); /* took bytes it was not given */
        if (rc == EK_PROXY_BAD && why == NULL)
            abort(); /* refused without saying why */
        off += u;
        if (rc != EK_PROXY_MORE || off == n) {
            *used = off;
            return rc;
        }
        if (u != piece)
            abort(); /* MORE must take everything */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 17; /* 0: all at once */
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    size_t used_whole, used_split;
    struct ek_proxy_result whole, split;
    int a = feed(d, n, 0, &used_whole, &whole);
    int b = feed(d, n, step, &used_split, &split);
    if (a != b)
        abort(); /* the split changed the verdict */
    if (a == EK_PROXY_DONE) {
        if (used_whole != used_split)
            abort(); /* the header's end moved */
        if (used_whole > EK_PROXY_V2_MAX)
            abort();
        if (whole.local != split.local ||
            (!whole.local &&
             memcmp(&whole.src, &split.src, sizeof(whole.src)) != 0))
            abort();
        if (!whole.local && whole.src.ss_family != AF_INET &&
            whole.src.ss_family != AF_INET6 && whole.src.ss_family != AF_UNIX)
            abort();
    }
    return 0;
}
