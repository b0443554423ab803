/* Unit test of ek_pattern: offsets compose, and damage is found. */
#include "check.h"
#include "ek_pattern.h"

static unsigned char whole[1 << 16], part[1 << 16];

static void test_offsets_compose(void)
{
    ek_pattern_fill(7, 0, whole, sizeof(whole));
    /* Any split of the stream gives the same bytes. */
    for (size_t off = 0; off < 200; off += 3)
        for (size_t n = 0; n < 40; n += 7) {
            ek_pattern_fill(7, off, part, n);
            CHECK(memcmp(part, whole + off, n) == 0);
            CHECK_INT(ek_pattern_check(7, off, whole + off, n), ==, n);
        }
    CHECK_INT(ek_pattern_check(7, 0, whole, sizeof(whole)), ==, sizeof(whole));
}

static void test_damage_is_found(void)
{
    ek_pattern_fill(7, 1000, whole, 4096);
    /* One flipped bit, anywhere. */
    for (size_t i = 0; i < 4096; i += 97) {
        whole[i] ^= 0x10;
        CHECK_INT(ek_pattern_check(7, 1000, whole, 4096), ==, i);
        whole[i] ^= 0x10;
    }
    /* Another connection's stream, or the right one shifted by a byte
     * (a byte lost or duplicated), does not pass. */
    CHECK(ek_pattern_check(8, 1000, whole, 4096) < 16);
    CHECK(ek_pattern_check(7, 1001, whole, 4096) < 16);
    CHECK(ek_pattern_check(7, 999, whole, 4096) < 16);
    /* Reordered 8-byte words do not pass either. */
    unsigned char tmp[8];
    memcpy(tmp, whole + 64, 8);
    memcpy(whole + 64, whole + 72, 8);
    memcpy(whole + 72, tmp, 8);
    CHECK(ek_pattern_check(7, 1000, whole, 4096) == 64);
}

int main(void)
{
    test_offsets_compose();
    test_damage_is_found();
    printf("PASS: pattern\n");
    return 0;
}
