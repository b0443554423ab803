/*
 * An echo server on libuv, written the way libuv's own examples and
 * benchmark server are: a buffer per read, a write request per buffer.
 * Correct under backpressure (reading stops while more than 256 KiB waits
 * to be written) and on half-close (shutdown after the pending writes).
 *
 * usage: libuv_echo [PORT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define HIGH (256 * 1024)
#define LOW (64 * 1024)

struct wreq {
    uv_write_t req;
    uv_buf_t buf;
};

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = malloc(65536);
    b->len = b->base ? 65536 : 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_close);
    free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    uv_stream_t *s = req->handle;
    free(w->buf.base);
    free(w);
    if (status == 0 && s->data != NULL &&
        uv_stream_get_write_queue_size(s) < LOW) {
        s->data = NULL; /* was paused */
        uv_read_start(s, on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        struct wreq *w = malloc(sizeof(*w));
        w->buf = uv_buf_init(b->base, (unsigned)n);
        uv_write(&w->req, s, &w->buf, 1, on_write);
        if (uv_stream_get_write_queue_size(s) > HIGH) {
            uv_read_stop(s);
            s->data = s; /* paused */
        }
        return;
    }
    free(b->base);
    if (n == UV_EOF) { /* half-close: finish the writes, then close */
        uv_shutdown_t *req = malloc(sizeof(*req));
        if (uv_shutdown(req, s, on_shutdown) == 0)
            return;
        free(req);
    }
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof(*c));
    uv_tcp_init(server->loop, c);
    c->data = NULL;
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_tcp_nodelay(c, 1);
        uv_read_start((uv_stream_t *)c, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)c, on_close);
    }
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in a;
    int len = sizeof(a);
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 0, &a);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection) != 0)
        return fprintf(stderr, "libuv_echo: cannot listen\n"), 1;
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
