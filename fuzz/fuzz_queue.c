/*
 * Fuzz target: the per-connection queue (ek_queue.h) under random appends,
 * prepends, peeks, partial sends and clears, checked byte for byte against
 * a plain array model: whatever the sequence, the queue hands back exactly
 * the bytes put in, in order, and its length is the model's.
 */
#include "ek_queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MAX (1 << 20)

static uint8_t model[MODEL_MAX];
static size_t mhead, mtail; /* model bytes [mhead, mtail) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ek_queue q = {0};
    uint8_t chunk[70000];
    uint32_t counter = 0;
    mhead = mtail = 0;
    for (size_t i = 0; i + 3 <= size; i += 3) {
        unsigned op = data[i] % 4;
        size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
        if (op == 0 || op == 1) { /* append 0..65535 (x2 for op 1) bytes */
            size_t n = op == 1 ? arg + (arg >> 1) : arg;
            if (n > sizeof(chunk) || mtail + n > MODEL_MAX)
                continue;
            for (size_t k = 0; k < n; k++)
                chunk[k] = (uint8_t)(counter++ * 2654435761u >> 24);
            if (ek_queue_append(&q, chunk, n) != 0)
                abort();
            memcpy(model + mtail, chunk, n);
            mtail += n;
        } else if (op == 2) { /* send some: check what peek shows */
            struct iovec iov[16];
            int k = ek_queue_peek(&q, iov, 1 + (int)(arg % 16));
            size_t seen = 0;
            for (int j = 0; j < k; j++) {
                if (iov[j].iov_len == 0 ||
                    memcmp(iov[j].iov_base, model + mhead + seen,
                           iov[j].iov_len) != 0)
                    abort();
                seen += iov[j].iov_len;
            }
            if (seen > mtail - mhead || (k == 0 && mtail != mhead))
                abort();
            size_t take = seen == 0 ? 0 : arg % (seen + 1);
            ek_queue_consume(&q, take);
            mhead += take;
        } else if (arg % 8 == 0) { /* now and then: the client resets */
            ek_queue_clear(&q);
            mhead = mtail = 0;
        } else if (arg % 8 == 1) { /* put back the rest of a send */
            size_t n = arg >> 3, held = mtail - mhead;
            if (held + n > MODEL_MAX)
                continue;
            for (size_t k = 0; k < n; k++)
                chunk[k] = (uint8_t)(counter++ * 2654435761u >> 24);
            if (ek_queue_prepend(&q, chunk, n) != 0)
                abort();
            if (mhead < n) {
                memmove(model + n, model + mhead, held);
                mhead = n;
                mtail = n + held;
            }
            mhead -= n;
            memcpy(model + mhead, chunk, n);
        }
        if (ek_queue_len(&q) != mtail - mhead)
            abort();
    }
    ek_queue_clear(&q);
    if (ek_queue_len(&q) != 0)
        abort();
    return 0;
}
