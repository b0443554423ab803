/*
 * ref_rr: an independent open-loop request/response client, the
 * reference bench's latency is checked against (cli.bench_agreement).
 * Nothing of echokit's: one TCP connection (TCP_NODELAY), 64-byte
 * messages, each sent at its time on a fixed schedule, then its echo
 * read with a blocking read; the round trip runs from the actual send.
 *
 *   ref_rr HOST PORT RATE COUNT [spin]
 *
 * Waits with clock_nanosleep(TIMER_ABSTIME) and the least timer slack,
 * and for the echo with a blocking read; or, with "spin", by reading the
 * clock until the time comes and the socket until the echo does, never
 * sleeping (as bench --spin-us does when it spans the interval): like is
 * compared with like. Prints "p50 NS p90 NS" of the round trips on
 * stdout; exit 0, or 1 with the reason on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The run: count messages at rate on fd, round trips into rtt. Returns
 * 0, or 1 after saying why. */
static int run(int fd, double rate, long count, int spin, int64_t *rtt)
{
    char msg[64], back[64];
    memset(msg, 'x', sizeof(msg));
    int64_t start = now_ns() + 1000000, interval = (int64_t)(1e9 / rate);
    for (long i = 0; i < count; i++) {
        int64_t due = start + i * interval;
        if (spin) {
            while (now_ns() < due)
                ;
        } else {
            struct timespec ts = {due / 1000000000, due % 1000000000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) !=
                   0)
                ;
        }
        int64_t sent = now_ns();
        if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
            perror("ref_rr: write");
            return 1;
        }
        size_t got = 0;
        while (got < sizeof(back)) {
            ssize_t n = recv(fd, back + got, sizeof(back) - got,
                             spin ? MSG_DONTWAIT : 0);
            if (n < 0 && spin && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            if (n <= 0) {
                perror("ref_rr: read");
                return 1;
            }
            got += (size_t)n;
        }
        rtt[i] = now_ns() - sent;
        if (memcmp(msg, back, sizeof(msg)) != 0) {
            fprintf(stderr, "ref_rr: the echo differs\n");
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: ref_rr HOST PORT RATE COUNT [spin]\n");
        return 2;
    }
    double rate = atof(argv[3]);
    long count = atol(argv[4]);
    int spin = argc > 5 && strcmp(argv[5], "spin") == 0;
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (rate <= 0 || count <= 0 ||
        inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
        return 2;
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        perror("ref_rr: connect");
        return 1;
    }
    int64_t *rtt = calloc((size_t)count, sizeof(*rtt));
    int status = rtt == NULL ? 1 : run(fd, rate, count, spin, rtt);
    close(fd);
    if (status == 0) {
        qsort(rtt, (size_t)count, sizeof(*rtt), cmp);
        printf("p50 %lld p90 %lld\n", (long long)rtt[(count - 1) / 2],
               (long long)rtt[(count * 9 - 1) / 10]);
    }
    free(rtt);
    return status;
}
