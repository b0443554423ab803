#include "ek_server.h"
#include "ek_log.h"
#include "ek_sd.h"
#include "ek_signal.h"
#include "ek_stats.h"
#include "ek_tls.h"
#include "ek_util.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>

static struct ek_stats *stats_map(void)
{
    /* Shared so that the process model's children count here too. */
    void *p = mmap(NULL, sizeof(struct ek_stats), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ek_server_open(struct ek_server *srv, const struct ek_config *cfg)
{
    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    srv->sig_fd = -1;
    srv->stats = stats_map();
    if (srv->stats == NULL) {
        int err = -errno;
        ek_warnx("cannot map counters: %s", strerror(-err));
        return err;
    }
    srv->conn = (struct ek_conn_ctx){.stats = srv->stats,
                                     .tls = cfg->tls,
                                     .max_handshakes = cfg->max_handshakes,
                                     .proxy_protocol = cfg->proxy_protocol};
    srv->sig_fd = ek_signal_open();
    int err = srv->sig_fd < 0 ? srv->sig_fd : 0;
    if (err == 0 && cfg->tls != NULL)
        err = ek_signal_watch_reload();
    if (err < 0) {
        ek_warnx("cannot set up signals: %s", strerror(-err));
        ek_server_close(srv);
    }
    return err;
}

void ek_server_close(struct ek_server *srv)
{
    if (srv->sig_fd >= 0)
        ek_signal_close();
    srv->sig_fd = -1;
    if (srv->stats != NULL)
        munmap(srv->stats, sizeof(*srv->stats));
    srv->stats = NULL;
}

static const char *signal_name(int signo)
{
    return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal";
}

unsigned ek_server_read_signals(struct ek_server *srv)
{
    struct ek_signal_news news;
    unsigned out = 0;

    ek_signal_read(srv->sig_fd, &news);
    if (news.dump_stats)
        ek_stats_log(srv->stats);
#ifdef EK_HAVE_TLS
    if (news.reload && srv->cfg->tls != NULL)
        ek_tls_server_reload(srv->cfg->tls);
#endif
    if (news.child_exited)
        out |= EK_NEWS_CHILD;
    if (news.terms == srv->terms_handled)
        return out;

    uint64_t active = ek_stat_get(&srv->stats->active);
    if (srv->terms_handled == 0 && news.terms == 1) {
        srv->phase = EK_DRAINING;
        srv->drain_deadline_ms = ek_now_ms() + srv->cfg->drain_timeout_ms;
        ek_log(EK_LOG_INFO,
               "%s: no longer accepting; draining %llu connection%s for up "
               "to %.1f s (signal again to exit at once)",
               signal_name(news.last_term), (unsigned long long)active,
               active == 1 ? "" : "s",
               (double)srv->cfg->drain_timeout_ms / 1000.0);
        out |= EK_NEWS_DRAIN;
        ek_sd_notifyf("STOPPING=1\nSTATUS=draining %llu connection%s",
                      (unsigned long long)active, active == 1 ? "" : "s");
    } else {
        if (srv->phase == EK_RUNNING)
            out |= EK_NEWS_DRAIN; /* two at once: the listeners go too */
        srv->phase = EK_FORCED;
        srv->exit_signal = news.last_term;
        ek_log(EK_LOG_WARN, "%s again: exiting now, cutting %llu connection%s",
               signal_name(news.last_term), (unsigned long long)active,
               active == 1 ? "" : "s");
    }
    srv->terms_handled = news.terms;
    return out;
}

bool ek_server_should_stop(struct ek_server *srv)
{
    if (srv->phase == EK_DRAINING && ek_now_ms() >= srv->drain_deadline_ms) {
        uint64_t active = ek_stat_get(&srv->stats->active);
        if (active > 0)
            ek_log(EK_LOG_WARN,
                   "drain timeout: closing %llu connection%s still open",
                   (unsigned long long)active, active == 1 ? "" : "s");
        srv->phase = EK_STOPPING;
    }
    return srv->phase == EK_STOPPING || srv->phase == EK_FORCED;
}

int ek_server_timeout(const struct ek_server *srv)
{
    int t = -1;
    if (srv->phase == EK_DRAINING)
        t = ek_timeout_until(srv->drain_deadline_ms);
    return ek_timeout_min(t, ek_acceptor_timeout(&srv->acceptor));
}

int ek_server_exit_status(const struct ek_server *srv)
{
    return srv->phase == EK_FORCED ? 128 + srv->exit_signal : 0;
}
