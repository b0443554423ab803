#include "ek_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ek_chunk {
    struct ek_chunk *next;
    size_t head; /* first unsent byte */
    size_t tail; /* one past the last queued byte */
    size_t size; /* payload capacity */
    char data[];
};

static struct ek_chunk *chunk_new(size_t want)
{
    size_t size = want < EK_CHUNK_MIN   ? EK_CHUNK_MIN
                  : want > EK_CHUNK_MAX ? EK_CHUNK_MAX
                                        : want;
    struct ek_chunk *c = malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->head = 0;
    c->tail = 0;
    c->size = size;
    return c;
}

static void free_chunks(struct ek_chunk *c)
{
    while (c != NULL) {
        struct ek_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static size_t chunk_room(const struct ek_chunk *c)
{
    return c->size - c->tail;
}

/* Allocates every chunk the append needs before touching the queue, so a
 * failed append leaves it exactly as it was. */
int ek_queue_append(struct ek_queue *q, const void *data, size_t n)
{
    const char *p = data;
    size_t room = q->last != NULL ? chunk_room(q->last) : 0;
    struct ek_chunk *fresh = NULL, **link = &fresh;

    for (size_t need = n > room ? n - room : 0; need > 0;) {
        struct ek_chunk *c = chunk_new(need);
        if (c == NULL) {
            free_chunks(fresh);
            return -ENOMEM;
        }
        *link = c;
        link = &c->next;
        need -= need < c->size ? need : c->size;
    }

    if (room > 0) {
        size_t k = n < room ? n : room;
        memcpy(q->last->data + q->last->tail, p, k);
        q->last->tail += k;
        p += k;
        n -= k;
    }
    for (struct ek_chunk *c = fresh; c != NULL; c = c->next) {
        size_t k = n < c->size ? n : c->size;
        memcpy(c->data, p, k);
        c->tail = k;
        p += k;
        n -= k;
        if (q->last != NULL)
            q->last->next = c;
        else
            q->first = c;
        q->last = c;
    }
    q->len += (size_t)(p - (const char *)data);
    return 0;
}

int ek_queue_prepend(struct ek_queue *q, const void *data, size_t n)
{
    struct ek_chunk *fresh = NULL, *end = NULL;
    const char *p = data;
    for (size_t left = n; left > 0;) {
        size_t k = left < EK_CHUNK_MAX ? left : EK_CHUNK_MAX;
        struct ek_chunk *c = malloc(sizeof(*c) + k); /* to the byte: full */
        if (c == NULL) {
            free_chunks(fresh);
            return -ENOMEM;
        }
        c->next = NULL;
        c->head = 0;
        c->tail = c->size = k;
        memcpy(c->data, p, k);
        if (end != NULL)
            end->next = c;
        else
            fresh = c;
        end = c;
        p += k;
        left -= k;
    }
    if (end == NULL)
        return 0;
    end->next = q->first;
    if (q->last == NULL)
        q->last = end;
    q->first = fresh;
    q->len += n;
    return 0;
}

int ek_queue_peek(const struct ek_queue *q, struct iovec *iov, int max)
{
    int n = 0;
    for (struct ek_chunk *c = q->first; c != NULL && n < max; c = c->next) {
        iov[n].iov_base = c->data + c->head;
        iov[n].iov_len = c->tail - c->head;
        n++;
    }
    return n;
}

void ek_queue_consume(struct ek_queue *q, size_t n)
{
    q->len -= n;
    while (n > 0) {
        struct ek_chunk *c = q->first;
        /* n <= len, the caller's promise, keeps c non-NULL. */
        // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
        size_t avail = c->tail - c->head;
        if (n < avail) {
            c->head += n;
            return;
        }
        n -= avail;
        q->first = c->next;
        if (q->first == NULL)
            q->last = NULL;
        free(c); /* an emptied chunk goes at once: idle means no memory */
    }
}

void ek_queue_clear(struct ek_queue *q)
{
    free_chunks(q->first);
    q->first = NULL;
    q->last = NULL;
    q->len = 0;
}
