/*
 * Unit test of ek_queue: random appends, prepends and consumes checked against
 * a plain byte array (the model), plus the edge cases named below.
 */
#include "check.h"
#include "ek_queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Everything peek shows, in order, must equal the model's bytes. */
static void check_contents(const struct ek_queue *q, const unsigned char *m,
                           size_t len)
{
    struct iovec iov[1024];
    int n = ek_queue_peek(q, iov, 1024);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        CHECK(iov[i].iov_len > 0);
        CHECK(off + iov[i].iov_len <= len);
        CHECK(memcmp(iov[i].iov_base, m + off, iov[i].iov_len) == 0);
        off += iov[i].iov_len;
    }
    CHECK_INT(off, ==, len);
    CHECK_INT(ek_queue_len(q), ==, len);
}

static void test_empty_is_zero(void)
{
    struct ek_queue q = {0};
    struct iovec iov[4];
    CHECK_INT(ek_queue_len(&q), ==, 0);
    CHECK_INT(ek_queue_peek(&q, iov, 4), ==, 0);
    ek_queue_consume(&q, 0);
    ek_queue_clear(&q);
    CHECK(q.first == NULL && q.last == NULL);
}

static void test_drained_queue_owns_nothing(void)
{
    struct ek_queue q = {0};
    char buf[100000];
    memset(buf, 'x', sizeof(buf));
    CHECK(ek_queue_append(&q, buf, sizeof(buf)) == 0);
    ek_queue_consume(&q, 40000);
    CHECK(q.first != NULL);
    ek_queue_consume(&q, 60000);
    CHECK(q.first == NULL && q.last == NULL); /* idle again: no memory */
}

static void test_chunk_sizes(void)
{
    struct ek_queue q = {0};
    char big[3 * EK_CHUNK_MAX + 5];
    memset(big, 'y', sizeof(big));
    CHECK(ek_queue_append(&q, big, sizeof(big)) == 0);
    struct iovec iov[16];
    int n = ek_queue_peek(&q, iov, 16);
    CHECK_INT(n, ==, 4); /* three full chunks and the 5-byte tail */
    for (int i = 0; i < 3; i++)
        CHECK_INT(iov[i].iov_len, ==, EK_CHUNK_MAX);
    /* peek never writes past max */
    CHECK_INT(ek_queue_peek(&q, iov, 2), ==, 2);
    ek_queue_clear(&q);
}

static void test_random_against_model(void)
{
    enum { CAP = 1 << 20 };
    /* The model is buf[head, head + len) of a buffer twice the largest
     * length, moved down only when the end is near, rather than moved on
     * every consume. */
    unsigned char *buf = malloc(2 * (size_t)CAP), *data = malloc(CAP);
    CHECK(buf && data);
    struct ek_queue q = {0};
    size_t head = 0, len = 0;
    uint64_t written = 0;

    for (int step = 0; step < 200000; step++) {
        uint64_t r = next();
        if (r % 3 != 0 && len < CAP / 2) {
            /* append: sizes from 1 byte to beyond a chunk */
            size_t n =
                1 + (size_t)(next() % (r % 7 == 0 ? 3 * EK_CHUNK_MAX : 700));
            if (len + n > CAP)
                n = CAP - len;
            for (size_t i = 0; i < n; i++)
                data[i] = (unsigned char)(written + i);
            CHECK(ek_queue_append(&q, data, n) == 0);
            if (head + len + n > 2 * (size_t)CAP) {
                memmove(buf, buf + head, len);
                head = 0;
            }
            memcpy(buf + head + len, data, n);
            len += n;
            written += n;
        } else if (r % 3 == 0 && r % 5 == 0 && len < CAP / 2) {
            /* prepend: the rest of a send started before later bytes */
            size_t n =
                1 + (size_t)(next() % (r % 7 == 0 ? 2 * EK_CHUNK_MAX : 700));
            for (size_t i = 0; i < n; i++)
                data[i] = (unsigned char)(written + i);
            CHECK(ek_queue_prepend(&q, data, n) == 0);
            if (head < n) {
                memmove(buf + n, buf + head, len);
                head = n;
            }
            head -= n;
            memcpy(buf + head, data, n);
            len += n;
            written += n;
        } else if (len > 0) {
            size_t n = (size_t)(next() % (len + 1));
            ek_queue_consume(&q, n);
            head += n;
            len -= n;
        }
        if (step % 97 == 0)
            check_contents(&q, buf + head, len);
    }
    check_contents(&q, buf + head, len);
    ek_queue_clear(&q);
    CHECK_INT(ek_queue_len(&q), ==, 0);
    free(buf);
    free(data);
}

int main(void)
{
    test_empty_is_zero();
    test_drained_queue_owns_nothing();
    test_chunk_sizes();
    test_random_against_model();
    printf("PASS: queue\n");
    return 0;
}
