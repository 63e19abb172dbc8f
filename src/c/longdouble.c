/* INCRBYFLOAT's arithmetic exactly as Redis does it: C long doubles, parsed by strtold with
 * Redis's string2ld rules and printed by ld2string's LD_STR_HUMAN mode ("%.17Lf", trailing
 * zeros trimmed). Rust has no long double, so this small file does it with the same libc. */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LONG_DOUBLE_CHARS (5 * 1024)

/* Redis's string2ld: 1 when s[0..slen) is a long double, stored in *dp. */
static int string2ld(const char *s, size_t slen, long double *dp) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    long double value;
    char *eptr;
    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';
    errno = 0;
    value = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[0]) || eptr[0] != '\0' || (size_t)(eptr - buf) != slen ||
        ((errno == ERANGE) && (value == HUGE_VALL || value == -HUGE_VALL || fpclassify(value) == FP_ZERO)) ||
        errno == EINVAL || isnan(value))
        return 0;
    *dp = value;
    return 1;
}

int kura_is_long_double(const char *s, size_t slen) {
    long double v;
    return string2ld(s, slen, &v);
}

/* a + b printed into out. Returns the length, -1 when a or b is not a float, -2 when the sum
 * is NaN or infinite, -3 when out is too small. */
long kura_add_long_doubles(const char *a, size_t alen, const char *b, size_t blen, char *out, size_t cap) {
    long double x, y;
    if (!string2ld(a, alen, &x) || !string2ld(b, blen, &y)) return -1;
    long double value = x + y;
    if (isnan(value) || isinf(value)) return -2;
    int l = snprintf(out, cap, "%.17Lf", value);
    if (l < 0 || (size_t)l + 1 > cap) return -3;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') {
            p--;
            l--;
        }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        l = 1;
    }
    return l;
}
