/*
 * ek_pattern: the bytes a measuring client sends, derived from a key (the
 * connection) and the stream offset, so that every byte of every echo is
 * checked without storing what was sent, and a byte dropped, duplicated,
 * reordered or crossed over from another connection changes what is
 * expected.
 *
 * 64-bit word i of stream `key` is mix(key, i): splitmix64 of both. The
 * cost is one multiply-xorshift round per 8 bytes, cheap next to a
 * syscall, so verification never bounds a bulk benchmark.
 */
#ifndef EK_PATTERN_H
#define EK_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Writes n bytes of stream key starting at offset off. */
void ek_pattern_fill(uint64_t key, uint64_t off, void *buf, size_t n);

/* Compares buf with stream key at offset off. Returns n when all match,
 * else the index of the first byte that differs. */
size_t ek_pattern_check(uint64_t key, uint64_t off, const void *buf, size_t n);

#endif
