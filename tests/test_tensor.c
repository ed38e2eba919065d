/* test_tensor.c - eff_tensor.h: fp16/bf16 conversions (exhaustive), context
   (allocator, accounting, errors, RNG, arena, device state), tensor metadata,
   sgemm against the naive triple loop, every core op forward against a float64
   reference and backward against central finite differences of that reference,
   optimizers against torch.optim formulas, JSON and safetensors (round trips and
   malformed files).

   EFF_TEST_QUICK=1 shrinks the large cases (for ASan/UBSan runs). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* unlink, getpid in the test only */
#endif
#define EFF_TENSOR_IMPLEMENTATION
#include "eff_tensor.h"
#include "eff_test.h"
#include <float.h>
#include <limits.h>
#include <time.h>
#ifdef EFF__POSIX
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

static eff_ctx *g_ctx;
static int g_quick;

/* ---------------------------------------------------------------------------
   Small helpers
   --------------------------------------------------------------------------- */
EFF_TEST_FN float *fnew(int64_t n, double scale) {
    float *p = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    eff_test_fill(p, n, scale);
    return p;
}
EFF_TEST_FN double *dnew(int64_t n) { return (double *)calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }
EFF_TEST_FN double *dfrom(const float *f, int64_t n) {
    double *d = dnew(n);
    int64_t i;
    for (i = 0; i < n; i++) d[i] = f[i];
    return d;
}
EFF_TEST_FN void dtof(float *f, const double *d, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) f[i] = (float)d[i];
}
EFF_TEST_FN int has_substr(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }
/* nmse of a float result against the FD gradient of f at x. */
EFF_TEST_FN double fd_nmse(eff_test_fn64 f, void *user, double *x, int64_t n, const float *got) {
    double *g = dnew(n), e;
    eff_test_fd_grad(f, user, x, n, 1e-5, g);
    e = eff_test_nmse(got, g, n);
    free(g);
    return e;
}
EFF_TEST_FN int bits_equal_f(float a, float b) { return memcmp(&a, &b, 4) == 0; }

/* ===========================================================================
   1. fp16 / bf16
   =========================================================================== */
/* Independent decoder: value of an IEEE binary16 pattern. */
static double ref_f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
    v = e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024 + m), e - 25);
    return s ? -v : v;
}
/* Round-to-nearest-even of a finite double to a format with `mbits` explicit
   mantissa bits, minimum normal exponent emin and overflow threshold 2^(emax+1). */
static double ref_round(double x, int mbits, int emin, int emax) {
    double a = fabs(x), q, r;
    int E;
    if (a == 0.0) return x;
    frexp(a, &E);                       /* a = f * 2^E, f in [0.5, 1): floor(log2 a) = E - 1 */
    if (E - 1 < emin) q = ldexp(1.0, emin - mbits);
    else q = ldexp(1.0, E - 1 - mbits);
    r = nearbyint(a / q) * q;           /* default rounding mode: ties to even */
    if (r >= ldexp(1.0, emax + 1)) r = INFINITY;
    return x < 0 ? -r : r;
}
static double ref_f16_round(float f) { return ref_round((double)f, 10, -14, 15); }
static double ref_bf16_round(float f) { return ref_round((double)f, 7, -126, 127); }

/* Checks eff_fp32_to_fp16(f) against the reference; returns 1 if ok. */
static int f16_ok(float f) {
    uint16_t h = eff_fp32_to_fp16(f);
    double want = ref_f16_round(f), got = ref_f16_value(h);
    if (f != f) return got != got && ((h >> 15) == (eff__f2u(f) >> 31));
    return got == want && (h >> 15) == (eff__f2u(f) >> 31);
}
static int bf16_ok(float f) {
    uint16_t h = eff_fp32_to_bf16(f);
    double want = ref_bf16_round(f), got = (double)eff__u2f((uint32_t)h << 16);
    if (f != f) return got != got && ((h >> 15) == (eff__f2u(f) >> 31));
    return got == want && (h >> 15) == (eff__f2u(f) >> 31);
}

static void test_fp16_bf16(void) {
    uint32_t h, u;
    int64_t bad_dec = 0, bad_rt = 0, bad_nan = 0, bad_half = 0, bad_stride = 0, bad_row = 0, n_half = 0;
    int64_t bad_bdec = 0, bad_brt = 0, bad_bhalf = 0, bad_bstride = 0, bad_brow = 0;
    uint16_t *hs = (uint16_t *)malloc(65536 * sizeof(uint16_t)), *hs2 = (uint16_t *)malloc(65536 * sizeof(uint16_t));
    float *fs = (float *)malloc(65536 * sizeof(float));
    uint32_t step = g_quick ? 40961u : 4099u;

    /* every fp16 pattern: decode matches the independent decoder, round trips, NaN stays NaN */
    for (h = 0; h < 65536; h++) {
        float f = eff_fp16_to_fp32((uint16_t)h);
        double ref = ref_f16_value((uint16_t)h);
        int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);
        hs[h] = (uint16_t)h;
        if (is_nan) {
            if (f == f) bad_nan++;
            else {
                uint16_t back = eff_fp32_to_fp16(f);
                if (!(((back >> 10) & 31) == 31 && (back & 1023)) || (back >> 15) != (h >> 15)) bad_nan++;
            }
            continue;
        }
        if ((double)f != ref || (eff__f2u(f) >> 31) != (h >> 15)) bad_dec++;
        if (eff_fp32_to_fp16(f) != h) bad_rt++;
    }
    EFF_CHECK(bad_dec == 0, "fp16->fp32 matches the reference decoder on all 63488 non-NaN patterns (%lld bad)", (long long)bad_dec);
    EFF_CHECK(bad_rt == 0, "fp16->fp32->fp16 round-trips every non-NaN pattern (%lld bad)", (long long)bad_rt);
    EFF_CHECK(bad_nan == 0, "fp16 NaN patterns stay NaN (sign kept) through fp32 and back (%lld bad)", (long long)bad_nan);

    /* the row (SIMD) conversion agrees with the scalar one */
    eff_fp16_to_fp32_row(hs, fs, 65536);
    for (h = 0; h < 65536; h++) {
        float f = eff_fp16_to_fp32((uint16_t)h);
        if (f == f ? !bits_equal_f(fs[h], f) : fs[h] == fs[h]) bad_row++;
    }
    eff_fp32_to_fp16_row(fs, hs2, 65536);
    for (h = 0; h < 65536; h++) {
        int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (!is_nan && hs2[h] != h) bad_row++;
    }
    EFF_CHECK(bad_row == 0, "fp16 row conversions agree with the scalar ones on all patterns (%lld bad)", (long long)bad_row);

    /* fp32 -> fp16: every halfway point between neighbouring fp16 values, and one f32 ulp either side */
    for (h = 0; h < 0x7c00; h++) {
        double a = ref_f16_value((uint16_t)h), b = h + 1 < 0x7c00 ? ref_f16_value((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((a + b) / 2), lo = nextafterf(mid, -INFINITY), hi = nextafterf(mid, INFINITY);
        if ((double)mid != (a + b) / 2) { bad_half++; continue; }   /* midpoints are exact in f32 */
        n_half++;
        if (!f16_ok(mid) || !f16_ok(-mid) || !f16_ok(lo) || !f16_ok(-lo) || !f16_ok(hi) || !f16_ok(-hi)) bad_half++;
    }
    EFF_CHECK(bad_half == 0 && n_half == 0x7c00, "fp32->fp16 round-to-nearest-even at all %lld halfway cases (+-1 ulp, both signs; %lld bad)",
              (long long)n_half, (long long)bad_half);
    /* a stride over all float bit patterns (normals, subnormals, NaN, Inf) */
    for (u = 0; u < 0xffffffffu - step; u += step) {
        float f = eff__u2f(u);
        if (!f16_ok(f)) bad_stride++;
        if (!bf16_ok(f)) bad_bstride++;
    }
    EFF_CHECK(bad_stride == 0, "fp32->fp16 matches the RNE reference over a stride of all float patterns (%lld bad)", (long long)bad_stride);
    EFF_CHECK(bad_bstride == 0, "fp32->bf16 matches the RNE reference over a stride of all float patterns (%lld bad)", (long long)bad_bstride);
    /* named edge cases */
    EFF_CHECK(eff_fp32_to_fp16(65504.0f) == 0x7bff, "65504 is fp16's max finite (0x%04x)", eff_fp32_to_fp16(65504.0f));
    EFF_CHECK(eff_fp32_to_fp16(65519.996f) == 0x7bff, "65519.996 rounds down to 65504");
    EFF_CHECK(eff_fp32_to_fp16(65520.0f) == 0x7c00, "65520 overflows to +inf (0x%04x)", eff_fp32_to_fp16(65520.0f));
    EFF_CHECK(eff_fp32_to_fp16(-65520.0f) == 0xfc00, "-65520 overflows to -inf");
    EFF_CHECK(eff_fp32_to_fp16(1e30f) == 0x7c00 && eff_fp32_to_fp16(INFINITY) == 0x7c00 && eff_fp32_to_fp16(-INFINITY) == 0xfc00,
              "large values and inf map to inf");
    EFF_CHECK(eff_fp32_to_fp16(-0.0f) == 0x8000 && eff_fp32_to_fp16(0.0f) == 0, "-0 keeps its sign");
    EFF_CHECK(eff_fp32_to_fp16(ldexpf(1.0f, -24)) == 1 && eff_fp32_to_fp16(ldexpf(1.0f, -25)) == 0 &&
              eff_fp32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 1 && eff_fp32_to_fp16(ldexpf(3.0f, -25)) == 2,
              "fp16 subnormal boundary: 2^-24 -> 1, 2^-25 -> 0 (tie to even), just above -> 1, 3*2^-25 -> 2");
    EFF_CHECK(eff_fp32_to_fp16(ldexpf(1.0f, -14)) == 0x0400 && eff_fp32_to_fp16(ldexpf(1023.5f, -24)) == 0x0400,
              "smallest normal 2^-14 and the carry from the largest subnormal");
    EFF_CHECK(eff_fp32_to_fp16(FLT_MIN) == 0 && eff_fp32_to_fp16(eff__u2f(0x80000001u)) == 0x8000, "f32 subnormals flush to signed zero");
    {
        uint16_t n = eff_fp32_to_fp16(NAN), nn = eff_fp32_to_fp16(-NAN);
        EFF_CHECK(((n >> 10) & 31) == 31 && (n & 1023) && (n & 0x200), "NaN -> quiet fp16 NaN (0x%04x)", n);
        EFF_CHECK((nn & 0x8000) && (nn & 1023), "-NaN keeps its sign (0x%04x)", nn);
        /* signalling NaN with payload only in low bits must not become inf */
        n = eff_fp32_to_fp16(eff__u2f(0x7f800001u));
        EFF_CHECK(((n >> 10) & 31) == 31 && (n & 1023), "f32 sNaN 0x7f800001 stays NaN in fp16 (0x%04x)", n);
    }

    /* bf16: every pattern decodes to the top half of an f32; non-NaN patterns round-trip */
    for (h = 0; h < 65536; h++) {
        float f = eff_bf16_to_fp32((uint16_t)h);
        int is_nan = ((h >> 7) & 255) == 255 && (h & 127);
        if (eff__f2u(f) != (h << 16)) bad_bdec++;
        if (is_nan) { uint16_t b = eff_fp32_to_bf16(f); if (!(((b >> 7) & 255) == 255 && (b & 127)) || (b >> 15) != (h >> 15)) bad_brt++; }
        else if (eff_fp32_to_bf16(f) != h) bad_brt++;
        hs[h] = (uint16_t)h;
    }
    EFF_CHECK(bad_bdec == 0, "bf16->fp32 of all 65536 patterns (%lld bad)", (long long)bad_bdec);
    EFF_CHECK(bad_brt == 0, "bf16->fp32->bf16 round-trips every pattern, NaN stays NaN (%lld bad)", (long long)bad_brt);
    eff_bf16_to_fp32_row(hs, fs, 65536);
    for (h = 0; h < 65536; h++) if (eff__f2u(fs[h]) != (h << 16)) bad_brow++;
    eff_fp32_to_bf16_row(fs, hs2, 65536);
    for (h = 0; h < 65536; h++) {
        int is_nan = ((h >> 7) & 255) == 255 && (h & 127);
        if (!is_nan && hs2[h] != h) bad_brow++;
    }
    EFF_CHECK(bad_brow == 0, "bf16 row conversions agree with the scalar ones (%lld bad)", (long long)bad_brow);
    /* bf16 halfway cases: low 16 bits exactly 0x8000, and +-1 */
    for (u = 0; u < 0xffffffffu - step; u += step) {
        uint32_t m = (u & 0xffff0000u) | 0x8000u;
        if (!bf16_ok(eff__u2f(m)) || !bf16_ok(eff__u2f(m - 1)) || !bf16_ok(eff__u2f(m + 1))) bad_bhalf++;
    }
    EFF_CHECK(bad_bhalf == 0, "fp32->bf16 round-to-nearest-even at halfway cases (%lld bad)", (long long)bad_bhalf);
    EFF_CHECK(eff_fp32_to_bf16(FLT_MAX) == 0x7f80, "FLT_MAX rounds to bf16 inf");
    EFF_CHECK(eff_fp32_to_bf16(-0.0f) == 0x8000, "bf16 -0 keeps its sign");
    {
        uint16_t n = eff_fp32_to_bf16(eff__u2f(0x7f800001u));
        EFF_CHECK(((n >> 7) & 255) == 255 && (n & 127), "f32 sNaN 0x7f800001 stays NaN in bf16 (0x%04x)", n);
    }
    free(hs); free(hs2); free(fs);
}

/* ===========================================================================
   2. Context
   =========================================================================== */
typedef struct { int64_t n_alloc, n_free, live; int fail_after; } counting_alloc;
static void *cnt_alloc(size_t size, void *user) {
    counting_alloc *c = (counting_alloc *)user;
    if (c->fail_after >= 0 && c->n_alloc >= c->fail_after) return NULL;
    c->n_alloc++; c->live++;
    return malloc(size);
}
static void cnt_free(void *p, void *user) {
    counting_alloc *c = (counting_alloc *)user;
    if (p) { c->n_free++; c->live--; }
    free(p);
}
typedef struct { int n; int level; char last[600]; } log_sink;
static void log_fn(int level, const char *msg, void *user) {
    log_sink *s = (log_sink *)user;
    s->n++; s->level = level;
    snprintf(s->last, sizeof s->last, "%s", msg);
}
static int g_destroy_calls;
static void *g_destroy_state;
static void dev_destroy(eff_ctx *ctx, void *state) { (void)ctx; g_destroy_calls++; g_destroy_state = state; }

/* Independent xoshiro256** seeded by splitmix64 (Vigna's reference code). */
static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static void ref_xoshiro_seed(uint64_t s[4], uint64_t seed) {
    int i;
    for (i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s[i] = z ^ (z >> 31);
    }
}
static uint64_t ref_xoshiro_next(uint64_t s[4]) {
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

static void test_context(void) {
    counting_alloc ca;
    log_sink ls;
    eff_ctx_opts o;
    eff_ctx *c = NULL;
    eff_status s;
    void *p, *q;
    memset(&ca, 0, sizeof ca); ca.fail_after = -1;
    memset(&ls, 0, sizeof ls);
    memset(&o, 0, sizeof o);
    o.alloc.alloc = cnt_alloc; o.alloc.free = cnt_free; o.alloc.user = &ca;
    o.log = log_fn; o.log_user = &ls; o.seed = 42; o.n_threads = 1;
    s = eff_ctx_create(&o, &c);
    EFF_CHECK(s == EFF_OK && c, "eff_ctx_create with a counting allocator");
    if (!c) return;
    {   /* the clock every timing in the suite uses */
        double t0 = eff_time_seconds(), t1;
        volatile double sink = 0.0;
        int i;
        for (i = 0; i < 100000; i++) sink += (double)i;
        t1 = eff_time_seconds();
        (void)sink;
        EFF_CHECK(t0 > 0.0 && t1 >= t0 && t1 - t0 < 60.0, "eff_time_seconds is monotonic (%.3g s elapsed)", t1 - t0);
    }
    EFF_CHECK(ca.n_alloc == 1, "the context itself comes from the user allocator (%lld calls)", (long long)ca.n_alloc);
    EFF_CHECK(eff_ctx_n_threads(c) == 1, "n_threads = 1 as asked");
    EFF_CHECK(eff_ctx_bytes_in_use(c) == 0, "no bytes in use at start");
    p = eff_ctx_alloc(c, 1000);
    q = eff_ctx_alloc(c, 24);
    EFF_CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "eff_ctx_alloc returns 64-byte aligned memory");
    EFF_CHECK(ca.n_alloc == 3, "each eff_ctx_alloc calls the user allocator once (%lld)", (long long)ca.n_alloc);
    EFF_CHECK(eff_ctx_bytes_in_use(c) == 1024 && eff_ctx_bytes_peak(c) == 1024, "bytes_in_use/peak = 1024 (%zu/%zu)",
              eff_ctx_bytes_in_use(c), eff_ctx_bytes_peak(c));
    if (p) memset(p, 0xab, 1000);
    if (q) memset(q, 0xcd, 24);
    eff_ctx_free(c, p);
    EFF_CHECK(eff_ctx_bytes_in_use(c) == 24 && eff_ctx_bytes_peak(c) == 1024, "free returns bytes; peak stays");
    eff_ctx_free(c, q);
    eff_ctx_free(c, NULL);
    EFF_CHECK(eff_ctx_bytes_in_use(c) == 0 && ca.n_free == 2, "bytes_in_use back to 0 after frees; free callback called twice");
    eff_ctx_reset_peak(c);
    EFF_CHECK(eff_ctx_bytes_peak(c) == 0, "reset_peak");
    p = eff_ctx_calloc(c, 100);
    {
        int z = 1, i;
        for (i = 0; p && i < 100; i++) z &= ((unsigned char *)p)[i] == 0;
        EFF_CHECK(p && z, "eff_ctx_calloc zeroes");
    }
    eff_ctx_free(c, p);
    /* tensors: alloc/free through the same accounting */
    {
        eff_tensor t;
        int64_t ne[3] = {3, 5, 7};
        s = eff_tensor_alloc(c, &t, EFF_F32, 3, ne);
        EFF_CHECK(s == EFF_OK && eff_ctx_bytes_in_use(c) == 3 * 5 * 7 * 4, "eff_tensor_alloc accounts its bytes (%zu)", eff_ctx_bytes_in_use(c));
        eff_tensor_free(c, &t);
        EFF_CHECK(eff_ctx_bytes_in_use(c) == 0 && t.data == NULL, "eff_tensor_free returns them");
    }
    /* allocator failure -> NULL + OOM status with a message */
    ca.fail_after = ca.n_alloc;
    eff_ctx_clear_error(c);
    p = eff_ctx_alloc(c, 64);
    EFF_CHECK(p == NULL && has_substr(eff_ctx_last_error(c), "eff_ctx_alloc"), "failing allocator -> NULL, error names eff_ctx_alloc (%s)",
              eff_ctx_last_error(c));
    {
        eff_tensor t;
        int64_t ne[1] = {10};
        s = eff_tensor_alloc(c, &t, EFF_F32, 1, ne);
        EFF_CHECK_STATUS(c, s, EFF_ERR_OOM, "eff_tensor_alloc with a failing allocator");
    }
    ca.fail_after = -1;
    p = eff_ctx_alloc(c, SIZE_MAX - 10);
    EFF_CHECK(p == NULL, "eff_ctx_alloc(SIZE_MAX - 10) fails cleanly");
    EFF_CHECK(ls.n > 0 && ls.level == EFF_LOG_ERROR, "errors reach the log callback (%d calls)", ls.n);
    /* error messages */
    s = eff_ctx_error(c, EFF_ERR_SHAPE, "f: argument '%s' bad", "zz");
    EFF_CHECK(s == EFF_ERR_SHAPE && strcmp(eff_ctx_last_error(c), "f: argument 'zz' bad") == 0, "eff_ctx_error records the message");
    eff_ctx_clear_error(c);
    EFF_CHECK(eff_ctx_last_error(c)[0] == 0, "clear_error");
    {
        int i, ok = 1;
        for (i = 0; i <= EFF_STATUS_COUNT; i++) ok &= eff_status_str((eff_status)i) != NULL && eff_status_str((eff_status)i)[0] != 0;
        EFF_CHECK(ok && strcmp(eff_status_str(EFF_OK), "ok") == 0, "eff_status_str names every status");
    }
    /* device state destroy runs in eff_ctx_destroy */
    {
        int dummy = 0;
        g_destroy_calls = 0;
        int other = 0;
        eff_ctx_set_device_state(c, &other, dev_destroy);
        eff_ctx_set_device_state(c, &dummy, dev_destroy);
        EFF_CHECK(g_destroy_calls == 1 && g_destroy_state == &other, "replacing the device state destroys the old one");
        g_destroy_calls = 0;
        EFF_CHECK(eff_ctx_device_state(c) == &dummy, "device state stored");
        eff_ctx_destroy(c);
        EFF_CHECK(g_destroy_calls == 1 && g_destroy_state == &dummy, "device destroy callback ran once in eff_ctx_destroy");
        EFF_CHECK(ca.live == 0 && ca.n_alloc == ca.n_free, "every user allocation freed after destroy (%lld allocs, %lld frees)",
                  (long long)ca.n_alloc, (long long)ca.n_free);
    }
    /* bad options */
    memset(&o, 0, sizeof o);
    o.alloc.alloc = cnt_alloc;
    c = NULL;
    EFF_CHECK(eff_ctx_create(&o, &c) == EFF_ERR_INVALID_ARG && c == NULL, "alloc without free is rejected");
    EFF_CHECK(eff_ctx_create(NULL, NULL) == EFF_ERR_INVALID_ARG, "NULL out is rejected");
    ca.fail_after = 0; ca.n_alloc = 0;
    memset(&o, 0, sizeof o);
    o.alloc.alloc = cnt_alloc; o.alloc.free = cnt_free; o.alloc.user = &ca;
    EFF_CHECK(eff_ctx_create(&o, &c) == EFF_ERR_OOM && c == NULL, "allocator failure in eff_ctx_create -> OOM");
    eff_ctx_destroy(NULL);

    /* RNG: xoshiro256** seeded by splitmix64, same numbers as Vigna's reference code */
    {
        uint64_t rs[4], seeds[3] = {0, 42, 0xdeadbeefcafef00dull};
        int si, i, ok = 1, ok2 = 1;
        for (si = 0; si < 3; si++) {
            eff_rng r;
            eff_rng_seed(&r, seeds[si]);
            ref_xoshiro_seed(rs, seeds[si]);
            for (i = 0; i < 1000; i++) ok &= eff_rng_u64(&r) == ref_xoshiro_next(rs);
        }
        EFF_CHECK(ok, "eff_rng_u64 matches the reference xoshiro256** for 3 seeds x 1000 draws");
        {
            eff_rng r;
            eff_rng_seed(&r, 0);
            /* fixed expected values: xoshiro256** with splitmix64(0) seeding */
            ref_xoshiro_seed(rs, 0);
            ok2 = eff_rng_u64(&r) == 0x99ec5f36cb75f2b4ull;
            EFF_CHECK(ok2, "first xoshiro256** output for seed 0 is 0x99ec5f36cb75f2b4");
        }
        {
            eff_ctx *c1, *c2;
            eff_ctx_opts oo;
            float a[64], b[64];
            memset(&oo, 0, sizeof oo); oo.seed = 1234;
            eff_ctx_create(&oo, &c1); eff_ctx_create(&oo, &c2);
            eff_rng_fill_normal(eff_ctx_rng(c1), a, 64, 0.0f, 1.0f);
            eff_rng_fill_normal(eff_ctx_rng(c2), b, 64, 0.0f, 1.0f);
            EFF_CHECK(memcmp(a, b, sizeof a) == 0, "two contexts with the same seed give the same normals");
            eff_rng_fill_uniform(eff_ctx_rng(c1), a, 64, -2.0f, 3.0f);
            ok = 1;
            for (i = 0; i < 64; i++) ok &= a[i] >= -2.0f && a[i] < 3.0f;
            EFF_CHECK(ok, "fill_uniform stays in [lo, hi)");
            eff_ctx_destroy(c1); eff_ctx_destroy(c2);
        }
        {
            eff_rng r;
            double sm = 0, sq = 0, su = 0;
            int n = 20000;
            eff_rng_seed(&r, 7);
            for (i = 0; i < n; i++) { double z = eff_rng_normal(&r); sm += z; sq += z * z; }
            for (i = 0; i < n; i++) { float uu = eff_rng_uniform(&r); su += uu; ok &= uu >= 0.0f && uu < 1.0f; }
            EFF_CHECK(fabs(sm / n) < 0.05 && fabs(sq / n - 1.0) < 0.05, "normal: mean %.3f var %.3f", sm / n, sq / n);
            EFF_CHECK(fabs(su / n - 0.5) < 0.02 && ok, "uniform in [0,1): mean %.3f", su / n);
        }
        EFF_CHECK(eff_hash_u64(1, 2) == eff_hash_u64(1, 2) && eff_hash_u64(1, 2) != eff_hash_u64(1, 3) &&
                  eff_hash_u64(1, 2) != eff_hash_u64(2, 2), "eff_hash_u64 is a function of (seed, i)");
    }
}


/* ===========================================================================
   3. Tensor metadata, copies, arena
   =========================================================================== */
static void test_tensors(void) {
    eff_ctx *c = g_ctx;
    eff_tensor t, v, w;
    eff_status s;
    float buf[2 * 3 * 5 * 7];
    int i, ok;
    int64_t ne[4];
    char d[128];
    for (i = 0; i < 210; i++) buf[i] = (float)i;

    /* dtype facts */
    EFF_CHECK(strcmp(eff_dtype_name(EFF_BF16), "bf16") == 0 && eff_dtype_from_name("q4_0") == EFF_Q4_0 &&
              eff_dtype_from_name("nope") == -1 && eff_dtype_name(9) == NULL && eff_dtype_name(-1) == NULL &&
              eff_dtype_name(EFF_DTYPE_COUNT) == NULL, "dtype names and ids");
    EFF_CHECK(eff_dtype_row_bytes(EFF_Q4_0, 64) == 36 && eff_dtype_row_bytes(EFF_Q4_0, 33) == -1 &&
              eff_dtype_row_bytes(EFF_F16, 7) == 14 && eff_dtype_row_bytes(EFF_F32, INT64_MAX / 2) == -1 &&
              eff_dtype_row_bytes(EFF_F32, -1) == -1, "eff_dtype_row_bytes: blocks, partial blocks, overflow");
    {
        const eff_dtype_traits *tr = eff_ctx_dtype(c, EFF_F16);
        EFF_CHECK(tr && tr->to_float && tr->from_float && tr->vec_dot && tr->type_size == 2 && tr->blck_size == 1,
                  "the context's f16 traits have conversions and a dot kernel");
        EFF_CHECK(eff_ctx_dtype(c, 9) == NULL && eff_ctx_dtype(c, 100) == NULL, "no traits for unknown ids");
        EFF_CHECK(eff_ctx_dtype(c, EFF_Q4_0) && eff_ctx_dtype(c, EFF_Q4_0)->vec_dot == NULL, "q4_0 has no kernels until eff_quant.h registers them");
    }
    {
        eff_dtype_traits tr;
        memset(&tr, 0, sizeof tr);
        tr.name = "bad"; tr.blck_size = 16; tr.type_size = 18;
        s = eff_ctx_register_dtype(c, EFF_Q4_0, &tr);
        EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "register_dtype with a wrong block size");
        s = eff_ctx_register_dtype(c, 12, &tr);
        EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "register_dtype of an id without storage entry");
        s = eff_ctx_register_dtype(c, EFF_Q4_0, NULL);
        EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "register_dtype with NULL traits");
        EFF_CHECK(has_substr(eff_ctx_last_error(c), "'t'"), "message names the argument: %s", eff_ctx_last_error(c));
    }

    /* construction */
    t = eff_tensor_3d(buf, EFF_F32, 5, 6, 7);
    EFF_CHECK(t.ndim == 3 && t.nb[2] == 4 && t.nb[1] == 28 && t.nb[0] == 168 && eff_tensor_nelements(&t) == 210 &&
              eff_tensor_nbytes(&t) == 840 && eff_tensor_nrows(&t) == 30 && eff_tensor_ncols(&t) == 7 && eff_tensor_is_contiguous(&t),
              "eff_tensor_3d: strides, counts");
    ne[0] = 3; ne[1] = 64;
    s = eff_tensor_init(c, &v, EFF_Q4_0, 2, ne, NULL);
    EFF_CHECK(s == EFF_OK && v.nb[1] == 18 && v.nb[0] == 36 && eff_tensor_nbytes(&v) == 108, "q4_0 [3, 64]: block strides (nb %lld %lld)",
              (long long)v.nb[0], (long long)v.nb[1]);
    ne[1] = 40;
    s = eff_tensor_init(c, &v, EFF_Q4_0, 2, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "q4_0 with a last dim that is not a multiple of 32");
    s = eff_tensor_init(c, &v, EFF_F32, 5, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "eff_tensor_init with 5 dims");
    s = eff_tensor_init(c, &v, 99, 2, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_DTYPE, "eff_tensor_init with an unknown dtype");
    ne[0] = -1;
    s = eff_tensor_init(c, &v, EFF_F32, 2, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "eff_tensor_init with a negative dim");
    s = eff_tensor_init(c, &v, EFF_F32, 0, NULL, buf);
    EFF_CHECK(s == EFF_OK && eff_tensor_nelements(&v) == 1 && eff_tensor_nbytes(&v) == 4 && eff_tensor_ncols(&v) == 1,
              "0-d scalar: 1 element, 4 bytes");
    /* more than 2^31 elements: metadata only */
    ne[0] = (int64_t)1 << 17; ne[1] = (int64_t)1 << 16; ne[2] = 3;
    s = eff_tensor_init(c, &v, EFF_BF16, 3, ne, NULL);
    EFF_CHECK(s == EFF_OK && eff_tensor_nelements(&v) == ((int64_t)3 << 33) && eff_tensor_nbytes(&v) == ((int64_t)3 << 34) &&
              v.nb[0] == ((int64_t)1 << 16) * 3 * 2, "bf16 [2^17, 2^16, 3]: 3*2^33 elements in int64 (%lld)",
              (long long)eff_tensor_nelements(&v));
    s = eff_tensor_validate(c, &v, "big");
    EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "validate: > 2^31 elements with NULL data says data is NULL");
    EFF_CHECK(has_substr(eff_ctx_last_error(c), "big"), "validate names the tensor: %s", eff_ctx_last_error(c));
    v.data = buf;
    EFF_CHECK(eff_tensor_validate(c, &v, "big") == EFF_OK, "validate accepts > 2^31 elements (no allocation)");
    ne[0] = (int64_t)1 << 40; ne[1] = (int64_t)1 << 40;
    s = eff_tensor_init(c, &v, EFF_F32, 2, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "shape 2^40 x 2^40 overflows int64");
    ne[0] = (int64_t)1 << 31; ne[1] = (int64_t)1 << 31;
    s = eff_tensor_init(c, &v, EFF_F32, 2, ne, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "2^62 f32 elements: byte size overflows int64");
    s = eff_tensor_alloc(c, &v, EFF_F32, 2, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "eff_tensor_alloc of 2^62 f32 elements");
    v = eff_tensor_4d(buf, EFF_F32, (int64_t)1 << 20, (int64_t)1 << 20, (int64_t)1 << 20, (int64_t)1 << 20);
    EFF_CHECK(eff_tensor_nelements(&v) == -1, "nelements is -1 on overflow");
    s = eff_tensor_validate(c, &v, "huge");
    EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "validate: element count overflows");
    v = eff_tensor_2d(buf, EFF_F32, 3, 4);
    v.nb[0] = INT64_MAX / 2;
    s = eff_tensor_validate(c, &v, "strided");
    EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "validate: byte extent overflows");
    v = eff_tensor_2d(buf, EFF_F32, 3, 4); v.ndim = 5;
    s = eff_tensor_validate(c, &v, "x5");
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "validate: ndim 5");
    v = eff_tensor_2d(buf, EFF_F32, 3, -4);
    s = eff_tensor_validate(c, &v, "neg");
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "validate: negative dim");
    v = eff_tensor_2d(buf, 77, 3, 4);
    s = eff_tensor_validate(c, &v, "dt");
    EFF_CHECK_STATUS(c, s, EFF_ERR_DTYPE, "validate: unknown dtype");
    s = eff_tensor_validate(c, NULL, "nul");
    EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "validate: NULL tensor");
    EFF_CHECK(has_substr(eff_ctx_last_error(c), "nul"), "validate names the argument: %s", eff_ctx_last_error(c));
    v = eff_tensor_2d(NULL, EFF_F32, 0, 4);
    EFF_CHECK(eff_tensor_validate(c, &v, "empty") == EFF_OK, "validate: zero-size tensor with NULL data is fine");
    ne[0] = 2; ne[1] = 64;
    eff_tensor_init(c, &v, EFF_Q4_0, 2, ne, buf);
    v.nb[1] = 36;
    s = eff_tensor_validate(c, &v, "q");
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "validate: block dtype with a strided last dim");

    /* reshape */
    t = eff_tensor_3d(buf, EFF_F32, 5, 6, 7);
    ne[0] = 10; ne[1] = -1; ne[2] = 7;
    s = eff_tensor_reshape(c, &v, &t, 3, ne);
    EFF_CHECK(s == EFF_OK && v.ne[1] == 3 && v.data == buf && eff_tensor_is_contiguous(&v), "reshape infers -1 (5x6x7 -> 10x3x7)");
    ne[0] = -1;
    s = eff_tensor_reshape(c, &v, &t, 1, ne);
    EFF_CHECK(s == EFF_OK && v.ndim == 1 && v.ne[0] == 210, "reshape to [-1]");
    s = eff_tensor_reshape(c, &v, &t, 0, NULL);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape 210 elements to a scalar");
    ne[0] = -1; ne[1] = -1;
    s = eff_tensor_reshape(c, &v, &t, 2, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape with two -1");
    ne[0] = 4; ne[1] = -1;
    s = eff_tensor_reshape(c, &v, &t, 2, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape: 210 is not divisible by 4");
    ne[0] = 11; ne[1] = 19;
    s = eff_tensor_reshape(c, &v, &t, 2, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape to a different element count");
    ne[0] = -2; ne[1] = -105;
    s = eff_tensor_reshape(c, &v, &t, 2, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape with negative sizes other than -1");
    eff_tensor_transpose(c, &w, &t, 0, 2);
    ne[0] = -1;
    s = eff_tensor_reshape(c, &v, &w, 1, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "reshape of a transposed (non-contiguous) view is rejected");
    EFF_CHECK(has_substr(eff_ctx_last_error(c), "contiguous"), "the message says why: %s", eff_ctx_last_error(c));
    s = eff_tensor_reshape(c, NULL, &t, 1, ne);
    EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "reshape with NULL out");
    EFF_CHECK(has_substr(eff_ctx_last_error(c), "out"), "names 'out': %s", eff_ctx_last_error(c));
    {   /* size-1 dims with odd strides still count as contiguous */
        eff_tensor u = eff_tensor_3d(buf, EFF_F32, 3, 1, 5);
        u.nb[1] = 12345;
        ne[0] = 15;
        EFF_CHECK(eff_tensor_is_contiguous(&u) && eff_tensor_reshape(c, &v, &u, 1, ne) == EFF_OK, "size-1 dims' strides do not matter");
    }

    /* permute / transpose */
    {
        int perm[3] = {2, 0, 1}, bad[3] = {0, 0, 1};
        s = eff_tensor_permute(c, &v, &t, perm);
        ok = s == EFF_OK && v.ne[0] == 7 && v.ne[1] == 5 && v.ne[2] == 6 && !eff_tensor_is_contiguous(&v);
        {
            int64_t a, b2, cc;
            for (a = 0; a < 7; a++) for (b2 = 0; b2 < 5; b2++) for (cc = 0; cc < 6; cc++)
                ok &= *(float *)((char *)v.data + a * v.nb[0] + b2 * v.nb[1] + cc * v.nb[2]) == buf[b2 * 42 + cc * 7 + a];
        }
        EFF_CHECK(ok, "permute (2,0,1): every element where it belongs");
        s = eff_tensor_permute(c, &v, &t, bad);
        EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "permute with a repeated axis");
        s = eff_tensor_transpose(c, &v, &t, -1, -2);
        EFF_CHECK(s == EFF_OK && v.ne[1] == 7 && v.ne[2] == 6 && v.nb[1] == 4 && v.nb[2] == 28, "transpose(-1, -2)");
        s = eff_tensor_transpose(c, &v, &t, 0, 3);
        EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "transpose with a dim out of range");
        ne[0] = 4; ne[1] = 64;
        eff_tensor_init(c, &w, EFF_Q8_0, 2, ne, buf);
        s = eff_tensor_transpose(c, &v, &w, 0, 1);
        EFF_CHECK_STATUS(c, s, EFF_ERR_DTYPE, "transposing a block dtype's last dim is rejected");
    }

    /* slice */
    s = eff_tensor_slice(c, &v, &t, 1, 2, 3);
    EFF_CHECK(s == EFF_OK && v.ne[1] == 3 && v.data == buf + 14 && *(float *)v.data == 14.0f && !eff_tensor_is_contiguous(&v),
              "slice dim 1 [2, 5)");
    s = eff_tensor_slice(c, &v, &t, -1, 6, 1);
    EFF_CHECK(s == EFF_OK && v.ne[2] == 1 && v.data == buf + 6, "slice of the last dim with dim = -1");
    s = eff_tensor_slice(c, &v, &t, 0, 5, 0);
    EFF_CHECK(s == EFF_OK && v.ne[0] == 0 && eff_tensor_nelements(&v) == 0, "empty slice at the end");
    s = eff_tensor_slice(c, &v, &t, 0, 4, 2);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "slice past the end");
    s = eff_tensor_slice(c, &v, &t, 0, -1, 2);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "slice with a negative start");
    s = eff_tensor_slice(c, &v, &t, 0, 1, INT64_MAX);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "slice with a huge length (no overflow)");
    s = eff_tensor_slice(c, &v, &t, 3, 0, 1);
    EFF_CHECK_STATUS(c, s, EFF_ERR_INVALID_ARG, "slice of a dim out of range");
    ne[0] = 3; ne[1] = 128;
    eff_tensor_init(c, &w, EFF_Q4_0, 2, ne, buf);
    s = eff_tensor_slice(c, &v, &w, 1, 64, 64);
    EFF_CHECK(s == EFF_OK && v.data == (char *)buf + 36 && v.ne[1] == 64 && v.nb[1] == 18 && eff_tensor_validate(c, &v, "v") == EFF_OK,
              "q4_0 slice of whole blocks of the last dim: byte offset 2 blocks");
    s = eff_tensor_slice(c, &v, &w, 1, 16, 32);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "q4_0 slice starting inside a block");
    s = eff_tensor_slice(c, &v, &w, 1, 0, 48);
    EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "q4_0 slice of a partial block");
    s = eff_tensor_slice(c, &v, &w, 0, 1, 2);
    EFF_CHECK(s == EFF_OK && v.data == (char *)buf + 72, "q4_0 slice of rows");

    /* copies and conversions */
    {
        float out[210];
        eff_tensor o2, tr;
        eff_tensor_transpose(c, &tr, &t, 0, 2);   /* [7, 6, 5] strided */
        o2 = eff_tensor_3d(out, EFF_F32, 7, 6, 5);
        s = eff_tensor_copy(c, &o2, &tr);
        ok = s == EFF_OK;
        {
            int64_t a, b2, cc;
            for (a = 0; a < 7; a++) for (b2 = 0; b2 < 6; b2++) for (cc = 0; cc < 5; cc++) ok &= out[a * 30 + b2 * 5 + cc] == buf[cc * 42 + b2 * 7 + a];
        }
        EFF_CHECK(ok, "copy of a transposed view into a contiguous tensor");
        s = eff_tensor_contiguous(c, &o2, &tr);
        ok = s == EFF_OK && eff_tensor_is_contiguous(&o2) && o2.ne[0] == 7;
        for (i = 0; ok && i < 210; i++) ok &= ((float *)o2.data)[i] == out[i];
        EFF_CHECK(ok, "eff_tensor_contiguous allocates and copies");
        eff_tensor_free(c, &o2);
        s = eff_tensor_copy(c, &tr, &t);
        EFF_CHECK_STATUS(c, s, EFF_ERR_SHAPE, "copy between different shapes");
        EFF_CHECK(has_substr(eff_ctx_last_error(c), "dst") && has_substr(eff_ctx_last_error(c), "src"), "names dst and src: %s",
                  eff_ctx_last_error(c));
    }
    {
        float src[13] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 127.4f, 127.6f, -128.6f, 1e10f, -1e10f, 0.0f, 3.0f, 0.0f};
        uint16_t h[13];
        int8_t i8[13];
        int32_t i32[13];
        float back[13];
        double f64[13];
        eff_tensor ts, th, ti8, ti32, tb, tf64;
        int8_t want8[13] = {0, 2, 2, 0, -2, 127, 127, -128, 127, -128, 0, 3, 0};
        src[12] = NAN;
        ts = eff_tensor_1d(src, EFF_F32, 13); th = eff_tensor_1d(h, EFF_BF16, 13); ti8 = eff_tensor_1d(i8, EFF_I8, 13);
        ti32 = eff_tensor_1d(i32, EFF_I32, 13); tb = eff_tensor_1d(back, EFF_F32, 13); tf64 = eff_tensor_1d(f64, EFF_F64, 13);
        ok = eff_tensor_copy(c, &th, &ts) == EFF_OK;
        for (i = 0; i < 13; i++) ok &= h[i] == eff_fp32_to_bf16(src[i]);
        EFF_CHECK(ok, "copy f32 -> bf16 uses RNE");
        ok = eff_tensor_copy(c, &tb, &th) == EFF_OK;
        for (i = 0; i < 12; i++) ok &= back[i] == eff_bf16_to_fp32(h[i]);
        EFF_CHECK(ok && back[12] != back[12], "copy bf16 -> f32 (NaN stays NaN)");
        th.dtype = EFF_F16;
        ok = eff_tensor_copy(c, &th, &ts) == EFF_OK;
        for (i = 0; i < 13; i++) ok &= h[i] == eff_fp32_to_fp16(src[i]);
        EFF_CHECK(ok, "copy f32 -> f16");
        ok = eff_tensor_copy(c, &ti8, &ts) == EFF_OK && memcmp(i8, want8, 13) == 0;
        EFF_CHECK(ok, "copy f32 -> i8 rounds half to even, saturates, NaN -> 0 (%d %d %d %d %d)", i8[0], i8[1], i8[2], i8[8], i8[12]);
        ok = eff_tensor_copy(c, &ti32, &ts) == EFF_OK && i32[8] == 2147483647 && i32[9] == INT32_MIN && i32[6] == 128 && i32[2] == 2;
        EFF_CHECK(ok, "copy f32 -> i32 saturates (%d %d)", i32[8], i32[9]);
        ok = eff_tensor_copy(c, &tf64, &ts) == EFF_OK && f64[5] == (double)src[5];
        EFF_CHECK(ok, "copy f32 -> f64");
        ok = eff_tensor_copy(c, &tb, &ti8) == EFF_OK && back[7] == -128.0f && back[5] == 127.0f;
        EFF_CHECK(ok, "copy i8 -> f32");
        {   /* strided bf16 -> strided f32 (element by element) */
            uint16_t hb[26];
            float fo[39];
            eff_tensor a = eff_tensor_1d(hb, EFF_BF16, 13), bq = eff_tensor_1d(fo, EFF_F32, 13);
            for (i = 0; i < 26; i++) hb[i] = eff_fp32_to_bf16((float)i);
            a.nb[0] = 4; bq.nb[0] = 12;
            for (i = 0; i < 39; i++) fo[i] = -1.0f;
            ok = eff_tensor_copy(c, &bq, &a) == EFF_OK;
            for (i = 0; i < 13; i++) ok &= fo[3 * i] == (float)(2 * i) && fo[3 * i + 1] == -1.0f;
            EFF_CHECK(ok, "copy strided bf16 -> strided f32");
        }
        {   /* 0-d scalar <-> 1-element tensor */
            float one = 5.0f, dst1[1] = {0};
            eff_tensor sc, d1;
            eff_tensor_init(c, &sc, EFF_F32, 0, NULL, &one);
            d1 = eff_tensor_1d(dst1, EFF_F32, 1);
            ok = eff_tensor_copy(c, &d1, &sc) == EFF_OK && dst1[0] == 5.0f;
            dst1[0] = 7.0f;
            ok &= eff_tensor_copy(c, &sc, &d1) == EFF_OK && one == 7.0f;
            EFF_CHECK(ok, "copy between a 0-d scalar and a 1-element tensor");
        }
        {
            eff_tensor q;
            ne[0] = 1; ne[1] = 32;
            eff_tensor_init(c, &q, EFF_Q4_0, 2, ne, buf);
            tb = eff_tensor_2d(back, EFF_F32, 1, 32);
            {
                float big[32];
                tb.data = big;
                s = eff_tensor_copy(c, &tb, &q);
            }
            EFF_CHECK_STATUS(c, s, EFF_ERR_DTYPE, "copy from q4_0 without registered kernels");
        }
    }
    {   /* block dtype: rows copied whole, strided rows allowed */
        unsigned char qsrc[4 * 72], qdst[2 * 36];
        eff_tensor Q, Qs, Qd;
        int64_t qne[2] = {4, 64};
        for (i = 0; i < (int)sizeof qsrc; i++) qsrc[i] = (unsigned char)(i * 7);
        eff_tensor_init(c, &Q, EFF_Q4_0, 2, qne, qsrc);
        Q.nb[0] = 72;   /* rows padded to 72 bytes */
        eff_tensor_slice(c, &Qs, &Q, 0, 1, 2);
        qne[0] = 2;
        eff_tensor_init(c, &Qd, EFF_Q4_0, 2, qne, qdst);
        s = eff_tensor_copy(c, &Qd, &Qs);
        EFF_CHECK(s == EFF_OK && memcmp(qdst, qsrc + 72, 36) == 0 && memcmp(qdst + 36, qsrc + 144, 36) == 0, "copy of q4_0 rows with a padded row stride");
    }
    EFF_CHECK(strcmp(eff_tensor_describe(&t, d, sizeof d), "f32[5, 6, 7]") == 0, "describe: %s", d);
    eff_tensor_transpose(c, &v, &t, 0, 1);
    v.name = "x";
    eff_tensor_describe(&v, d, sizeof d);
    EFF_CHECK(has_substr(d, "x f32[6, 5, 7]") && has_substr(d, "strides[28, 168, 4]"), "describe a strided view: %s", d);
    {
        char tiny[6];
        eff_tensor_describe(&v, tiny, sizeof tiny);
        EFF_CHECK(strlen(tiny) == 5, "describe truncates to the buffer");
    }

    /* arena: sizing pass, commit, second pass with the same layout */
    {
        eff_arena a;
        eff_tensor x1[3], x2[3];
        int64_t shapes[3][2] = {{3, 5}, {7, 1}, {13, 33}};
        int pass, k;
        void *raw;
        size_t sized = 0, before = 0;
        size_t used_after[2][3];
        eff_arena_init(&a);
        for (pass = 0; pass < 2; pass++) {
            eff_tensor *xs = pass ? x2 : x1;
            ok = 1;
            for (k = 0; k < 3; k++) {
                ok &= eff_arena_tensor(c, &a, &xs[k], k == 1 ? EFF_BF16 : EFF_F32, 2, shapes[k]) == EFF_OK;
                used_after[pass][k] = a.used;
                if (pass) ok &= (size_t)((unsigned char *)xs[k].data - a.base) + (size_t)eff_tensor_nbytes(&xs[k]) == a.used;
            }
            raw = eff_arena_push(&a, 10, 32);
            if (pass == 0) {
                EFF_CHECK(ok && x1[0].data == NULL && raw == NULL && !a.overflow, "sizing pass: ok, pointers NULL");
                sized = a.size;
                before = eff_ctx_bytes_in_use(c);
                EFF_CHECK(eff_arena_commit(c, &a) == EFF_OK && a.base && a.used == 0 && eff_ctx_bytes_in_use(c) == before + sized,
                          "commit allocates the sized bytes once (%zu)", sized);
            } else {
                EFF_CHECK(ok && raw != NULL && ((uintptr_t)raw % 32) == 0, "second pass fits");
                ok = a.used == sized;
                for (k = 0; k < 3; k++)
                    ok &= x2[k].data && ((uintptr_t)x2[k].data % 64) == 0 && x2[k].ne[1] == shapes[k][1];
                ok &= (char *)x2[1].data - (char *)x2[0].data >= 60 && (char *)x2[2].data - (char *)x2[1].data >= 14;
                EFF_CHECK(ok, "second pass: same total, aligned, non-overlapping tensors");
                EFF_CHECK(memcmp(used_after[0], used_after[1], sizeof used_after[0]) == 0, "second pass: every tensor at the offset the sizing pass computed");
            }
        }
        ok = eff_arena_tensor(c, &a, &x2[0], EFF_F32, 2, shapes[2]) != EFF_OK;
        EFF_CHECK(ok && a.overflow, "a committed arena that runs out reports it (%s)", eff_ctx_last_error(c));
        eff_arena_rewind(&a);
        EFF_CHECK(a.used == 0 && !a.overflow && a.base, "rewind keeps the memory");
        EFF_CHECK(eff_arena_commit(c, &a) != EFF_OK, "committing twice is an error");
        eff_arena_release(c, &a);
        EFF_CHECK(a.base == NULL && eff_ctx_bytes_in_use(c) == before, "release frees the arena");
        eff_arena_init(&a);
        eff_arena_push(&a, SIZE_MAX - 8, 16);
        eff_arena_push(&a, 64, 16);
        EFF_CHECK(a.overflow, "sizing pass detects size_t overflow");
        s = eff_arena_commit(c, &a);
        EFF_CHECK_STATUS(c, s, EFF_ERR_OVERFLOW, "commit after an overflowing sizing pass");
        eff_arena_init(&a);
        EFF_CHECK(eff_arena_push(&a, 8, 128) == NULL && a.overflow, "alignment above 64 is refused");
    }
}

/* ===========================================================================
   4. sgemm
   =========================================================================== */
typedef struct { int64_t M, N, K; } mnk;
static int sgemm_case(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad, int nan_c) {
    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int64_t ra = ta ? K : M, rb = tb ? N : K, i;
    float *A = fnew(ra * lda, 1.0), *B = fnew(rb * ldb, 1.0), *C = fnew(M * ldc, 1.0), *R = (float *)malloc((size_t)(M * ldc + 1) * 4);
    double num = 0, den = 0;
    int ok;
    eff_status s;
    if (nan_c) for (i = 0; i < M * ldc; i++) C[i] = NAN;
    memcpy(R, C, (size_t)(M * ldc) * 4);
    eff_sgemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    s = eff_sgemm(g_ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    ok = s == EFF_OK;
    for (i = 0; i < M; i++) {
        int64_t j;
        for (j = 0; j < ldc; j++) {
            float a = C[i * ldc + j], r = R[i * ldc + j];
            if (j >= N) { ok &= (nan_c ? a != a : a == r); continue; }   /* padding untouched */
            if (!(a == a) || a == INFINITY || a == -INFINITY) { ok = 0; continue; }
            num += ((double)a - r) * ((double)a - r); den += (double)r * r;
        }
    }
    if (den > 0 && num / den > 1e-11) ok = 0;
    if (den == 0 && num != 0) ok = 0;
    free(A); free(B); free(C); free(R);
    return ok;
}
static void test_sgemm(void) {
    static const mnk shapes[] = {
        {1, 1, 1}, {1, 7, 13}, {2, 3, 5}, {3, 1, 1}, {4, 33, 17}, {4, 300, 65}, {5, 5, 5}, {7, 13, 33}, {13, 7, 1},
        {17, 129, 31}, {33, 65, 127}, {65, 33, 257}, {127, 31, 513}, {1, 1000, 37}, {3, 1031, 300}, {257, 5, 260}, {6, 32, 256},
        {100, 100, 100}, {14, 32, 600}};
    int nt, ta, tb;
    size_t si;
    int saved = eff_ctx_n_threads(g_ctx);
    for (nt = 1; nt <= 2; nt++) {
        int bad = 0, n = 0;
        eff_ctx_set_n_threads(g_ctx, nt);
        for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++) {
                    const mnk *m = &shapes[si];
                    int ok = sgemm_case(ta, tb, m->M, m->N, m->K, 1.0f, 0.0f, 0, 0);
                    ok &= sgemm_case(ta, tb, m->M, m->N, m->K, -0.75f, 0.5f, 3, 0);
                    ok &= sgemm_case(ta, tb, m->M, m->N, m->K, 2.0f, 0.0f, 1, 1);
                    n += 3;
                    if (!ok) { bad++; printf("    sgemm bad: nt=%d ta=%d tb=%d %lldx%lldx%lld\n", nt, ta, tb, (long long)m->M, (long long)m->N, (long long)m->K); }
                }
        EFF_CHECK(bad == 0, "sgemm vs naive, %d threads: %d shapes x 4 transposes x (plain, alpha/beta/padded ld, beta=0 over NaN C) = %d products (%d bad)",
                  nt, (int)(sizeof shapes / sizeof shapes[0]), n, bad);
        {
            int ok = 1;
            if (!g_quick) {
                ok &= sgemm_case(0, 0, 1031, 517, 1009, 1.0f, 0.0f, 0, 0);
                ok &= sgemm_case(1, 1, 1031, 517, 1009, 0.5f, 2.0f, 5, 0);
                ok &= sgemm_case(0, 1, 333, 4099, 70, 1.0f, 1.0f, 0, 0);
            } else {
                ok &= sgemm_case(0, 0, 131, 77, 301, 1.0f, 0.0f, 0, 0);
                ok &= sgemm_case(1, 1, 131, 77, 301, 0.5f, 2.0f, 5, 0);
            }
            EFF_CHECK(ok, "sgemm large shapes (1031x517x1009, N > NC), %d threads", nt);
        }
    }
    eff_ctx_set_n_threads(g_ctx, saved);
    /* degenerate sizes */
    {
        float A[4] = {1, 2, 3, 4}, B[4] = {1, 2, 3, 4}, C[4] = {1, 1, 1, 1};
        eff_status s;
        EFF_CHECK(eff_sgemm(g_ctx, 0, 0, 2, 2, 0, 1.0f, A, 1, B, 2, 0.5f, C, 2) == EFF_OK && C[0] == 0.5f && C[3] == 0.5f,
                  "K = 0: C = beta C");
        C[0] = NAN;
        EFF_CHECK(eff_sgemm(g_ctx, 0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.0f, C, 2) == EFF_OK && C[0] == 0.0f,
                  "K = 0, beta = 0: C = 0 even over NaN, A/B may be NULL");
        C[0] = 9.0f;
        EFF_CHECK(eff_sgemm(g_ctx, 0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, NULL, 2) == EFF_OK, "M = 0 is a no-op (C may be NULL)");
        EFF_CHECK(eff_sgemm(g_ctx, 0, 0, 2, 0, 2, 1.0f, A, 2, B, 1, 0.0f, C, 1) == EFF_OK && C[0] == 9.0f, "N = 0 is a no-op");
        s = eff_sgemm(g_ctx, 0, 0, 2, 2, 2, 1.0f, A, 1, B, 2, 0.0f, C, 2);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "lda < K");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "lda"), "names lda: %s", eff_ctx_last_error(g_ctx));
        s = eff_sgemm(g_ctx, 0, 1, 2, 2, 2, 1.0f, A, 2, B, 1, 0.0f, C, 2);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "ldb < K for transposed B");
        s = eff_sgemm(g_ctx, 0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 1);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "ldc < N");
        s = eff_sgemm(g_ctx, 0, 0, -1, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "negative M");
        s = eff_sgemm(g_ctx, 0, 0, 2, 2, 2, 1.0f, NULL, 2, B, 2, 0.0f, C, 2);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "NULL A");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'A'"), "names A: %s", eff_ctx_last_error(g_ctx));
        s = eff_sgemm(g_ctx, 0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, NULL, 2);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "NULL C");
        EFF_CHECK(sgemm_case(0, 0, 5, 7, 9, 0.0f, 0.5f, 0, 0), "alpha = 0: C = beta C");
    }
}


/* ===========================================================================
   5. Elementwise ops, broadcasting add/mul, softmax
   =========================================================================== */
enum { U_GELU, U_SILU, U_RELU, U_SCALE, B_SWIGLU, B_RESID };
static double ref_unary(int op, double x, double s) {
    switch (op) {
    case U_GELU: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case U_SILU: return x / (1.0 + exp(-x));
    case U_RELU: return x > 0 ? x : 0.0;
    default: return s * x;
    }
}
typedef struct { int op, which; int64_t n; double *x, *x2, *dy, s; } ew_ref;
static double ew_loss(void *u) {
    ew_ref *r = (ew_ref *)u;
    double L = 0;
    int64_t i;
    for (i = 0; i < r->n; i++) {
        double y;
        if (r->op == B_SWIGLU) y = r->x[i] / (1.0 + exp(-r->x[i])) * r->x2[i];
        else if (r->op == B_RESID) y = r->x[i] + r->x2[i];
        else y = ref_unary(r->op, r->x[i], r->s);
        L += r->dy[i] * y;
    }
    return L;
}
/* A view of `rows` x `cols` floats with row stride ld (>= cols) over buf. */
static eff_tensor view2(float *buf, int64_t rows, int64_t cols, int64_t ld) {
    eff_tensor t = eff_tensor_2d(buf, EFF_F32, rows, cols);
    t.nb[0] = ld * 4;
    return t;
}

static void test_unary_ops(void) {
    static const int64_t shapes[][4] = {{1, 1, 1, 1}, {1, 1, 1, 7}, {1, 1, 3, 13}, {1, 2, 3, 33}, {1, 1, 5, 127}, {2, 1, 3, 1}, {1, 1, 1, 65}};
    static const int nds[] = {1, 1, 2, 3, 2, 4, 2};
    const char *names[] = {"gelu", "silu", "relu", "scale"};
    int op;
    size_t si;
    for (op = U_GELU; op <= U_SCALE; op++) {
        int fwd_ok = 1, bwd_ok = 1, alias_ok = 1;
        double worst_f = 0, worst_b = 0;
        for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int nd = nds[si];
            const int64_t *sh = shapes[si] + 4 - nd;
            int64_t n = 1, i;
            eff_tensor X, Y, DY, DX;
            float *x, *y, *dy, *dx;
            double *xd, *ref, e;
            ew_ref r;
            eff_status s1, s2;
            for (i = 0; i < nd; i++) n *= sh[i];
            x = fnew(n, 3.0); y = fnew(n, 1.0); dy = fnew(n, 1.0); dx = fnew(n, 1.0);
            if (op == U_RELU) for (i = 0; i < n; i++) if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f;   /* away from the kink */
            eff_tensor_init(g_ctx, &X, EFF_F32, nd, sh, x); eff_tensor_init(g_ctx, &Y, EFF_F32, nd, sh, y);
            eff_tensor_init(g_ctx, &DY, EFF_F32, nd, sh, dy); eff_tensor_init(g_ctx, &DX, EFF_F32, nd, sh, dx);
            xd = dfrom(x, n); ref = dnew(n);
            for (i = 0; i < n; i++) ref[i] = ref_unary(op, xd[i], -1.75);
            switch (op) {
            case U_GELU: s1 = eff_gelu_forward(g_ctx, &Y, &X); s2 = eff_gelu_backward(g_ctx, &DX, &DY, &X); break;
            case U_SILU: s1 = eff_silu_forward(g_ctx, &Y, &X); s2 = eff_silu_backward(g_ctx, &DX, &DY, &X); break;
            case U_RELU: s1 = eff_relu_forward(g_ctx, &Y, &X); s2 = eff_relu_backward(g_ctx, &DX, &DY, &X); break;
            default: s1 = eff_scale_forward(g_ctx, &Y, &X, -1.75f); s2 = eff_scale_backward(g_ctx, &DX, &DY, -1.75f); break;
            }
            e = eff_test_nmse(y, ref, n);
            if (s1 != EFF_OK || e > 1e-12) fwd_ok = 0;
            if (e > worst_f) worst_f = e;
            r.op = op; r.n = n; r.x = xd; r.dy = dfrom(dy, n); r.s = -1.75; r.x2 = NULL; r.which = 0;
            e = fd_nmse(ew_loss, &r, xd, n, dx);
            if (s2 != EFF_OK || e > 1e-8) bwd_ok = 0;
            if (e > worst_b) worst_b = e;
            /* in place: y aliasing x, dx aliasing dy */
            {
                float *x2 = (float *)malloc((size_t)n * 4), *dy2 = (float *)malloc((size_t)n * 4);
                eff_tensor X2, DY2;
                memcpy(x2, x, (size_t)n * 4); memcpy(dy2, dy, (size_t)n * 4);
                eff_tensor_init(g_ctx, &X2, EFF_F32, nd, sh, x2); eff_tensor_init(g_ctx, &DY2, EFF_F32, nd, sh, dy2);
                switch (op) {
                case U_GELU: eff_gelu_forward(g_ctx, &X2, &X2); eff_gelu_backward(g_ctx, &DY2, &DY2, &X); break;
                case U_SILU: eff_silu_forward(g_ctx, &X2, &X2); eff_silu_backward(g_ctx, &DY2, &DY2, &X); break;
                case U_RELU: eff_relu_forward(g_ctx, &X2, &X2); eff_relu_backward(g_ctx, &DY2, &DY2, &X); break;
                default: eff_scale_forward(g_ctx, &X2, &X2, -1.75f); eff_scale_backward(g_ctx, &DY2, &DY2, -1.75f); break;
                }
                alias_ok &= memcmp(x2, y, (size_t)n * 4) == 0 && memcmp(dy2, dx, (size_t)n * 4) == 0;
                free(x2); free(dy2);
            }
            free(x); free(y); free(dy); free(dx); free(xd); free(ref); free(r.dy);
        }
        EFF_CHECK(fwd_ok, "%s forward vs float64 on 7 shapes (worst nmse %.2g)", names[op], worst_f);
        EFF_CHECK(bwd_ok, "%s backward vs finite differences (worst nmse %.2g)", names[op], worst_b);
        EFF_CHECK(alias_ok, "%s in place (y = x, dx = dy) gives the same bits", names[op]);
    }
    /* strided rows (outer dims non-contiguous) and a long contiguous run (threaded chunks) */
    {
        int64_t R = 7, C = 13, ld = 20, n = 70001, i, j;
        float *xb = fnew(R * ld, 2.0), *yb = fnew(R * ld, 1.0), *yb0, *big = fnew(n, 4.0), *bigy = fnew(n, 1.0);
        eff_tensor X = view2(xb, R, C, ld), Y = view2(yb, R, C, ld), BX = eff_tensor_1d(big, EFF_F32, n), BY = eff_tensor_1d(bigy, EFF_F32, n);
        double *ref = dnew(R * C), *bref = dnew(n);
        float *got = (float *)malloc((size_t)(R * C) * 4);
        int pad_ok = 1;
        yb0 = (float *)malloc((size_t)(R * ld) * 4);
        memcpy(yb0, yb, (size_t)(R * ld) * 4);
        eff_gelu_forward(g_ctx, &Y, &X);
        for (i = 0; i < R; i++)
            for (j = 0; j < ld; j++) {
                if (j < C) { got[i * C + j] = yb[i * ld + j]; ref[i * C + j] = ref_unary(U_GELU, xb[i * ld + j], 0); }
                else pad_ok &= yb[i * ld + j] == yb0[i * ld + j];
            }
        EFF_CHECK(eff_test_nmse(got, ref, R * C) < 1e-12 && pad_ok, "gelu on strided rows: values right, gaps untouched");
        eff_silu_forward(g_ctx, &BY, &BX);
        for (i = 0; i < n; i++) bref[i] = ref_unary(U_SILU, big[i], 0);
        EFF_CHECK(eff_test_nmse(bigy, bref, n) < 1e-12, "silu over 70001 elements (threaded chunks)");
        free(xb); free(yb); free(yb0); free(big); free(bigy); free(ref); free(bref); free(got);
    }
    /* swiglu and residual */
    {
        static const int64_t sh2[][2] = {{1, 1}, {3, 7}, {5, 33}, {1, 127}};
        size_t k;
        int ok_f = 1, ok_b = 1, ok_r = 1;
        for (k = 0; k < 4; k++) {
            int64_t n = sh2[k][0] * sh2[k][1], i;
            float *g = fnew(n, 3.0), *u = fnew(n, 2.0), *y = fnew(n, 1.0), *dy = fnew(n, 1.0), *dg = fnew(n, 1.0), *du = fnew(n, 1.0);
            float *dx0 = fnew(n, 1.0), *dr0 = fnew(n, 1.0), *dxa = (float *)malloc((size_t)n * 4), *dra = (float *)malloc((size_t)n * 4);
            eff_tensor G = eff_tensor_2d(g, EFF_F32, sh2[k][0], sh2[k][1]), U = G, Y = G, DY = G, DG = G, DU = G, DXA = G, DRA = G;
            double *ref = dnew(n);
            ew_ref r;
            U.data = u; Y.data = y; DY.data = dy; DG.data = dg; DU.data = du; DXA.data = dxa; DRA.data = dra;
            ok_f &= eff_swiglu_forward(g_ctx, &Y, &G, &U) == EFF_OK;
            for (i = 0; i < n; i++) ref[i] = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            ok_f &= eff_test_nmse(y, ref, n) < 1e-12;
            ok_b &= eff_swiglu_backward(g_ctx, &DG, &DU, &DY, &G, &U) == EFF_OK;
            r.op = B_SWIGLU; r.n = n; r.x = dfrom(g, n); r.x2 = dfrom(u, n); r.dy = dfrom(dy, n);
            ok_b &= fd_nmse(ew_loss, &r, r.x, n, dg) < 1e-8;
            ok_b &= fd_nmse(ew_loss, &r, r.x2, n, du) < 1e-8;
            /* one gradient at a time */
            memset(dxa, 0, (size_t)n * 4);
            ok_b &= eff_swiglu_backward(g_ctx, NULL, &DXA, &DY, &G, &U) == EFF_OK && memcmp(dxa, du, (size_t)n * 4) == 0;
            /* residual: forward y = x + r; backward adds dy into dx and dr */
            ok_r &= eff_residual_forward(g_ctx, &Y, &G, &U) == EFF_OK;
            for (i = 0; i < n; i++) ok_r &= y[i] == g[i] + u[i];
            memcpy(dxa, dx0, (size_t)n * 4); memcpy(dra, dr0, (size_t)n * 4);
            ok_r &= eff_residual_backward(g_ctx, &DXA, &DRA, &DY) == EFF_OK;
            ok_r &= eff_residual_backward(g_ctx, &DXA, NULL, &DY) == EFF_OK;
            for (i = 0; i < n; i++) ok_r &= dxa[i] == (dx0[i] + dy[i]) + dy[i] && dra[i] == dr0[i] + dy[i];
            ok_r &= eff_residual_forward(g_ctx, &G, &G, &U) == EFF_OK;   /* y aliasing x */
            for (i = 0; i < n; i++) ok_r &= g[i] == y[i];
            free(g); free(u); free(y); free(dy); free(dg); free(du); free(dx0); free(dr0); free(dxa); free(dra); free(ref);
            free(r.x); free(r.x2); free(r.dy);
        }
        EFF_CHECK(ok_f, "swiglu forward vs float64");
        EFF_CHECK(ok_b, "swiglu backward (dgate, dup) vs finite differences; dup alone");
        EFF_CHECK(ok_r, "residual forward, backward accumulates (+=) into dx and dr, y may alias x");
    }
    /* argument errors name the argument */
    {
        float a[6], b[6];
        eff_tensor A = eff_tensor_2d(a, EFF_F32, 2, 3), B = eff_tensor_2d(b, EFF_F32, 3, 2), Ti = eff_tensor_2d(a, EFF_I32, 2, 3);
        eff_status s = eff_gelu_forward(g_ctx, NULL, &A);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "gelu_forward(y = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'y'"), "names 'y': %s", eff_ctx_last_error(g_ctx));
        s = eff_silu_backward(g_ctx, &A, NULL, &A);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "silu_backward(dy = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'dy'"), "names 'dy': %s", eff_ctx_last_error(g_ctx));
        s = eff_relu_forward(g_ctx, &A, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "relu_forward with different shapes");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'y'") && has_substr(eff_ctx_last_error(g_ctx), "'x'"), "names both: %s",
                  eff_ctx_last_error(g_ctx));
        s = eff_scale_forward(g_ctx, &A, &Ti, 2.0f);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_DTYPE, "scale_forward of an i32 tensor");
        s = eff_swiglu_forward(g_ctx, &A, &A, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "swiglu_forward(up = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'up'"), "names 'up': %s", eff_ctx_last_error(g_ctx));
        A.nb[1] = 8;
        B = eff_tensor_2d(b, EFF_F32, 2, 3);
        s = eff_gelu_forward(g_ctx, &B, &A);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "gelu of a tensor with a strided last dim");
        EFF_CHECK(eff_gelu_forward(NULL, &B, &B) != EFF_OK, "NULL context is refused");
    }
}

/* ---- broadcasting add / mul ---- */
/* Flat index into a contiguous tensor of shape te (4-D, right aligned) for output position (i0..i3). */
static int64_t bc_index(const int64_t te[4], const int64_t idx[4]) {
    int64_t off = 0;
    int d;
    for (d = 0; d < 4; d++) off = off * te[d] + (te[d] == 1 ? 0 : idx[d]);
    return off;
}
static void pad4(int nd, const int64_t *sh, int64_t out[4]) {
    int i;
    for (i = 0; i < 4; i++) out[i] = 1;
    for (i = 0; i < nd; i++) out[4 - nd + i] = sh[i];
}
typedef struct { int mul, which; int64_t ye[4], ae[4], be[4]; double *a, *b, *dy; } bc_ref;
static double bc_loss(void *u) {
    bc_ref *r = (bc_ref *)u;
    int64_t idx[4], n = r->ye[0] * r->ye[1] * r->ye[2] * r->ye[3], f;
    double L = 0;
    for (f = 0; f < n; f++) {
        double av, bv;
        idx[3] = f % r->ye[3]; idx[2] = (f / r->ye[3]) % r->ye[2]; idx[1] = (f / (r->ye[3] * r->ye[2])) % r->ye[1];
        idx[0] = f / (r->ye[3] * r->ye[2] * r->ye[1]);
        av = r->a[bc_index(r->ae, idx)]; bv = r->b[bc_index(r->be, idx)];
        L += r->dy[f] * (r->mul ? av * bv : av + bv);
    }
    return L;
}
static void test_broadcast(void) {
    typedef struct { int yn, an, bn; int64_t y[4], a[4], b[4]; } bcase;
    static const bcase cases[] = {
        {3, 3, 3, {2, 3, 5}, {2, 3, 5}, {2, 3, 5}},
        {3, 3, 1, {2, 3, 5}, {2, 3, 5}, {5}},
        {3, 3, 2, {2, 3, 5}, {2, 3, 5}, {3, 1}},
        {3, 3, 3, {2, 3, 5}, {2, 3, 5}, {2, 1, 5}},
        {3, 3, 1, {2, 3, 5}, {2, 3, 5}, {1}},
        {3, 2, 3, {2, 3, 5}, {3, 5}, {2, 1, 1}},
        {4, 4, 3, {2, 3, 4, 7}, {2, 3, 4, 7}, {3, 1, 7}},
        {4, 1, 4, {2, 1, 3, 13}, {13}, {1, 1, 3, 1}},
        {2, 2, 2, {1, 1}, {1, 1}, {1, 1}},
        {2, 2, 1, {33, 1}, {33, 1}, {1}},
    };
    size_t ci;
    int mul;
    for (mul = 0; mul < 2; mul++) {
        int ok_f = 1, ok_b = 1;
        double wf = 0, wb = 0;
        for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const bcase *k = &cases[ci];
            bc_ref r;
            int64_t ny, na, nb, f, idx[4];
            float *a, *b, *y, *dy, *da, *db;
            double *ref, e;
            eff_tensor Y, A, B, DY, DA, DB;
            pad4(k->yn, k->y, r.ye); pad4(k->an, k->a, r.ae); pad4(k->bn, k->b, r.be);
            ny = r.ye[0] * r.ye[1] * r.ye[2] * r.ye[3]; na = r.ae[0] * r.ae[1] * r.ae[2] * r.ae[3]; nb = r.be[0] * r.be[1] * r.be[2] * r.be[3];
            a = fnew(na, 2.0); b = fnew(nb, 2.0); y = fnew(ny, 1.0); dy = fnew(ny, 1.0); da = fnew(na, 1.0); db = fnew(nb, 1.0);
            eff_tensor_init(g_ctx, &Y, EFF_F32, k->yn, k->y, y); eff_tensor_init(g_ctx, &DY, EFF_F32, k->yn, k->y, dy);
            eff_tensor_init(g_ctx, &A, EFF_F32, k->an, k->a, a); eff_tensor_init(g_ctx, &DA, EFF_F32, k->an, k->a, da);
            eff_tensor_init(g_ctx, &B, EFF_F32, k->bn, k->b, b); eff_tensor_init(g_ctx, &DB, EFF_F32, k->bn, k->b, db);
            r.mul = mul; r.a = dfrom(a, na); r.b = dfrom(b, nb); r.dy = dfrom(dy, ny);
            ref = dnew(ny);
            for (f = 0; f < ny; f++) {
                idx[3] = f % r.ye[3]; idx[2] = (f / r.ye[3]) % r.ye[2]; idx[1] = (f / (r.ye[3] * r.ye[2])) % r.ye[1];
                idx[0] = f / (r.ye[3] * r.ye[2] * r.ye[1]);
                ref[f] = mul ? r.a[bc_index(r.ae, idx)] * r.b[bc_index(r.be, idx)] : r.a[bc_index(r.ae, idx)] + r.b[bc_index(r.be, idx)];
            }
            if ((mul ? eff_mul_forward(g_ctx, &Y, &A, &B) : eff_add_forward(g_ctx, &Y, &A, &B)) != EFF_OK) ok_f = 0;
            e = eff_test_nmse(y, ref, ny);
            if (e > 1e-13) { ok_f = 0; printf("    %s case %d fwd nmse %g\n", mul ? "mul" : "add", (int)ci, e); }
            if (e > wf) wf = e;
            if ((mul ? eff_mul_backward(g_ctx, &DA, &DB, &DY, &A, &B) : eff_add_backward(g_ctx, &DA, &DB, &DY)) != EFF_OK) {
                ok_b = 0; printf("    %s case %d bwd: %s\n", mul ? "mul" : "add", (int)ci, eff_ctx_last_error(g_ctx));
            }
            e = fd_nmse(bc_loss, &r, r.a, na, da);
            if (e > wb) wb = e;
            if (e > 1e-8) { ok_b = 0; printf("    %s case %d da nmse %g\n", mul ? "mul" : "add", (int)ci, e); }
            e = fd_nmse(bc_loss, &r, r.b, nb, db);
            if (e > wb) wb = e;
            if (e > 1e-8) { ok_b = 0; printf("    %s case %d db nmse %g\n", mul ? "mul" : "add", (int)ci, e); }
            free(a); free(b); free(y); free(dy); free(da); free(db); free(ref); free(r.a); free(r.b); free(r.dy);
        }
        EFF_CHECK(ok_f, "%s forward with broadcasting, %d shape cases (worst nmse %.2g)", mul ? "mul" : "add",
                  (int)(sizeof cases / sizeof cases[0]), wf);
        EFF_CHECK(ok_b, "%s backward: reductions over broadcast dims vs finite differences (worst nmse %.2g)", mul ? "mul" : "add", wb);
    }
    /* gradients are written (=), and only one may be requested; da may alias a for mul */
    {
        float a[15], b[5], dy[15], da[15], db[5], a0[15];
        eff_tensor A = eff_tensor_2d(a, EFF_F32, 3, 5), B = eff_tensor_1d(b, EFF_F32, 5), DY = eff_tensor_2d(dy, EFF_F32, 3, 5);
        eff_tensor DA = eff_tensor_2d(da, EFF_F32, 3, 5), DB = eff_tensor_1d(db, EFF_F32, 5);
        int i, j, ok = 1;
        eff_status s;
        eff_test_fill(a, 15, 1); eff_test_fill(b, 5, 1); eff_test_fill(dy, 15, 1);
        memcpy(a0, a, sizeof a);
        for (i = 0; i < 5; i++) db[i] = 100.0f;
        ok &= eff_add_backward(g_ctx, NULL, &DB, &DY) == EFF_OK;
        for (j = 0; j < 5; j++) ok &= fabsf(db[j] - (dy[j] + dy[5 + j] + dy[10 + j])) < 1e-6f;
        EFF_CHECK(ok, "add_backward: db written (=), not accumulated; da may be NULL");
        ok = eff_mul_backward(g_ctx, &DA, NULL, &DY, &A, &B) == EFF_OK;
        for (i = 0; i < 3; i++) for (j = 0; j < 5; j++) ok &= da[i * 5 + j] == dy[i * 5 + j] * b[j];
        EFF_CHECK(ok, "mul_backward with db = NULL");
        /* in-place da into a's memory while db is requested: db must see the original a */
        {
            eff_tensor DAa = A;
            float want[5];
            for (j = 0; j < 5; j++) want[j] = dy[j] * a0[j] + dy[5 + j] * a0[5 + j] + dy[10 + j] * a0[10 + j];
            s = eff_mul_backward(g_ctx, &DAa, &DB, &DY, &A, &B);
            if (s == EFF_OK) {
                ok = 1;
                for (j = 0; j < 5; j++) ok &= fabsf(db[j] - want[j]) < 1e-5f;
                EFF_CHECK(ok, "mul_backward with da aliasing a: db still uses the original a");
            } else {
                EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "mul_backward refuses da aliasing a when db is requested");
            }
            memcpy(a, a0, sizeof a);
        }
        {   /* da aliasing b is harmless on the elementwise path: db reads dy and a only */
            float bb[15], b0[15], dbb[15];
            eff_tensor B15 = eff_tensor_2d(bb, EFF_F32, 3, 5), DB15 = eff_tensor_2d(dbb, EFF_F32, 3, 5);
            eff_test_fill(bb, 15, 1);
            memcpy(b0, bb, sizeof bb);
            ok = eff_mul_backward(g_ctx, &B15, &DB15, &DY, &A, &B15) == EFF_OK;
            for (i = 0; i < 15; i++) ok &= bb[i] == dy[i] * b0[i] && dbb[i] == dy[i] * a[i];
            EFF_CHECK(ok, "mul_backward with da aliasing b (same shapes): both gradients right");
            /* a reduced gradient may not alias what it reads */
            {
                eff_tensor DBa = eff_tensor_1d(a, EFF_F32, 5);
                s = eff_mul_backward(g_ctx, NULL, &DBa, &DY, &A, &B);
                EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "mul_backward: a reduced db may not alias a");
                DBa.data = dy;
                s = eff_add_backward(g_ctx, NULL, &DBa, &DY);
                EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "add_backward: a reduced db may not alias dy");
            }
        }
        A = eff_tensor_2d(a, EFF_F32, 3, 5);
        B = eff_tensor_1d(b, EFF_F32, 4);
        s = eff_add_forward(g_ctx, &DY, &A, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "add_forward: [4] does not broadcast to [3, 5]");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'b'"), "names 'b': %s", eff_ctx_last_error(g_ctx));
        B = eff_tensor_3d(b, EFF_F32, 1, 1, 5);
        s = eff_mul_forward(g_ctx, &DY, &A, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "mul_forward: operand with more dims than the output");
        s = eff_add_backward(g_ctx, &DA, &DA, &DY);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "add_backward with da aliasing db");
        s = eff_add_forward(g_ctx, &DY, NULL, &A);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "add_forward(a = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'a'"), "names 'a': %s", eff_ctx_last_error(g_ctx));
    }
    /* strided output rows and a big broadcast (threaded path) */
    {
        int64_t R = 300, C = 257, i, j;
        float *a = fnew(R * C, 1.0), *b = fnew(C, 1.0), *y = fnew(R * (C + 3), 1.0);
        eff_tensor A = eff_tensor_2d(a, EFF_F32, R, C), B = eff_tensor_1d(b, EFF_F32, C), Y = view2(y, R, C, C + 3);
        int ok = eff_mul_forward(g_ctx, &Y, &A, &B) == EFF_OK;
        for (i = 0; i < R; i++) for (j = 0; j < C; j++) ok &= y[i * (C + 3) + j] == a[i * C + j] * b[j];
        EFF_CHECK(ok, "mul_forward [300, 257] * [257] into strided rows (threaded)");
        free(a); free(b); free(y);
    }
}

/* ---- softmax / log-softmax ---- */
typedef struct { int logsm; int64_t rows, cols; double *x, *dy; } sm_ref;
static void ref_softmax_row(int logsm, int64_t n, const double *x, double *y) {
    double m = -INFINITY, s = 0;
    int64_t i;
    for (i = 0; i < n; i++) if (x[i] > m) m = x[i];
    if (m == -INFINITY) { for (i = 0; i < n; i++) y[i] = logsm ? -INFINITY : 0.0; return; }
    for (i = 0; i < n; i++) s += exp(x[i] - m);
    for (i = 0; i < n; i++) y[i] = logsm ? x[i] - m - log(s) : exp(x[i] - m) / s;
}
static double sm_loss(void *u) {
    sm_ref *r = (sm_ref *)u;
    double L = 0, *y = dnew(r->cols);
    int64_t i, j;
    for (i = 0; i < r->rows; i++) {
        ref_softmax_row(r->logsm, r->cols, r->x + i * r->cols, y);
        for (j = 0; j < r->cols; j++) if (r->dy[i * r->cols + j] != 0.0) L += r->dy[i * r->cols + j] * y[j];
    }
    free(y);
    return L;
}
static void test_softmax(void) {
    static const int64_t sh[][2] = {{1, 1}, {1, 7}, {3, 13}, {6, 33}, {5, 127}, {2, 1000}, {4, 16}};
    int logsm;
    size_t k;
    for (logsm = 0; logsm < 2; logsm++) {
        int ok_f = 1, ok_b = 1, ok_mask = 1;
        double wf = 0, wb = 0;
        for (k = 0; k < sizeof sh / sizeof sh[0]; k++) {
            int64_t R = sh[k][0], C = sh[k][1], n = R * C, i, j;
            int masked;
            for (masked = 0; masked < 2; masked++) {
                float *x = fnew(n, 5.0), *y = fnew(n, 1.0), *dy = fnew(n, 1.0), *dx = fnew(n, 1.0);
                eff_tensor X = eff_tensor_2d(x, EFF_F32, R, C), Y = X, DY = X, DX = X;
                double *ref = dnew(n), e;
                sm_ref r;
                Y.data = y; DY.data = dy; DX.data = dx;
                if (k == sizeof sh / sizeof sh[0] - 1) for (i = 0; i < n; i++) x[i] += 3000.0f;   /* large offsets: stable */
                if (masked) {
                    for (i = 0; i < n; i++) if ((i * 7) % 5 == 1) x[i] = -INFINITY;
                    if (R > 1) for (j = 0; j < C; j++) x[j] = -INFINITY;   /* row 0 fully masked */
                }
                r.logsm = logsm; r.rows = R; r.cols = C; r.x = dfrom(x, n); r.dy = dfrom(dy, n);
                for (i = 0; i < R; i++) ref_softmax_row(logsm, C, r.x + i * C, ref + i * C);
                ok_f &= (logsm ? eff_log_softmax_forward(g_ctx, &Y, &X) : eff_softmax_forward(g_ctx, &Y, &X)) == EFF_OK;
                if (masked && logsm) {   /* -inf where the reference is -inf, nmse over the rest */
                    int64_t cnt = 0;
                    float *yf = (float *)malloc((size_t)n * 4);
                    double *rf = dnew(n);
                    for (i = 0; i < n; i++) {
                        if (ref[i] == -INFINITY) { ok_mask &= y[i] == -INFINITY; continue; }
                        yf[cnt] = y[i]; rf[cnt] = ref[i]; cnt++;
                    }
                    e = eff_test_nmse(yf, rf, cnt);
                    free(yf); free(rf);
                } else {
                    e = eff_test_nmse(y, ref, n);
                }
                if (e > 1e-11) { ok_f = 0; printf("    %s %lldx%lld masked=%d fwd nmse %g\n", logsm ? "log_softmax" : "softmax", (long long)R, (long long)C, masked, e); }
                if (e > wf) wf = e;
                ok_b &= (logsm ? eff_log_softmax_backward(g_ctx, &DX, &DY, &Y) : eff_softmax_backward(g_ctx, &DX, &DY, &Y)) == EFF_OK;
                if (masked && logsm) {
                    /* L is infinite on masked entries: check finiteness and dx = dy there */
                    for (i = 0; i < n; i++) {
                        ok_mask &= dx[i] == dx[i] && fabsf(dx[i]) != INFINITY;
                        if (x[i] == -INFINITY) ok_mask &= dx[i] == dy[i];
                    }
                } else {
                    e = fd_nmse(sm_loss, &r, r.x, n, dx);
                    if (e > 1e-8) { ok_b = 0; printf("    %s %lldx%lld masked=%d bwd nmse %g\n", logsm ? "log_softmax" : "softmax", (long long)R, (long long)C, masked, e); }
                    if (e > wb) wb = e;
                }
                if (masked && !logsm && R > 1) {
                    for (j = 0; j < C; j++) ok_mask &= y[j] == 0.0f && dx[j] == 0.0f;
                }
                free(x); free(y); free(dy); free(dx); free(ref); free(r.x); free(r.dy);
                if (n > 2000) break;   /* the big row: unmasked only (FD cost) */
            }
        }
        EFF_CHECK(ok_f, "%s forward vs float64 incl. -inf masks and +3000 offsets (worst nmse %.2g)", logsm ? "log_softmax" : "softmax", wf);
        EFF_CHECK(ok_b, "%s backward vs finite differences (worst nmse %.2g)", logsm ? "log_softmax" : "softmax", wb);
        EFF_CHECK(ok_mask, "%s: fully masked rows give %s, no NaN anywhere", logsm ? "log_softmax" : "softmax", logsm ? "-inf (dx = dy)" : "0 (dx = 0)");
    }
    {   /* many rows (threaded), log_softmax and softmax vs float64 */
        int64_t R = 64, C = 1031, i;
        float *x = fnew(R * C, 6.0), *y = fnew(R * C, 1.0);
        eff_tensor X = eff_tensor_2d(x, EFF_F32, R, C), Y = eff_tensor_2d(y, EFF_F32, R, C);
        double *xd = dfrom(x, R * C), *ref = dnew(R * C);
        int ok;
        for (i = 0; i < R; i++) ref_softmax_row(0, C, xd + i * C, ref + i * C);
        ok = eff_softmax_forward(g_ctx, &Y, &X) == EFF_OK && eff_test_nmse(y, ref, R * C) < 1e-11;
        for (i = 0; i < R; i++) ref_softmax_row(1, C, xd + i * C, ref + i * C);
        ok &= eff_log_softmax_forward(g_ctx, &Y, &X) == EFF_OK && eff_test_nmse(y, ref, R * C) < 1e-11;
        EFF_CHECK(ok, "softmax / log_softmax [64, 1031] (threaded rows)");
        free(x); free(y); free(xd); free(ref);
    }
    {   /* in place and strided rows */
        float xb[5 * 40], yb[5 * 40], *x2 = (float *)malloc(5 * 33 * 4);
        eff_tensor X = view2(xb, 5, 33, 40), Y = view2(yb, 5, 33, 40), X2 = eff_tensor_2d(x2, EFF_F32, 5, 33);
        int i, j, ok;
        eff_test_fill(xb, 200, 4.0);
        for (i = 0; i < 5; i++) for (j = 0; j < 33; j++) x2[i * 33 + j] = xb[i * 40 + j];
        ok = eff_softmax_forward(g_ctx, &Y, &X) == EFF_OK && eff_softmax_forward(g_ctx, &X2, &X2) == EFF_OK;
        for (i = 0; i < 5; i++) for (j = 0; j < 33; j++) ok &= x2[i * 33 + j] == yb[i * 40 + j];
        EFF_CHECK(ok, "softmax on strided rows equals in-place softmax on a contiguous copy");
        free(x2);
    }
}


/* ===========================================================================
   6. LayerNorm, RMSNorm, RoPE, embedding, cross-entropy, dropout
   =========================================================================== */
typedef struct { int rms, affine, bias; int64_t rows, C; double *x, *w, *b, *dy, eps; } norm_ref;
static void ref_norm(const norm_ref *r, double *y, double *mean, double *rstd) {
    int64_t i, j;
    for (i = 0; i < r->rows; i++) {
        const double *x = r->x + i * r->C;
        double mu = 0, v = 0, rs;
        if (!r->rms) { for (j = 0; j < r->C; j++) mu += x[j]; mu /= (double)r->C; }
        for (j = 0; j < r->C; j++) v += (x[j] - mu) * (x[j] - mu);
        rs = 1.0 / sqrt(v / (double)r->C + r->eps);
        if (mean) mean[i] = mu;
        if (rstd) rstd[i] = rs;
        for (j = 0; j < r->C; j++)
            y[i * r->C + j] = (x[j] - mu) * rs * (r->affine ? r->w[j] : 1.0) + (r->bias ? r->b[j] : 0.0);
    }
}
static double norm_loss(void *u) {
    norm_ref *r = (norm_ref *)u;
    int64_t n = r->rows * r->C, i;
    double *y = dnew(n), L = 0;
    ref_norm(r, y, NULL, NULL);
    for (i = 0; i < n; i++) L += r->dy[i] * y[i];
    free(y);
    return L;
}
static void test_norms(void) {
    static const int64_t sh[][2] = {{1, 1}, {1, 7}, {3, 13}, {7, 33}, {2, 127}, {5, 2}};
    int rms, variant;
    size_t k;
    for (rms = 0; rms < 2; rms++) {
        int ok_f = 1, ok_b = 1, ok_acc = 1, ok_stats = 1;
        double wf = 0, wb = 0;
        for (variant = 0; variant < (rms ? 2 : 3); variant++) {   /* affine: none, w (+b for layernorm) */
            for (k = 0; k < sizeof sh / sizeof sh[0]; k++) {
                int64_t R = sh[k][0], C = sh[k][1], n = R * C, i;
                norm_ref r;
                float *x = fnew(n, 2.0), *y = fnew(n, 1.0), *dy = fnew(n, 1.0), *dx = fnew(n, 1.0), *w = fnew(C, 1.5), *b = fnew(C, 1.0);
                float *mean = fnew(R, 1.0), *rstd = fnew(R, 1.0), *dw = fnew(C, 1.0), *db = fnew(C, 1.0), *dw0, *db0, *dx1;
                eff_tensor X = eff_tensor_2d(x, EFF_F32, R, C), Y = X, DY = X, DX = X, W = eff_tensor_1d(w, EFF_F32, C), B = W, DW = W, DB = W;
                eff_tensor MEAN = eff_tensor_1d(mean, EFF_F32, R), RSTD = MEAN;
                double *ref = dnew(n), *rmean = dnew(R), *rrstd = dnew(R), e, *g;
                int affine = variant >= 1, bias = variant == 2;
                Y.data = y; DY.data = dy; DX.data = dx; B.data = b; DW.data = dw; DB.data = db; RSTD.data = rstd;
                for (i = 0; i < n; i++) x[i] += (float)(i % 3);   /* non-zero row means */
                dw0 = (float *)malloc((size_t)C * 4); db0 = (float *)malloc((size_t)C * 4); dx1 = (float *)malloc((size_t)n * 4);
                memcpy(dw0, dw, (size_t)C * 4); memcpy(db0, db, (size_t)C * 4);
                /* C <= 2: y is +-1 up to eps and the true gradient is O(eps); a large eps keeps it well conditioned */
                r.rms = rms; r.affine = affine; r.bias = bias; r.rows = R; r.C = C; r.eps = C <= 2 ? 0.5 : 1e-5;
                r.x = dfrom(x, n); r.w = dfrom(w, C); r.b = dfrom(b, C); r.dy = dfrom(dy, n);
                ref_norm(&r, ref, rmean, rrstd);
                if (rms) ok_f &= eff_rmsnorm_forward(g_ctx, &Y, &RSTD, &X, affine ? &W : NULL, (float)r.eps) == EFF_OK;
                else ok_f &= eff_layernorm_forward(g_ctx, &Y, &MEAN, &RSTD, &X, affine ? &W : NULL, bias ? &B : NULL, (float)r.eps) == EFF_OK;
                e = eff_test_nmse(y, ref, n);
                if (e > 1e-11) { ok_f = 0; printf("    %s v%d %lldx%lld fwd nmse %g\n", rms ? "rmsnorm" : "layernorm", variant, (long long)R, (long long)C, e); }
                if (e > wf) wf = e;
                ok_stats &= eff_test_nmse(rstd, rrstd, R) < 1e-12 && (rms || eff_test_nmse(mean, rmean, R) < 1e-12 || C == 1);
                if (rms) ok_b &= eff_rmsnorm_backward(g_ctx, &DX, affine ? &DW : NULL, &DY, &X, affine ? &W : NULL, &RSTD) == EFF_OK;
                else ok_b &= eff_layernorm_backward(g_ctx, &DX, affine ? &DW : NULL, bias ? &DB : NULL, &DY, &X, affine ? &W : NULL, &MEAN, &RSTD) == EFF_OK;
                e = fd_nmse(norm_loss, &r, r.x, n, dx);
                if (e > 1e-8) { ok_b = 0; printf("    %s v%d %lldx%lld dx nmse %g\n", rms ? "rmsnorm" : "layernorm", variant, (long long)R, (long long)C, e); }
                if (e > wb) wb = e;
                if (affine) {   /* dw accumulates onto its old value */
                    float *dwd = (float *)malloc((size_t)C * 4);
                    g = dnew(C);
                    eff_test_fd_grad(norm_loss, &r, r.w, C, 1e-5, g);
                    for (i = 0; i < C; i++) { dwd[i] = dw[i] - dw0[i]; }
                    e = eff_test_nmse(dwd, g, C);
                    if (e > 1e-8) { ok_b = 0; printf("    %s v%d dw nmse %g\n", rms ? "rmsnorm" : "layernorm", variant, e); }
                    if (e > wb) wb = e;
                    if (bias) {
                        eff_test_fd_grad(norm_loss, &r, r.b, C, 1e-5, g);
                        for (i = 0; i < C; i++) dwd[i] = db[i] - db0[i];
                        e = eff_test_nmse(dwd, g, C);
                        if (e > 1e-8) { ok_b = 0; printf("    layernorm db nmse %g\n", e); }
                        if (e > wb) wb = e;
                    }
                    /* second call: dx the same (=), dw/db grow by the same amount again (+=) */
                    {
                        float *dw1 = (float *)malloc((size_t)C * 4), *db1 = (float *)malloc((size_t)C * 4);
                        memcpy(dw1, dw, (size_t)C * 4); memcpy(db1, db, (size_t)C * 4); memcpy(dx1, dx, (size_t)n * 4);
                        if (rms) eff_rmsnorm_backward(g_ctx, &DX, &DW, &DY, &X, &W, &RSTD);
                        else eff_layernorm_backward(g_ctx, &DX, &DW, bias ? &DB : NULL, &DY, &X, &W, &MEAN, &RSTD);
                        ok_acc &= memcmp(dx1, dx, (size_t)n * 4) == 0;
                        for (i = 0; i < C; i++) {
                            ok_acc &= fabsf((dw[i] - dw1[i]) - (dw1[i] - dw0[i])) <= 1e-5f * (1.0f + fabsf(dw1[i]));
                            if (bias) ok_acc &= fabsf((db[i] - db1[i]) - (db1[i] - db0[i])) <= 1e-5f * (1.0f + fabsf(db1[i]));
                        }
                        free(dw1); free(db1);
                    }
                    free(dwd); free(g);
                }
                free(x); free(y); free(dy); free(dx); free(w); free(b); free(mean); free(rstd); free(dw); free(db); free(dw0); free(db0); free(dx1);
                free(ref); free(rmean); free(rrstd); free(r.x); free(r.w); free(r.b); free(r.dy);
            }
        }
        EFF_CHECK(ok_f && ok_stats, "%s forward (with/without affine) vs float64, saved stats (worst nmse %.2g)", rms ? "rmsnorm" : "layernorm", wf);
        EFF_CHECK(ok_b, "%s backward dx, dw%s vs finite differences (worst nmse %.2g)", rms ? "rmsnorm" : "layernorm", rms ? "" : ", db", wb);
        EFF_CHECK(ok_acc, "%s backward: dx written (=), parameter grads accumulate (+=)", rms ? "rmsnorm" : "layernorm");
    }
    /* 3-D input, strided rows, threaded size, errors */
    {
        int64_t R = 300, C = 257, ld = 260, i;
        float *x = fnew(R * ld, 1.0), *y = fnew(R * ld, 1.0), *w = fnew(C, 1.0), *yc = (float *)malloc((size_t)(R * C) * 4);
        eff_tensor X = view2(x, R, C, ld), Y = view2(y, R, C, ld), W = eff_tensor_1d(w, EFF_F32, C);
        norm_ref r;
        double *ref = dnew(R * C);
        eff_status s;
        memset(&r, 0, sizeof r);
        r.rms = 1; r.affine = 1; r.rows = R; r.C = C; r.eps = 1e-6; r.w = dfrom(w, C); r.x = dnew(R * C);
        for (i = 0; i < R * C; i++) r.x[i] = x[(i / C) * ld + i % C];
        ref_norm(&r, ref, NULL, NULL);
        s = eff_rmsnorm_forward(g_ctx, &Y, NULL, &X, &W, 1e-6f);
        for (i = 0; i < R * C; i++) yc[i] = y[(i / C) * ld + i % C];
        EFF_CHECK(s == EFF_OK && eff_test_nmse(yc, ref, R * C) < 1e-11, "rmsnorm [300, 257] on strided rows, threaded, rstd = NULL");
        {   /* layernorm backward on many rows (threads with per-thread dw/db slices) vs float64 formulas */
            float *dy = fnew(R * C, 1.0), *dx = fnew(R * C, 1.0), *dw = (float *)calloc((size_t)C, 4), *db = (float *)calloc((size_t)C, 4);
            float *mean = fnew(R, 1.0), *rstd = fnew(R, 1.0), *b = fnew(C, 1.0), *yb = fnew(R * C, 1.0);
            eff_tensor XC = eff_tensor_2d(yc, EFF_F32, R, C), DY = eff_tensor_2d(dy, EFF_F32, R, C), DX = DY, DW = eff_tensor_1d(dw, EFF_F32, C), DB = DW;
            eff_tensor MEAN = eff_tensor_1d(mean, EFF_F32, R), RSTD = eff_tensor_1d(rstd, EFF_F32, R), B = eff_tensor_1d(b, EFF_F32, C), YB = DY;
            double *rdx = dnew(R * C), *rdw = dnew(C), *rdb = dnew(C);
            int64_t rr, cc;
            int okb;
            DX.data = dx; DB.data = db; YB.data = yb;
            for (i = 0; i < R * C; i++) yc[i] = x[(i / C) * ld + i % C];
            okb = eff_layernorm_forward(g_ctx, &YB, &MEAN, &RSTD, &XC, &W, &B, 1e-5f) == EFF_OK;
            okb &= eff_layernorm_backward(g_ctx, &DX, &DW, &DB, &DY, &XC, &W, &MEAN, &RSTD) == EFF_OK;
            for (rr = 0; rr < R; rr++) {
                const float *xr = yc + rr * C;
                double mu = 0, v = 0, rs, a = 0, bb = 0;
                for (cc = 0; cc < C; cc++) mu += xr[cc];
                mu /= C;
                for (cc = 0; cc < C; cc++) v += (xr[cc] - mu) * (xr[cc] - mu);
                rs = 1 / sqrt(v / C + 1e-5);
                for (cc = 0; cc < C; cc++) {
                    double xh = (xr[cc] - mu) * rs, dn = (double)dy[rr * C + cc] * w[cc];
                    a += dn; bb += dn * xh;
                    rdw[cc] += (double)dy[rr * C + cc] * xh; rdb[cc] += dy[rr * C + cc];
                }
                for (cc = 0; cc < C; cc++) {
                    double xh = (xr[cc] - mu) * rs, dn = (double)dy[rr * C + cc] * w[cc];
                    rdx[rr * C + cc] = rs * (dn - a / C - xh * bb / C);
                }
            }
            okb &= eff_test_nmse(dx, rdx, R * C) < 1e-10 && eff_test_nmse(dw, rdw, C) < 1e-10 && eff_test_nmse(db, rdb, C) < 1e-10;
            EFF_CHECK(okb, "layernorm backward [300, 257] (threaded, per-thread dw/db) vs float64 (nmse dx %.2g dw %.2g db %.2g)",
                      eff_test_nmse(dx, rdx, R * C), eff_test_nmse(dw, rdw, C), eff_test_nmse(db, rdb, C));
            free(dy); free(dx); free(dw); free(db); free(mean); free(rstd); free(b); free(yb); free(rdx); free(rdw); free(rdb);
        }
        W = eff_tensor_1d(w, EFF_F32, C - 1);
        s = eff_layernorm_forward(g_ctx, &Y, NULL, NULL, &X, &W, NULL, 1e-5f);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "layernorm with a w of the wrong length");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'w'"), "names 'w': %s", eff_ctx_last_error(g_ctx));
        W = eff_tensor_1d(w, EFF_F32, C);
        s = eff_layernorm_backward(g_ctx, &Y, NULL, NULL, &Y, &X, &W, NULL, &W);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "layernorm_backward without saved mean");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'mean'"), "names 'mean': %s", eff_ctx_last_error(g_ctx));
        s = eff_rmsnorm_forward(g_ctx, &Y, NULL, &X, &W, -1.0f);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "rmsnorm with eps < 0");
        free(x); free(y); free(w); free(yc); free(ref); free(r.w); free(r.x);
    }
}

/* ---- RoPE ---- */
typedef struct { int64_t B, T, H, D, rot; int mode; double theta, offset, fscale; const int32_t *pos; double *x, *dy; } rope_ref;
static void ref_rope(const rope_ref *r, const double *x, double *y) {
    int64_t b, t, h, i, half = r->rot / 2;
    for (b = 0; b < r->B; b++)
        for (t = 0; t < r->T; t++)
            for (h = 0; h < r->H; h++) {
                const double *xr = x + ((b * r->T + t) * r->H + h) * r->D;
                double *yr = y + ((b * r->T + t) * r->H + h) * r->D;
                double pos = (r->pos ? (double)r->pos[t] : r->offset + (double)t) * r->fscale;
                for (i = 0; i < r->D; i++) yr[i] = xr[i];
                for (i = 0; i < half; i++) {
                    double ang = pos * pow(r->theta, -2.0 * (double)i / (double)r->rot), c = cos(ang), s = sin(ang);
                    int64_t i0 = r->mode == EFF_ROPE_NEOX ? i : 2 * i, i1 = r->mode == EFF_ROPE_NEOX ? i + half : 2 * i + 1;
                    yr[i0] = xr[i0] * c - xr[i1] * s;
                    yr[i1] = xr[i0] * s + xr[i1] * c;
                }
            }
}
static double rope_loss(void *u) {
    rope_ref *r = (rope_ref *)u;
    int64_t n = r->B * r->T * r->H * r->D, i;
    double *y = dnew(n), L = 0;
    ref_rope(r, r->x, y);
    for (i = 0; i < n; i++) L += r->dy[i] * y[i];
    free(y);
    return L;
}
static void test_rope(void) {
    typedef struct { int64_t B, T, H, D, rot; int mode; float theta; int64_t off; int use_pos, permuted, inplace; float fscale; } rcase;
    static const rcase cases[] = {
        {1, 1, 1, 2, 0, EFF_ROPE_NEOX, 0, 0, 0, 0, 0, 0},
        {1, 7, 3, 8, 0, EFF_ROPE_NEOX, 0, 0, 0, 0, 0, 0},
        {2, 5, 2, 16, 0, EFF_ROPE_GPTJ, 0, 0, 0, 0, 0, 0},
        {1, 13, 1, 10, 6, EFF_ROPE_NEOX, 500000.0f, 5, 0, 0, 0, 0},
        {1, 6, 2, 7, 4, EFF_ROPE_GPTJ, 10000.0f, 0, 1, 0, 0, 0},
        {2, 7, 3, 12, 0, EFF_ROPE_NEOX, 0, 3, 0, 1, 0, 0},
        {2, 7, 3, 12, 8, EFF_ROPE_GPTJ, 0, 0, 1, 1, 1, 0.25f},
        {1, 33, 1, 64, 0, EFF_ROPE_NEOX, 0, 100, 0, 0, 1, 0},
        {2, 65, 4, 64, 32, EFF_ROPE_GPTJ, 1e6f, 7, 0, 1, 0, 0},   /* threaded; FD skipped (size) */
    };
    static const int32_t posv[33] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5, 0};
    size_t ci;
    int ok_f = 1, ok_b = 1;
    double wf = 0, wb = 0;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const rcase *k = &cases[ci];
        int64_t n = k->B * k->T * k->H * k->D, b, t, h, i;
        float *x = fnew(n, 1.0), *y = fnew(n, 1.0), *dy = fnew(n, 1.0), *dx = fnew(n, 1.0);
        float *xs = (float *)malloc((size_t)n * 4), *ys = (float *)malloc((size_t)n * 4), *dys = (float *)malloc((size_t)n * 4), *dxs = (float *)malloc((size_t)n * 4);
        float *yc = (float *)malloc((size_t)n * 4), *dxc = (float *)malloc((size_t)n * 4);
        eff_tensor X, Y, DY, DX;
        eff_rope_opts o;
        rope_ref r;
        double *ref = dnew(n), e;
        memset(&o, 0, sizeof o);
        o.theta = k->theta; o.mode = k->mode; o.rot_dim = k->rot; o.pos_offset = k->off; o.pos = k->use_pos ? posv : NULL; o.freq_scale = k->fscale;
        r.B = k->B; r.T = k->T; r.H = k->H; r.D = k->D; r.rot = k->rot ? k->rot : k->D; r.mode = k->mode;
        r.theta = k->theta ? k->theta : 10000.0; r.offset = (double)k->off; r.fscale = k->fscale ? k->fscale : 1.0; r.pos = o.pos;
        r.x = dfrom(x, n); r.dy = dfrom(dy, n);
        ref_rope(&r, r.x, ref);
        if (k->permuted) {   /* storage [B, H, T, D], viewed as [B, T, H, D] */
            int perm[4] = {0, 2, 1, 3};
            eff_tensor S;
            for (b = 0; b < k->B; b++) for (t = 0; t < k->T; t++) for (h = 0; h < k->H; h++) for (i = 0; i < k->D; i++) {
                int64_t src = ((b * k->T + t) * k->H + h) * k->D + i, dst = ((b * k->H + h) * k->T + t) * k->D + i;
                xs[dst] = x[src]; dys[dst] = dy[src];
            }
            S = eff_tensor_4d(xs, EFF_F32, k->B, k->H, k->T, k->D); eff_tensor_permute(g_ctx, &X, &S, perm);
            S.data = ys; eff_tensor_permute(g_ctx, &Y, &S, perm);
            S.data = dys; eff_tensor_permute(g_ctx, &DY, &S, perm);
            S.data = dxs; eff_tensor_permute(g_ctx, &DX, &S, perm);
        } else {
            memcpy(xs, x, (size_t)n * 4); memcpy(dys, dy, (size_t)n * 4);
            X = eff_tensor_4d(xs, EFF_F32, k->B, k->T, k->H, k->D); Y = X; DY = X; DX = X;
            Y.data = ys; DY.data = dys; DX.data = dxs;
        }
        if (k->inplace) { Y = X; DX = DY; }
        ok_f &= eff_rope_forward(g_ctx, &Y, &X, &o) == EFF_OK;
        ok_b &= eff_rope_backward(g_ctx, &DX, &DY, &o) == EFF_OK;
        for (b = 0; b < k->B; b++) for (t = 0; t < k->T; t++) for (h = 0; h < k->H; h++) for (i = 0; i < k->D; i++) {
            int64_t li = ((b * k->T + t) * k->H + h) * k->D + i;
            yc[li] = *(float *)((char *)Y.data + b * Y.nb[0] + t * Y.nb[1] + h * Y.nb[2] + i * 4);
            dxc[li] = *(float *)((char *)DX.data + b * DX.nb[0] + t * DX.nb[1] + h * DX.nb[2] + i * 4);
        }
        e = eff_test_nmse(yc, ref, n);
        if (e > 1e-11) { ok_f = 0; printf("    rope case %d fwd nmse %g\n", (int)ci, e); }
        if (e > wf) wf = e;
        if (n <= 4096) e = fd_nmse(rope_loss, &r, r.x, n, dxc);
        else {   /* the transpose of the rotation: rotate dy by -angle in float64 */
            double *ry = dnew(n);
            rope_ref rn = r;
            rn.fscale = -r.fscale;   /* negative positions = inverse rotation */
            ref_rope(&rn, r.dy, ry);
            e = eff_test_nmse(dxc, ry, n);
            free(ry);
        }
        if (e > 1e-8) { ok_b = 0; printf("    rope case %d bwd nmse %g\n", (int)ci, e); }
        if (e > wb) wb = e;
        free(x); free(y); free(dy); free(dx); free(xs); free(ys); free(dys); free(dxs); free(yc); free(dxc); free(ref); free(r.x); free(r.dy);
    }
    EFF_CHECK(ok_f, "rope forward: NEOX/GPTJ, theta, pos_offset, pos[], partial rot_dim, freq_scale, permuted [B,H,T,D] views, in place (worst nmse %.2g)", wf);
    EFF_CHECK(ok_b, "rope backward vs finite differences, same cases (worst nmse %.2g)", wb);
    {
        float x[2 * 3 * 4 * 6];
        eff_tensor X = eff_tensor_4d(x, EFF_F32, 2, 3, 4, 6), X3 = eff_tensor_3d(x, EFF_F32, 6, 4, 6);
        eff_rope_opts o;
        eff_status s;
        memset(&o, 0, sizeof o);
        eff_test_fill(x, 144, 1);
        o.rot_dim = 5;
        s = eff_rope_forward(g_ctx, &X, &X, &o);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "rope with an odd rot_dim");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "rot_dim"), "names rot_dim: %s", eff_ctx_last_error(g_ctx));
        o.rot_dim = 8;
        s = eff_rope_forward(g_ctx, &X, &X, &o);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "rope with rot_dim > D");
        o.rot_dim = 0; o.mode = 7;
        s = eff_rope_forward(g_ctx, &X, &X, &o);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "rope with an unknown mode");
        o.mode = 0; o.theta = -1.0f;
        s = eff_rope_forward(g_ctx, &X, &X, &o);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "rope with theta < 0");
        s = eff_rope_forward(g_ctx, &X3, &X3, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "rope of a 3-D tensor");
        {   /* pos_offset = 0 at t = 0 is the identity */
            float x0[6], y0[6];
            eff_tensor A = eff_tensor_4d(x0, EFF_F32, 1, 1, 1, 6), Bt = eff_tensor_4d(y0, EFF_F32, 1, 1, 1, 6);
            eff_test_fill(x0, 6, 1);
            EFF_CHECK(eff_rope_forward(g_ctx, &Bt, &A, NULL) == EFF_OK && memcmp(x0, y0, sizeof x0) == 0, "rope at position 0 is the identity");
        }
    }
}

/* ---- embedding ---- */
static void test_embedding(void) {
    int dt;
    int64_t V = 13, C = 7, i, j;
    int32_t ids[2 * 5] = {3, 0, 12, 3, 3, 5, 0, 11, 1, 3};
    for (dt = 0; dt < 3; dt++) {
        int dtype = dt == 0 ? EFF_F32 : dt == 1 ? EFF_BF16 : EFF_F16;
        float *tab = fnew(V * C, 1.0), *out = fnew(10 * C, 1.0);
        uint16_t *tab16 = (uint16_t *)malloc((size_t)(V * C) * 2);
        eff_tensor T = eff_tensor_2d(dt ? (void *)tab16 : (void *)tab, dtype, V, C), IDS = eff_tensor_2d(ids, EFF_I32, 2, 5);
        eff_tensor OUT = eff_tensor_3d(out, EFF_F32, 2, 5, C);
        int ok;
        for (i = 0; i < V * C; i++) {
            tab16[i] = dt == 1 ? eff_fp32_to_bf16(tab[i]) : eff_fp32_to_fp16(tab[i]);
            if (dt) tab[i] = dt == 1 ? eff_bf16_to_fp32(tab16[i]) : eff_fp16_to_fp32(tab16[i]);
        }
        ok = eff_embedding_forward(g_ctx, &OUT, &IDS, &T) == EFF_OK;
        for (i = 0; i < 10; i++) for (j = 0; j < C; j++) ok &= out[i * C + j] == tab[ids[i] * C + j];
        EFF_CHECK(ok, "embedding forward, %s table [13, 7], ids [2, 5] with repeats", eff_dtype_name(dtype));
        free(tab); free(out); free(tab16);
    }
    {
        float *dtab = fnew(V * C, 1.0), *dtab0 = (float *)malloc((size_t)(V * C) * 4), *dout = fnew(10 * C, 1.0), *tab = fnew(V * C, 1.0), out[7];
        eff_tensor DT = eff_tensor_2d(dtab, EFF_F32, V, C), IDS = eff_tensor_2d(ids, EFF_I32, 2, 5), DOUT = eff_tensor_3d(dout, EFF_F32, 2, 5, C);
        eff_tensor T = eff_tensor_2d(tab, EFF_F32, V, C), O1 = eff_tensor_2d(out, EFF_F32, 1, C), ID1;
        double *want = dnew(V * C);
        int32_t bad[1] = {13}, neg[1] = {-1};
        eff_status s;
        int ok;
        memcpy(dtab0, dtab, (size_t)(V * C) * 4);
        for (i = 0; i < V * C; i++) want[i] = dtab0[i];
        for (i = 0; i < 10; i++) for (j = 0; j < C; j++) want[ids[i] * C + j] += dout[i * C + j];
        ok = eff_embedding_backward(g_ctx, &DT, &DOUT, &IDS) == EFF_OK;
        EFF_CHECK(ok && eff_test_nmse(dtab, want, V * C) < 1e-13, "embedding backward accumulates (+=); id 3 appears 4 times");
        ok = eff_embedding_backward(g_ctx, &DT, &DOUT, &IDS) == EFF_OK;
        for (i = 0; i < V * C; i++) want[i] += want[i] - dtab0[i];
        EFF_CHECK(ok && eff_test_nmse(dtab, want, V * C) < 1e-13, "embedding backward twice adds twice");
        ID1 = eff_tensor_1d(bad, EFF_I32, 1);
        s = eff_embedding_forward(g_ctx, &O1, &ID1, &T);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "embedding with id = V (out of range)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "ids"), "names ids: %s", eff_ctx_last_error(g_ctx));
        ID1.data = neg;
        s = eff_embedding_forward(g_ctx, &O1, &ID1, &T);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "embedding with a negative id");
        s = eff_embedding_backward(g_ctx, &DT, &O1, &ID1);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "embedding backward with a negative id");
        s = eff_embedding_forward(g_ctx, &O1, &IDS, &T);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "embedding output of the wrong shape");
        s = eff_embedding_forward(g_ctx, &O1, NULL, &T);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "embedding(ids = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'ids'"), "names 'ids': %s", eff_ctx_last_error(g_ctx));
        IDS.dtype = EFF_F32;
        s = eff_embedding_forward(g_ctx, &DOUT, &IDS, &T);
        EFF_CHECK(s != EFF_OK, "embedding with f32 ids is refused");
        free(dtab); free(dtab0); free(dout); free(tab); free(want);
    }
}

/* ---- cross-entropy ---- */
typedef struct { int64_t N, V; const int32_t *tg; int32_t ignore; double eps; int mean; double *x; } xent_ref;
static double xent_rows(const xent_ref *r, double *losses) {
    int64_t i, j, nv = 0;
    double tot = 0;
    for (i = 0; i < r->N; i++) {
        const double *x = r->x + i * r->V;
        double m = -INFINITY, s = 0, lse, sx = 0, l;
        if (r->tg[i] == r->ignore) { if (losses) losses[i] = 0; continue; }
        for (j = 0; j < r->V; j++) if (x[j] > m) m = x[j];
        for (j = 0; j < r->V; j++) { s += exp(x[j] - m); sx += x[j]; }
        lse = m + log(s);
        l = (1.0 - r->eps) * (lse - x[r->tg[i]]) + r->eps * (lse - sx / (double)r->V);
        if (losses) losses[i] = l;
        tot += l; nv++;
    }
    return r->mean ? (nv ? tot / (double)nv : 0.0) : tot;
}
static double xent_loss(void *u) { return xent_rows((xent_ref *)u, NULL); }
static void test_cross_entropy(void) {
    typedef struct { int64_t N, V; int32_t ignore; int has_ignore; float eps; int mean; } xcase;
    static const xcase cases[] = {
        {1, 1, -100, 0, 0, 1}, {1, 7, -100, 0, 0, 1}, {5, 13, -100, 0, 0, 1}, {7, 33, -100, 0, 0.1f, 1},
        {6, 17, 3, -1, 0, 1}, {6, 17, -100, 0, 0.25f, 0}, {3, 127, -100, 0, 0, 0}, {4, 9, 2, 1, 0.1f, 1},
    };
    size_t ci;
    int ok_f = 1, ok_b = 1;
    double wf = 0, wb = 0;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const xcase *k = &cases[ci];
        int64_t n = k->N * k->V, i;
        float *x = fnew(n, 4.0), *losses = fnew(k->N, 1.0), *dx = fnew(n, 1.0), mean_loss = -1;
        int32_t *tg = (int32_t *)malloc((size_t)k->N * 4);
        eff_tensor X = eff_tensor_2d(x, EFF_F32, k->N, k->V), L = eff_tensor_1d(losses, EFF_F32, k->N), TG = eff_tensor_1d(tg, EFF_I32, k->N), DX = X;
        eff_xent_opts o;
        xent_ref r;
        double *rl = dnew(k->N), rmean, e;
        DX.data = dx;
        for (i = 0; i < k->N; i++) tg[i] = (int32_t)((i * 5 + 1) % k->V);
        if (k->has_ignore) { tg[1 % k->N] = k->has_ignore > 0 ? k->ignore : -100; if (k->N > 3) tg[3] = k->has_ignore > 0 ? k->ignore : -100; }
        memset(&o, 0, sizeof o);
        if (k->has_ignore > 0) { o.has_ignore_index = 1; o.ignore_index = k->ignore; }
        o.label_smoothing = k->eps;
        r.N = k->N; r.V = k->V; r.tg = tg; r.ignore = o.has_ignore_index ? k->ignore : -100; r.eps = k->eps; r.x = dfrom(x, n);
        r.mean = 1;
        rmean = xent_rows(&r, rl);
        ok_f &= eff_cross_entropy_forward(g_ctx, &L, &mean_loss, &X, &TG, &o) == EFF_OK;
        e = eff_test_nmse(losses, rl, k->N);
        if (e > 1e-11 || fabs(mean_loss - rmean) > 1e-6 * (1 + fabs(rmean))) { ok_f = 0; printf("    xent case %d fwd nmse %g mean %g vs %g\n", (int)ci, e, mean_loss, rmean); }
        if (e > wf) wf = e;
        r.mean = k->mean;
        ok_b &= eff_cross_entropy_backward(g_ctx, &DX, &X, &TG, k->mean ? 0.0f : 1.0f, &o) == EFF_OK;
        e = fd_nmse(xent_loss, &r, r.x, n, dx);
        if (e > 1e-8) { ok_b = 0; printf("    xent case %d bwd nmse %g\n", (int)ci, e); }
        if (e > wb) wb = e;
        free(x); free(losses); free(dx); free(tg); free(rl); free(r.x);
    }
    EFF_CHECK(ok_f, "cross-entropy forward: losses and mean, ignore_index (default -100 and custom), label smoothing (worst nmse %.2g)", wf);
    EFF_CHECK(ok_b, "cross-entropy backward (mean via dloss = 0, sum via dloss = 1) vs finite differences (worst nmse %.2g)", wb);
    {
        float x[12], dx[12], mean = 5, losses[3];
        int32_t tg[3] = {-100, -100, -100};
        eff_tensor X = eff_tensor_2d(x, EFF_F32, 3, 4), TG = eff_tensor_1d(tg, EFF_I32, 3), DX = eff_tensor_2d(dx, EFF_F32, 3, 4), L = eff_tensor_1d(losses, EFF_F32, 3);
        eff_xent_opts o;
        eff_status s;
        int i, ok;
        eff_test_fill(x, 12, 1); eff_test_fill(dx, 12, 1);
        ok = eff_cross_entropy_forward(g_ctx, &L, &mean, &X, &TG, NULL) == EFF_OK && mean == 0.0f && losses[0] == 0 && losses[2] == 0;
        ok &= eff_cross_entropy_backward(g_ctx, &DX, &X, &TG, 0.0f, NULL) == EFF_OK;
        for (i = 0; i < 12; i++) ok &= dx[i] == 0.0f;
        EFF_CHECK(ok, "cross-entropy with every row ignored: mean 0, gradient 0, no NaN");
        tg[0] = 4;
        s = eff_cross_entropy_forward(g_ctx, NULL, &mean, &X, &TG, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "cross-entropy with a target = V");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "targets"), "names targets: %s", eff_ctx_last_error(g_ctx));
        tg[0] = 0;
        memset(&o, 0, sizeof o);
        o.label_smoothing = 1.5f;
        s = eff_cross_entropy_forward(g_ctx, NULL, &mean, &X, &TG, &o);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "label_smoothing outside [0, 1]");
        TG = eff_tensor_1d(tg, EFF_I32, 2);
        s = eff_cross_entropy_forward(g_ctx, NULL, &mean, &X, &TG, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "2 targets for 3 rows");
        s = eff_cross_entropy_forward(g_ctx, NULL, &mean, &X, NULL, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "targets = NULL");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'targets'"), "names 'targets': %s", eff_ctx_last_error(g_ctx));
    }
    {   /* large vocabulary, threaded rows */
        int64_t N = 64, V = 2053, i;
        float *x = fnew(N * V, 8.0), *losses = fnew(N, 1.0), mean;
        int32_t *tg = (int32_t *)malloc((size_t)N * 4);
        eff_tensor X = eff_tensor_2d(x, EFF_F32, N, V), L = eff_tensor_1d(losses, EFF_F32, N), TG = eff_tensor_1d(tg, EFF_I32, N);
        xent_ref r;
        double *rl = dnew(N), rm;
        for (i = 0; i < N; i++) tg[i] = (int32_t)((i * 997) % V);
        r.N = N; r.V = V; r.tg = tg; r.ignore = -100; r.eps = 0; r.mean = 1; r.x = dfrom(x, N * V);
        rm = xent_rows(&r, rl);
        EFF_CHECK(eff_cross_entropy_forward(g_ctx, &L, &mean, &X, &TG, NULL) == EFF_OK && eff_test_nmse(losses, rl, N) < 1e-11 &&
                  fabs(mean - rm) < 1e-5 * rm, "cross-entropy [64, 2053] (threaded)");
        {   /* backward: (softmax - onehot) / N */
            float *dx = fnew(N * V, 1.0);
            double *rd = dnew(N * V), *row = dnew(V);
            eff_tensor DX = eff_tensor_2d(dx, EFF_F32, N, V);
            int64_t j;
            for (i = 0; i < N; i++) {
                ref_softmax_row(0, V, r.x + i * V, row);
                for (j = 0; j < V; j++) rd[i * V + j] = (row[j] - (j == tg[i])) / (double)N;
            }
            EFF_CHECK(eff_cross_entropy_backward(g_ctx, &DX, &X, &TG, 0.0f, NULL) == EFF_OK && eff_test_nmse(dx, rd, N * V) < 1e-11,
                      "cross-entropy backward [64, 2053] (threaded)");
            free(dx); free(rd); free(row);
        }
        free(x); free(losses); free(tg); free(rl); free(r.x);
    }
}

/* ---- dropout ---- */
static void test_dropout(void) {
    int64_t R = 257, C = 301, n = R * C, i, kept = 0;
    float *x = fnew(n, 1.0), *y1 = fnew(n, 1.0), *y2 = fnew(n, 1.0), *dx = fnew(n, 1.0), p = 0.3f;
    eff_tensor X = eff_tensor_2d(x, EFF_F32, R, C), Y1 = X, Y2 = X, DX = X;
    int saved = eff_ctx_n_threads(g_ctx), ok;
    eff_status s;
    Y1.data = y1; Y2.data = y2; DX.data = dx;
    for (i = 0; i < n; i++) if (x[i] == 0.0f) x[i] = 0.5f;
    eff_ctx_set_n_threads(g_ctx, 1);
    ok = eff_dropout_forward(g_ctx, &Y1, &X, p, 1234, 77) == EFF_OK;
    eff_ctx_set_n_threads(g_ctx, 2);
    ok &= eff_dropout_forward(g_ctx, &Y2, &X, p, 1234, 77) == EFF_OK;
    EFF_CHECK(ok && memcmp(y1, y2, (size_t)n * 4) == 0, "dropout: same mask with 1 and 2 threads (seed fixed)");
    ok = 1;
    for (i = 0; i < n; i++) {
        if (y1[i] != 0.0f) { kept++; ok &= y1[i] == x[i] * (1.0f / (1.0f - p)); }
    }
    EFF_CHECK(ok, "dropout: kept values scaled by 1/(1-p)");
    EFF_CHECK(fabs((double)kept / n - 0.7) < 0.01, "dropout: keep rate %.4f close to 0.7", (double)kept / n);
    ok = eff_dropout_forward(g_ctx, &Y2, &X, p, 1235, 77) == EFF_OK && memcmp(y1, y2, (size_t)n * 4) != 0;
    EFF_CHECK(ok, "dropout: another seed gives another mask");
    ok = eff_dropout_backward(g_ctx, &DX, &X, p, 1234, 77) == EFF_OK && memcmp(dx, y1, (size_t)n * 4) == 0;
    EFF_CHECK(ok, "dropout backward regenerates the same mask (dx = dy * mask / (1-p))");
    {   /* offset shifts the stream: rows 1.. of a full call equal a call on the sub-tensor with offset + C */
        eff_tensor Xs, Ys;
        float *ys = fnew((R - 1) * C, 1.0);
        eff_tensor_slice(g_ctx, &Xs, &X, 0, 1, R - 1);
        Ys = eff_tensor_2d(ys, EFF_F32, R - 1, C);
        ok = eff_dropout_forward(g_ctx, &Ys, &Xs, p, 1234, 77 + (uint64_t)C) == EFF_OK && memcmp(ys, y1 + C, (size_t)((R - 1) * C) * 4) == 0;
        EFF_CHECK(ok, "dropout: element i uses hash(seed, offset + i)");
        free(ys);
    }
    ok = eff_dropout_forward(g_ctx, &Y2, &X, 0.0f, 5, 0) == EFF_OK && memcmp(y2, x, (size_t)n * 4) == 0;
    EFF_CHECK(ok, "dropout p = 0 is the identity");
    ok = eff_dropout_forward(g_ctx, &Y2, &X, 1.0f, 5, 0) == EFF_OK;
    for (i = 0; i < n; i++) ok &= y2[i] == 0.0f && !signbit(y2[i]);
    EFF_CHECK(ok, "dropout p = 1 gives zeros (no NaN, no inf)");
    s = eff_dropout_forward(g_ctx, &Y2, &X, 1.5f, 5, 0);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "dropout p > 1");
    s = eff_dropout_forward(g_ctx, &Y2, &X, NAN, 5, 0);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "dropout p = NaN");
    {   /* in place */
        memcpy(y2, x, (size_t)n * 4);
        ok = eff_dropout_forward(g_ctx, &Y2, &Y2, p, 1234, 77) == EFF_OK && memcmp(y2, y1, (size_t)n * 4) == 0;
        EFF_CHECK(ok, "dropout in place");
    }
    eff_ctx_set_n_threads(g_ctx, saved);
    free(x); free(y1); free(y2); free(dx);
}


/* ===========================================================================
   7. Linear and matmul
   =========================================================================== */
typedef struct { int64_t M, N, K; int which; double *x, *W, *b, *dy; int has_b; } lin_ref;
static void ref_linear(const lin_ref *r, double *y) {
    int64_t m, n, k;
    for (m = 0; m < r->M; m++)
        for (n = 0; n < r->N; n++) {
            double s = r->has_b ? r->b[n] : 0.0;
            for (k = 0; k < r->K; k++) s += r->x[m * r->K + k] * r->W[n * r->K + k];
            y[m * r->N + n] = s;
        }
}
static double lin_loss(void *u) {
    lin_ref *r = (lin_ref *)u;
    double *y = dnew(r->M * r->N), L = 0;
    int64_t i;
    ref_linear(r, y);
    for (i = 0; i < r->M * r->N; i++) L += r->dy[i] * y[i];
    free(y);
    return L;
}
/* x layouts: 0 contiguous 2-D, 1 3-D [2, M/2, K], 2 3-D with a gap between batches (copy path),
   3 3-D [M, 1, K] whose size-1 dim has the row stride (rows padded), 4 2-D with padded rows */
typedef struct { int dtype; int64_t M, K, N; int bias, wmode, xmode, ymode; } lcase;
static int linear_case(const lcase *k, double *worst_f, double *worst_b) {
    int64_t M = k->M, K = k->K, N = k->N, i, j;
    int64_t xld = k->xmode == 3 || k->xmode == 4 ? K + 5 : K, xgap = k->xmode == 2 ? 7 : 0, M2 = k->xmode == 1 || k->xmode == 2 ? 2 : 1;
    int64_t wld = k->wmode == 1 ? K + 3 : K, yld = k->ymode ? N + 2 : N;
    size_t es = eff_dtype_type_size(k->dtype);
    float *xstore, *wf = fnew(N * K, 1.0), *bb = fnew(N, 1.0), *ystore = fnew(M * yld + 1, 1.0), *dy = fnew(M * N, 1.0);
    float *dxstore, *dW = fnew(N * K, 1.0), *dW0 = (float *)malloc((size_t)(N * K + 1) * 4), *db = fnew(N, 1.0), *db0 = (float *)malloc((size_t)(N + 1) * 4);
    void *wstore;
    eff_tensor X, Y, W, B, DY, DX, DW, DB;
    lin_ref r;
    double *ref = dnew(M * N), *g, e;
    float *yc = (float *)malloc((size_t)(M * N + 1) * 4), *dxc = (float *)malloc((size_t)(M * K + 1) * 4), *tmp;
    int ok = 1;
    eff_status s;
    int64_t xsize = M2 == 2 ? 2 * ((M / 2) * xld + xgap) : M * xld;
    xstore = fnew(xsize + 1, 1.0); dxstore = fnew(xsize + 1, 1.0);
    /* weights in their dtype; the reference uses exactly the stored values */
    if (k->wmode == 2) wstore = malloc((size_t)(K * (N + 1)) * es);
    else wstore = malloc((size_t)(N * wld) * es);
    for (i = 0; i < N * K; i++) {
        int64_t n = i / K, kk = i % K, at = k->wmode == 2 ? kk * (N + 1) + n : n * wld + kk;
        if (k->dtype == EFF_F32) ((float *)wstore)[at] = wf[i];
        else if (k->dtype == EFF_BF16) { uint16_t h = eff_fp32_to_bf16(wf[i]); ((uint16_t *)wstore)[at] = h; wf[i] = eff_bf16_to_fp32(h); }
        else { uint16_t h = eff_fp32_to_fp16(wf[i]); ((uint16_t *)wstore)[at] = h; wf[i] = eff_fp16_to_fp32(h); }
    }
    W = eff_tensor_2d(wstore, k->dtype, N, K);
    if (k->wmode == 1) W.nb[0] = wld * (int64_t)es;
    if (k->wmode == 2) { W.nb[0] = (int64_t)es; W.nb[1] = (N + 1) * (int64_t)es; }
    B = eff_tensor_1d(bb, EFF_F32, N);
    /* x and dx views */
    if (M2 == 2) {
        X = eff_tensor_3d(xstore, EFF_F32, 2, M / 2, K);
        X.nb[0] = ((M / 2) * xld + xgap) * 4;
    } else if (k->xmode == 3) {
        X = eff_tensor_3d(xstore, EFF_F32, M, 1, K);
        X.nb[0] = xld * 4; X.nb[1] = xld * 4;
    } else {
        X = eff_tensor_2d(xstore, EFF_F32, M, K);
        X.nb[0] = xld * 4;
    }
    DX = X; DX.data = dxstore;
    if (k->xmode == 2) DX = eff_tensor_3d(dxstore, EFF_F32, 2, M / 2, K);   /* dx rows must be uniformly strided */
    Y = eff_tensor_2d(ystore, EFF_F32, M, N); Y.nb[0] = yld * 4;
    DY = eff_tensor_2d(dy, EFF_F32, M, N);
    DW = eff_tensor_2d(dW, EFF_F32, N, K); DB = eff_tensor_1d(db, EFF_F32, N);
    memcpy(dW0, dW, (size_t)(N * K) * 4); memcpy(db0, db, (size_t)N * 4);
    /* logical (contiguous) copies for the reference */
    r.M = M; r.N = N; r.K = K; r.has_b = k->bias; r.x = dnew(M * K); r.W = dfrom(wf, N * K); r.b = dfrom(bb, N); r.dy = dfrom(dy, M * N);
    for (i = 0; i < M; i++) {
        const float *row = M2 == 2 ? (const float *)((const char *)xstore + (i / (M / 2)) * X.nb[0] + (i % (M / 2)) * X.nb[1]) : xstore + i * xld;
        for (j = 0; j < K; j++) r.x[i * K + j] = row[j];
    }
    ref_linear(&r, ref);
    s = eff_linear_forward(g_ctx, &Y, &X, &W, k->bias ? &B : NULL);
    if (s != EFF_OK) { printf("    linear fwd: %s\n", eff_ctx_last_error(g_ctx)); ok = 0; }
    for (i = 0; i < M; i++) for (j = 0; j < N; j++) yc[i * N + j] = ystore[i * yld + j];
    e = eff_test_nmse(yc, ref, M * N);
    if (e > *worst_f) *worst_f = e;
    if (e > 1e-11) ok = 0;
    /* backward: analytic float64 references; FD for the small ones */
    s = eff_linear_backward(g_ctx, &DX, &DW, k->bias ? &DB : NULL, &DY, &X, &W);
    if (s != EFF_OK) { printf("    linear bwd: %s\n", eff_ctx_last_error(g_ctx)); ok = 0; }
    for (i = 0; i < M; i++) {
        const float *row = M2 == 2 ? (const float *)((const char *)dxstore + (i / (M / 2)) * DX.nb[0] + (i % (M / 2)) * DX.nb[1]) : dxstore + i * xld;
        for (j = 0; j < K; j++) dxc[i * K + j] = row[j];
    }
    g = dnew(M * K > N * K ? M * K : N * K);
    tmp = (float *)malloc((size_t)(N * K + 1) * 4);
    for (i = 0; i < M; i++) for (j = 0; j < K; j++) { double sacc = 0; int64_t n; for (n = 0; n < N; n++) sacc += r.dy[i * N + n] * r.W[n * K + j]; g[i * K + j] = sacc; }
    e = eff_test_nmse(dxc, g, M * K);
    if (e > 1e-11) { ok = 0; printf("    linear dx nmse %g\n", e); }
    if (e > *worst_b) *worst_b = e;
    if (M * N * K * (M * K + N * K) < 4000000) {
        e = fd_nmse(lin_loss, &r, r.x, M * K, dxc);
        if (e > 1e-8) { ok = 0; printf("    linear dx fd nmse %g\n", e); }
    }
    for (i = 0; i < N * K; i++) tmp[i] = dW[i] - dW0[i];
    for (i = 0; i < N; i++) for (j = 0; j < K; j++) { double sacc = 0; int64_t m; for (m = 0; m < M; m++) sacc += r.dy[m * N + i] * r.x[m * K + j]; g[i * K + j] = sacc; }
    e = eff_test_nmse(tmp, g, N * K);
    if (e > 1e-10) { ok = 0; printf("    linear dW nmse %g\n", e); }
    if (e > *worst_b) *worst_b = e;
    if (M * N * K * (M * K + N * K) < 4000000) {
        e = fd_nmse(lin_loss, &r, r.W, N * K, tmp);
        if (e > 1e-8) { ok = 0; printf("    linear dW fd nmse %g\n", e); }
    }
    if (k->bias) {
        for (i = 0; i < N; i++) tmp[i] = db[i] - db0[i];
        if (M * N * K * N < 4000000) e = fd_nmse(lin_loss, &r, r.b, N, tmp);
        else {
            for (i = 0; i < N; i++) { double sacc = 0; int64_t m; for (m = 0; m < M; m++) sacc += r.dy[m * N + i]; g[i] = sacc; }
            e = eff_test_nmse(tmp, g, N);
        }
        if (e > 1e-8) { ok = 0; printf("    linear db fd nmse %g\n", e); }
        if (e > *worst_b) *worst_b = e;
    }
    /* second call: dx unchanged (=), dW and db grow by the same increment (+=) */
    {
        float *dW1 = (float *)malloc((size_t)(N * K + 1) * 4), *db1 = (float *)malloc((size_t)(N + 1) * 4), *dxs = (float *)malloc((size_t)(xsize + 1) * 4);
        memcpy(dW1, dW, (size_t)(N * K) * 4); memcpy(db1, db, (size_t)N * 4); memcpy(dxs, dxstore, (size_t)xsize * 4);
        s = eff_linear_backward(g_ctx, &DX, &DW, k->bias ? &DB : NULL, &DY, &X, &W);
        ok &= s == EFF_OK && memcmp(dxs, dxstore, (size_t)xsize * 4) == 0;
        for (i = 0; i < N * K; i++) ok &= fabsf((dW[i] - dW1[i]) - (dW1[i] - dW0[i])) <= 1e-5f * (1.0f + fabsf(dW1[i]));
        for (i = 0; k->bias && i < N; i++) ok &= fabsf((db[i] - db1[i]) - (db1[i] - db0[i])) <= 1e-5f * (1.0f + fabsf(db1[i]));
        /* each output alone: dx only, dW only, db only */
        memcpy(dW, dW1, (size_t)(N * K) * 4); memcpy(db, db1, (size_t)N * 4);
        for (i = 0; i < xsize; i++) dxstore[i] = 0.0f;
        ok &= eff_linear_backward(g_ctx, &DX, NULL, NULL, &DY, &X, &W) == EFF_OK;
        for (i = 0; i < M; i++) {
            const float *a = M2 == 2 ? (const float *)((const char *)dxstore + (i / (M / 2)) * DX.nb[0] + (i % (M / 2)) * DX.nb[1]) : dxstore + i * xld;
            const float *bq = M2 == 2 ? (const float *)((const char *)dxs + (i / (M / 2)) * DX.nb[0] + (i % (M / 2)) * DX.nb[1]) : dxs + i * xld;
            ok &= memcmp(a, bq, (size_t)K * 4) == 0;
        }
        ok &= eff_linear_backward(g_ctx, NULL, &DW, NULL, &DY, &X, &W) == EFF_OK;
        for (i = 0; i < N * K; i++) ok &= fabsf((dW[i] - dW1[i]) - (dW1[i] - dW0[i])) <= 1e-5f * (1.0f + fabsf(dW1[i]));
        if (k->bias) {
            ok &= eff_linear_backward(g_ctx, NULL, NULL, &DB, &DY, NULL, &W) == EFF_OK;
            for (i = 0; i < N; i++) ok &= fabsf((db[i] - db1[i]) - (db1[i] - db0[i])) <= 1e-5f * (1.0f + fabsf(db1[i]));
        }
        free(dW1); free(db1); free(dxs);
    }
    if (!ok) printf("    linear case %s M=%lld K=%lld N=%lld bias=%d w=%d x=%d y=%d failed\n", eff_dtype_name(k->dtype), (long long)M, (long long)K, (long long)N,
                    k->bias, k->wmode, k->xmode, k->ymode);
    free(xstore); free(wf); free(bb); free(ystore); free(dy); free(dxstore); free(dW); free(dW0); free(db); free(db0); free(wstore);
    free(ref); free(g); free(yc); free(dxc); free(tmp); free(r.x); free(r.W); free(r.b); free(r.dy);
    return ok;
}
static void test_linear(void) {
    static const int dts[3] = {EFF_F32, EFF_BF16, EFF_F16};
    static const lcase shapes[] = {
        /* dtype set below; M, K, N, bias, wmode, xmode, ymode */
        {0, 1, 1, 1, 0, 0, 0, 0}, {0, 1, 7, 13, 1, 0, 0, 0}, {0, 1, 33, 7, 1, 1, 0, 1}, {0, 3, 13, 1, 1, 0, 0, 0},
        {0, 5, 65, 33, 0, 0, 4, 0}, {0, 8, 31, 17, 1, 1, 0, 0}, {0, 9, 33, 7, 1, 0, 0, 0}, {0, 13, 33, 7, 1, 1, 0, 1}, {0, 10, 33, 7, 1, 1, 1, 1},
        {0, 14, 17, 65, 0, 0, 2, 0}, {0, 6, 7, 5, 1, 0, 3, 0}, {0, 33, 1, 13, 1, 0, 0, 0}, {0, 12, 127, 31, 1, 0, 1, 0},
        {0, 2, 200, 300, 1, 0, 0, 0}, {0, 40, 200, 300, 1, 1, 0, 0},
    };
    int di;
    size_t si;
    for (di = 0; di < 3; di++) {
        int bad = 0;
        double wf = 0, wb = 0;
        for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            lcase k = shapes[si];
            k.dtype = dts[di];
            bad += !linear_case(&k, &wf, &wb);
            if (k.dtype == EFF_F32 && k.wmode == 0) { k.wmode = 2; bad += !linear_case(&k, &wf, &wb); }   /* transposed W view */
        }
        EFF_CHECK(bad == 0, "linear with %s W: forward vs float64 over %d cases (M = 1 decode ... M > 8 prefill, strided/transposed W, 3-D and strided x/y; worst nmse %.2g)",
                  eff_dtype_name(dts[di]), (int)(sizeof shapes / sizeof shapes[0]), wf);
        EFF_CHECK(bad == 0, "linear with %s W: backward dx (=), dW and db (+=) vs float64 and finite differences, each optional (worst nmse %.2g)",
                  eff_dtype_name(dts[di]), wb);
    }
    {   /* big decode and prefill shapes (threaded, panels) */
        lcase k1 = {EFF_BF16, 1, 1000, 3000, 1, 0, 0, 0}, k2 = {EFF_F16, 37, 600, 700, 0, 1, 0, 0}, k3 = {EFF_F32, 3, 1000, 1100, 1, 2, 0, 0};
        double wf = 0, wb = 0;
        int ok = 1;
        if (g_quick) { k1.K = 200; k1.N = 300; k2.M = 11; k2.K = 100; k2.N = 90; k3.K = 100; k3.N = 100; }
        ok &= linear_case(&k1, &wf, &wb);
        ok &= linear_case(&k2, &wf, &wb);
        ok &= linear_case(&k3, &wf, &wb);
        EFF_CHECK(ok, "linear: bf16 1x1000x3000 decode, f16 37x600x700 prefill panels, transposed f32 W 3x1000x1100 (worst nmse %.2g / %.2g)", wf, wb);
    }
    /* argument errors */
    {
        float x[6], w[6], y[4], b[3];
        eff_tensor X = eff_tensor_2d(x, EFF_F32, 2, 3), W = eff_tensor_2d(w, EFF_F32, 2, 3), Y = eff_tensor_2d(y, EFF_F32, 2, 2), B = eff_tensor_1d(b, EFF_F32, 3);
        eff_tensor Q;
        int64_t ne[2] = {2, 32};
        eff_status s;
        eff_test_fill(x, 6, 1); eff_test_fill(w, 6, 1);
        s = eff_linear_forward(g_ctx, &Y, &X, NULL, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "linear_forward(W = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'W'"), "names 'W': %s", eff_ctx_last_error(g_ctx));
        s = eff_linear_forward(g_ctx, &Y, NULL, &W, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "linear_forward(x = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'x'"), "names 'x': %s", eff_ctx_last_error(g_ctx));
        s = eff_linear_forward(g_ctx, &Y, &X, &W, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_forward with b of length 3 for 2 outputs");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'b'"), "names 'b': %s", eff_ctx_last_error(g_ctx));
        W = eff_tensor_2d(w, EFF_F32, 3, 2);
        s = eff_linear_forward(g_ctx, &Y, &X, &W, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_forward: x has 3 features, W expects 2");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'x'") && has_substr(eff_ctx_last_error(g_ctx), "'W'"), "names x and W: %s",
                  eff_ctx_last_error(g_ctx));
        W = eff_tensor_2d(w, EFF_F32, 3, 3);
        s = eff_linear_forward(g_ctx, &Y, &X, &W, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_forward: y has 2 columns for 3 outputs");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'y'"), "names 'y': %s", eff_ctx_last_error(g_ctx));
        W = eff_tensor_3d(w, EFF_F32, 1, 2, 3);
        s = eff_linear_forward(g_ctx, &Y, &X, &W, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_forward with a 3-D W");
        {
            float wb2[24];
            eff_tensor Ws = eff_tensor_2d(wb2, EFF_F32, 2, 3);
            eff_test_fill(wb2, 24, 1);
            Ws.nb[1] = 8; Ws.nb[0] = 48;   /* neither rows nor columns contiguous */
            s = eff_linear_forward(g_ctx, &Y, &X, &Ws, NULL);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_forward with a W whose last dim is strided");
            EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'W'"), "names 'W': %s", eff_ctx_last_error(g_ctx));
            s = eff_linear_backward(g_ctx, &X, NULL, NULL, &Y, &X, &Ws);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_backward with a W whose last dim is strided");
        }
        {   /* one output whose weights are a strided column of a bigger matrix; bf16 with K = 1 and odd strides */
            float wcol[15], xs[15], ys[3], dys[3], dxs[15];
            uint16_t wb16[9];
            eff_tensor Wc = eff_tensor_2d(wcol, EFF_F32, 1, 5), Xs = eff_tensor_2d(xs, EFF_F32, 3, 5), Ys = eff_tensor_2d(ys, EFF_F32, 3, 1);
            eff_tensor DYs = eff_tensor_2d(dys, EFF_F32, 3, 1), DXs = eff_tensor_2d(dxs, EFF_F32, 3, 5), Wb = eff_tensor_2d(wb16, EFF_BF16, 3, 1);
            eff_tensor X1 = eff_tensor_2d(xs, EFF_F32, 3, 1), Y3 = eff_tensor_2d(ys, EFF_F32, 1, 3);
            int ok = 1, m, kk;
            eff_test_fill(wcol, 15, 1); eff_test_fill(xs, 15, 1); eff_test_fill(dys, 3, 1);
            Wc.nb[1] = 12; Wc.nb[0] = 28;
            ok &= eff_linear_forward(g_ctx, &Ys, &Xs, &Wc, NULL) == EFF_OK;
            for (m = 0; m < 3; m++) {
                double r = 0;
                for (kk = 0; kk < 5; kk++) r += (double)xs[m * 5 + kk] * wcol[kk * 3];
                ok &= fabs(ys[m] - r) < 1e-5;
            }
            ok &= eff_linear_backward(g_ctx, &DXs, NULL, NULL, &DYs, &Xs, &Wc) == EFF_OK;
            for (m = 0; m < 3; m++) for (kk = 0; kk < 5; kk++) ok &= fabsf(dxs[m * 5 + kk] - dys[m] * wcol[kk * 3]) < 1e-6f;
            EFF_CHECK(ok, "linear with N = 1 and W a strided column (forward and dx)");
            for (m = 0; m < 9; m++) wb16[m] = eff_fp32_to_bf16((float)m - 4.0f);
            Wb.nb[0] = 6; Wb.nb[1] = 10;   /* K = 1: the column stride is irrelevant */
            Y3 = eff_tensor_2d(ys, EFF_F32, 1, 3);
            X1 = eff_tensor_2d(xs, EFF_F32, 1, 1);
            ok = eff_linear_forward(g_ctx, &Y3, &X1, &Wb, NULL) == EFF_OK;
            for (m = 0; m < 3; m++) ok &= ys[m] == xs[0] * ((float)(3 * m) - 4.0f);
            EFF_CHECK(ok, "linear with bf16 W, K = 1 and odd strides");
        }
        W = eff_tensor_2d(x, EFF_F32, 2, 3);
        Y = eff_tensor_2d(x, EFF_F32, 2, 2);
        s = eff_linear_forward(g_ctx, &Y, &X, &W, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "linear_forward with y aliasing x");
        {
            float x32[64], y2[4];
            eff_tensor X32 = eff_tensor_2d(x32, EFF_F32, 2, 32), Y2 = eff_tensor_2d(y2, EFF_F32, 2, 2);
            unsigned char qb[72];
            memset(qb, 0, sizeof qb);
            eff_test_fill(x32, 64, 1);
            eff_tensor_init(g_ctx, &Q, EFF_Q4_0, 2, ne, qb);
            s = eff_linear_forward(g_ctx, &Y2, &X32, &Q, NULL);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_DTYPE, "linear_forward with q4_0 W before eff_quant_register");
            EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "eff_quant_register"), "the message says what to do: %s", eff_ctx_last_error(g_ctx));
        }
        Y = eff_tensor_2d(y, EFF_F32, 2, 2);
        W = eff_tensor_2d(w, EFF_F32, 2, 3);
        s = eff_linear_backward(g_ctx, &X, NULL, NULL, NULL, &X, &W);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "linear_backward(dy = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'dy'"), "names 'dy': %s", eff_ctx_last_error(g_ctx));
        s = eff_linear_backward(g_ctx, NULL, &W, NULL, &Y, NULL, &W);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "linear_backward with dW but x = NULL");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'x'"), "names 'x': %s", eff_ctx_last_error(g_ctx));
        {
            float xb[40], dxb[40], dyb[8];
            eff_tensor X3 = eff_tensor_3d(xb, EFF_F32, 2, 2, 3), DX3 = X3, DY3 = eff_tensor_3d(dyb, EFF_F32, 2, 2, 2);
            eff_test_fill(xb, 40, 1); eff_test_fill(dyb, 8, 1);
            DX3.data = dxb; DX3.nb[0] = 40;   /* a gap between the batches: not one matrix */
            s = eff_linear_backward(g_ctx, &DX3, NULL, NULL, &DY3, &X3, &W);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_backward into a dx whose rows are not uniformly strided");
            EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'dx'"), "names 'dx': %s", eff_ctx_last_error(g_ctx));
        }
        {
            float dw[9];
            eff_tensor DW = eff_tensor_2d(dw, EFF_F32, 3, 3);
            s = eff_linear_backward(g_ctx, NULL, &DW, NULL, &Y, &X, &W);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "linear_backward with dW of the wrong shape");
            EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'dW'"), "names 'dW': %s", eff_ctx_last_error(g_ctx));
        }
    }
}

/* ---- matmul ---- */
typedef struct { int64_t Ae[4], Be[4], Ce[4], M, N, K; double *A, *B, *dC; } mm_ref;
static void ref_matmul(const mm_ref *r, double *C) {
    int64_t b0, b1, m, n, k;
    for (b0 = 0; b0 < r->Ce[0]; b0++) for (b1 = 0; b1 < r->Ce[1]; b1++) {
        const double *A = r->A + ((r->Ae[0] > 1 ? b0 : 0) * r->Ae[1] + (r->Ae[1] > 1 ? b1 : 0)) * r->M * r->K;
        const double *B = r->B + ((r->Be[0] > 1 ? b0 : 0) * r->Be[1] + (r->Be[1] > 1 ? b1 : 0)) * r->K * r->N;
        double *Cp = C + (b0 * r->Ce[1] + b1) * r->M * r->N;
        for (m = 0; m < r->M; m++) for (n = 0; n < r->N; n++) {
            double s = 0;
            for (k = 0; k < r->K; k++) s += A[m * r->K + k] * B[k * r->N + n];
            Cp[m * r->N + n] = s;
        }
    }
}
static double mm_loss(void *u) {
    mm_ref *r = (mm_ref *)u;
    int64_t n = r->Ce[0] * r->Ce[1] * r->M * r->N, i;
    double *C = dnew(n), L = 0;
    ref_matmul(r, C);
    for (i = 0; i < n; i++) L += r->dC[i] * C[i];
    free(C);
    return L;
}
/* An eff view of logical contiguous data (nd dims): mode 0 contiguous, 1 transposed storage
   of the last two dims, 2 last dim strided by 2 (neither layout: the op must copy). */
static eff_tensor mm_view(const float *logical, int nd, const int64_t *sh, int mode, float **store) {
    int64_t n = 1, i, rows, R = sh[nd - 2], Cc = sh[nd - 1], bsz;
    eff_tensor t;
    for (i = 0; i < nd; i++) n *= sh[i];
    bsz = R * Cc;
    rows = n / (bsz > 0 ? bsz : 1);
    *store = (float *)malloc((size_t)(2 * n + 1) * 4);
    eff_tensor_init(g_ctx, &t, EFF_F32, nd, sh, *store);
    if (mode == 0) { memcpy(*store, logical, (size_t)n * 4); return t; }
    if (mode == 1) {
        int64_t b, r, c;
        for (b = 0; b < rows; b++) for (r = 0; r < R; r++) for (c = 0; c < Cc; c++) (*store)[b * bsz + c * R + r] = logical[b * bsz + r * Cc + c];
        t.nb[nd - 1] = R * 4; t.nb[nd - 2] = 4;
        return t;
    }
    for (i = 0; i < n; i++) (*store)[2 * i] = logical[i];
    for (i = 0; i < nd; i++) t.nb[i] *= 2;
    return t;
}
static void test_matmul(void) {
    typedef struct { int and_, bnd, cnd; int64_t A[4], B[4], C[4]; int am, bm; } mcase;
    static const mcase cases[] = {
        {2, 2, 2, {1, 1}, {1, 1}, {1, 1}, 0, 0},
        {2, 2, 2, {7, 13}, {13, 5}, {7, 5}, 0, 0},
        {2, 2, 2, {7, 13}, {13, 5}, {7, 5}, 1, 0},
        {2, 2, 2, {7, 13}, {13, 5}, {7, 5}, 0, 1},
        {2, 2, 2, {7, 13}, {13, 5}, {7, 5}, 1, 1},
        {2, 2, 2, {7, 13}, {13, 5}, {7, 5}, 2, 2},
        {2, 2, 2, {33, 17}, {17, 65}, {33, 65}, 0, 1},
        {4, 4, 4, {2, 3, 5, 7}, {2, 3, 7, 3}, {2, 3, 5, 3}, 0, 0},
        {4, 4, 4, {2, 3, 5, 7}, {2, 3, 7, 3}, {2, 3, 5, 3}, 1, 1},
        {3, 2, 3, {3, 5, 7}, {7, 4}, {3, 5, 4}, 0, 0},
        {2, 3, 3, {5, 7}, {4, 7, 3}, {4, 5, 3}, 0, 1},
        {4, 4, 4, {2, 1, 5, 7}, {1, 3, 7, 2}, {2, 3, 5, 2}, 0, 0},
        {4, 3, 4, {2, 1, 1, 9}, {3, 9, 1}, {2, 3, 1, 1}, 1, 0},
        {3, 3, 3, {1, 6, 4}, {5, 4, 6}, {5, 6, 6}, 2, 1},
        {3, 3, 3, {4, 13, 11}, {4, 11, 9}, {4, 13, 9}, 0, 0},
    };
    size_t ci;
    int ok_f = 1, ok_b = 1, nt;
    double wf = 0, wb = 0;
    int saved = eff_ctx_n_threads(g_ctx);
    for (nt = 1; nt <= 2; nt++) {
        eff_ctx_set_n_threads(g_ctx, nt);
        for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const mcase *k = &cases[ci];
            mm_ref r;
            int64_t na = 1, nb = 1, nc = 1, i;
            float *a, *b, *c, *dc, *da, *db, *sa, *sb, *sda, *sdb;
            eff_tensor A, B, C, DC, DA, DB;
            double *ref, e;
            for (i = 0; i < k->and_; i++) na *= k->A[i];
            for (i = 0; i < k->bnd; i++) nb *= k->B[i];
            for (i = 0; i < k->cnd; i++) nc *= k->C[i];
            pad4(k->and_ - 2, k->A, r.Ae); pad4(k->bnd - 2, k->B, r.Be); pad4(k->cnd - 2, k->C, r.Ce);
            for (i = 0; i < 2; i++) { r.Ae[i] = r.Ae[i + 2]; r.Be[i] = r.Be[i + 2]; r.Ce[i] = r.Ce[i + 2]; }
            r.M = k->A[k->and_ - 2]; r.K = k->A[k->and_ - 1]; r.N = k->B[k->bnd - 1];
            a = fnew(na, 1.0); b = fnew(nb, 1.0); c = fnew(nc, 1.0); dc = fnew(nc, 1.0); da = fnew(na, 1.0); db = fnew(nb, 1.0);
            A = mm_view(a, k->and_, k->A, k->am, &sa); B = mm_view(b, k->bnd, k->B, k->bm, &sb);
            DA = mm_view(da, k->and_, k->A, k->am == 2 ? 0 : k->am, &sda); DB = mm_view(db, k->bnd, k->B, k->bm == 2 ? 0 : k->bm, &sdb);
            eff_tensor_init(g_ctx, &C, EFF_F32, k->cnd, k->C, c); eff_tensor_init(g_ctx, &DC, EFF_F32, k->cnd, k->C, dc);
            r.A = dfrom(a, na); r.B = dfrom(b, nb); r.dC = dfrom(dc, nc);
            ref = dnew(nc);
            ref_matmul(&r, ref);
            if (eff_matmul_forward(g_ctx, &C, &A, &B) != EFF_OK) { ok_f = 0; printf("    matmul case %d: %s\n", (int)ci, eff_ctx_last_error(g_ctx)); }
            e = eff_test_nmse(c, ref, nc);
            if (e > 1e-12) { ok_f = 0; printf("    matmul case %d fwd nmse %g\n", (int)ci, e); }
            if (e > wf) wf = e;
            if (eff_matmul_backward(g_ctx, &DA, &DB, &DC, &A, &B) != EFF_OK) { ok_b = 0; printf("    matmul case %d bwd: %s\n", (int)ci, eff_ctx_last_error(g_ctx)); }
            /* read the gradients back in logical order */
            {
                float *dal = (float *)malloc((size_t)na * 4), *dbl = (float *)malloc((size_t)nb * 4);
                eff_tensor L1 = eff_tensor_2d(dal, EFF_F32, 1, 1), L2 = L1;
                eff_tensor_init(g_ctx, &L1, EFF_F32, k->and_, k->A, dal); eff_tensor_init(g_ctx, &L2, EFF_F32, k->bnd, k->B, dbl);
                eff_tensor_copy(g_ctx, &L1, &DA); eff_tensor_copy(g_ctx, &L2, &DB);
                e = fd_nmse(mm_loss, &r, r.A, na, dal);
                if (e > 1e-8) { ok_b = 0; printf("    matmul case %d dA nmse %g\n", (int)ci, e); }
                if (e > wb) wb = e;
                e = fd_nmse(mm_loss, &r, r.B, nb, dbl);
                if (e > 1e-8) { ok_b = 0; printf("    matmul case %d dB nmse %g\n", (int)ci, e); }
                if (e > wb) wb = e;
                free(dal); free(dbl);
            }
            free(a); free(b); free(c); free(dc); free(da); free(db); free(sa); free(sb); free(sda); free(sdb); free(ref); free(r.A); free(r.B); free(r.dC);
        }
    }
    eff_ctx_set_n_threads(g_ctx, saved);
    EFF_CHECK(ok_f, "matmul forward: 2-D, batched, broadcast batch dims, transposed and strided views, 1 and 2 threads (worst nmse %.2g)", wf);
    EFF_CHECK(ok_b, "matmul backward: dA, dB incl. sums over broadcast dims, into transposed views, vs finite differences (worst nmse %.2g)", wb);
    {
        float a[12], b[12], c[16];
        eff_tensor A = eff_tensor_2d(a, EFF_F32, 3, 4), B = eff_tensor_2d(b, EFF_F32, 4, 3), C = eff_tensor_2d(c, EFF_F32, 3, 3), C4 = eff_tensor_2d(c, EFF_F32, 4, 4);
        eff_tensor A3 = eff_tensor_3d(a, EFF_F32, 2, 2, 3), B3 = eff_tensor_3d(b, EFF_F32, 3, 3, 1 + 0), C3;
        float c3[16];
        eff_status s;
        eff_test_fill(a, 12, 1); eff_test_fill(b, 12, 1);
        s = eff_matmul_forward(g_ctx, &C4, &A, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "matmul: C of the wrong shape");
        s = eff_matmul_forward(g_ctx, &C, &A, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "matmul(B = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'B'"), "names 'B': %s", eff_ctx_last_error(g_ctx));
        s = eff_matmul_forward(g_ctx, &A, &A, &B);
        EFF_CHECK(s != EFF_OK, "matmul: C aliasing A is refused");
        B3 = eff_tensor_3d(b, EFF_F32, 3, 2, 2);
        C3 = eff_tensor_3d(c3, EFF_F32, 3, 2, 2);
        A3 = eff_tensor_3d(a, EFF_F32, 2, 2, 2);
        s = eff_matmul_forward(g_ctx, &C3, &A3, &B3);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "matmul: batch dims 2 and 3 do not broadcast");
        A = eff_tensor_1d(a, EFF_F32, 4);
        s = eff_matmul_forward(g_ctx, &C, &A, &B);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "matmul of a 1-D operand");
    }
}


/* ===========================================================================
   8. Optimizers against torch.optim formulas (float64)
   =========================================================================== */
static void test_optimizers(void) {
    static const int64_t sizes[] = {1, 7, 1001, 70001};
    size_t si;
    int cfg;
    /* AdamW: p *= 1 - lr wd; m, v; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
    for (cfg = 0; cfg < 3; cfg++) {
        int ok = 1;
        double worst = 0;
        for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int64_t n = sizes[si], i, step;
            float *p = fnew(n, 1.0), *g = fnew(n, 1.0), *m = (float *)calloc((size_t)n, 4), *v = (float *)calloc((size_t)n, 4);
            double *rp = dfrom(p, n), *rm = dnew(n), *rv = dnew(n), *rmv = dnew(n);
            eff_adamw_opts o;
            double lr, b1, b2, eps, wd, sc;
            memset(&o, 0, sizeof o);
            /* eff's hyperparameters are floats: the reference uses the same float values */
            if (cfg == 0) { lr = (double)1e-3f; b1 = (double)0.9f; b2 = (double)0.999f; eps = (double)1e-8f; wd = 0; sc = 1; }   /* defaults */
            else if (cfg == 1) { o.lr = 1e-2f; o.beta1 = 0.8f; o.beta2 = 0.95f; o.eps = 1e-6f; o.weight_decay = 0.1f; lr = 1e-2; b1 = 0.8; b2 = 0.95; eps = 1e-6; wd = 0.1; sc = 1; }
            else { o.lr = 3e-2f; o.weight_decay = 0.01f; o.grad_scale = 0.25f; lr = 3e-2; b1 = (double)0.9f; b2 = (double)0.999f; eps = (double)1e-8f; wd = 0.01; sc = 0.25; }
            if (cfg == 1) { lr = (double)o.lr; b1 = (double)o.beta1; b2 = (double)o.beta2; eps = (double)o.eps; wd = (double)o.weight_decay; }
            if (cfg == 2) { lr = (double)o.lr; wd = (double)o.weight_decay; }
            for (step = 1; step <= 5; step++) {
                double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
                eff_test_fill(g, n, 2.0);
                o.step = step;
                ok &= eff_adamw_step(g_ctx, &o, n, p, EFF_F32, NULL, g, EFF_F32, m, v) == EFF_OK;
                for (i = 0; i < n; i++) {
                    double gg = (double)g[i] * sc;
                    rp[i] *= 1 - lr * wd;
                    rm[i] = b1 * rm[i] + (1 - b1) * gg;
                    rv[i] = b2 * rv[i] + (1 - b2) * gg * gg;
                    rp[i] -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
                }
            }
            {
                double e = eff_test_nmse(p, rp, n), e2 = eff_test_nmse(m, rm, n), e3 = eff_test_nmse(v, rv, n);
                if (e > worst) worst = e;
                if (e > 1e-10 || e2 > 1e-10 || e3 > 1e-10) { ok = 0; printf("    adamw cfg %d n %lld: nmse p %g m %g v %g\n", cfg, (long long)n, e, e2, e3); }
            }
            free(p); free(g); free(m); free(v); free(rp); free(rm); free(rv); free(rmv);
        }
        EFF_CHECK(ok, "adamw_step vs torch.optim.AdamW over 5 steps (%s; worst nmse %.2g)",
                  cfg == 0 ? "defaults" : cfg == 1 ? "betas (0.8, 0.95), eps 1e-6, weight decay 0.1" : "weight decay, grad_scale 0.25", worst);
    }
    /* SGD: g += wd p; buf = mu buf + (1 - damp) g (buf = g at step 1); g = nesterov ? g + mu buf : buf; p -= lr g */
    for (cfg = 0; cfg < 5; cfg++) {
        int ok = 1;
        double worst = 0;
        for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int64_t n = sizes[si], i, step;
            float *p = fnew(n, 1.0), *g = fnew(n, 1.0), *buf = fnew(n, 1.0);
            double *rp = dfrom(p, n), *rb = dnew(n), lr, mu = 0, damp = 0, wd = 0, sc = 1;
            int nest = 0;
            eff_sgd_opts o;
            memset(&o, 0, sizeof o);
            lr = 1e-2;
            if (cfg == 1) { o.lr = 0.1f; o.momentum = 0.9f; }
            if (cfg == 2) { o.lr = 0.05f; o.momentum = 0.9f; o.dampening = 0.1f; o.weight_decay = 0.01f; }
            if (cfg == 3) { o.lr = 0.05f; o.momentum = 0.8f; o.nesterov = 1; o.weight_decay = 0.02f; }
            if (cfg == 4) { o.lr = 0.2f; o.weight_decay = 0.1f; o.grad_scale = 4.0f; }
            if (o.lr != 0.0f) lr = (double)o.lr;
            mu = (double)o.momentum; damp = (double)o.dampening; wd = (double)o.weight_decay; nest = o.nesterov;
            sc = o.grad_scale != 0.0f ? (double)o.grad_scale : 1.0;
            for (step = 1; step <= 5; step++) {
                eff_test_fill(g, n, 1.0);
                o.step = step;
                ok &= eff_sgd_step(g_ctx, &o, n, p, EFF_F32, NULL, g, EFF_F32, mu != 0 ? buf : NULL) == EFF_OK;
                for (i = 0; i < n; i++) {
                    double gg = (double)g[i] * sc + wd * rp[i];
                    if (mu != 0) {
                        rb[i] = step == 1 ? gg : mu * rb[i] + (1 - damp) * gg;
                        gg = nest ? gg + mu * rb[i] : rb[i];
                    }
                    rp[i] -= lr * gg;
                }
            }
            {
                double e = eff_test_nmse(p, rp, n), e2 = mu != 0 ? eff_test_nmse(buf, rb, n) : 0;
                if (e > worst) worst = e;
                if (e > 1e-10 || e2 > 1e-10) { ok = 0; printf("    sgd cfg %d n %lld: nmse p %g buf %g\n", cfg, (long long)n, e, e2); }
            }
            free(p); free(g); free(buf); free(rp); free(rb);
        }
        EFF_CHECK(ok, "sgd_step vs torch.optim.SGD over 5 steps (%s; worst nmse %.2g)",
                  cfg == 0 ? "plain, default lr" : cfg == 1 ? "momentum 0.9" : cfg == 2 ? "momentum, dampening 0.1, weight decay" :
                  cfg == 3 ? "nesterov, weight decay" : "weight decay, grad_scale 4", worst);
    }
    /* mixed precision: bf16 / f16 params with fp32 master weights, bf16 / f16 grads */
    {
        int pd;
        for (pd = 0; pd < 2; pd++) {
            int pdt = pd ? EFF_F16 : EFF_BF16, ok = 1;
            int64_t n = 513, i, step;
            float *master = fnew(n, 1.0), *gf = fnew(n, 1.0), *m = (float *)calloc((size_t)n, 4), *v = (float *)calloc((size_t)n, 4);
            float *rmaster = (float *)malloc((size_t)n * 4), *rm = (float *)calloc((size_t)n, 4), *rv = (float *)calloc((size_t)n, 4);
            uint16_t *param = (uint16_t *)malloc((size_t)n * 2), *g16 = (uint16_t *)malloc((size_t)n * 2);
            eff_adamw_opts o;
            memset(&o, 0, sizeof o);
            o.lr = 1e-2f; o.weight_decay = 0.05f;
            for (i = 0; i < n; i++) param[i] = pd ? eff_fp32_to_fp16(master[i]) : eff_fp32_to_bf16(master[i]);
            memcpy(rmaster, master, (size_t)n * 4);
            for (step = 1; step <= 3; step++) {
                eff_test_fill(gf, n, 1.0);
                for (i = 0; i < n; i++) { g16[i] = pd ? eff_fp32_to_fp16(gf[i]) : eff_fp32_to_bf16(gf[i]); gf[i] = pd ? eff_fp16_to_fp32(g16[i]) : eff_bf16_to_fp32(g16[i]); }
                o.step = step;
                ok &= eff_adamw_step(g_ctx, &o, n, param, pdt, master, g16, pdt, m, v) == EFF_OK;
                /* the same step on fp32 params with the dequantized grads gives the master weights */
                ok &= eff_adamw_step(g_ctx, &o, n, rmaster, EFF_F32, NULL, gf, EFF_F32, rm, rv) == EFF_OK;
            }
            ok &= memcmp(master, rmaster, (size_t)n * 4) == 0;
            for (i = 0; i < n; i++) ok &= param[i] == (pd ? eff_fp32_to_fp16(master[i]) : eff_fp32_to_bf16(master[i]));
            EFF_CHECK(ok, "adamw with %s params + fp32 master: master follows the fp32 update, params = RNE(master)", pd ? "f16" : "bf16");
            {
                eff_sgd_opts so;
                memset(&so, 0, sizeof so);
                so.lr = 0.1f; so.momentum = 0.9f; so.step = 1;
                ok = eff_sgd_step(g_ctx, &so, n, param, pdt, master, gf, EFF_F32, m) == EFF_OK;
                for (i = 0; i < n; i++) ok &= param[i] == (pd ? eff_fp32_to_fp16(master[i]) : eff_fp32_to_bf16(master[i]));
                EFF_CHECK(ok, "sgd with %s params + fp32 master", pd ? "f16" : "bf16");
            }
            free(master); free(gf); free(m); free(v); free(rmaster); free(rm); free(rv); free(param); free(g16);
        }
    }
    /* errors */
    {
        float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0}, master[4];
        int32_t pi[4];
        eff_adamw_opts o;
        eff_sgd_opts so;
        eff_status s;
        memset(&o, 0, sizeof o);
        s = eff_adamw_step(g_ctx, &o, 4, p, EFF_F32, NULL, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw with step 0");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "step"), "names step: %s", eff_ctx_last_error(g_ctx));
        o.step = 1;
        s = eff_adamw_step(g_ctx, &o, 4, p, EFF_F32, NULL, g, EFF_F32, NULL, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw without m");
        s = eff_adamw_step(g_ctx, &o, 4, p, EFF_F32, master, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw: master with f32 params");
        s = eff_adamw_step(g_ctx, &o, 4, pi, EFF_I32, NULL, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_DTYPE, "adamw with i32 params");
        s = eff_adamw_step(g_ctx, &o, 4, NULL, EFF_F32, NULL, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw(param = NULL)");
        EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "'param'"), "names 'param': %s", eff_ctx_last_error(g_ctx));
        o.beta1 = 1.0f;
        s = eff_adamw_step(g_ctx, &o, 4, p, EFF_F32, NULL, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw with beta1 = 1");
        s = eff_adamw_step(g_ctx, NULL, 4, p, EFF_F32, NULL, g, EFF_F32, m, v);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "adamw(opts = NULL)");
        memset(&so, 0, sizeof so);
        so.momentum = 0.9f; so.step = 1;
        s = eff_sgd_step(g_ctx, &so, 4, p, EFF_F32, NULL, g, EFF_F32, NULL);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "sgd with momentum and no buffer");
        so.nesterov = 1; so.dampening = 0.5f;
        s = eff_sgd_step(g_ctx, &so, 4, p, EFF_F32, NULL, g, EFF_F32, m);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "sgd nesterov with dampening");
        memset(&so, 0, sizeof so);
        EFF_CHECK(eff_sgd_step(g_ctx, &so, 0, NULL, EFF_F32, NULL, NULL, EFF_F32, NULL) == EFF_OK, "n = 0 is a no-op");
    }
}

/* ===========================================================================
   9. JSON
   =========================================================================== */
static eff_status jparse(eff_json *d, const char *text, int dup) { return eff_json_parse(g_ctx, d, text, (int64_t)strlen(text), dup); }
static void test_json(void) {
    eff_json d;
    eff_status s;
    const eff_json_node *root, *a, *n;
    const char *doc =
        " {\"a\": [1, 2.5, -3e2, true, false, null, {\"b\": \"x\"}],\n \"c\": {\"d\": {\"e\": []}, \"f\": {}},"
        " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\\u0041\","
        " \"big\": 9223372036854775807, \"small\": -9223372036854775808, \"over\": 9223372036854775808,"
        " \"neg0\": -0, \"exp\": 1E+2, \"frac\": 0.000123, \"\\u00fcber\": 1 } ";
    s = jparse(&d, doc, 1);
    EFF_CHECK(s == EFF_OK, "parse a nested document (%s)", eff_ctx_last_error(g_ctx));
    if (s == EFF_OK) {
        root = eff_json_root(&d);
        a = eff_json_get(&d, root, "a");
        EFF_CHECK(root && root->type == EFF_JSON_OBJECT && root->len == 10 && a && a->type == EFF_JSON_ARRAY && a->len == 7, "root object with 10 members, a has 7");
        EFF_CHECK(eff_json_at(&d, a, 0)->is_int && eff_json_at(&d, a, 0)->inum == 1 && eff_json_at(&d, a, 1)->num == 2.5 &&
                  !eff_json_at(&d, a, 1)->is_int && eff_json_at(&d, a, 2)->num == -300.0 && !eff_json_at(&d, a, 2)->is_int &&
                  eff_json_at(&d, a, 3)->type == EFF_JSON_TRUE && eff_json_at(&d, a, 4)->type == EFF_JSON_FALSE &&
                  eff_json_at(&d, a, 5)->type == EFF_JSON_NULL && eff_json_at(&d, a, 7) == NULL && eff_json_at(&d, a, -1) == NULL,
                  "array elements: numbers, literals, bounds");
        n = eff_json_at(&d, a, 6);
        EFF_CHECK(n && strcmp(eff_json_get_string(&d, n, "b", "?"), "x") == 0, "object inside the array");
        n = eff_json_get(&d, eff_json_get(&d, eff_json_get(&d, root, "c"), "d"), "e");
        EFF_CHECK(n && n->type == EFF_JSON_ARRAY && n->len == 0 && eff_json_child(&d, n) == NULL, "empty array three levels down");
        n = eff_json_get(&d, root, "s");
        EFF_CHECK(n && n->len == 19 && memcmp(n->str, "q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "A", 20) == 0,
                  "escapes incl. \\u00e9, \\u20ac and the surrogate pair \\ud83d\\ude00 -> UTF-8 (len %lld)", n ? (long long)n->len : -1LL);
        EFF_CHECK(eff_json_get_int(&d, root, "big", 0) == INT64_MAX && eff_json_get_int(&d, root, "small", 0) == INT64_MIN,
                  "int64 max and min exactly");
        n = eff_json_get(&d, root, "over");
        EFF_CHECK(n && !n->is_int && n->num == 9223372036854775808.0 && eff_json_get_int(&d, root, "over", 7) == 7,
                  "2^63 is not an int64 (double only)");
        n = eff_json_get(&d, root, "neg0");
        EFF_CHECK(n && n->is_int && n->inum == 0 && signbit(n->num), "-0 keeps its sign as a double");
        EFF_CHECK(eff_json_get_number(&d, root, "exp", 0) == 100.0 && eff_json_get_number(&d, root, "frac", 0) == 0.000123 &&
                  eff_json_get_number(&d, root, "s", -1) == -1 && eff_json_get_bool(&d, a, "x", 3) == 3,
                  "typed getters with defaults");
        EFF_CHECK(eff_json_get(&d, root, "\xc3\xbc" "ber") != NULL, "escaped key found by its UTF-8 spelling");
        {
            int cnt = 0;
            const eff_json_node *c;
            for (c = eff_json_child(&d, root); c; c = eff_json_next(&d, c)) cnt++;
            EFF_CHECK(cnt == 10 && strcmp(eff_json_child(&d, root)->key, "a") == 0, "children in document order");
        }
        eff_json_free(g_ctx, &d);
    }
    {
        static const char *bad[] = {
            "", "   ", "[1,2,]", "{\"a\":1,}", "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",
            "{} x", "1 2", "tru", "nul", "01", "1.", ".5", "+1", "-", "1e", "1e+", "NaN", "Infinity", "[1 2]", "\"a\nb\"",
            "{1:2}", "{\"a\" 1}", "{\"a\":}", "\"\\u12G4\"", "[", "{", "]", "{\"a\":1", "[1,]", "\"\\", "'a'", "[1]]", "{\"a\":1}}",
            "/* c */ 1", "\"\x01\"",
        };
        size_t i;
        int ok = 1;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            s = jparse(&d, bad[i], 0);
            if (s != EFF_ERR_FORMAT || !has_substr(eff_ctx_last_error(g_ctx), "JSON")) { ok = 0; printf("    accepted or wrong status: [%s] -> %s\n", bad[i], eff_status_str(s)); }
            if (s == EFF_OK) eff_json_free(g_ctx, &d);
        }
        EFF_CHECK(ok, "JSON rejects %d malformed texts (trailing commas, unterminated, bad escapes, lone surrogates, garbage, bad numbers) with EFF_ERR_FORMAT",
                  (int)(sizeof bad / sizeof bad[0]));
        EFF_CHECK(d.nodes == NULL && d.strings == NULL, "a failed parse leaves nothing allocated");
    }
    {   /* depth: 128 nested arrays parse, 129 do not */
        char deep[300];
        int i;
        for (i = 0; i < 128; i++) { deep[i] = '['; deep[128 + i] = ']'; }
        deep[256] = 0;
        s = jparse(&d, deep, 0);
        EFF_CHECK(s == EFF_OK && d.n_nodes == 128, "128 nested arrays parse");
        if (s == EFF_OK) eff_json_free(g_ctx, &d);
        for (i = 0; i < 129; i++) { deep[i] = '['; deep[129 + i] = ']'; }
        deep[258] = 0;
        s = jparse(&d, deep, 0);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_FORMAT, "129 nested arrays are rejected (depth > 128)");
        {   /* very deep input must not overflow the stack */
            int64_t nn = 100000, k;
            char *dd = (char *)malloc((size_t)nn + 1);
            for (k = 0; k < nn; k++) dd[k] = k % 2 ? '[' : '{';
            for (k = 0; k < nn; k += 2) { dd[k] = '['; dd[k + 1] = '['; }
            dd[nn] = 0;
            s = eff_json_parse(g_ctx, &d, dd, nn, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_FORMAT, "100000 '[' are rejected quickly, no stack overflow");
            free(dd);
        }
    }
    s = jparse(&d, "{\"a\": 1, \"b\": {\"a\": 2, \"a\": 3}}", 1);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_FORMAT, "duplicate keys in a nested object, when asked");
    EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "\"a\""), "the message names the key: %s", eff_ctx_last_error(g_ctx));
    s = jparse(&d, "{\"a\": 1, \"b\": {\"a\": 2, \"a\": 3}}", 0);
    EFF_CHECK(s == EFF_OK, "duplicate keys are allowed when not asked");
    if (s == EFF_OK) eff_json_free(g_ctx, &d);
    s = jparse(&d, "{\"ab\": 1, \"a\": 2, \"a\\u0000\": 3}", 1);
    EFF_CHECK(s == EFF_OK, "keys that are prefixes of each other (and embedded NUL) are not duplicates");
    if (s == EFF_OK) eff_json_free(g_ctx, &d);
    {
        const char *t = "[1, 2]";
        s = eff_json_parse(g_ctx, &d, t, 3, 0);   /* only "[1," */
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_FORMAT, "the length bounds the input (no read past it)");
        s = eff_json_parse(g_ctx, &d, NULL, 3, 0);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "NULL text");
    }
    /* writer round trip */
    {
        eff_json_writer w;
        const char *out;
        size_t len;
        static const double nums[] = {0.1, 1.0 / 3.0, 1e300, -0.0, 5e-324, 768.0, 100.0, 1e21, 123456789012.0, 2.5e-7, -1.7976931348623157e308, 0.3, 1e16, 3.0e-5};
        int pretty;
        for (pretty = 0; pretty < 2; pretty++) {
            int ok = 1;
            size_t i;
            eff_jsonw_init(g_ctx, &w, pretty);
            eff_jsonw_begin_object(&w);
            eff_jsonw_key(&w, "nums"); eff_jsonw_begin_array(&w);
            for (i = 0; i < sizeof nums / sizeof nums[0]; i++) eff_jsonw_number(&w, nums[i]);
            eff_jsonw_number(&w, NAN);
            eff_jsonw_end_array(&w);
            eff_jsonw_key(&w, "ints"); eff_jsonw_begin_array(&w); eff_jsonw_int(&w, INT64_MIN); eff_jsonw_int(&w, INT64_MAX); eff_jsonw_int(&w, 0); eff_jsonw_end_array(&w);
            eff_jsonw_key(&w, "str"); eff_jsonw_string(&w, "q\"b\\n\nt\t\x01\x1f \xc3\xa9/");
            eff_jsonw_key(&w, "k\"ey"); eff_jsonw_bool(&w, 1);
            eff_jsonw_key(&w, "f"); eff_jsonw_bool(&w, 0);
            eff_jsonw_key(&w, "z"); eff_jsonw_null(&w);
            eff_jsonw_key(&w, "empty"); eff_jsonw_begin_object(&w); eff_jsonw_end_object(&w);
            eff_jsonw_key(&w, "ea"); eff_jsonw_begin_array(&w); eff_jsonw_end_array(&w);
            eff_jsonw_end_object(&w);
            out = eff_jsonw_finish(&w, &len);
            ok = out != NULL && strlen(out) == len;
            if (out && jparse(&d, out, 1) == EFF_OK) {
                const eff_json_node *r = eff_json_root(&d), *arr = eff_json_get(&d, r, "nums"), *ints = eff_json_get(&d, r, "ints");
                for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
                    const eff_json_node *x = eff_json_at(&d, arr, (int64_t)i);
                    ok &= x && x->type == EFF_JSON_NUMBER && memcmp(&x->num, &nums[i], sizeof(double)) == 0;
                }
                ok &= eff_json_at(&d, arr, (int64_t)(sizeof nums / sizeof nums[0]))->type == EFF_JSON_NULL;
                ok &= eff_json_at(&d, ints, 0)->inum == INT64_MIN && eff_json_at(&d, ints, 1)->inum == INT64_MAX;
                ok &= strcmp(eff_json_get_string(&d, r, "str", ""), "q\"b\\n\nt\t\x01\x1f \xc3\xa9/") == 0;
                ok &= eff_json_get_bool(&d, r, "k\"ey", 0) == 1 && eff_json_get_bool(&d, r, "f", 1) == 0 && eff_json_get(&d, r, "z")->type == EFF_JSON_NULL;
                ok &= eff_json_get(&d, r, "empty")->type == EFF_JSON_OBJECT && eff_json_get(&d, r, "ea")->len == 0;
                eff_json_free(g_ctx, &d);
            } else ok = 0;
            EFF_CHECK(ok, "writer%s: numbers, int64 extremes, escapes, literals, empty containers round-trip exactly", pretty ? " (pretty)" : "");
            if (!pretty && out) {
                EFF_CHECK(has_substr(out, "[0.1,0.3333333333333333,1e300,-0,5e-324,768,100,1e21,123456789012,2.5e-7,") &&
                          has_substr(out, "-1.7976931348623157e308,0.3,1e16,3e-5,null]"),
                          "numbers in shortest round-trip form: %.160s", out);
            }
            eff_jsonw_free(&w);
        }
        eff_jsonw_init(g_ctx, &w, 0);
        eff_jsonw_begin_array(&w);
        EFF_CHECK(eff_jsonw_finish(&w, &len) == NULL, "finish with an open array fails");
        eff_jsonw_end_array(&w); eff_jsonw_end_array(&w);
        EFF_CHECK(eff_jsonw_finish(&w, &len) == NULL, "an extra end_array marks the writer failed");
        eff_jsonw_free(&w);
        {
            int i;
            eff_jsonw_init(g_ctx, &w, 0);
            for (i = 0; i < 200; i++) eff_jsonw_begin_array(&w);
            for (i = 0; i < 200; i++) eff_jsonw_end_array(&w);
            EFF_CHECK(eff_jsonw_finish(&w, &len) == NULL, "writer nesting beyond 128 fails instead of overflowing");
            eff_jsonw_free(&w);
        }
    }
}


/* ===========================================================================
   10. safetensors
   =========================================================================== */
static char g_dir[256];
static void path_in_dir(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }
static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}
/* Directory entries other than . and .. (-1 when it cannot be listed). */
static int count_dir_entries(const char *dir) {
#ifdef EFF__POSIX
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
#else
    (void)dir;
    return -1;
#endif
}
/* 8-byte little-endian length + header + data; hl_override != 0 replaces the length field. */
static unsigned char *st_build(const char *header, const void *data, size_t ndata, uint64_t hl_override, size_t *out_n) {
    size_t hl = strlen(header), n = 8 + hl + ndata;
    unsigned char *b = (unsigned char *)malloc(n + 1);
    uint64_t L = hl_override ? hl_override : (uint64_t)hl;
    int k;
    for (k = 0; k < 8; k++) b[k] = (unsigned char)(L >> (8 * k));
    memcpy(b + 8, header, hl);
    if (ndata) memcpy(b + 8 + hl, data, ndata);
    *out_n = n;
    return b;
}
static void test_safetensors(void) {
    char path[512], path2[512];
    eff_safetensors st;
    eff_status s;
    size_t base = eff_ctx_bytes_in_use(g_ctx);
#ifdef EFF__POSIX
    snprintf(g_dir, sizeof g_dir, "/tmp/eff_test_tensor_%ld", (long)getpid());
    mkdir(g_dir, 0700);
#else
    snprintf(g_dir, sizeof g_dir, ".");
#endif
    /* the file helpers under safetensors */
    {
        eff_file_writer fw;
        eff_file_map m;
        int ok;
        path_in_dir(path, sizeof path, "w.bin");
        ok = eff_file_writer_open(g_ctx, &fw, path) == EFF_OK && eff_file_writer_write(g_ctx, &fw, "abc", 3) == EFF_OK;
        EFF_CHECK(ok && count_dir_entries(g_dir) <= 1, "writer: data goes to a temp file first");
        eff_file_writer_abort(g_ctx, &fw);
        EFF_CHECK(count_dir_entries(g_dir) == 0 || count_dir_entries(g_dir) == -1, "abort removes the temp file, the target never appears");
        write_bytes(path, "old", 3);
        ok = eff_file_writer_open(g_ctx, &fw, path) == EFF_OK && eff_file_writer_write(g_ctx, &fw, "hello", 5) == EFF_OK &&
             eff_file_writer_write(g_ctx, &fw, "", 0) == EFF_OK && fw.written == 5 && eff_file_writer_commit(g_ctx, &fw) == EFF_OK;
        ok &= eff_file_map_open(g_ctx, path, &m) == EFF_OK && m.size == 5 && memcmp(m.data, "hello", 5) == 0;
        eff_file_map_close(g_ctx, &m);
        EFF_CHECK(ok && (count_dir_entries(g_dir) == 1 || count_dir_entries(g_dir) == -1), "commit replaces the old file; map reads it back");
        s = eff_file_writer_write(g_ctx, &fw, "x", 1);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_IO, "write after commit");
        write_bytes(path, "", 0);
        ok = eff_file_map_open(g_ctx, path, &m) == EFF_OK && m.size == 0;
        eff_file_map_close(g_ctx, &m);
        EFF_CHECK(ok, "an empty file maps with size 0");
        remove(path);
        s = eff_file_map_open(g_ctx, path, &m);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_IO, "map of a missing file");
        EFF_CHECK(m.data == NULL && m.size == 0, "a failed map leaves the struct empty");
    }
    path_in_dir(path, sizeof path, "all.safetensors");
    /* every dtype, metadata, a 0-d scalar, a zero-size tensor, a non-contiguous view */
    {
        float f32[6] = {1.5f, -2, 3, 4, 5, 6.25f}, tsrc[6] = {1, 2, 3, 4, 5, 6}, scal = 3.75f;
        uint16_t f16[5], bf16[6];
        int8_t i8[7] = {-128, -1, 0, 1, 2, 3, 127};
        int32_t i32[4] = {INT32_MIN, -1, 7, INT32_MAX};
        double f64[3] = {1e300, -0.0, 3.14159};
        int64_t i64[2] = {INT64_MIN, INT64_MAX};
        uint8_t u8[4] = {0, 1, 254, 255};
        int16_t i16[3] = {-32768, 5, 32767};
        eff_tensor ts[12], tv;
        const char *meta[4] = {"format", "pt", "note", "a \"quoted\" value\n"};
        int i, ok;
        for (i = 0; i < 5; i++) f16[i] = eff_fp32_to_fp16((float)i - 2.5f);
        for (i = 0; i < 6; i++) bf16[i] = eff_fp32_to_bf16((float)i * 0.75f);
        ts[0] = eff_tensor_2d(f32, EFF_F32, 2, 3); ts[0].name = "w.f32";
        ts[1] = eff_tensor_1d(f16, EFF_F16, 5); ts[1].name = "h";
        ts[2] = eff_tensor_3d(bf16, EFF_BF16, 3, 1, 2); ts[2].name = "b\"f16";
        ts[3] = eff_tensor_1d(i8, EFF_I8, 7); ts[3].name = "i8";
        ts[4] = eff_tensor_2d(i32, EFF_I32, 2, 2); ts[4].name = "i32";
        ts[5] = eff_tensor_1d(f64, EFF_F64, 3); ts[5].name = "f64";
        ts[6] = eff_tensor_1d(i64, EFF_I64, 2); ts[6].name = "i64";
        ts[7] = eff_tensor_1d(u8, EFF_U8, 4); ts[7].name = "u8";
        ts[8] = eff_tensor_1d(i16, EFF_I16, 3); ts[8].name = "i16";
        eff_tensor_init(g_ctx, &ts[9], EFF_F32, 0, NULL, &scal); ts[9].name = "scalar";
        ts[10] = eff_tensor_2d(NULL, EFF_F32, 0, 4); ts[10].name = "empty";
        tv = eff_tensor_2d(tsrc, EFF_F32, 2, 3);
        eff_tensor_transpose(g_ctx, &ts[11], &tv, 0, 1); ts[11].name = "transposed";
        /* an old file at the path is replaced */
        write_bytes(path, "old contents", 12);
        s = eff_safetensors_write(g_ctx, path, ts, 12, meta, 2);
        EFF_CHECK(s == EFF_OK, "write 12 tensors of 9 dtypes + metadata (%s)", eff_ctx_last_error(g_ctx));
        EFF_CHECK(count_dir_entries(g_dir) == 1 || count_dir_entries(g_dir) == -1, "atomic write leaves no temp file behind (%d entries)", count_dir_entries(g_dir));
        s = eff_safetensors_open(g_ctx, &st, path);
        EFF_CHECK(s == EFF_OK, "read it back (%s)", eff_ctx_last_error(g_ctx));
        if (s == EFF_OK) {
            const eff_safetensors_entry *e;
            ok = st.n_entries == 12 && (8 + st.header_len) % 8 == 0;
            EFF_CHECK(ok, "12 entries; data starts 8-byte aligned (header %lld bytes)", (long long)st.header_len);
            for (i = 0; i < 12; i++) {
                e = eff_safetensors_find(&st, ts[i].name);
                if (!e || e->tensor.dtype != ts[i].dtype || e->tensor.ndim != ts[i].ndim || !eff_tensor_same_shape(&e->tensor, &ts[i])) {
                    ok = 0; printf("    entry %s missing or wrong dtype/shape\n", ts[i].name); continue;
                }
                if (i != 11 && i != 10) ok &= memcmp(e->tensor.data, ts[i].data, (size_t)eff_tensor_nbytes(&ts[i])) == 0;
                ok &= e->nbytes == eff_tensor_nbytes(&ts[i]) && eff_tensor_is_contiguous(&e->tensor);
            }
            e = eff_safetensors_find(&st, "transposed");
            if (e) {
                const float *d = (const float *)e->tensor.data;
                ok &= e->tensor.ne[0] == 3 && d[0] == 1 && d[1] == 4 && d[2] == 2 && d[3] == 5 && d[4] == 3 && d[5] == 6;
            }
            e = eff_safetensors_find(&st, "scalar");
            ok &= e && e->tensor.ndim == 0 && *(const float *)e->tensor.data == 3.75f;
            e = eff_safetensors_find(&st, "empty");
            ok &= e && e->nbytes == 0 && e->tensor.ne[0] == 0 && e->tensor.ne[1] == 4;
            for (i = 1; i < st.n_entries; i++) ok &= st.entries[i].offset >= st.entries[i - 1].offset;
            EFF_CHECK(ok, "every dtype, shape and byte round-trips; the transposed view was written contiguous; 0-d and zero-size entries");
            ok = 1;
            for (i = 0; i < st.n_entries; i++)
                ok &= ((uintptr_t)st.entries[i].tensor.data % eff_dtype_type_size(st.entries[i].tensor.dtype)) == 0 || st.entries[i].nbytes == 0;
            EFF_CHECK(ok, "every tensor in the written file is aligned to its element size (i8[7] before f32 in the list)");
            EFF_CHECK(eff_safetensors_meta(&st, "format") && strcmp(eff_safetensors_meta(&st, "format"), "pt") == 0 &&
                      strcmp(eff_safetensors_meta(&st, "note"), "a \"quoted\" value\n") == 0 && eff_safetensors_meta(&st, "nope") == NULL,
                      "metadata strings round-trip (escapes too)");
            EFF_CHECK(eff_safetensors_find(&st, "nope") == NULL, "find of a missing name");
            /* the same bytes through open_memory */
            {
                eff_safetensors sm;
                s = eff_safetensors_open_memory(g_ctx, &sm, st.map.data, st.map.size);
                EFF_CHECK(s == EFF_OK && sm.n_entries == 12 && eff_safetensors_find(&sm, "i64") &&
                          ((const int64_t *)eff_safetensors_find(&sm, "i64")->tensor.data)[0] == INT64_MIN, "open_memory on the same bytes");
                eff_safetensors_close(g_ctx, &sm);
            }
            eff_safetensors_close(g_ctx, &st);
        }
        /* overwrite with fewer tensors */
        s = eff_safetensors_write(g_ctx, path, ts + 3, 1, NULL, 0);
        ok = s == EFF_OK && eff_safetensors_open(g_ctx, &st, path) == EFF_OK;
        EFF_CHECK(ok && st.n_entries == 1 && st.metadata == NULL && eff_safetensors_find(&st, "i8"), "writing again replaces the file");
        if (ok) eff_safetensors_close(g_ctx, &st);
        /* writer refuses bad input, leaving nothing behind */
        {
            eff_tensor two[2];
            two[0] = ts[0]; two[1] = ts[1]; two[1].name = "w.f32";
            path_in_dir(path2, sizeof path2, "dup.safetensors");
            s = eff_safetensors_write(g_ctx, path2, two, 2, NULL, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "writer: duplicate tensor names");
            two[1].name = NULL;
            s = eff_safetensors_write(g_ctx, path2, two, 2, NULL, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "writer: tensor without a name");
            two[1].name = "__metadata__";
            s = eff_safetensors_write(g_ctx, path2, two, 2, NULL, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "writer: a tensor named __metadata__");
            {
                unsigned char qb[18];
                int64_t ne[1] = {32};
                eff_tensor_init(g_ctx, &two[1], EFF_Q4_0, 1, ne, qb);
                two[1].name = "q";
                s = eff_safetensors_write(g_ctx, path2, two, 2, NULL, 0);
                EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_DTYPE, "writer: q4_0 has no safetensors dtype");
            }
            {
                const char *m2[2] = {"k", NULL};
                s = eff_safetensors_write(g_ctx, path2, two, 1, m2, 1);
                EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "writer: NULL metadata value");
            }
            s = eff_safetensors_write(g_ctx, NULL, two, 1, NULL, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "writer: NULL path");
            snprintf(path2, sizeof path2, "%s/no/such/dir/x.safetensors", g_dir);
            s = eff_safetensors_write(g_ctx, path2, two, 1, NULL, 0);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_IO, "writer: directory does not exist");
            EFF_CHECK(count_dir_entries(g_dir) == 1 || count_dir_entries(g_dir) == -1, "failed writes leave no files behind");
        }
    }
    /* malformed files: each through open (a file) and open_memory */
    {
        typedef struct { const char *what; const char *header; int ndata; uint64_t hl; int expect; } bad_st;
        static const bad_st bad[] = {
            {"header length past the end of the file", "{}", 0, 1000, EFF_ERR_FORMAT},
            {"header length > 100 MB", "{}", 0, 200000000ull, EFF_ERR_FORMAT},
            {"header length 2^63 + 5", "{}", 0, 0x8000000000000005ull, EFF_ERR_FORMAT},
            {"header length 1", "{}", 0, 1, EFF_ERR_FORMAT},
            {"header is not JSON", "{abc}", 0, 0, EFF_ERR_FORMAT},
            {"header JSON is an array", "[1, 2]", 0, 0, EFF_ERR_FORMAT},
            {"header JSON is a string", "\"{}\"", 0, 0, EFF_ERR_FORMAT},
            {"header with trailing garbage", "{} x", 0, 0, EFF_ERR_FORMAT},
            {"truncated data (offsets past the end)", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0, EFF_ERR_FORMAT},
            {"overlapping offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, EFF_ERR_FORMAT},
            {"hole in the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, 0, EFF_ERR_FORMAT},
            {"bytes after the last tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 0, EFF_ERR_FORMAT},
            {"size != dtype x shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, EFF_ERR_FORMAT},
            {"unknown dtype string", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 0, EFF_ERR_UNSUPPORTED},
            {"dtype is not a string", "{\"a\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 0, EFF_ERR_FORMAT},
            {"negative shape entry", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0, EFF_ERR_FORMAT},
            {"float shape entry", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2.5],\"data_offsets\":[0,2]}}", 2, 0, EFF_ERR_FORMAT},
            {"string shape entry", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2, 0, EFF_ERR_FORMAT},
            {"shape is not an array", "{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 2, 0, EFF_ERR_FORMAT},
            {"shape product overflows int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, 0, EFF_ERR_FORMAT},
            {"shape entry beyond int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551617],\"data_offsets\":[0,4]}}", 4, 0, EFF_ERR_FORMAT},
            {"more than 4 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0, EFF_ERR_UNSUPPORTED},
            {"end < begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 0, EFF_ERR_FORMAT},
            {"negative begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 4, 0, EFF_ERR_FORMAT},
            {"three data_offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 4, 0, EFF_ERR_FORMAT},
            {"float data_offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4.0]}}", 4, 0, EFF_ERR_FORMAT},
            {"missing dtype", "{\"a\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 0, EFF_ERR_FORMAT},
            {"duplicate tensor names", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, 0, EFF_ERR_FORMAT},
            {"__metadata__ with a non-string value", "{\"__metadata__\":{\"a\":1}}", 0, 0, EFF_ERR_FORMAT},
            {"__metadata__ is not an object", "{\"__metadata__\":[\"a\"]}", 0, 0, EFF_ERR_FORMAT},
            {"entry is not an object", "{\"a\":5}", 0, 0, EFF_ERR_FORMAT},
            {"offsets at INT64_MAX", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9223372036854775807,9223372036854775807]}}", 0, 0, EFF_ERR_FORMAT},
            {"header not valid UTF-8 JSON (raw control byte)", "{\"a\x01\":{}}", 0, 0, EFF_ERR_FORMAT},
        };
        size_t i;
        int all_ok = 1, n_bad = 0;
        unsigned char data[32];
        for (i = 0; i < sizeof data; i++) data[i] = (unsigned char)i;
        path_in_dir(path2, sizeof path2, "bad.safetensors");
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            size_t n;
            unsigned char *b = st_build(bad[i].header, data, (size_t)bad[i].ndata, bad[i].hl, &n);
            eff_status s1 = eff_safetensors_open_memory(g_ctx, &st, b, (int64_t)n), s2;
            const char *m1 = eff_ctx_last_error(g_ctx);
            int ok = (int)s1 == bad[i].expect && m1[0] && st.entries == NULL;
            if (s1 == EFF_OK) eff_safetensors_close(g_ctx, &st);
            write_bytes(path2, b, n);
            s2 = eff_safetensors_open(g_ctx, &st, path2);
            ok &= (int)s2 == bad[i].expect && has_substr(eff_ctx_last_error(g_ctx), "bad.safetensors") && st.map.data == NULL;
            if (s2 == EFF_OK) eff_safetensors_close(g_ctx, &st);
            ok &= eff_ctx_bytes_in_use(g_ctx) == base;
            if (!ok) { all_ok = 0; printf("    malformed '%s': memory %s, file %s (%s)\n", bad[i].what, eff_status_str(s1), eff_status_str(s2), eff_ctx_last_error(g_ctx)); }
            else if (eff_test_g.verbose) printf("      %s -> %s: %s\n", bad[i].what, eff_status_str(s2), eff_ctx_last_error(g_ctx));
            n_bad++;
            free(b);
        }
        EFF_CHECK(all_ok, "%d malformed files rejected with the right status, a message naming the file, nothing leaked", n_bad);
        {   /* shorter than 8 bytes, empty file, a directory, a missing file */
            int ok = 1, k;
            for (k = 0; k < 8; k++) {
                write_bytes(path2, "\x02\0\0\0\0\0\0", (size_t)k);
                ok &= eff_safetensors_open(g_ctx, &st, path2) == EFF_ERR_FORMAT;
                ok &= eff_safetensors_open_memory(g_ctx, &st, "\x02\0\0\0\0\0\0", k) == EFF_ERR_FORMAT;
            }
            EFF_CHECK(ok, "files of 0..7 bytes: EFF_ERR_FORMAT");
            s = eff_safetensors_open(g_ctx, &st, g_dir);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_IO, "a directory is not a safetensors file");
            path_in_dir(path2, sizeof path2, "missing.safetensors");
            s = eff_safetensors_open(g_ctx, &st, path2);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_IO, "nonexistent path");
            EFF_CHECK(has_substr(eff_ctx_last_error(g_ctx), "missing.safetensors"), "the message names the path: %s", eff_ctx_last_error(g_ctx));
            s = eff_safetensors_open_memory(g_ctx, &st, NULL, 10);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "open_memory(NULL)");
            s = eff_safetensors_open_memory(g_ctx, &st, data, -5);
            EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_FORMAT, "open_memory with a negative size");
        }
        {   /* valid edge cases: empty header, padded header, zero-size tensor at the end */
            size_t n;
            unsigned char *b = st_build("{}      ", data, 0, 0, &n);
            int ok = eff_safetensors_open_memory(g_ctx, &st, b, (int64_t)n) == EFF_OK && st.n_entries == 0;
            eff_safetensors_close(g_ctx, &st);
            free(b);
            b = st_build("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", data, 4, 0, &n);
            ok &= eff_safetensors_open_memory(g_ctx, &st, b, (int64_t)n) == EFF_OK && st.n_entries == 2 && eff_safetensors_find(&st, "a")->tensor.ndim == 0 &&
                  *(const int32_t *)eff_safetensors_find(&st, "a")->tensor.data == 0x03020100;
            eff_safetensors_close(g_ctx, &st);
            free(b);
            EFF_CHECK(ok, "valid: empty header with space padding; 0-d and zero-size entries");
        }
        remove(path2);
        path_in_dir(path2, sizeof path2, "bad.safetensors");
        remove(path2);
    }
    EFF_CHECK(eff_ctx_bytes_in_use(g_ctx) == base, "safetensors: no bytes leaked (%zu vs %zu)", eff_ctx_bytes_in_use(g_ctx), base);
    remove(path);
#ifdef EFF__POSIX
    rmdir(g_dir);
#endif
}


/* ===========================================================================
   Every op: a NULL tensor argument gives EFF_ERR_INVALID_ARG naming it
   =========================================================================== */
static void test_null_args(void) {
    float a[64], b[64], c[64], d[64], e[64], f[64];
    int32_t ids[4] = {0, 1, 2, 3};
    eff_tensor A = eff_tensor_2d(a, EFF_F32, 4, 4), B = eff_tensor_2d(b, EFF_F32, 4, 4), C = eff_tensor_2d(c, EFF_F32, 4, 4);
    eff_tensor V = eff_tensor_1d(d, EFF_F32, 4), V2 = eff_tensor_1d(e, EFF_F32, 4), ID = eff_tensor_1d(ids, EFF_I32, 4), X4 = eff_tensor_4d(f, EFF_F32, 1, 2, 2, 4);
    float mean;
    struct { const char *what, *arg; eff_status s; } r[40];
    int n = 0, i, ok = 1;
    eff_test_fill(a, 64, 1); eff_test_fill(b, 64, 1); eff_test_fill(c, 64, 1); eff_test_fill(d, 64, 1); eff_test_fill(e, 64, 1); eff_test_fill(f, 64, 1);
#define NA(call, argname) do { r[n].what = #call; r[n].arg = argname; r[n].s = (call); n++; } while (0)
    NA(eff_softmax_forward(g_ctx, &A, NULL), "'x'");
    NA(eff_softmax_backward(g_ctx, &A, &B, NULL), "'y'");
    NA(eff_log_softmax_forward(g_ctx, NULL, &A), "'y'");
    NA(eff_log_softmax_backward(g_ctx, &A, NULL, &B), "'dy'");
    NA(eff_layernorm_forward(g_ctx, &A, NULL, NULL, NULL, NULL, NULL, 1e-5f), "'x'");
    NA(eff_layernorm_backward(g_ctx, &A, NULL, NULL, &B, &C, NULL, &V, NULL), "'rstd'");
    NA(eff_rmsnorm_forward(g_ctx, NULL, NULL, &A, NULL, 1e-5f), "'y'");
    NA(eff_rmsnorm_backward(g_ctx, &A, NULL, NULL, &B, NULL, &V), "'dy'");
    NA(eff_rope_forward(g_ctx, &X4, NULL, NULL), "'x'");
    NA(eff_rope_backward(g_ctx, NULL, &X4, NULL), "'y'");
    NA(eff_embedding_forward(g_ctx, &A, &ID, NULL), "'table'");
    NA(eff_embedding_forward(g_ctx, NULL, &ID, &A), "'out'");
    NA(eff_embedding_backward(g_ctx, NULL, &A, &ID), "'dtable'");
    NA(eff_embedding_backward(g_ctx, &A, NULL, &ID), "'dout'");
    NA(eff_cross_entropy_forward(g_ctx, NULL, &mean, NULL, &ID, NULL), "'logits'");
    NA(eff_cross_entropy_backward(g_ctx, NULL, &A, &ID, 0.0f, NULL), "'dlogits'");
    NA(eff_dropout_forward(g_ctx, &A, NULL, 0.1f, 1, 0), "'x'");
    NA(eff_dropout_backward(g_ctx, NULL, &A, 0.1f, 1, 0), "'y'");
    NA(eff_matmul_forward(g_ctx, NULL, &A, &B), "'C'");
    NA(eff_matmul_backward(g_ctx, &A, &B, NULL, &A, &B), "'dC'");
    NA(eff_matmul_backward(g_ctx, &C, NULL, &A, NULL, &B), "'A'");
    NA(eff_linear_backward(g_ctx, &A, NULL, NULL, &B, &C, NULL), "'W'");
    NA(eff_mul_backward(g_ctx, &A, NULL, &B, &C, NULL), "'b'");
    NA(eff_add_backward(g_ctx, &A, NULL, NULL), "'dy'");
    NA(eff_residual_forward(g_ctx, &A, &B, NULL), "'r'");
    NA(eff_residual_backward(g_ctx, &A, NULL, NULL), "'dy'");
    NA(eff_swiglu_backward(g_ctx, &A, &B, &C, NULL, &V2), "'gate'");
    NA(eff_scale_backward(g_ctx, &A, NULL, 2.0f), "'dy'");
    NA(eff_gelu_backward(g_ctx, &A, &B, NULL), "'x'");
    NA(eff_relu_backward(g_ctx, NULL, &B, &C), "'dx'");
    NA(eff_tensor_copy(g_ctx, &A, NULL), "'src'");
    NA(eff_tensor_contiguous(g_ctx, NULL, &A), "'out'");
    NA(eff_tensor_permute(g_ctx, &A, &B, NULL), "'perm'");
    NA(eff_tensor_slice(g_ctx, &A, NULL, 0, 0, 1), "'in'");
#undef NA
    for (i = 0; i < n; i++) {
        int good = r[i].s == EFF_ERR_INVALID_ARG;
        if (!good) { ok = 0; printf("    %s -> %s\n", r[i].what, eff_status_str(r[i].s)); }
    }
    EFF_CHECK(ok, "%d op calls with one NULL tensor return EFF_ERR_INVALID_ARG", n);
    /* messages: rerun each and look at the message right after it */
    ok = 1;
#define NM(call, argname) do { eff_ctx_clear_error(g_ctx); (void)(call); if (!has_substr(eff_ctx_last_error(g_ctx), argname)) { ok = 0; printf("    %s: message '%s' lacks %s\n", #call, eff_ctx_last_error(g_ctx), argname); } } while (0)
    NM(eff_softmax_forward(g_ctx, &A, NULL), "'x'");
    NM(eff_layernorm_backward(g_ctx, &A, NULL, NULL, &B, &C, NULL, &V, NULL), "'rstd'");
    NM(eff_rope_forward(g_ctx, &X4, NULL, NULL), "'x'");
    NM(eff_embedding_forward(g_ctx, &A, &ID, NULL), "'table'");
    NM(eff_embedding_backward(g_ctx, &A, NULL, &ID), "'dout'");
    NM(eff_cross_entropy_forward(g_ctx, NULL, &mean, NULL, &ID, NULL), "'logits'");
    NM(eff_cross_entropy_backward(g_ctx, NULL, &A, &ID, 0.0f, NULL), "'dlogits'");
    NM(eff_dropout_forward(g_ctx, &A, NULL, 0.1f, 1, 0), "'x'");
    NM(eff_matmul_forward(g_ctx, NULL, &A, &B), "'C'");
    NM(eff_matmul_backward(g_ctx, &A, &B, NULL, &A, &B), "'dC'");
    NM(eff_linear_backward(g_ctx, &A, NULL, NULL, &B, &C, NULL), "'W'");
    NM(eff_mul_backward(g_ctx, &A, NULL, &B, &C, NULL), "'b'");
    NM(eff_residual_forward(g_ctx, &A, &B, NULL), "'r'");
    NM(eff_swiglu_backward(g_ctx, &A, &B, &C, NULL, &V2), "'gate'");
    NM(eff_relu_backward(g_ctx, NULL, &B, &C), "'dx'");
    NM(eff_tensor_copy(g_ctx, &A, NULL), "src");
    NM(eff_tensor_permute(g_ctx, &A, &B, NULL), "'perm'");
    NM(eff_tensor_slice(g_ctx, &A, NULL, 0, 0, 1), "in");
#undef NM
    EFF_CHECK(ok, "their messages name the NULL argument");
}

/* Runs one section and prints its CPU time (information only, never asserted). */
#define RUN(fn) do { clock_t t0_ = clock(); fn(); printf("  [%s: %.2f s cpu]\n", #fn, (double)(clock() - t0_) / CLOCKS_PER_SEC); fflush(stdout); } while (0)

/* Ops given CUDA tensors in a build without EFF_CUDA say so instead of touching the data. */
static void test_device_dispatch(void) {
    float a[6], b[6];
    eff_tensor x = eff_tensor_2d(a, EFF_F32, 2, 3), y = eff_tensor_2d(b, EFF_F32, 2, 3), w = eff_tensor_2d(a, EFF_F32, 3, 3);
    x.device = EFF_DEVICE_CUDA; y.device = EFF_DEVICE_CUDA;
#ifndef EFF_CUDA
    EFF_CHECK_STATUS(g_ctx, eff_gelu_forward(g_ctx, &y, &x), EFF_ERR_UNSUPPORTED, "gelu on CUDA tensors without EFF_CUDA");
    EFF_CHECK_STATUS(g_ctx, eff_softmax_forward(g_ctx, &y, &x), EFF_ERR_UNSUPPORTED, "softmax on CUDA tensors without EFF_CUDA");
    EFF_CHECK_STATUS(g_ctx, eff_linear_forward(g_ctx, &y, &x, &w, NULL), EFF_ERR_UNSUPPORTED, "linear mixing CUDA and CPU tensors");
#endif
    y.device = EFF_DEVICE_CPU;
    EFF_CHECK_STATUS(g_ctx, eff_gelu_forward(g_ctx, &y, &x), EFF_ERR_UNSUPPORTED, "gelu mixing a CUDA input and a CPU output");
}

int main(void) {
    eff_ctx_opts o;
    g_quick = getenv("EFF_TEST_QUICK") != NULL;
    EFF_TEST_BEGIN("test_tensor");
    memset(&o, 0, sizeof o);
    o.seed = 1;
    if (eff_ctx_create(&o, &g_ctx) != EFF_OK) { printf("cannot create context\n"); return 1; }
    printf("SIMD: %s, threads: %d%s\n", EFF_SIMD_NAME, eff_ctx_n_threads(g_ctx), g_quick ? ", quick" : "");
    RUN(test_fp16_bf16);
    RUN(test_context);
    RUN(test_tensors);
    RUN(test_sgemm);
    RUN(test_unary_ops);
    RUN(test_broadcast);
    RUN(test_softmax);
    RUN(test_norms);
    RUN(test_rope);
    RUN(test_embedding);
    RUN(test_cross_entropy);
    RUN(test_dropout);
    RUN(test_linear);
    RUN(test_matmul);
    RUN(test_null_args);
    RUN(test_optimizers);
    RUN(test_json);
    RUN(test_safetensors);
    RUN(test_device_dispatch);
    EFF_CHECK(eff_ctx_bytes_in_use(g_ctx) == 0, "global context: every byte freed (%zu in use)", eff_ctx_bytes_in_use(g_ctx));
    eff_ctx_destroy(g_ctx);
    return EFF_TEST_END();
}
