#include "ek_idle.h"
#include "ek_admit.h"
#include "ek_log.h"
#include "ek_server.h"
#include "ek_util.h"
#include "ek_stats.h"

#include <string.h>

static uint32_t to_ticks(int64_t ms)
{
    return ms <= 0 ? 0
                   : (uint32_t)((ms + EK_IDLE_TICK_MS - 1) / EK_IDLE_TICK_MS);
}

/* The shorter of two limits, 0 being none. */
static int64_t shorter(int64_t a, int64_t b)
{
    return a <= 0 || (b > 0 && b < a) ? b : a;
}

void ek_idle_init(struct ek_idle_clock *k, int64_t idle_ms, int64_t header_ms,
                  int64_t handshake_ms)
{
    memset(k, 0, sizeof(*k));
    int64_t shortest = shorter(shorter(idle_ms, header_ms), handshake_ms);
    if (shortest <= 0)
        return;
    k->epoch_ms = ek_now_ms();
    k->limit = to_ticks(idle_ms);
    k->header_limit = to_ticks(header_ms);
    k->handshake_limit = to_ticks(handshake_ms);
    k->sweep_every_ms = shortest / 4;
    if (k->sweep_every_ms < EK_IDLE_TICK_MS)
        k->sweep_every_ms = EK_IDLE_TICK_MS;
    if (k->sweep_every_ms > 1000)
        k->sweep_every_ms = 1000;
    k->next_sweep_ms = k->epoch_ms + k->sweep_every_ms;
}

void ek_idle_tick(struct ek_idle_clock *k)
{
    if (k->epoch_ms != 0)
        k->now = (uint32_t)((ek_now_ms() - k->epoch_ms) / EK_IDLE_TICK_MS);
}

bool ek_idle_sweep_due(struct ek_idle_clock *k)
{
    if (k->epoch_ms == 0)
        return false;
    int64_t now = ek_now_ms();
    if (now < k->next_sweep_ms)
        return false;
    k->next_sweep_ms = now + k->sweep_every_ms;
    return true;
}

int ek_idle_timeout(const struct ek_idle_clock *k)
{
    return k->epoch_ms == 0 ? -1 : ek_timeout_until(k->next_sweep_ms);
}

void ek_idle_closed(struct ek_server *srv, int fd)
{
    ek_stat_add(&srv->stats->idle_closed, 1);
    ek_log(EK_LOG_DEBUG, "closing fd %d: idle for %.1f s (--idle-timeout)", fd,
           (double)srv->cfg->idle_timeout_ms / 1000.0);
}

void ek_idle_handshake_late(struct ek_server *srv, int fd)
{
    ek_stat_add(&srv->stats->tls_failed[EK_TLS_FAIL_TIMEOUT], 1);
    ek_log(EK_LOG_DEBUG, "closing fd %d: no TLS handshake within %.1f s", fd,
           (double)srv->cfg->handshake_timeout_ms / 1000.0);
}

bool ek_idle_sweep_closes(struct ek_server *srv, struct ek_acceptor *acc,
                          const struct ek_idle_clock *k, int fd, uint32_t stamp,
                          bool header_pending, bool handshaking)
{
    /* While the header is read the stamp stays at the accept: only the
     * header's deadline applies (a header sent a byte at a time is not
     * idle). */
    if (header_pending) {
        if (!ek_header_expired(k, stamp))
            return false;
        ek_admit_proxy_failed(srv, acc, fd, "no PROXY header within 5 s");
        return true;
    }
    /* The handshake's clock starts at the header's end (or the accept),
     * and no payload moves before it is done: the stamp stays there. */
    if (handshaking) {
        if (k->handshake_limit == 0 ||
            (uint32_t)(k->now - stamp) < k->handshake_limit)
            return false;
        ek_idle_handshake_late(srv, fd);
        return true;
    }
    if (ek_idle_expired(k, stamp)) {
        ek_idle_closed(srv, fd);
        return true;
    }
    return false;
}
