/*
 * ek_stats: the counters' reader side (ek_stats.h): a snapshot summed over
 * the writers, their reasons' names, and the line SIGUSR1 logs.
 */
#include "ek_stats.h"
#include "ek_log.h"
#include "ek_util.h"

#include <string.h>

void ek_stats_snapshot(struct ek_stats *s, struct ek_stats_view *v)
{
    memset(v, 0, sizeof(*v));
    v->accepted = ek_stat_get(&s->accepted);
    v->active = ek_stat_get(&s->active);
    v->refused_limit = ek_stat_get(&s->refused_limit);
    v->refused_fd = ek_stat_get(&s->refused_fd);
    v->refused_acl = ek_stat_get(&s->refused_acl);
    v->refused_proxy = ek_stat_get(&s->refused_proxy);
    v->refused_proxy_untrusted = ek_stat_get(&s->refused_proxy_untrusted);
    v->refused_handshakes = ek_stat_get(&s->refused_handshakes);
    v->accept_errors = ek_stat_get(&s->accept_errors);
    v->conn_errors = ek_stat_get(&s->conn_errors);
    v->idle_closed = ek_stat_get(&s->idle_closed);
    for (size_t i = 0; i <= EK_MAX_LOOPS; i++) {
        struct ek_counters *c = i == 0 ? &s->shared : &s->loop[i - 1];
        v->bytes_in += ek_stat_get(&c->bytes_in);
        v->bytes_out += ek_stat_get(&c->bytes_out);
        v->queue_full += ek_stat_get(&c->queue_full);
        v->dgrams_in += ek_stat_get(&c->dgrams_in);
        v->dgrams_out += ek_stat_get(&c->dgrams_out);
    }
    for (size_t i = 0; i < EK_UDP_DROP_REASONS; i++)
        v->udp_drops[i] = ek_stat_get(&s->udp_drops[i]);
    v->tls_handshaking = ek_stat_get(&s->tls_handshaking);
    v->tls_handshakes = ek_stat_get(&s->tls_handshakes);
    v->tls_resumed = ek_stat_get(&s->tls_resumed);
    for (size_t i = 0; i < EK_TLS_FAIL_REASONS; i++)
        v->tls_failed[i] = ek_stat_get(&s->tls_failed[i]);
}

const char *const ek_tls_fail_names[EK_TLS_FAIL_REASONS] = {
    "protocol", "client_cert",   "timeout",
    "closed",   "renegotiation", "too_large",
};

const char *const ek_udp_drop_names[EK_UDP_DROP_REASONS] = {
    "low_port", "broadcast",  "self",      "acl",
    "rate",     "rate_total", "truncated", "send",
};

/* " name value" for each reason, in a log line. */
static void append_reasons(char *buf, size_t size, size_t *len,
                           const char *const *names, const uint64_t *values,
                           size_t n)
{
    for (size_t i = 0; i < n; i++)
        ek_appendf(buf, size, len, " %s %llu", names[i],
                   (unsigned long long)values[i]);
}

void ek_stats_log(struct ek_stats *s)
{
    struct ek_stats_view v;
    char extra[1024] = ""; /* the TLS and UDP parts, when there is any */
    size_t elen = 0;
    ek_stats_snapshot(s, &v);
    uint64_t tls_failed = 0;
    for (size_t i = 0; i < EK_TLS_FAIL_REASONS; i++)
        tls_failed += v.tls_failed[i];
    if (v.tls_handshakes > 0 || tls_failed > 0 || v.tls_handshaking > 0 ||
        v.refused_handshakes > 0) {
        ek_appendf(extra, sizeof(extra), &elen,
                   "; tls: %llu handshakes, %llu resumed, %llu under way, %llu "
                   "refused (--max-handshakes), failed:",
                   (unsigned long long)v.tls_handshakes,
                   (unsigned long long)v.tls_resumed,
                   (unsigned long long)v.tls_handshaking,
                   (unsigned long long)v.refused_handshakes);
        append_reasons(extra, sizeof(extra), &elen, ek_tls_fail_names,
                       v.tls_failed, EK_TLS_FAIL_REASONS);
    }
    if (v.dgrams_in > 0) {
        ek_appendf(extra, sizeof(extra), &elen,
                   "; udp: %llu datagrams in, %llu out, dropped:",
                   (unsigned long long)v.dgrams_in,
                   (unsigned long long)v.dgrams_out);
        append_reasons(extra, sizeof(extra), &elen, ek_udp_drop_names,
                       v.udp_drops, EK_UDP_DROP_REASONS);
    }
    ek_log(
        EK_LOG_INFO,
        "stats: %llu active, %llu accepted, refused %llu limit %llu fd "
        "%llu acl %llu proxy %llu proxy-untrusted, %llu idle-closed, %llu "
        "accept errors, %llu "
        "connection errors, %llu bytes in, %llu bytes out, %llu queue-full%s",
        (unsigned long long)v.active, (unsigned long long)v.accepted,
        (unsigned long long)v.refused_limit, (unsigned long long)v.refused_fd,
        (unsigned long long)v.refused_acl, (unsigned long long)v.refused_proxy,
        (unsigned long long)v.refused_proxy_untrusted,
        (unsigned long long)v.idle_closed, (unsigned long long)v.accept_errors,
        (unsigned long long)v.conn_errors, (unsigned long long)v.bytes_in,
        (unsigned long long)v.bytes_out, (unsigned long long)v.queue_full,
        extra);
}
