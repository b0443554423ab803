/*
 * An echo server on libevent 2: bufferevents, the input buffer moved to the
 * output buffer without copying. Reading stops while more than 256 KiB
 * waits to be written; after the client's FIN the rest is flushed before
 * the connection is freed.
 *
 * usage: libevent_echo [PORT]
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIGH (256 * 1024)
#define LOW (64 * 1024)

static void on_write(struct bufferevent *bev, void *eof)
{
    if (eof != NULL) { /* FIN seen: free once everything went out */
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            bufferevent_free(bev);
        return;
    }
    bufferevent_enable(bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *eof)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    (void)eof;
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) >= HIGH)
        bufferevent_disable(bev, EV_READ); /* on_write re-enables */
}

static void on_event(struct bufferevent *bev, short what, void *eof)
{
    (void)eof;
    if ((what & BEV_EVENT_EOF) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_setcb(bev, NULL, on_write, on_event, bev);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *base)
{
    int one = 1;
    (void)l;
    (void)sa;
    (void)len;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct bufferevent *bev =
        bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    /* Raised as a libevent user moving bulk data would. libevent 2.1's
     * evbuffer_read still caps every read at EVBUFFER_MAX_READ (4096
     * bytes), so bulk echo costs a syscall per 4 KiB here: a property of
     * the library as Debian 12 ships it, not of this server. */
    bufferevent_set_max_single_read(bev, 65536);
    bufferevent_set_max_single_write(bev, 65536);
    bufferevent_setwatermark(bev, EV_WRITE, LOW, 0);
    bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evconnlistener *l = evconnlistener_new_bind(
        base, on_accept, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
        -1, (struct sockaddr *)&a, sizeof(a));
    if (l == NULL)
        return fprintf(stderr, "libevent_echo: cannot listen\n"), 1;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&a, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return event_base_dispatch(base);
}
