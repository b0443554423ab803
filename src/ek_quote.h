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

#endif
