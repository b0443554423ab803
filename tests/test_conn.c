/* Unit test of the echo policy (ek_conn.c) through a scripted transport:
 * reads and writes that come in odd sizes, that say "later" (-EAGAIN),
 * a peer that stops taking bytes for a while, and a finish that has to
 * wait. Every byte must come back once, in order; the queue must never
 * pass --max-queue, and the connection must stop asking to read while
 * it is full; the end is finished only once all was sent, and only
 * after the finish that waited is called again.
 *
 * The transport sits in the table's slot of the socket transport: this
 * file defines ek_transports itself, so the library's table
 * (ek_transports.c) is not linked in. */
#include "check.h"
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_queue.h"
#include "ek_stats.h"
#include "ek_transport.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define INPUT ((size_t)1024 * 1024 + 17)
#define MAX_QUEUE ((size_t)64 * 1024)

static unsigned char input[INPUT], output[INPUT];
static size_t in_pos, out_len;
static unsigned reads, writes, finishes, stall_writes;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned next(unsigned below)
{
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)(rng >> 33) % below;
}

static int fake_open(struct ek_conn *c, int fd, const struct ek_conn_ctx *ctx)
{
    (void)c;
    (void)fd;
    (void)ctx;
    return 0;
}

/* Odd sizes, "later" one call in three, the end once all was read. */
static ssize_t fake_read(struct ek_conn *c, int fd, void *buf, size_t len)
{
    (void)c;
    (void)fd;
    CHECK(len > 0);
    if (++reads % 3 == 0)
        return -EAGAIN;
    if (in_pos == INPUT)
        return 0;
    size_t n = 1 + next(7000);
    n = n < len ? n : len;
    n = n < INPUT - in_pos ? n : INPUT - in_pos;
    memcpy(buf, input + in_pos, n);
    in_pos += n;
    return (ssize_t)n;
}

/* Odd sizes, "later" one call in four, and a peer that takes nothing for
 * stall_writes calls (set by the test) so that the queue fills. */
static ssize_t fake_writev(struct ek_conn *c, int fd, const struct iovec *iov,
                           int iovcnt)
{
    (void)c;
    (void)fd;
    CHECK(finishes == 0); /* nothing is sent after the end */
    if (stall_writes > 0) {
        stall_writes--;
        return -EAGAIN;
    }
    if (++writes % 4 == 0)
        return -EAGAIN;
    size_t take = 1 + next(5000), took = 0;
    for (int i = 0; i < iovcnt && took < take; i++) {
        size_t k = iov[i].iov_len < take - took ? iov[i].iov_len : take - took;
        CHECK(out_len + k <= INPUT);
        memcpy(output + out_len, iov[i].iov_base, k);
        out_len += k;
        took += k;
    }
    return (ssize_t)took;
}

static bool fake_pending(const struct ek_conn *c)
{
    (void)c;
    return false;
}

static unsigned fake_blocked(const struct ek_conn *c)
{
    (void)c;
    return 0;
}

static bool fake_handshaking(const struct ek_conn *c)
{
    (void)c;
    return false;
}

/* The end: only once every byte went back; "later" the first time. */
static int fake_finish(struct ek_conn *c, int fd)
{
    (void)c;
    (void)fd;
    CHECK_INT(out_len, ==, INPUT);
    return ++finishes == 1 ? -EAGAIN : 0;
}

static void fake_release(struct ek_conn *c)
{
    (void)c;
}

static const struct ek_transport fake = {
    .name = "scripted",
    .id = EK_TP_SOCKET,
    .open = fake_open,
    .read = fake_read,
    .writev = fake_writev,
    .pending = fake_pending,
    .blocked = fake_blocked,
    .handshaking = fake_handshaking,
    .finish = fake_finish,
    .release = fake_release,
};

const struct ek_transport *const ek_transports[EK_TP_COUNT] = {
    [EK_TP_SOCKET] = &fake,
};

int main(void)
{
    for (size_t i = 0; i < INPUT; i++)
        input[i] = (unsigned char)next(256);
    static struct ek_counters counters;
    static char buf[16 * 1024];
    struct ek_conn_env env = {.counters = &counters,
                              .max_queue = MAX_QUEUE,
                              .buf = buf,
                              .buf_size = sizeof(buf),
                              .pipe = {-1, -1}};
    struct ek_conn_ctx ctx = {0};
    struct ek_conn c;
    CHECK_INT(ek_conn_open(&c, -1, &fake, &ctx), ==, 0);

    size_t most_queued = 0;
    unsigned turns = 0, full_turns = 0;
    int rc = EK_CONN_KEEP;
    while (rc == EK_CONN_KEEP) {
        CHECK(++turns < 10000000);
        if (turns == 50) /* the peer stops taking bytes for a while */
            stall_writes = 2000;
        unsigned want = ek_conn_want(&c, MAX_QUEUE);
        CHECK(want != 0);
        size_t queued = ek_queue_len(&c.queue);
        if (queued >= MAX_QUEUE) { /* full: no read asked for */
            CHECK((want & EK_EV_READ) == 0);
            full_turns++;
        }
        rc = ek_conn_event(&c, -1, &env, want);
        queued = ek_queue_len(&c.queue);
        most_queued = queued > most_queued ? queued : most_queued;
        CHECK_INT(queued, <=, MAX_QUEUE);
    }
    CHECK_INT(rc, ==, EK_CONN_DONE);
    CHECK_INT(finishes, ==, 2);
    CHECK_INT(out_len, ==, INPUT);
    CHECK(memcmp(input, output, INPUT) == 0);
    CHECK_INT(counters.bytes_in, ==, INPUT);
    CHECK_INT(counters.bytes_out, ==, INPUT);
    CHECK(full_turns > 0);
    CHECK_INT(counters.queue_full, >=, 1);
    ek_conn_release(&c);
    printf("%zu bytes echoed in order through %u reads and %u writes (%u "
           "turns, %u of them full: the queue peaked at %zu of %zu bytes)\n",
           INPUT, reads, writes, turns, full_turns, most_queued, MAX_QUEUE);
    return 0;
}
