/*
 * ek_hdr: HdrHistogram's interchange formats, so that bench's latencies
 * go to and come from HdrHistogram's own tools (HistogramLogProcessor,
 * the Java, C, Go and JS libraries, wrk2's and tcpkali's logs).
 *
 * One histogram: the compressed V2 encoding in base64 ("HISTF..."): a
 * 40-byte header (cookie, payload length, normalizing index offset,
 * significant digits, lowest discernible and highest trackable value,
 * integer-to-double ratio; big-endian) and the counts, each a ZigZag
 * LEB128 word, a run of zeros as its negated length; all of it deflated
 * with zlib behind an 8-byte header. ek_hist is HdrHistogram's bucket
 * layout at 2 significant digits and lowest value 1, so encoding one
 * loses nothing but its exact sum; one from another tool (other digits,
 * other units) is re-bucketed, each count at the middle of its bucket.
 * A histogram that claims more than 2^63 values in all, or counts past
 * its end, or more than EK_HDR_WORDS_MAX words of counts, is refused.
 *
 * A log: HdrHistogram's interval log, version 1.3: "#[StartTime: ...]"
 * and "#[BaseTime: ...]" headers (seconds since the epoch), a legend, and
 * a line per interval: [Tag=NAME,]START,LENGTH,MAX,HISTOGRAM with START
 * relative to the base time, in seconds, and MAX in milliseconds (the
 * values being nanoseconds, HdrHistogram's default ratio of 10^6).
 */
#ifndef EK_HDR_H
#define EK_HDR_H

#include "ek_hist.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* h as compressed V2 in base64, malloc'd and NUL-terminated; NULL when
 * out of memory. */
char *ek_hdr_encode(const struct ek_hist *h);

/* The most words of counts (a word is one count, or one run of zeros)
 * one histogram may hold: what decoding it costs is linear in them (about
 * 10 ns each here), and a few KiB of deflate can carry millions. No real
 * histogram comes near: ours (2 significant digits) have at most 7424
 * buckets; HdrHistogram's finest, 5 digits, with every count set from 1 us
 * to 1 s (1.8 million distinct values), 1.83 million. It bounds what one
 * histogram inflates to as well: 40 + 9 bytes a word, 18 MiB. */
#define EK_HDR_WORDS_MAX 2097152 /* 2^21 */

/* What several decodes may take together (a file's histograms, say):
 * words of counts and inflated bytes left, each decode taking its share.
 * A histogram that would take more than is left is refused. */
struct ek_hdr_budget {
    uint64_t words, bytes;
};

/* Adds the histogram that text (len bytes of base64) encodes to *h,
 * taking its words and bytes from *budget (NULL: only the bound of one
 * histogram). Returns 0, or -EINVAL (not a V2 histogram, damaged, or past
 * a bound; *h may then hold part of it) or -ENOMEM, with *why. */
int ek_hdr_decode_add(const char *text, size_t len, struct ek_hist *h,
                      struct ek_hdr_budget *budget, const char **why);

/* Writes a log's headers: start and base time start_s (seconds since the
 * epoch) and, when run_id is not NULL, a "#[RunId: ...]" comment line
 * (HdrHistogram's readers skip comments they do not know). Returns 0 or
 * -errno. */
int ek_hdr_log_begin(FILE *f, double start_s, const char *run_id);

/* One interval's line: tag NULL for none; start_s relative to the base
 * time. Returns 0 or -errno (-ENOMEM). */
int ek_hdr_log_interval(FILE *f, const char *tag, double start_s,
                        double length_s, const struct ek_hist *h);

/* What a log holds: one histogram per tag, summed over its intervals. */
#define EK_HDR_LOG_TAGS 8
struct ek_hdr_log {
    size_t ntags;
    char tag[EK_HDR_LOG_TAGS][32]; /* "" for lines without a tag */
    struct ek_hist *hist[EK_HDR_LOG_TAGS];
    size_t intervals;
    double first_s, last_s; /* absolute: the first start, the last end */
    char run_id[64];        /* its #[RunId: ...], or "" */
};

/* Reads a whole log from f, its histograms taking from *budget (as
 * ek_hdr_decode_add). Returns 0, or -EINVAL with *why and *line (where),
 * or -ENOMEM. ek_hdr_log_free frees what it holds, either way. */
int ek_hdr_log_read(FILE *f, struct ek_hdr_log *log,
                    struct ek_hdr_budget *budget, const char **why,
                    size_t *line);

/* The histogram of a tag ("" for the untagged lines), or NULL. */
const struct ek_hist *ek_hdr_log_hist(const struct ek_hdr_log *log,
                                      const char *tag);

void ek_hdr_log_free(struct ek_hdr_log *log);

#endif
