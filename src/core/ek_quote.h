/*
 * ek_quote: bytes shown to a person, as the tutorial's client showed its
 * echo (send, send --udp: "Received '...'").
 */
#ifndef EK_QUOTE_H
#define EK_QUOTE_H

#include <stddef.h>
#include <stdio.h>

/* Prints n bytes at p to f as the tutorial's repr() did, in single quotes:
 * printable ASCII as is, quote and backslash escaped, \n \r \t by name,
 * the rest as \xNN. */
void ek_print_quoted(FILE *f, const char *p, size_t n);

/* The log's escapers: append the NUL-terminated text to out[*len..size),
 * stopping before an escape that would not fit (out is not terminated).
 * Log messages carry bytes from peers (a PROXY v2 header's unix path, 108
 * bytes of anything), and a log line must stay one line, free of terminal
 * escapes, whatever they are:
 * - ek_escape_text, for the text log: printable ASCII as is, backslash
 *   doubled, every other byte as \xNN;
 * - ek_escape_json, for the inside of a JSON string: printable ASCII as is
 *   but " and \ escaped, every other byte as \u00NN (each byte one code
 *   point, U+0000 to U+00FF), so that the line is valid JSON and valid
 *   UTF-8 whatever the bytes. */
void ek_escape_text(char *out, size_t size, size_t *len, const char *text);
void ek_escape_json(char *out, size_t size, size_t *len, const char *text);

#endif
