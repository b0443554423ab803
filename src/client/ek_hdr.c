#include "ek_hdr.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define V2_COOKIE 0x1c849313u            /* V2 encoding, LEB128 words */
#define V2_COMPRESSED_COOKIE 0x1c849314u /* the same, deflated */
#define V2_HEADER 40
#define COMPRESSED_HEADER 8
#define WORD_MAX 9 /* a ZigZag LEB128 word, in bytes */
/* What a histogram may inflate to: EK_HDR_WORDS_MAX words at most. */
#define DECODED_MAX (V2_HEADER + WORD_MAX * (size_t)EK_HDR_WORDS_MAX)
#define EK_SIGNIFICANT_DIGITS 2 /* ek_hist's layout, see ek_hist.h */
#define EK_STR_(x) #x
#define EK_STR(x) EK_STR_(x) /* a number's macro as a string literal */

/* ---- big-endian fields, ZigZag LEB128 words, base64 ----------------- */

static void put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* HdrHistogram's LEB128 stops at 9 bytes: the ninth carries 8 bits. */
static size_t put_word(uint8_t *p, int64_t value)
{
    uint64_t v = ((uint64_t)value << 1) ^ (value < 0 ? UINT64_MAX : 0);
    size_t n = 0;
    while (n < 8 && v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Returns the bytes used, or 0 when the word runs past end. */
static size_t get_word(const uint8_t *p, const uint8_t *end, int64_t *value)
{
    uint64_t v = 0;
    size_t n = 0;
    for (;;) {
        if (p + n >= end)
            return 0;
        uint8_t b = p[n];
        if (n == 8) {
            v |= (uint64_t)b << 56;
            n++;
            break;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * n);
        n++;
        if ((b & 0x80) == 0)
            break;
    }
    *value = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return n;
}

/* The 64 digits, then the padding at 64. */
static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
#define B64_PAD 64

static char *base64_encode(const uint8_t *in, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = b64_chars[i + 1 < n ? v >> 6 & 63 : B64_PAD];
        *o++ = b64_chars[i + 2 < n ? v & 63 : B64_PAD];
    }
    *o = '\0';
    return out;
}

/* Without a search of b64_chars: a file of histograms may be 256 MiB. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Into out (at least len * 3 / 4 bytes). Returns the length, or -1. */
static long base64_decode(const char *in, size_t len, uint8_t *out)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    long n = 0;
    size_t i = 0;
    for (; i < len && in[i] != '='; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    for (; i < len; i++) /* only padding may follow */
        if (in[i] != '=')
            return -1;
    return n;
}

/* ---- one histogram -------------------------------------------------- */

char *ek_hdr_encode(const struct ek_hist *h)
{
    size_t limit = 0; /* counts up to the last one not zero */
    for (size_t i = EK_HIST_BUCKETS; i-- > 0;)
        if (h->buckets[i] != 0) {
            limit = i + 1;
            break;
        }
    size_t raw_size = V2_HEADER + limit * WORD_MAX;
    uint8_t *raw = malloc(raw_size);
    uLongf packed_len = compressBound((uLong)raw_size);
    uint8_t *packed = malloc(COMPRESSED_HEADER + packed_len);
    char *text = NULL;
    if (raw == NULL || packed == NULL)
        goto out;
    size_t n = V2_HEADER;
    for (size_t i = 0; i < limit;) {
        uint64_t count = h->buckets[i++];
        int64_t zeros = 0;
        if (count == 0)
            for (zeros = 1; i < limit && h->buckets[i] == 0; i++)
                zeros++;
        n += put_word(raw + n, zeros > 1 ? -zeros : (int64_t)count);
    }
    double one = 1.0; /* integer-to-double value ratio */
    uint64_t one_bits;
    memcpy(&one_bits, &one, sizeof(one_bits));
    /* The highest trackable value need only hold what was recorded; a
     * reader sizes its counts from it. */
    uint64_t highest = h->count > 0 && h->max > 2 ? h->max : 2;
    put_be(raw, V2_COOKIE, 4);
    put_be(raw + 4, n - V2_HEADER, 4);
    put_be(raw + 8, 0, 4); /* normalizing index offset */
    put_be(raw + 12, EK_SIGNIFICANT_DIGITS, 4);
    put_be(raw + 16, 1, 8); /* lowest discernible value */
    put_be(raw + 24, highest, 8);
    put_be(raw + 32, one_bits, 8);
    if (compress2(packed + COMPRESSED_HEADER, &packed_len, raw, (uLong)n,
                  Z_DEFAULT_COMPRESSION) != Z_OK)
        goto out;
    put_be(packed, V2_COMPRESSED_COOKIE, 4);
    put_be(packed + 4, packed_len, 4);
    text = base64_encode(packed, COMPRESSED_HEADER + packed_len);
out:
    free(raw);
    free(packed);
    return text;
}

/* What an encoding's parameters make of counts index i: the lowest value
 * its bucket holds and the bucket's width (HdrHistogram's layout: a first
 * bucket of sub_count values, then per power of two sub_count / 2). */
struct layout {
    unsigned half_magnitude; /* log2(sub_count / 2) */
    unsigned unit_magnitude; /* log2(lowest discernible value) */
};

static bool layout_of(uint32_t digits, uint64_t lowest, struct layout *l)
{
    if (digits > 5 || lowest == 0)
        return false;
    uint64_t single_unit = 2;
    for (uint32_t i = 0; i < digits; i++)
        single_unit *= 10;
    unsigned magnitude = 0;
    while (((uint64_t)1 << magnitude) < single_unit)
        magnitude++;
    l->half_magnitude = (magnitude > 1 ? magnitude : 1) - 1;
    l->unit_magnitude = 63u - (unsigned)__builtin_clzll(lowest);
    return l->half_magnitude + l->unit_magnitude <= 62;
}

/* Returns false when index i lies past 2^63. */
static bool index_value(const struct layout *l, uint64_t i, uint64_t *low,
                        uint64_t *width)
{
    uint64_t half = (uint64_t)1 << l->half_magnitude;
    int64_t bucket = (int64_t)(i >> l->half_magnitude) - 1;
    uint64_t sub = (i & (half - 1)) + half;
    if (bucket < 0) {
        sub -= half;
        bucket = 0;
    }
    if (bucket > 63)
        return false;
    unsigned shift = (unsigned)bucket + l->unit_magnitude;
    if (shift + l->half_magnitude + 1 > 63)
        return false;
    *low = sub << shift;
    *width = (uint64_t)1 << shift;
    return true;
}

/* Takes one word from the words left to this histogram and from *budget
 * (NULL: none to take from). Returns 0, -EINVAL when the histogram has
 * none left, -E2BIG when the budget has none, with *why. */
static int take_word(struct ek_hdr_budget *budget, uint64_t *left,
                     const char **why)
{
    if (*left == 0) {
        *why = "more than " EK_STR(
            EK_HDR_WORDS_MAX) " counts in one "
                              "histogram (no real one comes near)";
        return -EINVAL;
    }
    if (budget != NULL && budget->words == 0) {
        *why = "more counts in all than the budget of words";
        return -E2BIG;
    }
    --*left;
    if (budget != NULL)
        budget->words--;
    return 0;
}

static int decode_counts(const uint8_t *raw, size_t n, struct ek_hist *h,
                         struct ek_hdr_budget *budget, const char **why)
{
    if (n < V2_HEADER || get_be(raw, 4) != V2_COOKIE) {
        *why = "not an HdrHistogram V2 encoding (a DoubleHistogram, or an "
               "older version)";
        return -EINVAL;
    }
    uint64_t payload = get_be(raw + 4, 4);
    struct layout l;
    if (payload > n - V2_HEADER) {
        *why = "histogram payload cut short";
        return -EINVAL;
    }
    if (get_be(raw + 8, 4) != 0) {
        *why = "shifted histograms (a normalizing index offset) are not "
               "read";
        return -EINVAL;
    }
    if (!layout_of((uint32_t)get_be(raw + 12, 4), get_be(raw + 16, 8), &l)) {
        *why = "significant digits or lowest value out of range";
        return -EINVAL;
    }
    const uint8_t *p = raw + V2_HEADER, *end = p + payload;
    /* Past 64 buckets every index lies beyond 2^63 (index_value says
     * so): a bound that keeps runs of zeros from wrapping the index. */
    const uint64_t max_index = (uint64_t)64 << l.half_magnitude;
    uint64_t index = 0, left = EK_HDR_WORDS_MAX;
    while (p < end) {
        int64_t word;
        size_t used = get_word(p, end, &word);
        if (used == 0) {
            *why = "a count runs past the payload";
            return -EINVAL;
        }
        int rc = take_word(budget, &left, why);
        if (rc < 0)
            return rc;
        p += used;
        if (word < 0) { /* a run of zeros */
            if (word == INT64_MIN || (uint64_t)-word > max_index - index) {
                *why = "a run of zeros past the histogram's end";
                return -EINVAL;
            }
            index += (uint64_t)-word;
            continue;
        }
        if ((uint64_t)word > (uint64_t)INT64_MAX - h->count) {
            *why = "counts past 2^63 in all";
            return -EINVAL;
        }
        uint64_t low, width;
        if (index >= max_index || !index_value(&l, index, &low, &width)) {
            *why = "a count lies beyond 2^63";
            return -EINVAL;
        }
        /* The middle of the bucket: its lowest value for one of ours
         * (width 1 below 256, and the same bucket either way above). */
        ek_hist_add_n(h, low + width / 2, (uint64_t)word);
        index++;
    }
    return 0;
}

int ek_hdr_decode_add(const char *text, size_t len, struct ek_hist *h,
                      struct ek_hdr_budget *budget, const char **why)
{
    uint8_t *packed = malloc(len / 4 * 3 + 3);
    uint8_t *raw = NULL;
    int rc = -ENOMEM;
    *why = "out of memory";
    if (packed == NULL)
        return rc;
    long n = base64_decode(text, len, packed);
    rc = -EINVAL;
    if (n < COMPRESSED_HEADER) {
        *why = "not base64, or too short for a histogram";
        goto out;
    }
    uint32_t cookie = (uint32_t)get_be(packed, 4);
    uint64_t packed_len = get_be(packed + 4, 4);
    if (cookie != V2_COMPRESSED_COOKIE) {
        *why = "not a compressed HdrHistogram V2 histogram";
        goto out;
    }
    if (packed_len > (uint64_t)n - COMPRESSED_HEADER) {
        *why = "compressed histogram cut short";
        goto out;
    }
    /* Inflate with a growing buffer, bounded: a few bytes of deflate can
     * claim gigabytes. */
    size_t max = DECODED_MAX;
    if (budget != NULL && budget->bytes < max)
        max = (size_t)budget->bytes;
    size_t cap = 4096;
    z_stream z = {.next_in = packed + COMPRESSED_HEADER,
                  .avail_in = (uInt)packed_len};
    if (inflateInit(&z) != Z_OK) {
        *why = "out of memory";
        rc = -ENOMEM;
        goto out;
    }
    int zr = Z_OK;
    while (zr == Z_OK) {
        size_t room = cap < max ? cap : max;
        uint8_t *bigger = room > z.total_out ? realloc(raw, room) : NULL;
        if (bigger == NULL && room > z.total_out) {
            *why = "out of memory";
            rc = -ENOMEM;
        } else if (bigger == NULL && max == DECODED_MAX) {
            *why = "histogram inflates past 18 MiB (more than " EK_STR(
                EK_HDR_WORDS_MAX) " words)";
        } else if (bigger == NULL) {
            *why = "the histograms inflate past the budget of bytes";
            rc = -E2BIG;
        }
        if (bigger == NULL)
            break;
        raw = bigger;
        z.next_out = raw + z.total_out;
        z.avail_out = (uInt)(room - z.total_out);
        zr = inflate(&z, Z_NO_FLUSH);
        cap *= 2;
    }
    size_t raw_len = z.total_out;
    inflateEnd(&z);
    if (zr != Z_STREAM_END) {
        if (zr != Z_OK)
            *why = "the compressed data is damaged";
        goto out;
    }
    if (budget != NULL)
        budget->bytes -= raw_len;
    rc = decode_counts(raw, raw_len, h, budget, why);
out:
    free(packed);
    free(raw);
    return rc;
}

/* ---- the interval log ---------------------------------------------- */

int ek_hdr_log_begin(FILE *f, double start_s, const char *run_id)
{
    char date[64] = "";
    time_t t = (time_t)start_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(date, sizeof(date), "%a %b %d %H:%M:%S UTC %Y", &tm);
    if (run_id != NULL && fprintf(f, "#[RunId: %s]\n", run_id) < 0)
        return -EIO;
    if (fprintf(f,
                "#[Logged with echokit bench]\n"
                "#[Histogram log format version 1.3]\n"
                "#[StartTime: %.3f (seconds since epoch), %s]\n"
                "#[BaseTime: %.3f (seconds since epoch)]\n"
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
                "\"Interval_Compressed_Histogram\"\n",
                start_s, date, start_s) < 0)
        return -EIO;
    return 0;
}

int ek_hdr_log_interval(FILE *f, const char *tag, double start_s,
                        double length_s, const struct ek_hist *h)
{
    char *text = ek_hdr_encode(h);
    if (text == NULL)
        return -ENOMEM;
    double max_ms = h->count > 0 ? (double)h->max / 1e6 : 0.0;
    int rc = fprintf(f, "%s%s%s%.3f,%.3f,%.3f,%s\n", tag ? "Tag=" : "",
                     tag ? tag : "", tag ? "," : "", start_s, length_s, max_ms,
                     text);
    free(text);
    return rc < 0 ? -EIO : 0;
}

/* The histogram of tag (tag_len bytes) in *h, made on its first line.
 * Returns 0, or -EINVAL / -ENOMEM with *why. */
static int log_tag_hist(struct ek_hdr_log *log, const char *tag, size_t tag_len,
                        struct ek_hist **h, const char **why)
{
    if (tag_len >= sizeof(log->tag[0])) {
        *why = "a tag longer than 31 characters";
        return -EINVAL;
    }
    for (size_t i = 0; i < log->ntags; i++)
        if (strlen(log->tag[i]) == tag_len &&
            memcmp(log->tag[i], tag, tag_len) == 0) {
            *h = log->hist[i];
            return 0;
        }
    if (log->ntags == EK_HDR_LOG_TAGS) {
        *why = "more than 8 tags";
        return -EINVAL;
    }
    if ((*h = malloc(sizeof(**h))) == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    ek_hist_reset(*h);
    memcpy(log->tag[log->ntags], tag, tag_len);
    log->tag[log->ntags][tag_len] = '\0';
    log->hist[log->ntags++] = *h;
    return 0;
}

/* A number at *p, then a comma. */
static bool field(char **p, double *v)
{
    char *end;
    *v = strtod(*p, &end);
    if (end == *p || *end != ',' || !isfinite(*v))
        return false;
    *p = end + 1;
    return true;
}

static int log_line(struct ek_hdr_log *log, char *s, double start_time,
                    double base_time, struct ek_hdr_budget *budget,
                    const char **why)
{
    const char *tag = "";
    size_t tag_len = 0;
    if (strncmp(s, "Tag=", 4) == 0) {
        tag = s + 4;
        char *comma = strchr(s + 4, ',');
        if (comma == NULL) {
            *why = "a tag without its fields";
            return -EINVAL;
        }
        tag_len = (size_t)(comma - tag);
        s = comma + 1;
    }
    double start, length, max;
    if (!field(&s, &start) || !field(&s, &length) || !field(&s, &max)) {
        *why = "expected START,LENGTH,MAX,HISTOGRAM";
        return -EINVAL;
    }
    struct ek_hist *h;
    int rc = log_tag_hist(log, tag, tag_len, &h, why);
    if (rc < 0)
        return rc;
    rc = ek_hdr_decode_add(s, strcspn(s, "\r\n"), h, budget, why);
    if (rc < 0)
        return rc;
    /* HdrHistogram's rule: a time stamp less than a year since the epoch
     * is relative to the base time (or the start time, without one). */
    double origin = base_time > 0 ? base_time : start_time;
    if (start < 365.25 * 86400)
        start += origin;
    if (log->intervals++ == 0 || start < log->first_s)
        log->first_s = start;
    if (start + length > log->last_s)
        log->last_s = start + length;
    return 0;
}

/* A "#[RunId: ID]" line (ID printable, no spaces, under 64 bytes) into
 * log->run_id: 0, or -EINVAL with *why (not such a line, or a second run
 * id: a log holds one run). */
static int log_run_id(struct ek_hdr_log *log, const char *s, const char **why)
{
    size_t n = strcspn(s, "] \t\r\n");
    bool printable = true;
    for (size_t i = 0; i < n; i++)
        printable &= s[i] > ' ' && s[i] < 0x7f;
    if (n == 0 || n >= sizeof(log->run_id) || s[n] != ']' || !printable) {
        *why = "a #[RunId: ...] line that is not one";
        return -EINVAL;
    }
    if (log->run_id[0] != '\0' &&
        (strlen(log->run_id) != n || memcmp(log->run_id, s, n) != 0)) {
        *why = "a second #[RunId: ...]: a log holds one run (two logs put "
               "together? give each its own file)";
        return -EINVAL;
    }
    memcpy(log->run_id, s, n);
    log->run_id[n] = '\0';
    return 0;
}

int ek_hdr_log_read(FILE *f, struct ek_hdr_log *log,
                    struct ek_hdr_budget *budget, const char **why,
                    size_t *line)
{
    memset(log, 0, sizeof(*log));
    char *buf = NULL;
    size_t cap = 0;
    double start_time = 0, base_time = 0;
    int rc = 0;
    *line = 0;
    while (rc == 0 && getline(&buf, &cap, f) >= 0) {
        ++*line;
        if (strncmp(buf, "#[StartTime: ", 13) == 0)
            start_time = strtod(buf + 13, NULL);
        else if (strncmp(buf, "#[BaseTime: ", 12) == 0)
            base_time = strtod(buf + 12, NULL);
        else if (strncmp(buf, "#[RunId: ", 9) == 0)
            rc = log_run_id(log, buf + 9, why);
        else if (buf[0] != '#' && buf[0] != '"' &&
                 buf[strspn(buf, " \t\r\n")] != '\0')
            rc = log_line(log, buf, start_time, base_time, budget, why);
    }
    free(buf);
    if (rc == 0 && ferror(f)) {
        *why = "read error";
        rc = -EIO;
    }
    if (rc == 0 && log->intervals == 0) {
        *why = "no histogram in it";
        rc = -EINVAL;
    }
    return rc;
}

const struct ek_hist *ek_hdr_log_hist(const struct ek_hdr_log *log,
                                      const char *tag)
{
    for (size_t i = 0; i < log->ntags; i++)
        if (strcmp(log->tag[i], tag) == 0)
            return log->hist[i];
    return NULL;
}

void ek_hdr_log_free(struct ek_hdr_log *log)
{
    for (size_t i = 0; i < log->ntags; i++)
        free(log->hist[i]);
    memset(log, 0, sizeof(*log));
}
