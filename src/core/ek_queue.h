/*
 * ek_queue: the bytes a connection has read but not yet sent back.
 *
 * A FIFO of bytes kept as a list of heap chunks. The zero value is the empty
 * queue and owns no memory, so an idle connection costs three words; chunks
 * are allocated only when a send would block and freed as soon as they are
 * sent.
 *
 * Memory bound: the queue never allocates more than
 *     len + 2 * EK_CHUNK_MAX + (number of chunks) * sizeof(struct ek_chunk)
 * bytes, because only the first chunk can have consumed space at its head
 * and only the last can have free space at its tail (a prepend allocates
 * its chunks to the byte, full). The caller bounds len
 * (see --max-queue); the queue itself does not refuse data.
 */
#ifndef EK_QUEUE_H
#define EK_QUEUE_H

#include <stddef.h>
#include <sys/uio.h>

/* Smallest and largest chunk payload. A chunk is sized to what is being
 * appended, within these limits, so a 100-byte leftover does not pin 64 KiB
 * and a large one is not split into many small allocations. */
#define EK_CHUNK_MIN 4096
#define EK_CHUNK_MAX 65536

struct ek_chunk;

struct ek_queue {
    struct ek_chunk *first; /* oldest bytes; NULL when empty */
    struct ek_chunk *last;  /* where appends go */
    size_t len;             /* bytes queued */
};

static inline size_t ek_queue_len(const struct ek_queue *q)
{
    return q->len;
}

/* Appends n bytes. Returns 0, or -ENOMEM with the queue unchanged. */
int ek_queue_append(struct ek_queue *q, const void *data, size_t n);

/* Puts n bytes in front of what is queued: they are sent first. For the
 * rest of a send that had been started before later bytes were queued.
 * Returns 0, or -ENOMEM with the queue unchanged. */
int ek_queue_prepend(struct ek_queue *q, const void *data, size_t n);

/* Fills up to max iovecs with the queued bytes, oldest first, without
 * consuming them. Returns the number of iovecs filled (0 when empty). */
int ek_queue_peek(const struct ek_queue *q, struct iovec *iov, int max);

/* Drops the n oldest bytes (n <= len), freeing chunks that empty. */
void ek_queue_consume(struct ek_queue *q, size_t n);

/* Frees everything; the queue is empty (zero) afterwards. */
void ek_queue_clear(struct ek_queue *q);

#endif
