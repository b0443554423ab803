/*
 * Fuzz target: the /metrics request reader (ek_metrics_route), what a
 * stranger's HTTP request is read as.
 *
 * The input arrives in pieces whose sizes come from its first byte, into
 * a buffer of EK_METRICS_REQUEST_MAX - 1 bytes as the metrics thread reads
 * it. The route must be one of the enum's, never read past what it is
 * given, stay pending only while the headers have not ended and the
 * buffer is not full, and not depend on how the bytes were split.
 */
#include "ek_metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static enum ek_metrics_route feed(const uint8_t *d, size_t n, size_t step,
                                  size_t *taken)
{
    static char req[EK_METRICS_REQUEST_MAX];
    size_t len = 0, off = 0;
    enum ek_metrics_route r = EK_METRICS_PENDING;
    while (off < n && r == EK_METRICS_PENDING) {
        size_t piece = step == 0 || n - off < step ? n - off : step;
        if (piece > sizeof(req) - 1 - len)
            piece = sizeof(req) - 1 - len;
        /* Exactly the bytes given: the reader must not look beyond. */
        char *copy = malloc(len + piece);
        if (copy == NULL)
            abort();
        memcpy(req + len, d + off, piece);
        len += piece;
        off += piece;
        memcpy(copy, req, len);
        r = ek_metrics_route(copy, len);
        free(copy);
        if (r > EK_METRICS_BAD_METHOD)
            abort(); /* not a route */
        if (len == sizeof(req) - 1 && r == EK_METRICS_PENDING)
            abort(); /* a full buffer must be answered */
    }
    *taken = len;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 17; /* 0: all at once */
    size_t taken_pieces, taken_whole;
    enum ek_metrics_route pieces =
        feed(data + 1, size - 1, step, &taken_pieces);
    enum ek_metrics_route whole = feed(data + 1, taken_pieces, 0, &taken_whole);
    if (pieces != whole)
        abort(); /* the split changed the answer */
    return 0;
}
