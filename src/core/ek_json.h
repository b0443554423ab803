/*
 * ek_json: a small JSON (RFC 8259) reader, for what echokit itself
 * writes: `bench merge` reads bench's --json results. It checks the whole
 * text and records every scalar under its path ("msgs", "latency_us.p99",
 * "list.0"; keys unescaped), its value left as text until asked for
 * (ek_json_string undoes the escapes). The tests' harness checks --json
 * output with it too.
 */
#ifndef EK_JSON_H
#define EK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ek_json_field {
    char path[64];     /* keys joined by '.'; longer paths are left out */
    const char *value; /* in the text: a number, "string" (quotes
                          included), true, false or null */
    size_t len;
};

struct ek_json {
    struct ek_json_field *fields;
    size_t n, cap;
};

/* Parses text (one JSON value, whitespace around it allowed) into *out,
 * or only checks it when out is NULL. Returns 0, -EINVAL (not JSON, or
 * nested past 64 levels), -E2BIG (more than 65536 values) or -ENOMEM.
 * ek_json_free frees *out either way. */
int ek_json_parse(const char *text, struct ek_json *out);

/* The scalar at path, or NULL. */
const struct ek_json_field *ek_json_get(const struct ek_json *j,
                                        const char *path);

/* The number at path: an unsigned integer read exactly, or any number.
 * false when missing, null, or of another kind. */
bool ek_json_u64(const struct ek_json *j, const char *path, uint64_t *out);
bool ek_json_double(const struct ek_json *j, const char *path, double *out);

/* The string at path, its escapes undone (UTF-8; cut at a \u0000),
 * malloc'd; NULL when missing, not a string, or out of memory. */
char *ek_json_string(const struct ek_json *j, const char *path);

void ek_json_free(struct ek_json *j);

#endif
