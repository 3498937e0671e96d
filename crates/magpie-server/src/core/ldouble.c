/* INCRBYFLOAT's arithmetic in long double, byte for byte as Redis 7.0 does it (util.c:
 * string2ld and ld2string in LD_STR_HUMAN mode). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LONG_DOUBLE_CHARS (5 * 1024)

/* Parses a decimal as Redis's string2ld: no leading space, nothing trailing (a NUL byte
 * included), no NaN, no overflow. Returns 1 on success. */
static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    char *end;
    long double v;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtold(buf, &end);
    /* end - buf != len: a NUL byte inside the argument ends strtold, not the argument. */
    if (isspace((unsigned char)buf[0]) || end[0] != '\0' || (size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
        errno == EINVAL || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* Adds `incr` to `value` (value may be NULL: 0). Writes the result as Redis prints it into
 * `out` (at least MAX_LONG_DOUBLE_CHARS bytes) and returns its length, or
 * -1 if value is not a float, -2 if incr is not, -3 if the sum is NaN or infinite. */
int magpie_ld_add(const char *value, size_t vlen, const char *incr, size_t ilen, char *out, size_t outlen) {
    long double v = 0, i;
    int l;
    if (value != NULL && !parse_ld(value, vlen, &v)) return -1;
    if (!parse_ld(incr, ilen, &i)) return -2;
    v += i;
    if (isnan(v) || isinf(v)) return -3;
    l = snprintf(out, outlen, "%.17Lf", v);
    if (l < 0 || (size_t)l + 1 > outlen) return -3;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') { p--; l--; }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; l = 1; }
    return l;
}

/* A blocking command's timeout as Redis 7.0 reads it (timeout.c, getTimeoutFromObjectOrReply
 * with UNIT_SECONDS): seconds as a long double, times 1000, rounded up, cast to long long (on
 * x86-64 a value out of range, infinities included, becomes LLONG_MIN, which Redis then calls
 * negative). Returns 0 when the text is not a float. */
int magpie_ld_timeout_ms(const char *s, size_t len, long long *ms) {
    long double v;
    if (!parse_ld(s, len, &v)) return 0;
    v = ceill(v * 1000.0L);
    if (v >= -9223372036854775808.0L && v < 9223372036854775808.0L)
        *ms = (long long)v;
    else
        *ms = (-9223372036854775807LL - 1);
    return 1;
}
