/* eff_test.h - the tiny harness shared by every eff test program.

   Each test program:
       #include "eff_test.h"
       int main(void) {
           EFF_TEST_BEGIN("test_tensor");
           EFF_CHECK(1 + 1 == 2, "arithmetic");
           EFF_CHECK_NMSE("gelu", y, ref, n, 1e-10);
           return EFF_TEST_END();     // prints "N passed, N failed", returns 1 on failure
       }

   Numbers are compared by normalized mean squared error,
   nmse(a, ref) = sum (a - ref)^2 / sum ref^2 (ggml's test-backend-ops measure),
   after checking that every value is finite. Gradients are checked against
   central finite differences of a float64 reference (eff_test_fd_grad). */
#ifndef EFF_TEST_H
#define EFF_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define EFF_TEST_FN static __attribute__((unused))
#else
#define EFF_TEST_FN static
#endif

typedef struct eff_test_state {
    const char *name;
    int passed, failed;
    int verbose;
} eff_test_state;

EFF_TEST_FN eff_test_state eff_test_g;   /* test programs only; the library has no globals */

#define EFF_TEST_BEGIN(name_)                                                    \
    do {                                                                         \
        eff_test_g.name = (name_);                                               \
        eff_test_g.verbose = getenv("EFF_TEST_VERBOSE") != NULL;                 \
        printf("== %s\n", (name_));                                              \
    } while (0)

EFF_TEST_FN int eff_test_report(int ok, const char *file, int line, const char *what) {
    if (ok) {
        eff_test_g.passed++;
        if (eff_test_g.verbose) printf("  ok   %s\n", what);
    } else {
        eff_test_g.failed++;
        printf("  FAIL %s (%s:%d)\n", what, file, line);
    }
    fflush(stdout);
    return ok;
}

/* EFF_CHECK(cond, printf-style description) */
#define EFF_CHECK(cond, ...)                                                     \
    do {                                                                         \
        char eff_test_msg_[1024];                                                 \
        snprintf(eff_test_msg_, sizeof eff_test_msg_, __VA_ARGS__);              \
        eff_test_report((cond) ? 1 : 0, __FILE__, __LINE__, eff_test_msg_);      \
    } while (0)

/* Checks that status s equals the expected one and, for errors, that the
   context has a message. */
#define EFF_CHECK_STATUS(ctx, s, expected, what)                                 \
    do {                                                                         \
        int s_ = (int)(s), e_ = (int)(expected);                                 \
        const char *m_ = eff_ctx_last_error(ctx);                                \
        EFF_CHECK(s_ == e_ && (e_ == 0 || (m_ && m_[0])), "%.200s: status %s (%d), expected %s%s%.600s", (what), \
                  eff_status_str((eff_status)s_), s_, eff_status_str((eff_status)e_), \
                  s_ ? " | " : "", s_ ? m_ : "");                                \
    } while (0)

EFF_TEST_FN int eff_test_all_finite_f(const float *a, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++)
        if (!(a[i] == a[i]) || a[i] == INFINITY || a[i] == -INFINITY) return 0;
    return 1;
}

/* nmse of a float result against a double reference; NaN/Inf in a gives +inf. */
EFF_TEST_FN double eff_test_nmse(const float *a, const double *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    int64_t i;
    if (!eff_test_all_finite_f(a, n)) return INFINITY;
    for (i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}
EFF_TEST_FN double eff_test_nmse_ff(const float *a, const float *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    int64_t i;
    if (!eff_test_all_finite_f(a, n)) return INFINITY;
    for (i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}

#define EFF_CHECK_NMSE(what, a, ref, n, tol)                                     \
    do {                                                                         \
        double e_ = eff_test_nmse((a), (ref), (n));                              \
        EFF_CHECK(e_ <= (tol), "%s: nmse %.3g <= %.1g", (what), e_, (double)(tol)); \
    } while (0)

/* Central finite differences of f (a float64 function of x) at x:
   grad[i] = (f(x + h e_i) - f(x - h e_i)) / 2h. x is restored. */
typedef double (*eff_test_fn64)(void *user);
EFF_TEST_FN void eff_test_fd_grad(eff_test_fn64 f, void *user, double *x, int64_t n, double h, double *grad) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double x0 = x[i], fp, fm;
        x[i] = x0 + h; fp = f(user);
        x[i] = x0 - h; fm = f(user);
        x[i] = x0;
        grad[i] = (fp - fm) / (2.0 * h);
    }
}

/* Deterministic test data (splitmix64), independent of the library's RNG. */
EFF_TEST_FN uint64_t eff_test_rng_state = 0x1234567ull;
EFF_TEST_FN void eff_test_seed(uint64_t s) { eff_test_rng_state = s; }
EFF_TEST_FN double eff_test_uniform(void) {   /* [-1, 1) */
    uint64_t z = (eff_test_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}
EFF_TEST_FN void eff_test_fill(float *x, int64_t n, double scale) {
    int64_t i;
    for (i = 0; i < n; i++) x[i] = (float)(scale * eff_test_uniform());
}

EFF_TEST_FN int eff_test_end(void) {
    printf("%d passed, %d failed\n", eff_test_g.passed, eff_test_g.failed);
    return eff_test_g.failed ? 1 : 0;
}
#define EFF_TEST_END() eff_test_end()

#endif /* EFF_TEST_H */
