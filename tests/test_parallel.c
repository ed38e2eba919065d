/* test_parallel.c - eff_parallel.h: collectives on the local backend (every
   collective x dtype x op x size x rank count x algorithm against a serial
   reference), splits, faults, data parallel, ZeRO, tensor/sequence parallel,
   pipeline schedules and executor, expert parallelism, ring and striped
   attention, the estimator, and data-parallel / ZeRO training of eff_model.h's
   tiny Llama against one rank. tests/test_parallel_mpi.c includes this file and
   runs the same rank functions under mpirun.

   Checks made inside rank threads go to a per-rank log (the harness is not
   thread-safe); the main thread merges the logs: a check passes when it passed
   on every rank. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* nanosleep, clock_gettime in the test only */
#endif
#define EFF_IMPLEMENTATION
#include "eff_parallel.h"
#include "eff_train.h"   /* the model and its single-rank optimizer, for the data-parallel training test */
#include "eff_test.h"
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
   Per-rank check log
   --------------------------------------------------------------------------- */
typedef struct tlog {
    int n, cap;
    unsigned char *ok;
    char (*what)[120];
} tlog;

static void tlog_check(tlog *l, int ok, const char *fmt, ...) {
    va_list ap;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        unsigned char *o = (unsigned char *)realloc(l->ok, (size_t)cap);
        char(*w)[120] = o ? (char(*)[120])realloc(l->what, (size_t)cap * 120) : NULL;
        if (!o || !w) { if (o) l->ok = o; return; }
        l->ok = o; l->what = w; l->cap = cap;
    }
    l->ok[l->n] = (unsigned char)(ok != 0);
    va_start(ap, fmt);
    vsnprintf(l->what[l->n], 120, fmt, ap);
    va_end(ap);
    l->n++;
}
static void tlog_free(tlog *l) { free(l->ok); free(l->what); memset(l, 0, sizeof *l); }

/* Merges n rank logs into the harness: check i passes iff it passed on every rank. */
static void tlog_merge(tlog *logs, int n, const char *prefix) {
    int i, r, len = logs[0].n;
    for (r = 1; r < n; r++)
        if (logs[r].n != len) {
            EFF_CHECK(0, "%s: rank %d made %d checks, rank 0 made %d", prefix, r, logs[r].n, len);
            if (logs[r].n < len) len = logs[r].n;
        }
    for (i = 0; i < len; i++) {
        int ok = 1, bad = -1;
        for (r = 0; r < n; r++) if (!logs[r].ok[i]) { ok = 0; if (bad < 0) bad = r; }
        if (ok) eff_test_report(1, __FILE__, __LINE__, logs[0].what[i]);
        else {
            char msg[300];
            snprintf(msg, sizeof msg, "%s: %s (rank %d)", prefix, logs[bad].what[i], bad);
            eff_test_report(0, __FILE__, __LINE__, msg);
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static void sleep_s(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}
static int quick_mode(void) { return getenv("EFF_TEST_QUICK") != NULL; }

/* ---------------------------------------------------------------------------
   Collectives against a serial reference. Inputs are small integers, so every
   summation order gives the same, exactly representable result (also in bf16
   and f16), and results are compared bit for bit.
   --------------------------------------------------------------------------- */
static const int dtypes[4] = {EFF_F32, EFF_BF16, EFF_F16, EFF_I32};

/* value of element i of rank r's input in case k: an integer in [-8, 8] */
static int ival(int r, int64_t i, int k) { return (int)((i * 7 + r * 13 + k * 5 + (i >> 5)) % 17) - 8; }

static size_t esz(int dt) { return dt == EFF_F32 || dt == EFF_I32 ? 4 : 2; }
static void put(void *buf, int dt, int64_t i, double v) {
    if (dt == EFF_F32) ((float *)buf)[i] = (float)v;
    else if (dt == EFF_I32) ((int32_t *)buf)[i] = (int32_t)v;
    else if (dt == EFF_BF16) ((uint16_t *)buf)[i] = eff_fp32_to_bf16((float)v);
    else ((uint16_t *)buf)[i] = eff_fp32_to_fp16((float)v);
}
static double get(const void *buf, int dt, int64_t i) {
    if (dt == EFF_F32) return ((const float *)buf)[i];
    if (dt == EFF_I32) return ((const int32_t *)buf)[i];
    if (dt == EFF_BF16) return eff_bf16_to_fp32(((const uint16_t *)buf)[i]);
    return eff_fp16_to_fp32(((const uint16_t *)buf)[i]);
}
/* The reduction of element i over n ranks, as the library defines it: exact
   integer sum/max/min; AVG = f32 division of the sum (C division for i32),
   rounded once into the dtype. */
static double ref_red1(int dt, int op, int n, int64_t i, int k) {
    int r;
    long acc = ival(0, i, k);
    for (r = 1; r < n; r++) {
        long v = ival(r, i, k);
        if (op == EFF_RED_MAX) acc = v > acc ? v : acc;
        else if (op == EFF_RED_MIN) acc = v < acc ? v : acc;
        else acc += v;
    }
    if (op != EFF_RED_AVG) return (double)acc;
    if (dt == EFF_I32) return (double)((int32_t)acc / n);
    {
        float q = (float)acc / (float)n;
        if (dt == EFF_BF16) return eff_bf16_to_fp32(eff_fp32_to_bf16(q));
        if (dt == EFF_F16) return eff_fp16_to_fp32(eff_fp32_to_fp16(q));
        return q;
    }
}
/* ival(r, i, k) depends on i and k only through b = (7i + 5k + i/32) mod 17 (since
   ival = (b + 13r) mod 17 - 8), so the reduction over ranks is a table over b. */
typedef struct ref_table { double v[17]; } ref_table;
static ref_table ref_make(int dt, int op, int n) {
    ref_table t;
    int b;
    for (b = 0; b < 17; b++) t.v[b] = ref_red1(dt, op, n, (b * 5) % 17, 0);   /* 5 = 1/7 mod 17 */
    return t;
}
static double ref_red(const ref_table *t, int64_t i, int k, int64_t ishift) {
    int64_t j = i + ishift;
    return t->v[(j * 7 + k * 5 + (j >> 5)) % 17];
}
static void fill(void *buf, int dt, int r, int64_t n, int k, int64_t ishift) {
    int64_t i;
    for (i = 0; i < n; i++) put(buf, dt, i, ival(r, i + ishift, k));
}

typedef struct coll_cfg {
    const int64_t *sizes;
    int n_sizes;
    int algo;
} coll_cfg;

/* Runs every collective on c and logs one check per (collective, dtype, op, size).
   Returns the first communication error (the communicator is then broken). */
static eff_status check_collectives(eff_comm *c, tlog *L, const coll_cfg *cfg) {
    eff_ctx *ctx = eff_comm_ctx(c);
    int n = eff_comm_size(c), r = eff_comm_rank(c), di, op, si, k = 0;
    eff_status s = EFF_OK;
    const char *an = eff_comm_backend_name(c);
    for (si = 0; si < cfg->n_sizes && s == EFF_OK; si++) {
        int64_t cnt = cfg->sizes[si], blk = (cnt + n - 1) / n, i, bad;
        for (di = 0; di < 4 && s == EFF_OK; di++) {
            int dt = dtypes[di];
            size_t es = esz(dt);
            char *a = (char *)eff_ctx_alloc(ctx, (size_t)(cnt > n * blk ? cnt : n * blk) * es + 64);
            char *b = (char *)eff_ctx_alloc(ctx, (size_t)(cnt > n * blk ? cnt : n * blk) * es + 64);
            const char *dn = eff_dtype_name(dt);
            if (!a || !b) { tlog_check(L, 0, "alloc"); eff_ctx_free(ctx, a); eff_ctx_free(ctx, b); return EFF_ERR_OOM; }
            /* all_reduce, every op */
            for (op = 0; op < EFF_RED_COUNT && s == EFF_OK; op++, k++) {
                ref_table T = ref_make(dt, op, n);
                fill(a, dt, r, cnt, k, 0);
                s = eff_comm_all_reduce(c, a, cnt, dt, op);
                for (bad = -1, i = 0; s == EFF_OK && i < cnt && bad < 0; i++)
                    if (get(a, dt, i) != ref_red(&T, i, k, 0)) bad = i;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d all_reduce %s %s count=%lld%s%s", an, n, dn, eff__red_name(op),
                           (long long)cnt, s ? " status " : "", s ? eff_status_str(s) : "");
            }
            /* the other collectives share the code paths of all_reduce's direct
               algorithm, which 33333 elements already exercise with many tiles */
            if (cnt > 100000) { eff_ctx_free(ctx, a); eff_ctx_free(ctx, b); continue; }
            /* reduce to a root, separate and in place, sum and max */
            for (op = 0; op < EFF_RED_COUNT && s == EFF_OK; op += 2, k++) {
                int root = (k + si) % n, inplace = (op == EFF_RED_MAX);
                ref_table T = ref_make(dt, op, n);
                fill(a, dt, r, cnt, k, 0);
                memset(b, 0x55, (size_t)cnt * es);
                s = eff_comm_reduce(c, a, inplace ? a : b, cnt, dt, op, root);
                for (bad = -1, i = 0; s == EFF_OK && r == root && i < cnt && bad < 0; i++)
                    if (get(inplace ? a : b, dt, i) != ref_red(&T, i, k, 0)) bad = i;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d reduce %s %s root=%d%s count=%lld", an, n, dn, eff__red_name(op),
                           root, inplace ? " in-place" : "", (long long)cnt);
            }
            /* broadcast */
            if (s == EFF_OK) {
                int root = (k + 1) % n;
                fill(a, dt, r, cnt, k, 0);
                s = eff_comm_broadcast(c, a, cnt, dt, root);
                for (bad = -1, i = 0; s == EFF_OK && i < cnt && bad < 0; i++)
                    if (get(a, dt, i) != (double)ival(root, i, k)) bad = i;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d broadcast %s root=%d count=%lld", an, n, dn, root, (long long)cnt);
                k++;
            }
            /* reduce_scatter: blocks of blk elements, separate and in place */
            for (op = 0; op < EFF_RED_COUNT && s == EFF_OK; op++, k++) {
                int inplace = op & 1;
                void *out = inplace ? a + (size_t)(r * blk) * es : b;
                ref_table T = ref_make(dt, op, n);
                fill(a, dt, r, n * blk, k, 0);
                s = eff_comm_reduce_scatter(c, a, out, blk, dt, op);
                for (bad = -1, i = 0; s == EFF_OK && i < blk && bad < 0; i++)
                    if (get(out, dt, i) != ref_red(&T, i, k, (int64_t)r * blk)) bad = i;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d reduce_scatter %s %s%s block=%lld", an, n, dn, eff__red_name(op),
                           inplace ? " in-place" : "", (long long)blk);
            }
            /* all_gather, separate and in place */
            for (i = 0; i < 2 && s == EFF_OK; i++, k++) {
                int inplace = (int)i;
                int64_t j, jj;
                char *send = inplace ? b + (size_t)(r * blk) * es : a;
                fill(send, dt, r, blk, k, 0);
                s = eff_comm_all_gather(c, send, b, blk, dt);
                for (bad = -1, j = 0; s == EFF_OK && j < n && bad < 0; j++)
                    for (jj = 0; jj < blk && bad < 0; jj++)
                        if (get(b, dt, j * blk + jj) != (double)ival((int)j, jj, k)) bad = j * blk + jj;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d all_gather %s%s block=%lld", an, n, dn, inplace ? " in-place" : "",
                           (long long)blk);
            }
            /* all_to_all: block j of rank r's send holds values tagged (r, j) */
            if (s == EFF_OK) {
                int64_t j, jj;
                for (j = 0; j < n; j++) fill(a + (size_t)(j * blk) * es, dt, r, blk, k, j * 1000);
                s = eff_comm_all_to_all(c, a, b, blk, dt);
                for (bad = -1, j = 0; s == EFF_OK && j < n && bad < 0; j++)
                    for (jj = 0; jj < blk && bad < 0; jj++)
                        if (get(b, dt, j * blk + jj) != (double)ival((int)j, jj + r * 1000, k)) bad = j * blk + jj;
                tlog_check(L, s == EFF_OK && bad < 0, "%s n=%d all_to_all %s block=%lld", an, n, dn, (long long)blk);
                k++;
            }
            eff_ctx_free(ctx, a);
            eff_ctx_free(ctx, b);
        }
    }
    /* non-integer data: f32 sum of random values against a float64 reference */
    (void)ref_red1;
    if (s == EFF_OK) {
        int64_t cnt = cfg->sizes[cfg->n_sizes - 1], i;
        float *x = (float *)eff_ctx_alloc(ctx, (size_t)cnt * 4 + 4);
        double *ref = (double *)eff_ctx_alloc(ctx, (size_t)cnt * 8 + 8);
        eff_rng rng;
        int j;
        if (!x || !ref) { eff_ctx_free(ctx, x); eff_ctx_free(ctx, ref); return EFF_ERR_OOM; }
        for (i = 0; i < cnt; i++) ref[i] = 0.0;
        for (j = 0; j < n; j++) {
            eff_rng_seed(&rng, 1000u + (uint64_t)j);
            for (i = 0; i < cnt; i++) {
                float v = eff_rng_uniform(&rng) - 0.5f;
                ref[i] += v;
                if (j == r) x[i] = v;
            }
        }
        s = eff_comm_all_reduce(c, x, cnt, EFF_F32, EFF_RED_SUM);
        {
            double e = s == EFF_OK ? eff_test_nmse(x, ref, cnt) : 1.0;
            tlog_check(L, s == EFF_OK && e < 1e-12, "%s n=%d all_reduce f32 random uniform count=%lld nmse %.2g", an, n,
                       (long long)cnt, e);
        }
        eff_ctx_free(ctx, x);
        eff_ctx_free(ctx, ref);
    }
    /* 16-bit sums accumulate in f32 and round once: 256 + 1 + 1 + ... in bf16 */
    if (s == EFF_OK && n >= 3 && strcmp(an, "local") == 0) {
        uint16_t v[5];
        int i;
        for (i = 0; i < 5; i++) v[i] = eff_fp32_to_bf16(r == 0 ? 256.0f : 1.0f);
        s = eff_comm_all_reduce(c, v, 5, EFF_BF16, EFF_RED_SUM);
        tlog_check(L, s == EFF_OK && v[0] == eff_fp32_to_bf16(256.0f + (float)(n - 1)) && v[4] == v[0],
                   "%s n=%d bf16 sum 256+1+..+1 rounds once (%g, expect %g)", an, n, (double)eff_bf16_to_fp32(v[0]),
                   (double)eff_bf16_to_fp32(eff_fp32_to_bf16(256.0f + (float)(n - 1))));
    }
    return s;
}

/* send/recv: a ring exchange, out-of-order tags, and a barrier. */
static eff_status check_p2p(eff_comm *c, tlog *L) {
    int n = eff_comm_size(c), r = eff_comm_rank(c), right = (r + 1) % n, left = (r + n - 1) % n, i;
    float out[37], in[37];
    int32_t t1 = 100 + r, t2 = 200 + r, g1 = -1, g2 = -1;
    eff_status s;
    const char *an = eff_comm_backend_name(c);
    if (n < 2) return EFF_OK;
    for (i = 0; i < 37; i++) out[i] = (float)(r * 100 + i);
    s = eff_comm_send(c, out, 37, EFF_F32, right, 5);
    if (s == EFF_OK) s = eff_comm_recv(c, in, 37, EFF_F32, left, 5);
    for (i = 0; s == EFF_OK && i < 37; i++) if (in[i] != (float)(left * 100 + i)) break;
    tlog_check(L, s == EFF_OK && i == 37, "%s n=%d send/recv ring of 37 f32", an, n);
    /* two messages to the right, received in the opposite order */
    if (s == EFF_OK) s = eff_comm_send(c, &t1, 1, EFF_I32, right, 1);
    if (s == EFF_OK) s = eff_comm_send(c, &t2, 1, EFF_I32, right, 2);
    if (s == EFF_OK) s = eff_comm_recv(c, &g2, 1, EFF_I32, left, 2);
    if (s == EFF_OK) s = eff_comm_recv(c, &g1, 1, EFF_I32, left, 1);
    tlog_check(L, s == EFF_OK && g1 == 100 + left && g2 == 200 + left, "%s n=%d recv matches tags out of order", an, n);
    /* sendrecv: a ring shift, then a pairwise exchange (rank r with r ^ 1) */
    for (i = 0; i < 37; i++) out[i] = (float)(r * 1000 + i);
    if (s == EFF_OK) s = eff_comm_sendrecv(c, out, 37, right, in, 37, left, EFF_F32, 6);
    for (i = 0; s == EFF_OK && i < 37; i++) if (in[i] != (float)(left * 1000 + i)) break;
    tlog_check(L, s == EFF_OK && i == 37, "%s n=%d sendrecv ring shift", an, n);
    if (s == EFF_OK && (r ^ 1) < n) {
        s = eff_comm_sendrecv(c, &t1, 1, r ^ 1, &g1, 1, r ^ 1, EFF_I32, 8);
        tlog_check(L, s == EFF_OK && g1 == 100 + (r ^ 1), "%s n=%d sendrecv pairwise exchange", an, n);
    } else tlog_check(L, 1, "%s n=%d sendrecv pairwise exchange", an, n);
    if (s == EFF_OK) s = eff_comm_barrier(c);
    tlog_check(L, s == EFF_OK, "%s n=%d barrier", an, n);
    return s;
}

/* Sub-communicators: a TP x DP grid, a reversed key order, an undefined color. */
static eff_status check_split(eff_comm *c, tlog *L) {
    int n = eff_comm_size(c), r = eff_comm_rank(c), tp = n % 2 == 0 ? 2 : 1;
    eff_comm *row = NULL, *col = NULL, *rev = NULL, *odd = NULL;
    int32_t v;
    eff_status s;
    const char *an = eff_comm_backend_name(c);
    /* ranks r = dp * tp + t: row = same dp (the TP group), col = same t (the DP group) */
    s = eff_comm_split(c, r / tp, r % tp, &row);
    if (s == EFF_OK) s = eff_comm_split(c, r % tp, r / tp, &col);
    tlog_check(L, s == EFF_OK && row && col && eff_comm_size(row) == tp && eff_comm_rank(row) == r % tp &&
                  eff_comm_size(col) == n / tp && eff_comm_rank(col) == r / tp,
               "%s n=%d split into %d x %d grid: sizes and ranks", an, n, n / tp, tp);
    if (s == EFF_OK) {
        v = r;
        s = eff_comm_all_reduce(row, &v, 1, EFF_I32, EFF_RED_SUM);
        /* sum of r over the row: tp*(r/tp*tp) + tp*(tp-1)/2 */
        tlog_check(L, s == EFF_OK && v == tp * (r / tp * tp) + tp * (tp - 1) / 2, "%s n=%d all_reduce in the TP row", an, n);
    }
    if (s == EFF_OK) {
        v = r;
        s = eff_comm_all_reduce(col, &v, 1, EFF_I32, EFF_RED_SUM);
        tlog_check(L, s == EFF_OK && v == (n / tp) * (r % tp) + tp * (n / tp) * (n / tp - 1) / 2, "%s n=%d all_reduce in the DP column",
                   an, n);
    }
    if (s == EFF_OK) {
        s = eff_comm_split(c, 7, -r, &rev);
        tlog_check(L, s == EFF_OK && rev && eff_comm_rank(rev) == n - 1 - r, "%s n=%d split with key -rank reverses ranks", an, n);
    }
    if (s == EFF_OK) {
        int32_t got[64];
        int j, ok = 1;
        v = r;
        s = eff_comm_all_gather(rev, &v, got, 1, EFF_I32);
        for (j = 0; s == EFF_OK && j < n && j < 64; j++) ok &= got[j] == n - 1 - j;
        tlog_check(L, s == EFF_OK && ok, "%s n=%d all_gather in the reversed communicator", an, n);
    }
    if (s == EFF_OK) {
        s = eff_comm_split(c, r % 2 ? 1 : EFF_COMM_UNDEFINED, 0, &odd);
        tlog_check(L, s == EFF_OK && (r % 2 ? (odd && eff_comm_size(odd) == n / 2) : odd == NULL),
                   "%s n=%d split with EFF_COMM_UNDEFINED", an, n);
        v = n / 2;
        if (s == EFF_OK && odd) {
            v = 1;
            s = eff_comm_all_reduce(odd, &v, 1, EFF_I32, EFF_RED_SUM);
        }
        tlog_check(L, s == EFF_OK && v == n / 2, "%s n=%d all_reduce over the odd ranks", an, n);
    }
    eff_comm_destroy(odd);
    eff_comm_destroy(rev);
    eff_comm_destroy(col);
    eff_comm_destroy(row);
    return s;
}

/* ---------------------------------------------------------------------------
   Local backend drivers
   --------------------------------------------------------------------------- */
typedef struct run_arg {
    tlog logs[8];
    coll_cfg cfg;
    int what;
} run_arg;

static eff_status coll_rank(eff_comm *c, void *p) {
    run_arg *a = (run_arg *)p;
    int rank = eff_comm_rank(c);
    tlog *L;
    eff_status s;
    if (rank < 0 || rank >= 8) return EFF_ERR_INVALID_ARG;
    L = &a->logs[rank];
    s = check_collectives(c, L, &a->cfg);
    if (s == EFF_OK) s = check_p2p(c, L);
    if (s == EFF_OK) s = check_split(c, L);
    if (s == EFF_OK) {
        size_t inuse = eff_ctx_bytes_in_use(eff_comm_ctx(c));
        /* only the communicator handle itself may remain */
        tlog_check(L, inuse < 1024, "n=%d rank context holds %zu bytes after the checks", eff_comm_size(c), inuse);
    }
    return s;
}

static void test_collectives(void) {
    static const int64_t sizes_full[] = {0, 1, 7, 1001, 33333, (1 << 20) + 3};
    static const int64_t sizes_small[] = {0, 1, 7, 1001, 33333};
    static const int ranks[] = {1, 2, 3, 4, 8};
    static const int algos[] = {EFF_COMM_ALGO_AUTO, EFF_COMM_ALGO_SMALL, EFF_COMM_ALGO_DIRECT, EFF_COMM_ALGO_RING};
    static const char *const algo_names[] = {"auto", "small", "direct", "ring"};
    int ri, ai, r;
    for (ai = 0; ai < 4; ai++) {
        for (ri = 0; ri < 5; ri++) {
            run_arg *a = (run_arg *)calloc(1, sizeof *a);
            eff_comm_local_opts o;
            eff_status st;
            double t0;
            char prefix[64];
            int n = ranks[ri];
            int big = !quick_mode() && n > 1 && algos[ai] != EFF_COMM_ALGO_SMALL && (n != 3 || algos[ai] == EFF_COMM_ALGO_AUTO);
            memset(&o, 0, sizeof o);
            o.algo = algos[ai];
            o.timeout = 60;
            /* the direct runs write results of >= 64 KiB with streaming stores */
            if (algos[ai] == EFF_COMM_ALGO_DIRECT) o.stream_bytes = 64 * 1024;
            a->cfg.sizes = big ? sizes_full : sizes_small;
            a->cfg.n_sizes = big ? 6 : 5;
            t0 = now_s();
            st = eff_comm_local_run_opts(n, coll_rank, a, &o);
            if (getenv("EFF_TEST_VERBOSE")) printf("  algo %s n=%d: %.2f s\n", algo_names[ai], n, now_s() - t0);
            snprintf(prefix, sizeof prefix, "algo %s n=%d", algo_names[ai], n);
            EFF_CHECK(st == EFF_OK, "%s: local run %s", prefix, eff_status_str(st));
            tlog_merge(a->logs, n, prefix);
            for (r = 0; r < n; r++) tlog_free(&a->logs[r]);
            free(a);
        }
    }
}

/* ---------------------------------------------------------------------------
   Faults: a rank that returns early, fails, or stalls; mismatched arguments;
   bad arguments. Never a hang: every rank gets an error within the timeout.
   --------------------------------------------------------------------------- */
typedef struct fault_arg {
    int mode;
    eff_status st[8], st2[8];
    double dt[8];
    char msg[8][512];
} fault_arg;

enum { F_RETURN_OK, F_RETURN_ERR, F_STALL, F_COUNT_MISMATCH, F_DTYPE_MISMATCH, F_OP_MISMATCH, F_RECV_NOTHING, F_RECV_SIZE,
       F_MODES };
static const char *const fault_names[] = {"rank returns early", "rank fails", "rank stalls", "count mismatch",
                                          "dtype mismatch", "op mismatch", "recv with no sender", "recv size mismatch"};

static eff_status fault_rank(eff_comm *c, void *p) {
    fault_arg *a = (fault_arg *)p;
    int r = eff_comm_rank(c), n = eff_comm_size(c);
    float x[64];
    double t0;
    eff_status s = EFF_OK;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    memset(x, 0, sizeof x);
    eff_comm_set_timeout(c, 1.0);
    t0 = now_s();
    switch (a->mode) {
    case F_RETURN_OK:
        if (r == n - 1) return EFF_OK;
        s = eff_comm_all_reduce(c, x, 64, EFF_F32, EFF_RED_SUM);
        break;
    case F_RETURN_ERR:
        if (r == n - 1) return EFF_ERR_IO;
        s = eff_comm_barrier(c);
        break;
    case F_STALL:
        if (r == n - 1) sleep_s(2.0);
        s = eff_comm_all_reduce(c, x, 64, EFF_F32, EFF_RED_SUM);
        break;
    case F_COUNT_MISMATCH:
        s = eff_comm_all_reduce(c, x, r == 1 ? 63 : 64, EFF_F32, EFF_RED_SUM);
        break;
    case F_DTYPE_MISMATCH:
        s = eff_comm_broadcast(c, x, 16, r == 0 ? EFF_F32 : EFF_I32, 0);
        break;
    case F_OP_MISMATCH:
        s = eff_comm_reduce_scatter(c, x, x + 32, 8, EFF_F32, r == 0 ? EFF_RED_MAX : EFF_RED_SUM);
        break;
    case F_RECV_NOTHING:
        if (r == 0) s = eff_comm_recv(c, x, 4, EFF_F32, 1, 3);
        else { sleep_s(1.5); s = eff_comm_barrier(c); }
        break;
    case F_RECV_SIZE:
        if (r == 1) s = eff_comm_send(c, x, 5, EFF_F32, 0, 3);
        if (r == 0) s = eff_comm_recv(c, x, 4, EFF_F32, 1, 3);
        break;
    }
    a->dt[r] = now_s() - t0;
    a->st[r] = s;
    snprintf(a->msg[r], sizeof a->msg[r], "%s", eff_ctx_last_error(eff_comm_ctx(c)));
    /* any later call on a broken communicator fails at once */
    if (s != EFF_OK) a->st2[r] = eff_comm_barrier(c);
    return s;
}

static void test_faults(void) {
    int mode, r, n = 3;
    for (mode = 0; mode < F_MODES; mode++) {
        fault_arg a;
        eff_comm_local_opts o;
        eff_status st;
        double t0 = now_s(), total;
        memset(&a, 0, sizeof a);
        memset(&o, 0, sizeof o);
        a.mode = mode;
        o.timeout = 1.0;
        st = eff_comm_local_run_opts(n, fault_rank, &a, &o);
        total = now_s() - t0;
        EFF_CHECK(st != EFF_OK, "fault '%s': eff_comm_local_run returns an error (%s)", fault_names[mode], eff_status_str(st));
        if (mode == F_RETURN_ERR) EFF_CHECK(st == EFF_ERR_IO, "fault '%s': the launcher returns the rank's own status (%s)",
                                            fault_names[mode], eff_status_str(st));
        for (r = 0; r < n; r++) {
            eff_status want = EFF_ERR_PEER;
            if ((mode == F_RETURN_OK || mode == F_RETURN_ERR) && r == n - 1) continue;
            if (mode == F_RECV_SIZE && r == 2) continue;      /* not involved */
            if (mode == F_RECV_SIZE && r == 1) continue;      /* its send succeeded */
            if (mode == F_COUNT_MISMATCH || mode == F_DTYPE_MISMATCH || mode == F_OP_MISMATCH) want = EFF_ERR_SHAPE;
            if (mode == F_RECV_SIZE) want = EFF_ERR_SHAPE;
            if (mode == F_STALL || mode == F_RECV_NOTHING) {
                EFF_CHECK(a.st[r] == EFF_ERR_TIMEOUT || a.st[r] == EFF_ERR_PEER, "fault '%s': rank %d gets timeout or peer (%s: %s)",
                          fault_names[mode], r, eff_status_str(a.st[r]), a.msg[r]);
            } else {
                EFF_CHECK(a.st[r] == want, "fault '%s': rank %d gets %s (%s: %s)", fault_names[mode], r, eff_status_str(want),
                          eff_status_str(a.st[r]), a.msg[r]);
            }
            if (!(mode == F_STALL && r == n - 1))
                EFF_CHECK(a.dt[r] < 2.0, "fault '%s': rank %d returns within the timeout (%.2f s)", fault_names[mode], r, a.dt[r]);
            EFF_CHECK(a.st2[r] == EFF_ERR_PEER, "fault '%s': rank %d: later calls fail (%s)", fault_names[mode], r,
                      eff_status_str(a.st2[r]));
        }
        if (mode == F_STALL) {
            int n_timeout = 0;
            for (r = 0; r < n - 1; r++) n_timeout += a.st[r] == EFF_ERR_TIMEOUT;
            EFF_CHECK(n_timeout >= 1, "fault 'rank stalls': %d waiting ranks report the timeout itself", n_timeout);
            EFF_CHECK(a.st[n - 1] == EFF_ERR_PEER, "fault 'rank stalls': the stalled rank's late call fails (%s)",
                      eff_status_str(a.st[n - 1]));
        }
        EFF_CHECK(total < 4.0, "fault '%s': the whole run ends in %.2f s", fault_names[mode], total);
    }
}

/* Bad arguments: each call fails on every rank with the right status and a message. */
typedef struct arg_arg { int which; eff_status st[2]; char msg[2][512]; } arg_arg;
enum { A_NULL_BUF, A_NEG_COUNT, A_BAD_DTYPE, A_BAD_OP, A_BAD_ROOT, A_BAD_TAG, A_SELF_PEER, A_RS_OVERLAP, A_A2A_OVERLAP,
       A_SPLIT_COLOR, A_MODES };
static eff_status arg_rank(eff_comm *c, void *p) {
    arg_arg *a = (arg_arg *)p;
    int r = eff_comm_rank(c);
    float x[64];
    eff_comm *sub = NULL;
    eff_status s = EFF_OK;
    if (r < 0 || r > 1) return EFF_ERR_INVALID_ARG;
    memset(x, 0, sizeof x);
    switch (a->which) {
    case A_NULL_BUF: s = eff_comm_all_reduce(c, NULL, 4, EFF_F32, EFF_RED_SUM); break;
    case A_NEG_COUNT: s = eff_comm_broadcast(c, x, -1, EFF_F32, 0); break;
    case A_BAD_DTYPE: s = eff_comm_all_reduce(c, x, 4, EFF_F64, EFF_RED_SUM); break;
    case A_BAD_OP: s = eff_comm_all_reduce(c, x, 4, EFF_F32, 9); break;
    case A_BAD_ROOT: s = eff_comm_reduce(c, x, x, 4, EFF_F32, EFF_RED_SUM, 2); break;
    case A_BAD_TAG: s = eff_comm_send(c, x, 4, EFF_F32, 1 - r, EFF_COMM_TAG_MAX + 1); break;
    case A_SELF_PEER: s = eff_comm_send(c, x, 4, EFF_F32, r, 0); break;
    case A_RS_OVERLAP: s = eff_comm_reduce_scatter(c, x, x + 1, 8, EFF_F32, EFF_RED_SUM); break;
    case A_A2A_OVERLAP: s = eff_comm_all_to_all(c, x, x + 4, 8, EFF_F32); break;
    case A_SPLIT_COLOR: s = eff_comm_split(c, -5, 0, &sub); break;
    }
    a->st[r] = s;
    snprintf(a->msg[r], sizeof a->msg[r], "%s", eff_ctx_last_error(eff_comm_ctx(c)));
    eff_comm_destroy(sub);
    return s;
}
static void test_bad_args(void) {
    static const eff_status want[A_MODES] = {EFF_ERR_INVALID_ARG, EFF_ERR_INVALID_ARG, EFF_ERR_DTYPE, EFF_ERR_INVALID_ARG,
                                             EFF_ERR_INVALID_ARG, EFF_ERR_INVALID_ARG, EFF_ERR_INVALID_ARG, EFF_ERR_INVALID_ARG,
                                             EFF_ERR_INVALID_ARG, EFF_ERR_INVALID_ARG};
    static const char *const names[A_MODES] = {"NULL buffer", "negative count", "f64 dtype", "op 9", "root 2 of 2", "tag too large",
                                               "send to self", "reduce_scatter recv overlaps send", "all_to_all overlap",
                                               "split color -5"};
    static const char *const argname[A_MODES] = {"'buf'", "'count'", "'dtype'", "'op'", "'root'", "'tag'", "'peer'", "'recv'",
                                                 "overlap", "'color'"};
    int w, r;
    EFF_CHECK(eff_comm_local_run(0, coll_rank, NULL) == EFF_ERR_INVALID_ARG, "local_run with 0 ranks is rejected");
    EFF_CHECK(eff_comm_local_run(2, NULL, NULL) == EFF_ERR_INVALID_ARG, "local_run without a function is rejected");
    EFF_CHECK(eff_comm_all_reduce(NULL, NULL, 0, EFF_F32, 0) == EFF_ERR_INVALID_ARG, "NULL communicator is rejected");
    for (w = 0; w < A_MODES; w++) {
        arg_arg a;
        memset(&a, 0, sizeof a);
        a.which = w;
        eff_comm_local_run(2, arg_rank, &a);
        for (r = 0; r < 2; r++)
            EFF_CHECK(a.st[r] == want[w] && strstr(a.msg[r], argname[w]) != NULL, "bad argument '%s': rank %d gets %s naming %s (%s: %s)",
                      names[w], r, eff_status_str(want[w]), argname[w], eff_status_str(a.st[r]), a.msg[r]);
    }
}

/* ---------------------------------------------------------------------------
   A tiny MLP for the training-equivalence tests:
     h = x W1^T + b1, a = gelu(h), y = a W2^T + b2, loss = 0.5 * sum (y - t)^2 * dscale
   Parameters are two "layers": [W1 (H x D), b1 (H)] and [W2 (O x H), b2 (O)].
   --------------------------------------------------------------------------- */
enum { MLP_D = 13, MLP_H = 24, MLP_O = 5, MLP_B = 48 };
static const int64_t mlp_layer_counts[2] = {MLP_H * MLP_D + MLP_H, MLP_O * MLP_H + MLP_O};
#define MLP_NP (MLP_H * MLP_D + MLP_H + MLP_O * MLP_H + MLP_O)

static void mlp_init(float *p, float *x, float *t) {
    eff_rng g;
    eff_rng_seed(&g, 42);
    eff_rng_fill_normal(&g, p, MLP_NP, 0.0f, 0.3f);
    eff_rng_fill_normal(&g, x, MLP_B * MLP_D, 0.0f, 1.0f);
    eff_rng_fill_normal(&g, t, MLP_B * MLP_O, 0.0f, 1.0f);
}

/* One micro-batch of B rows: gradients of the loss are added (+=) into g0 (layer
   0) and g1 (layer 1), all f32. Scratch comes from ctx. */
static eff_status mlp_fwd_bwd(eff_ctx *ctx, const float *p0, const float *p1, float *g0, float *g1, const float *x, const float *t,
                              int64_t B, float dscale, double *loss) {
    float *h = (float *)eff_ctx_alloc(ctx, sizeof(float) * (size_t)(B * MLP_H * 3 + B * MLP_O * 2));
    float *a = h + B * MLP_H, *da = a + B * MLP_H, *y = da + B * MLP_H, *dy = y + B * MLP_O;
    eff_tensor X, W1, b1, W2, b2, Hh, A, DA, Y, DY, dW1, db1, dW2, db2;
    int64_t i;
    eff_status s;
    if (!h) return EFF_ERR_OOM;
    X = eff_tensor_2d((void *)x, EFF_F32, B, MLP_D);
    W1 = eff_tensor_2d((void *)p0, EFF_F32, MLP_H, MLP_D); b1 = eff_tensor_1d((void *)(p0 + MLP_H * MLP_D), EFF_F32, MLP_H);
    W2 = eff_tensor_2d((void *)p1, EFF_F32, MLP_O, MLP_H); b2 = eff_tensor_1d((void *)(p1 + MLP_O * MLP_H), EFF_F32, MLP_O);
    dW1 = eff_tensor_2d(g0, EFF_F32, MLP_H, MLP_D); db1 = eff_tensor_1d(g0 + MLP_H * MLP_D, EFF_F32, MLP_H);
    dW2 = eff_tensor_2d(g1, EFF_F32, MLP_O, MLP_H); db2 = eff_tensor_1d(g1 + MLP_O * MLP_H, EFF_F32, MLP_O);
    Hh = eff_tensor_2d(h, EFF_F32, B, MLP_H); A = eff_tensor_2d(a, EFF_F32, B, MLP_H); DA = eff_tensor_2d(da, EFF_F32, B, MLP_H);
    Y = eff_tensor_2d(y, EFF_F32, B, MLP_O); DY = eff_tensor_2d(dy, EFF_F32, B, MLP_O);
    s = eff_linear_forward(ctx, &Hh, &X, &W1, &b1);
    if (s == EFF_OK) s = eff_gelu_forward(ctx, &A, &Hh);
    if (s == EFF_OK) s = eff_linear_forward(ctx, &Y, &A, &W2, &b2);
    if (s == EFF_OK) {
        double l = 0.0;
        for (i = 0; i < B * MLP_O; i++) { dy[i] = (y[i] - t[i]) * dscale; l += 0.5 * (double)(y[i] - t[i]) * (y[i] - t[i]) * dscale; }
        if (loss) *loss += l;
        s = eff_linear_backward(ctx, &DA, &dW2, &db2, &DY, &A, &W2);
    }
    if (s == EFF_OK) s = eff_gelu_backward(ctx, &DA, &DA, &Hh);
    if (s == EFF_OK) s = eff_linear_backward(ctx, NULL, &dW1, &db1, &DA, &X, &W1);
    eff_ctx_free(ctx, h);
    return s;
}

/* ---------------------------------------------------------------------------
   Data parallel: R ranks x m micro-batches == 1 rank on the full batch.
   --------------------------------------------------------------------------- */
typedef struct dp_arg {
    int m, steps;
    int64_t bucket_bytes;
    float params[8][MLP_NP];
    eff_dp_stats stats[8];
    tlog logs[8];
} dp_arg;

static eff_status dp_rank(eff_comm *c, void *p) {
    dp_arg *a = (dp_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    int R = eff_comm_size(c), r = eff_comm_rank(c), step, k, j;
    float *prm = a->params[r], x[MLP_B * MLP_D], t[MLP_B * MLP_O];
    static float grads_storage[8][MLP_NP], mom[8][2][MLP_NP];
    float *g = grads_storage[r];
    int64_t counts[4] = {MLP_H * MLP_D, MLP_H, MLP_O * MLP_H, MLP_O}, offs[4], bm = MLP_B / (R * a->m);
    void *bufs[4];
    eff_dp_opts o;
    eff_adamw_opts ao;
    eff_status s = EFF_OK;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    mlp_init(prm, x, t);
    offs[0] = 0; for (j = 1; j < 4; j++) offs[j] = offs[j - 1] + counts[j - 1];
    for (j = 0; j < 4; j++) bufs[j] = g + offs[j];
    memset(mom[r], 0, sizeof mom[r]);
    memset(&o, 0, sizeof o);
    o.bucket_bytes = a->bucket_bytes;
    o.scale = 1.0f / (float)a->m;
    memset(&ao, 0, sizeof ao);
    ao.lr = 1e-2f; ao.weight_decay = 0.01f;
    for (step = 1; step <= a->steps && s == EFF_OK; step++) {
        memset(g, 0, sizeof(float) * MLP_NP);
        for (k = 0; k < a->m && s == EFF_OK; k++) {   /* gradient accumulation: backward adds */
            int64_t row = ((int64_t)r * a->m + k) * bm;
            s = mlp_fwd_bwd(ctx, prm, prm + mlp_layer_counts[0], g, g + mlp_layer_counts[0], x + row * MLP_D, t + row * MLP_O, bm,
                            1.0f / (float)bm, NULL);
        }
        if (s == EFF_OK) s = eff_dp_all_reduce_grads(c, 4, bufs, counts, EFF_F32, &o, &a->stats[r]);
        ao.step = step;
        if (s == EFF_OK) s = eff_adamw_step(ctx, &ao, MLP_NP, prm, EFF_F32, NULL, g, EFF_F32, mom[r][0], mom[r][1]);
    }
    return s;
}

/* Buckets pack and unpack buffers correctly: per-rank values with a known average. */
static eff_status dp_bucket_rank(eff_comm *c, void *p) {
    dp_arg *a = (dp_arg *)p;
    int R = eff_comm_size(c), r = eff_comm_rank(c), i, dt;
    static const int64_t counts[6] = {5, 300, 0, 17, 1, 129};
    eff_status s = EFF_OK;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    for (dt = 0; dt < 3 && s == EFF_OK; dt++) {
        int dtype = dt == 0 ? EFF_F32 : dt == 1 ? EFF_BF16 : EFF_F16;
        char store[6][300 * 4];
        void *bufs[6];
        eff_dp_opts o;
        eff_dp_stats st;
        int bad = 0;
        int64_t j;
        for (i = 0; i < 6; i++) {
            bufs[i] = store[i];
            for (j = 0; j < counts[i]; j++) put(store[i], dtype, j, (double)((i * 31 + j * 3 + r * R) % 16));
        }
        memset(&o, 0, sizeof o);
        o.bucket_bytes = 64;   /* 16 f32 / 32 half: forces many buckets and split buffers */
        o.sum = 1;
        o.scale = 0.5f;
        s = eff_dp_all_reduce_grads(c, 6, bufs, counts, dtype, &o, &st);
        for (i = 0; s == EFF_OK && i < 6; i++)
            for (j = 0; j < counts[i]; j++) {
                int q;
                double want = 0.0;
                for (q = 0; q < R; q++) want += (double)((i * 31 + j * 3 + q * R) % 16);
                if (get(store[i], dtype, j) != want * 0.5) bad++;
            }
        tlog_check(&a->logs[r], s == EFF_OK && bad == 0 && st.max_bucket_bytes <= 64 && st.n_buckets >= 10,
                   "dp n=%d buckets of 64 bytes, %s: %d wrong, %lld buckets, largest %lld bytes", R, eff_dtype_name(dtype), bad,
                   (long long)st.n_buckets, (long long)st.max_bucket_bytes);
    }
    return s;
}

static void test_data_parallel(void) {
    static float ref[MLP_NP];
    static const int ranks[3] = {1, 2, 4};
    int ri, mi, r;
    for (ri = 0; ri < 3; ri++) {
        for (mi = 0; mi < 2; mi++) {
            dp_arg *a = (dp_arg *)calloc(1, sizeof *a);
            int R = ranks[ri], m = mi ? 3 : 1;
            eff_status st;
            if (!a) return;
            if (R == 4 && m == 3) m = 2;   /* 48 rows = 4 ranks x 2 micro-batches x 6 */
            a->m = m; a->steps = 5; a->bucket_bytes = 256;
            st = eff_comm_local_run(R, dp_rank, a);
            EFF_CHECK(st == EFF_OK, "dp n=%d m=%d: run %s", R, m, eff_status_str(st));
            if (R == 1 && m == 1) memcpy(ref, a->params[0], sizeof ref);
            else {
                double e = eff_test_nmse_ff(a->params[0], ref, MLP_NP);
                EFF_CHECK(e < 1e-12, "dp n=%d x %d micro-batches == 1 rank full batch after 5 AdamW steps: nmse %.2g", R, m, e);
            }
            for (r = 1; r < R; r++)
                EFF_CHECK(memcmp(a->params[r], a->params[0], sizeof ref) == 0, "dp n=%d m=%d: rank %d holds rank 0's parameters", R, m, r);
            if (R > 1)
                EFF_CHECK(a->stats[0].n_buckets >= 5 && a->stats[0].max_bucket_bytes <= 256,
                          "dp n=%d: %lld buckets per step, largest %lld bytes <= 256", R, (long long)a->stats[0].n_buckets,
                          (long long)a->stats[0].max_bucket_bytes);
            free(a);
        }
    }
    for (ri = 1; ri < 3; ri++) {
        dp_arg *a = (dp_arg *)calloc(1, sizeof *a);
        if (!a) return;
        EFF_CHECK(eff_comm_local_run(ranks[ri] + 1, dp_bucket_rank, a) == EFF_OK, "dp bucket run n=%d", ranks[ri] + 1);
        tlog_merge(a->logs, ranks[ri] + 1, "dp buckets");
        for (r = 0; r < ranks[ri] + 1; r++) tlog_free(&a->logs[r]);
        free(a);
    }
}

/* ---------------------------------------------------------------------------
   ZeRO: stages 1-3 give plain DP's parameters (stage 0); memory matches the
   formulas; sharded checkpoints restore the state exactly.
   --------------------------------------------------------------------------- */
typedef struct zero_arg {
    int stage, dtype, m, steps;
    float params[8][MLP_NP];
    const char *save_prefix, *load_prefix;
    int save_after;                 /* save after this many steps (0: no save) */
    eff_status st_save[8], st_load[8];
    char msg[8][512];
} zero_arg;

/* Trains the MLP through the ZeRO object for `steps` steps (layers gathered on
   demand, gradients handed over layer by layer in backward order). */
static eff_status zero_train(eff_comm *c, eff_zero *z, eff_ctx *mctx, int dtype, int m, int steps, const float *x, const float *t) {
    int R = eff_comm_size(c), r = eff_comm_rank(c), step, k, l;
    int64_t bm = MLP_B / (R * m), i;
    float *pf[2], *gf[2];
    eff_status s = EFF_OK;
    pf[0] = (float *)eff_ctx_alloc(mctx, sizeof(float) * MLP_NP * 2);
    if (!pf[0]) return EFF_ERR_OOM;
    pf[1] = pf[0] + mlp_layer_counts[0]; gf[0] = pf[0] + MLP_NP; gf[1] = gf[0] + mlp_layer_counts[0];
    for (step = 0; step < steps && s == EFF_OK; step++) {
        for (k = 0; k < m && s == EFF_OK; k++) {
            int64_t row = ((int64_t)r * m + k) * bm;
            for (l = 0; l < 2 && s == EFF_OK; l++) {   /* forward: gather each layer (f32 copy for the ops) */
                void *p;
                s = eff_zero_gather_layer(z, l, &p);
                for (i = 0; s == EFF_OK && i < mlp_layer_counts[l]; i++) pf[l][i] = get(p, dtype, i);
                if (s == EFF_OK) s = eff_zero_release_layer(z, l);
            }
            memset(gf[0], 0, sizeof(float) * MLP_NP);
            if (s == EFF_OK) s = mlp_fwd_bwd(mctx, pf[0], pf[1], gf[0], gf[1], x + row * MLP_D, t + row * MLP_O, bm, 1.0f / (float)(bm * m), NULL);
            for (l = 1; l >= 0 && s == EFF_OK; l--) {  /* backward order: hand over each layer's gradient */
                void *g, *p;
                s = eff_zero_gather_layer(z, l, &p);
                if (s == EFF_OK) s = eff_zero_grad_layer(z, l, &g);
                for (i = 0; s == EFF_OK && i < mlp_layer_counts[l]; i++) put(g, dtype, i, get(g, dtype, i) + gf[l][i]);
                if (s == EFF_OK) s = eff_zero_grad_done(z, l);
                if (s == EFF_OK) s = eff_zero_release_layer(z, l);
            }
        }
        if (s == EFF_OK) s = eff_zero_step(z);
    }
    eff_ctx_free(mctx, pf[0]);
    return s;
}

static eff_status zero_rank(eff_comm *c, void *p) {
    zero_arg *a = (zero_arg *)p;
    int r = eff_comm_rank(c);
    eff_ctx *mctx = NULL;
    eff_zero *z = NULL;
    eff_zero_opts o;
    eff_ctx_opts co;
    float x[MLP_B * MLP_D], t[MLP_B * MLP_O];
    eff_status s;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    memset(&co, 0, sizeof co);
    co.n_threads = 1;
    s = eff_ctx_create(&co, &mctx);
    if (s != EFF_OK) return s;
    memset(&o, 0, sizeof o);
    o.stage = a->stage; o.param_dtype = a->dtype; o.n_layers = 2; o.layer_counts = mlp_layer_counts;
    o.adamw.lr = 1e-2f; o.adamw.weight_decay = 0.01f;
    mlp_init(a->params[r], x, t);
    s = eff_zero_create(c, MLP_NP, &o, &z);
    if (s == EFF_OK) s = eff_zero_set_params(z, a->params[r]);
    if (s == EFF_OK && a->load_prefix) {
        s = eff_zero_load(z, a->load_prefix);
        a->st_load[r] = s;
        snprintf(a->msg[r], sizeof a->msg[r], "%s", eff_ctx_last_error(eff_comm_ctx(c)));
        if (s != EFF_OK) { eff_zero_destroy(z); eff_ctx_destroy(mctx); return EFF_OK; }
    }
    if (s == EFF_OK && a->save_after) {
        s = zero_train(c, z, mctx, a->dtype, a->m, a->save_after, x, t);
        if (s == EFF_OK) s = eff_zero_save(z, a->save_prefix);
        a->st_save[r] = s;
    }
    if (s == EFF_OK) s = zero_train(c, z, mctx, a->dtype, a->m, a->steps, x, t);
    if (s == EFF_OK) s = eff_zero_get_params(z, a->params[r]);
    eff_zero_destroy(z);
    eff_ctx_destroy(mctx);
    return s;
}

static void test_zero_equivalence(void) {
    static const int ranks[2] = {2, 4};
    int ri, di, mi, stage, r;
    for (ri = 0; ri < 2; ri++)
        for (di = 0; di < 2; di++)
            for (mi = 1; mi <= 2; mi++) {
                static float base[MLP_NP];
                int R = ranks[ri], dtype = di ? EFF_BF16 : EFF_F32;
                for (stage = 0; stage <= 3; stage++) {
                    zero_arg *a = (zero_arg *)calloc(1, sizeof *a);
                    eff_status st;
                    if (!a) return;
                    a->stage = stage; a->dtype = dtype; a->m = mi; a->steps = 4;
                    st = eff_comm_local_run(R, zero_rank, a);
                    EFF_CHECK(st == EFF_OK, "zero-%d n=%d %s m=%d: run %s", stage, R, eff_dtype_name(dtype), mi, eff_status_str(st));
                    for (r = 1; r < R; r++)
                        EFF_CHECK(memcmp(a->params[r], a->params[0], sizeof base) == 0, "zero-%d n=%d %s m=%d: rank %d == rank 0",
                                  stage, R, eff_dtype_name(dtype), mi, r);
                    if (stage == 0) memcpy(base, a->params[0], sizeof base);
                    else if (mi == 1)   /* the same sums in the same order: bit for bit */
                        EFF_CHECK(memcmp(a->params[0], base, sizeof base) == 0,
                                  "zero-%d n=%d %s: parameters after 4 steps are bitwise those of plain DP", stage, R,
                                  eff_dtype_name(dtype));
                    else {   /* stages 2-3 reduce every micro-batch: rounding differs */
                        double e = eff_test_nmse_ff(a->params[0], base, MLP_NP);
                        double tol = dtype == EFF_F32 ? 1e-12 : 1e-4;
                        EFF_CHECK(e <= tol, "zero-%d n=%d %s, 2 micro-batches: parameters equal plain DP's (nmse %.2g <= %.0g)", stage, R,
                                  eff_dtype_name(dtype), e, tol);
                    }
                    if (stage == 0 && dtype == EFF_F32 && mi == 1) {
                        /* and plain DP through eff_zero equals the eff_dp path */
                        dp_arg *d = (dp_arg *)calloc(1, sizeof *d);
                        if (d) {
                            d->m = 1; d->steps = 4; d->bucket_bytes = 0;
                            eff_comm_local_run(R, dp_rank, d);
                            EFF_CHECK(eff_test_nmse_ff(base, d->params[0], MLP_NP) < 1e-12,
                                      "zero-0 n=%d equals eff_dp_all_reduce_grads + AdamW", R);
                            free(d);
                        }
                    }
                    free(a);
                }
            }
}

/* Memory: peak bytes of each rank's context over a step vs the ZeRO formulas. */
typedef struct zmem_arg { int stage, dtype; double peak[8], formula; int L; } zmem_arg;
static eff_status zmem_rank(eff_comm *c, void *p) {
    zmem_arg *a = (zmem_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    int r = eff_comm_rank(c), l, L = a->L;
    int64_t counts[64], np = 0, i;
    eff_zero *z = NULL;
    eff_zero_opts o;
    float *init;
    size_t base;
    eff_status s;
    if (r < 0 || r >= 8 || L > 64) return EFF_ERR_INVALID_ARG;
    for (l = 0; l < L; l++) { counts[l] = 24000 + 37 * l; np += counts[l]; }
    init = (float *)malloc(sizeof(float) * (size_t)np);
    if (!init) return EFF_ERR_OOM;
    for (i = 0; i < np; i++) init[i] = (float)(i % 101) * 0.01f;
    memset(&o, 0, sizeof o);
    o.stage = a->stage; o.param_dtype = a->dtype; o.n_layers = L; o.layer_counts = counts;
    base = eff_ctx_bytes_in_use(ctx);
    eff_ctx_reset_peak(ctx);
    s = eff_zero_create(c, np, &o, &z);
    if (s == EFF_OK) s = eff_zero_set_params(z, init);
    for (l = 0; l < L && s == EFF_OK; l++) {   /* forward */
        void *prm;
        s = eff_zero_gather_layer(z, l, &prm);
        if (s == EFF_OK) s = eff_zero_release_layer(z, l);
    }
    for (l = L - 1; l >= 0 && s == EFF_OK; l--) {   /* backward */
        void *prm, *g;
        s = eff_zero_gather_layer(z, l, &prm);
        if (s == EFF_OK) s = eff_zero_grad_layer(z, l, &g);
        for (i = 0; s == EFF_OK && i < counts[l]; i++) put(g, a->dtype, i, 1e-3 * (double)((i + l) % 7));
        if (s == EFF_OK) s = eff_zero_grad_done(z, l);
        if (s == EFF_OK) s = eff_zero_release_layer(z, l);
    }
    if (s == EFF_OK) s = eff_zero_step(z);
    a->peak[r] = (double)(eff_ctx_bytes_peak(ctx) - base);
    if (r == 0) {
        eff_zero_mem est;
        double P = a->dtype == EFF_F32 ? 4 : 2;
        eff_zero_memory_estimate(a->stage, (double)np, eff_comm_size(c), P, P, a->dtype == EFF_F32 ? 8 : 12, &est);
        a->formula = est.total;
    }
    eff_zero_destroy(z);
    free(init);
    return s;
}

static void test_zero_memory(void) {
    static const int ranks[2] = {2, 4};
    int ri, di, stage, r;
    /* the ZeRO paper's Table 1 (GB per device, K = 12), from the formula */
    {
        static const double psi[3] = {7.5e9, 128e9, 1e12};
        static const int nd[6] = {1, 4, 16, 64, 256, 1024};
        static const double table[6][9] = {{120, 120, 120, 2048, 2048, 2048, 16000, 16000, 16000},
                                           {52.5, 41.3, 30, 896, 704, 512, 7000, 5500, 4000},
                                           {35.6, 21.6, 7.5, 608, 368, 128, 4750, 2875, 1000},
                                           {31.4, 16.6, 1.88, 536, 284, 32, 4187, 2218, 250},
                                           {30.4, 15.4, 0.47, 518, 263, 8, 4046, 2054, 62.5},
                                           {30.1, 15.1, 0.12, 513, 257, 2, 4011, 2013, 15.6}};
        int i, j, k, bad = 0;
        for (i = 0; i < 6; i++)
            for (j = 0; j < 3; j++)
                for (k = 0; k < 3; k++) {
                    eff_zero_mem m;
                    double gb, want = table[i][j * 3 + k];
                    eff_zero_memory_estimate(k + 1, psi[j], nd[i], 2, 2, 12, &m);
                    gb = m.total / 1e9;
                    /* the paper rounds to 3 significant digits, and truncates some */
                    if (fabs(gb - want) > 0.006 * want + 0.006) { bad++; printf("  table1 N=%d psi=%g stage %d: %g vs %g\n", nd[i], psi[j], k + 1, gb, want); }
                }
        EFF_CHECK(bad == 0, "eff_zero_memory_estimate reproduces the ZeRO paper's Table 1 (54 entries, %d off)", bad);
    }
    for (ri = 0; ri < 2; ri++)
        for (di = 0; di < 2; di++)
            for (stage = 0; stage <= 3; stage++) {
                zmem_arg a;
                eff_status st;
                double worst = 0.0;
                memset(&a, 0, sizeof a);
                a.stage = stage; a.dtype = di ? EFF_BF16 : EFF_F32; a.L = 64;
                st = eff_comm_local_run(ranks[ri], zmem_rank, &a);
                for (r = 0; r < ranks[ri]; r++) {
                    double e = fabs(a.peak[r] / a.formula - 1.0);
                    if (e > worst) worst = e;
                }
                EFF_CHECK(st == EFF_OK && worst < 0.05, "zero-%d n=%d %s: peak bytes per rank %.0f vs formula %.0f (%.1f%% off, <= 5%%)",
                          stage, ranks[ri], eff_dtype_name(a.dtype), a.peak[0], a.formula, 100.0 * worst);
            }
}

static void test_zero_checkpoint(void) {
    char prefix[256], path[300];
    zero_arg *a = (zero_arg *)calloc(1, sizeof *a), *b = (zero_arg *)calloc(1, sizeof *b);
    int r, i;
    FILE *f;
    if (!a || !b) { free(a); free(b); return; }
    snprintf(prefix, sizeof prefix, "/tmp/eff_test_parallel_%ld_zero", (long)getpid());
    /* A: 2 steps, save, 3 more steps (stage 2, bf16) */
    a->stage = 2; a->dtype = EFF_BF16; a->m = 1; a->steps = 3; a->save_after = 2; a->save_prefix = prefix;
    EFF_CHECK(eff_comm_local_run(2, zero_rank, a) == EFF_OK, "zero checkpoint: train, save, train");
    for (r = 0; r < 2; r++) EFF_CHECK(a->st_save[r] == EFF_OK, "zero checkpoint: rank %d saved (%s)", r, eff_status_str(a->st_save[r]));
    /* B: load into a stage-1 and a stage-3 object, 3 more steps: the same parameters */
    for (i = 1; i <= 3; i += 2) {
        memset(b, 0, sizeof *b);
        b->stage = i; b->dtype = EFF_BF16; b->m = 1; b->steps = 3; b->load_prefix = prefix;
        eff_status st = eff_comm_local_run(2, zero_rank, b);
        EFF_CHECK(st == EFF_OK && b->st_load[0] == EFF_OK && b->st_load[1] == EFF_OK, "zero checkpoint: load at stage %d (%s)", i,
                  b->msg[0]);
        EFF_CHECK(memcmp(a->params[0], b->params[0], sizeof a->params[0]) == 0,
                  "zero checkpoint: saved at stage 2, loaded at stage %d: 3 more steps give identical parameters", i);
    }
    /* a checkpoint of another dtype is refused with a shape error on every rank */
    memset(b, 0, sizeof *b);
    b->stage = 2; b->dtype = EFF_F32; b->m = 1; b->steps = 1; b->load_prefix = prefix;
    eff_comm_local_run(2, zero_rank, b);
    EFF_CHECK(b->st_load[0] == EFF_ERR_SHAPE && b->st_load[1] == EFF_ERR_SHAPE, "zero checkpoint: f32 object refuses a bf16 file (%s: %s)",
              eff_status_str(b->st_load[0]), b->msg[0]);
    /* one flipped byte in rank 1's file: a format error on rank 1, an error on rank 0 too */
    snprintf(path, sizeof path, "%s.rank1-of-2", prefix);
    f = fopen(path, "r+b");
    if (f) { fseek(f, 200, SEEK_SET); i = fgetc(f); fseek(f, 200, SEEK_SET); fputc(i ^ 0x10, f); fclose(f); }
    memset(b, 0, sizeof *b);
    b->stage = 3; b->dtype = EFF_BF16; b->m = 1; b->steps = 1; b->load_prefix = prefix;
    eff_comm_local_run(2, zero_rank, b);
    EFF_CHECK(b->st_load[1] == EFF_ERR_FORMAT && strstr(b->msg[1], "checksum") && b->st_load[0] != EFF_OK,
              "zero checkpoint: a corrupted file fails its checksum on its rank and stops the others (%s / %s)",
              eff_status_str(b->st_load[1]), eff_status_str(b->st_load[0]));
    /* truncated */
    f = fopen(path, "wb");
    if (f) { fwrite("EFFZERO1", 1, 8, f); fclose(f); }
    memset(b, 0, sizeof *b);
    b->stage = 3; b->dtype = EFF_BF16; b->m = 1; b->steps = 1; b->load_prefix = prefix;
    eff_comm_local_run(2, zero_rank, b);
    EFF_CHECK(b->st_load[1] == EFF_ERR_FORMAT, "zero checkpoint: a truncated file is a format error (%s)", b->msg[1]);
    for (r = 0; r < 2; r++) { snprintf(path, sizeof path, "%s.rank%d-of-2", prefix, r); remove(path); }
    free(a);
    free(b);
}

/* ---------------------------------------------------------------------------
   Tensor + sequence parallel: every layer on t = 1, 2, 4 ranks equals the
   single-rank layer (built from eff_tensor.h ops), forward and backward.
   --------------------------------------------------------------------------- */
enum { TP_M = 8, TP_C = 12, TP_F = 16, TP_NH = 4, TP_HD = 3, TP_V = 20 };

typedef struct tp_arg { int sp; tlog logs[8]; } tp_arg;

static float *fbuf(int64_t n) { return (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
static void rnd(float *x, int64_t n, uint64_t seed) { eff_rng g; eff_rng_seed(&g, seed); eff_rng_fill_normal(&g, x, n, 0.0f, 0.5f); }
/* dst[rows, cl] = src[rows, c0:c0+cl] of a [rows, cols] matrix */
static void cols_of(float *dst, const float *src, int64_t rows, int64_t cols, int64_t c0, int64_t cl) {
    int64_t i;
    for (i = 0; i < rows; i++) memcpy(dst + i * cl, src + i * cols + c0, sizeof(float) * (size_t)cl);
}
#define T2(p, r, c) eff_tensor_2d((p), EFF_F32, (r), (c))
#define T1(p, n) eff_tensor_1d((p), EFF_F32, (n))
#define TP_CLOSE(what, a, ref, n)                                                                                \
    do {                                                                                                         \
        double e_ = eff_test_nmse_ff((a), (ref), (n));                                                           \
        tlog_check(L, e_ < 1e-10, "tp t=%d sp=%d %s: nmse %.2g", t, sp, (what), e_);                             \
    } while (0)

/* Causal softmax attention per head on rows [M, nh*hd] (head h = columns h*hd..).
   Backward from dO: dQ, dK, dV (=). */
static void attn_core(int64_t M, int nh, const float *Q, const float *K, const float *V, float *O) {
    int h;
    int64_t i, j, d, W = (int64_t)nh * TP_HD;
    float sc = 1.0f / sqrtf((float)TP_HD);
    for (h = 0; h < nh; h++)
        for (i = 0; i < M; i++) {
            float s[TP_M], mx = -INFINITY, sum = 0.0f;
            for (j = 0; j <= i; j++) {
                s[j] = 0.0f;
                for (d = 0; d < TP_HD; d++) s[j] += Q[i * W + h * TP_HD + d] * K[j * W + h * TP_HD + d];
                s[j] *= sc;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (j = 0; j <= i; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
            for (d = 0; d < TP_HD; d++) {
                float o = 0.0f;
                for (j = 0; j <= i; j++) o += s[j] / sum * V[j * W + h * TP_HD + d];
                O[i * W + h * TP_HD + d] = o;
            }
        }
}
static void attn_core_bwd(int64_t M, int nh, const float *Q, const float *K, const float *V, const float *dO, float *dQ, float *dK,
                          float *dV) {
    int h;
    int64_t i, j, d, W = (int64_t)nh * TP_HD;
    float sc = 1.0f / sqrtf((float)TP_HD);
    memset(dQ, 0, sizeof(float) * (size_t)(M * W)); memset(dK, 0, sizeof(float) * (size_t)(M * W)); memset(dV, 0, sizeof(float) * (size_t)(M * W));
    for (h = 0; h < nh; h++)
        for (i = 0; i < M; i++) {
            float p[TP_M], dp[TP_M], mx = -INFINITY, sum = 0.0f, dot = 0.0f;
            for (j = 0; j <= i; j++) {
                p[j] = 0.0f;
                for (d = 0; d < TP_HD; d++) p[j] += Q[i * W + h * TP_HD + d] * K[j * W + h * TP_HD + d];
                p[j] *= sc;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (j = 0; j <= i; j++) { p[j] = expf(p[j] - mx); sum += p[j]; }
            for (j = 0; j <= i; j++) {
                p[j] /= sum;
                dp[j] = 0.0f;
                for (d = 0; d < TP_HD; d++) {
                    dp[j] += dO[i * W + h * TP_HD + d] * V[j * W + h * TP_HD + d];
                    dV[j * W + h * TP_HD + d] += p[j] * dO[i * W + h * TP_HD + d];
                }
                dot += p[j] * dp[j];
            }
            for (j = 0; j <= i; j++) {
                float ds = p[j] * (dp[j] - dot) * sc;
                for (d = 0; d < TP_HD; d++) {
                    dQ[i * W + h * TP_HD + d] += ds * K[j * W + h * TP_HD + d];
                    dK[j * W + h * TP_HD + d] += ds * Q[i * W + h * TP_HD + d];
                }
            }
        }
}

static eff_status tp_rank(eff_comm *c, void *p) {
    tp_arg *a = (tp_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    int t = eff_comm_size(c), r = eff_comm_rank(c), sp = a->sp, act;
    tlog *L = &a->logs[r];
    int64_t Fl = TP_F / t, Cl = TP_C / t, Ml = sp ? TP_M / t : TP_M, m0 = sp ? r * Ml : 0, Vl = TP_V / t;
    eff_status s = EFF_OK;
    /* full tensors and the single-rank reference */
    float *x = fbuf(TP_M * TP_C), *W1 = fbuf(TP_F * TP_C), *b1 = fbuf(TP_F), *W3 = fbuf(TP_F * TP_C), *W2 = fbuf(TP_C * TP_F),
          *b2 = fbuf(TP_C), *dyF = fbuf(TP_M * TP_F), *dyC = fbuf(TP_M * TP_C);
    float *ry = fbuf(TP_M * TP_F), *rdx = fbuf(TP_M * TP_C), *rdW = fbuf(TP_F * TP_C), *rdb = fbuf(TP_F), *rdW3 = fbuf(TP_F * TP_C);
    float *ry2 = fbuf(TP_M * TP_C), *rdW2 = fbuf(TP_C * TP_F), *rdb2 = fbuf(TP_C), *h1 = fbuf(TP_M * TP_F), *h3 = fbuf(TP_M * TP_F),
          *ha = fbuf(TP_M * TP_F), *dh = fbuf(TP_C * TP_F), *dh3 = fbuf(TP_M * TP_F), *tmp = fbuf(TP_C * TP_C);
    /* this rank's pieces */
    float *W1r = fbuf(Fl * TP_C), *b1r = fbuf(Fl), *W3r = fbuf(Fl * TP_C), *W2r = fbuf(TP_C * Fl), *xr = fbuf(TP_M * Fl),
          *y = fbuf(TP_M * TP_F), *dx = fbuf(TP_M * TP_F), *dW = fbuf(TP_F * TP_C), *db = fbuf(TP_F), *dW3 = fbuf(TP_F * TP_C),
          *dyr = fbuf(TP_M * TP_F), *want = fbuf(TP_M * TP_F * 4);
    eff_tensor tW1, tW1r, tW2, tW2r, tW3, tW3r;
    if (r < 0 || r >= 8 || !want) return EFF_ERR_OOM;
    rnd(x, TP_M * TP_C, 1); rnd(W1, TP_F * TP_C, 2); rnd(b1, TP_F, 3); rnd(W3, TP_F * TP_C, 4); rnd(W2, TP_C * TP_F, 5);
    rnd(b2, TP_C, 6); rnd(dyF, TP_M * TP_F, 7); rnd(dyC, TP_M * TP_C, 8);
    tW1 = T2(W1, TP_F, TP_C); tW1r = T2(W1r, Fl, TP_C); tW3 = T2(W3, TP_F, TP_C); tW3r = T2(W3r, Fl, TP_C);
    tW2 = T2(W2, TP_C, TP_F); tW2r = T2(W2r, TP_C, Fl);
    s = eff_tp_shard_rows(c, &tW1r, &tW1);
    if (s == EFF_OK) s = eff_tp_shard_rows(c, &tW3r, &tW3);
    if (s == EFF_OK) s = eff_tp_shard_cols(c, &tW2r, &tW2);
    memcpy(b1r, b1 + r * Fl, sizeof(float) * (size_t)Fl);

    /* 1. column-parallel linear: y_r = x W1_r^T + b1_r */
    if (s == EFF_OK) {
        eff_tensor X = T2(x, TP_M, TP_C), Y = T2(ry, TP_M, TP_F), B = T1(b1, TP_F), DY = T2(dyF, TP_M, TP_F);
        eff_tensor DX = T2(rdx, TP_M, TP_C), DW = T2(rdW, TP_F, TP_C), DB = T1(rdb, TP_F);
        eff_tensor Xl = T2(x + m0 * TP_C, Ml, TP_C), Yr = T2(y, TP_M, Fl), Br = T1(b1r, Fl), DYr = T2(dyr, TP_M, Fl);
        eff_tensor DXl = T2(dx, Ml, TP_C), DWr = T2(dW, Fl, TP_C), DBr = T1(db, Fl);
        eff_linear_forward(ctx, &Y, &X, &tW1, &B);
        eff_linear_backward(ctx, &DX, &DW, &DB, &DY, &X, &tW1);
        cols_of(dyr, dyF, TP_M, TP_F, r * Fl, Fl);
        memset(dW, 0, sizeof(float) * (size_t)(Fl * TP_C)); memset(db, 0, sizeof(float) * (size_t)Fl);
        s = eff_tp_column_linear_forward(c, &Yr, &Xl, &tW1r, &Br, sp);
        if (s == EFF_OK) s = eff_tp_column_linear_backward(c, &DXl, &DWr, &DBr, &DYr, &Xl, &tW1r, sp);
        cols_of(want, ry, TP_M, TP_F, r * Fl, Fl);
        TP_CLOSE("column linear y", y, want, TP_M * Fl);
        TP_CLOSE("column linear dx", dx, rdx + m0 * TP_C, Ml * TP_C);
        TP_CLOSE("column linear dW", dW, rdW + r * Fl * TP_C, Fl * TP_C);
        TP_CLOSE("column linear db", db, rdb + r * Fl, Fl);
    }
    /* 2. row-parallel linear: y = sum_r x_r W2_r^T + b2 */
    if (s == EFF_OK) {
        eff_tensor X = T2(ha, TP_M, TP_F), Y = T2(ry2, TP_M, TP_C), B = T1(b2, TP_C), DY = T2(dyC, TP_M, TP_C);
        eff_tensor DX = T2(dh, TP_M, TP_F), DW = T2(rdW2, TP_C, TP_F), DB = T1(rdb2, TP_C);
        eff_tensor Xr = T2(xr, TP_M, Fl), Yl = T2(y, Ml, TP_C), DYl = T2(dyC + m0 * TP_C, Ml, TP_C), DXr = T2(dx, TP_M, Fl),
                   DWr = T2(dW, TP_C, Fl), DBf = T1(db, TP_C);
        rnd(ha, TP_M * TP_F, 9);
        memset(rdW2, 0, sizeof(float) * TP_C * TP_F); memset(rdb2, 0, sizeof(float) * TP_C);
        eff_linear_forward(ctx, &Y, &X, &tW2, &B);
        eff_linear_backward(ctx, &DX, &DW, &DB, &DY, &X, &tW2);
        cols_of(xr, ha, TP_M, TP_F, r * Fl, Fl);
        memset(dW, 0, sizeof(float) * (size_t)(TP_C * Fl)); memset(db, 0, sizeof(float) * TP_C);
        s = eff_tp_row_linear_forward(c, &Yl, &Xr, &tW2r, &B, sp);
        if (s == EFF_OK) s = eff_tp_row_linear_backward(c, &DXr, &DWr, &DBf, &DYl, &Xr, &tW2r, sp);
        TP_CLOSE("row linear y", y, ry2 + m0 * TP_C, Ml * TP_C);
        cols_of(want, dh, TP_M, TP_F, r * Fl, Fl);
        TP_CLOSE("row linear dx", dx, want, TP_M * Fl);
        cols_of(want, rdW2, TP_C, TP_F, r * Fl, Fl);
        TP_CLOSE("row linear dW", dW, want, TP_C * Fl);
        TP_CLOSE("row linear db (replicated)", db, rdb2, TP_C);
    }
    /* 3. parallel MLP, GeLU and SwiGLU */
    for (act = 0; act < 2 && s == EFF_OK; act++) {
        eff_tensor X = T2(x, TP_M, TP_C), H1 = T2(h1, TP_M, TP_F), H3 = T2(h3, TP_M, TP_F), A = T2(ha, TP_M, TP_F);
        eff_tensor B1 = T1(b1, TP_F), B2 = T1(b2, TP_C), Y = T2(ry2, TP_M, TP_C), DY = T2(dyC, TP_M, TP_C), DA = T2(dh, TP_M, TP_F),
                   DH3 = T2(dh3, TP_M, TP_F), DX = T2(rdx, TP_M, TP_C), TMP = T2(tmp, TP_M, TP_C), DW1 = T2(rdW, TP_F, TP_C),
                   DB1 = T1(rdb, TP_F), DW2 = T2(rdW2, TP_C, TP_F), DB2 = T1(rdb2, TP_C), DW3 = T2(rdW3, TP_F, TP_C);
        eff_tp_mlp m, g;
        eff_tp_mlp_opts o;
        eff_tp_mlp_cache cache;
        eff_tensor Xl = T2(x + m0 * TP_C, Ml, TP_C), Yl = T2(y, Ml, TP_C), DYl = T2(dyC + m0 * TP_C, Ml, TP_C), DXl = T2(dx, Ml, TP_C);
        int64_t i;
        const char *an = act ? "swiglu" : "gelu";
        char what[64];
        memset(rdW, 0, sizeof(float) * TP_F * TP_C); memset(rdb, 0, sizeof(float) * TP_F); memset(rdW2, 0, sizeof(float) * TP_C * TP_F);
        memset(rdb2, 0, sizeof(float) * TP_C); memset(rdW3, 0, sizeof(float) * TP_F * TP_C);
        /* reference */
        eff_linear_forward(ctx, &H1, &X, &tW1, act ? NULL : &B1);
        if (act) { eff_linear_forward(ctx, &H3, &X, &tW3, NULL); eff_swiglu_forward(ctx, &A, &H1, &H3); }
        else eff_gelu_forward(ctx, &A, &H1);
        eff_linear_forward(ctx, &Y, &A, &tW2, &B2);
        eff_linear_backward(ctx, &DA, &DW2, &DB2, &DY, &A, &tW2);
        if (act) { eff_swiglu_backward(ctx, &DH3, &DA, &DA, &H1, &H3); }   /* DH3 = d gate, DA = d up */
        else eff_gelu_backward(ctx, &DA, &DA, &H1);
        if (act) {
            eff_linear_backward(ctx, &DX, &DW1, NULL, &DH3, &X, &tW1);
            eff_linear_backward(ctx, &TMP, &DW3, NULL, &DA, &X, &tW3);
            for (i = 0; i < TP_M * TP_C; i++) rdx[i] += tmp[i];
        } else eff_linear_backward(ctx, &DX, &DW1, &DB1, &DA, &X, &tW1);
        /* tensor parallel */
        memset(&m, 0, sizeof m); memset(&g, 0, sizeof g); memset(&o, 0, sizeof o);
        m.w1 = tW1r; m.w3 = tW3r; m.w2 = tW2r; m.b2 = T1(b2, TP_C);
        if (!act) m.b1 = T1(b1r, Fl);
        memset(dW, 0, sizeof(float) * TP_F * TP_C); memset(dW3, 0, sizeof(float) * TP_F * TP_C); memset(db, 0, sizeof(float) * TP_F);
        memset(want, 0, sizeof(float) * TP_M * TP_F * 4);
        g.w1 = T2(dW, Fl, TP_C); g.w3 = T2(dW3, Fl, TP_C); g.w2 = T2(want + 2 * TP_M * TP_F, TP_C, Fl); g.b2 = T1(want + 2 * TP_M * TP_F + TP_C * TP_F, TP_C);
        if (!act) g.b1 = T1(db, Fl);
        o.act = act ? EFF_TP_SWIGLU : EFF_TP_GELU;
        o.sequence_parallel = sp;
        s = eff_tp_mlp_forward(c, &m, &o, &Yl, &Xl, &cache);
        if (s == EFF_OK) s = eff_tp_mlp_backward(c, &m, &o, &g, &DXl, &DYl, &Xl, &cache);
        eff_tp_mlp_cache_free(c, &cache);
        snprintf(what, sizeof what, "%s mlp y", an); TP_CLOSE(what, y, ry2 + m0 * TP_C, Ml * TP_C);
        snprintf(what, sizeof what, "%s mlp dx", an); TP_CLOSE(what, dx, rdx + m0 * TP_C, Ml * TP_C);
        snprintf(what, sizeof what, "%s mlp dW1", an); TP_CLOSE(what, dW, rdW + r * Fl * TP_C, Fl * TP_C);
        if (act) { snprintf(what, sizeof what, "%s mlp dW3", an); TP_CLOSE(what, dW3, rdW3 + r * Fl * TP_C, Fl * TP_C); }
        else { snprintf(what, sizeof what, "%s mlp db1", an); TP_CLOSE(what, db, rdb + r * Fl, Fl); }
        cols_of(dh, rdW2, TP_C, TP_F, r * Fl, Fl);
        snprintf(what, sizeof what, "%s mlp dW2", an); TP_CLOSE(what, want + 2 * TP_M * TP_F, dh, TP_C * Fl);
        snprintf(what, sizeof what, "%s mlp db2", an); TP_CLOSE(what, want + 2 * TP_M * TP_F + TP_C * TP_F, rdb2, TP_C);
    }
    /* 4. attention with heads split: Q, K, V column-parallel, output row-parallel */
    if (s == EFF_OK) {
        float *Wq = fbuf(TP_C * TP_C), *Wk = fbuf(TP_C * TP_C), *Wv = fbuf(TP_C * TP_C), *Wo = fbuf(TP_C * TP_C);
        float *q = fbuf(TP_M * TP_C), *k = fbuf(TP_M * TP_C), *v = fbuf(TP_M * TP_C), *o = fbuf(TP_M * TP_C), *dq = fbuf(TP_M * TP_C),
              *dk = fbuf(TP_M * TP_C), *dv = fbuf(TP_M * TP_C), *dO = fbuf(TP_M * TP_C), *rx = fbuf(TP_M * TP_C), *ry3 = fbuf(TP_M * TP_C),
              *gq = fbuf(TP_C * TP_C), *gk = fbuf(TP_C * TP_C), *gv = fbuf(TP_C * TP_C), *go = fbuf(TP_C * TP_C);
        float *Wqr = fbuf(Cl * TP_C), *Wkr = fbuf(Cl * TP_C), *Wvr = fbuf(Cl * TP_C), *Wor = fbuf(TP_C * Cl), *qr = fbuf(TP_M * Cl),
              *kr = fbuf(TP_M * Cl), *vr = fbuf(TP_M * Cl), *or_ = fbuf(TP_M * Cl), *dqr = fbuf(TP_M * Cl), *dkr = fbuf(TP_M * Cl),
              *dvr = fbuf(TP_M * Cl), *dor = fbuf(TP_M * Cl), *ax = fbuf(TP_M * TP_C), *ay = fbuf(TP_M * TP_C), *acc = fbuf(TP_M * TP_C),
              *gqr = fbuf(Cl * TP_C), *gor = fbuf(TP_C * Cl);
        eff_tensor tWq = T2(Wq, TP_C, TP_C), tWk = T2(Wk, TP_C, TP_C), tWv = T2(Wv, TP_C, TP_C), tWo = T2(Wo, TP_C, TP_C);
        eff_tensor tWqr = T2(Wqr, Cl, TP_C), tWkr = T2(Wkr, Cl, TP_C), tWvr = T2(Wvr, Cl, TP_C), tWor = T2(Wor, TP_C, Cl);
        eff_tensor X = T2(x, TP_M, TP_C), Q = T2(q, TP_M, TP_C), K = T2(k, TP_M, TP_C), V = T2(v, TP_M, TP_C), O = T2(o, TP_M, TP_C);
        eff_tensor Y = T2(ry3, TP_M, TP_C), DY = T2(dyC, TP_M, TP_C), DO = T2(dO, TP_M, TP_C), DX = T2(rx, TP_M, TP_C);
        eff_tensor DQ = T2(dq, TP_M, TP_C), DK = T2(dk, TP_M, TP_C), DV = T2(dv, TP_M, TP_C), TMP = T2(tmp, TP_M, TP_C);
        eff_tensor GQ = T2(gq, TP_C, TP_C), GK = T2(gk, TP_C, TP_C), GV = T2(gv, TP_C, TP_C), GO = T2(go, TP_C, TP_C);
        int nhl = TP_NH / t;
        int64_t i, h0 = 0, hl = 0;
        rnd(Wq, TP_C * TP_C, 11); rnd(Wk, TP_C * TP_C, 12); rnd(Wv, TP_C * TP_C, 13); rnd(Wo, TP_C * TP_C, 14);
        /* reference */
        eff_linear_forward(ctx, &Q, &X, &tWq, NULL); eff_linear_forward(ctx, &K, &X, &tWk, NULL); eff_linear_forward(ctx, &V, &X, &tWv, NULL);
        attn_core(TP_M, TP_NH, q, k, v, o);
        eff_linear_forward(ctx, &Y, &O, &tWo, NULL);
        eff_linear_backward(ctx, &DO, &GO, NULL, &DY, &O, &tWo);
        attn_core_bwd(TP_M, TP_NH, q, k, v, dO, dq, dk, dv);
        eff_linear_backward(ctx, &DX, &GQ, NULL, &DQ, &X, &tWq);
        eff_linear_backward(ctx, &TMP, &GK, NULL, &DK, &X, &tWk);
        for (i = 0; i < TP_M * TP_C; i++) rx[i] += tmp[i];
        eff_linear_backward(ctx, &TMP, &GV, NULL, &DV, &X, &tWv);
        for (i = 0; i < TP_M * TP_C; i++) rx[i] += tmp[i];
        /* tensor parallel: this rank's heads */
        s = eff_tp_part(c, TP_NH, &h0, &hl);
        if (s == EFF_OK) s = eff_tp_shard_rows(c, &tWqr, &tWq);
        if (s == EFF_OK) s = eff_tp_shard_rows(c, &tWkr, &tWk);
        if (s == EFF_OK) s = eff_tp_shard_rows(c, &tWvr, &tWv);
        if (s == EFF_OK) s = eff_tp_shard_cols(c, &tWor, &tWo);
        if (s == EFF_OK) {
            eff_tensor Xl = T2(x + m0 * TP_C, Ml, TP_C), Qr = T2(qr, TP_M, Cl), Kr = T2(kr, TP_M, Cl), Vr = T2(vr, TP_M, Cl),
                       Or = T2(or_, TP_M, Cl), Yl = T2(ay, Ml, TP_C), DYl = T2(dyC + m0 * TP_C, Ml, TP_C), DOr = T2(dor, TP_M, Cl),
                       DQr = T2(dqr, TP_M, Cl), DKr = T2(dkr, TP_M, Cl), DVr = T2(dvr, TP_M, Cl), DXl = T2(ax, Ml, TP_C),
                       ACC = T2(acc, Ml, TP_C), GQr = T2(gqr, Cl, TP_C), GOr = T2(gor, TP_C, Cl);
            s = eff_tp_column_linear_forward(c, &Qr, &Xl, &tWqr, NULL, sp);
            if (s == EFF_OK) s = eff_tp_column_linear_forward(c, &Kr, &Xl, &tWkr, NULL, sp);
            if (s == EFF_OK) s = eff_tp_column_linear_forward(c, &Vr, &Xl, &tWvr, NULL, sp);
            if (s == EFF_OK) attn_core(TP_M, nhl, qr, kr, vr, or_);
            if (s == EFF_OK) s = eff_tp_row_linear_forward(c, &Yl, &Or, &tWor, NULL, sp);
            if (s == EFF_OK) s = eff_tp_row_linear_backward(c, &DOr, &GOr, NULL, &DYl, &Or, &tWor, sp);
            if (s == EFF_OK) attn_core_bwd(TP_M, nhl, qr, kr, vr, dor, dqr, dkr, dvr);
            if (s == EFF_OK) s = eff_tp_column_linear_backward(c, &DXl, &GQr, NULL, &DQr, &Xl, &tWqr, sp);
            if (s == EFF_OK) s = eff_tp_column_linear_backward(c, &ACC, NULL, NULL, &DKr, &Xl, &tWkr, sp);
            for (i = 0; s == EFF_OK && i < Ml * TP_C; i++) ax[i] += acc[i];
            if (s == EFF_OK) s = eff_tp_column_linear_backward(c, &ACC, NULL, NULL, &DVr, &Xl, &tWvr, sp);
            for (i = 0; s == EFF_OK && i < Ml * TP_C; i++) ax[i] += acc[i];
            tlog_check(L, hl == nhl && h0 == r * nhl, "tp t=%d sp=%d attention: rank %d owns heads [%lld, %lld)", t, sp, r, (long long)h0,
                       (long long)(h0 + hl));
            TP_CLOSE("attention (heads split) y", ay, ry3 + m0 * TP_C, Ml * TP_C);
            TP_CLOSE("attention (heads split) dx", ax, rx + m0 * TP_C, Ml * TP_C);
            TP_CLOSE("attention dWq shard", gqr, gq + r * Cl * TP_C, Cl * TP_C);
            cols_of(tmp, go, TP_C, TP_C, r * Cl, Cl);
            TP_CLOSE("attention dWo shard", gor, tmp, TP_C * Cl);
        }
        free(Wq); free(Wk); free(Wv); free(Wo); free(q); free(k); free(v); free(o); free(dq); free(dk); free(dv); free(dO); free(rx);
        free(ry3); free(gq); free(gk); free(gv); free(go); free(Wqr); free(Wkr); free(Wvr); free(Wor); free(qr); free(kr); free(vr);
        free(or_); free(dqr); free(dkr); free(dvr); free(dor); free(ax); free(ay); free(acc); free(gqr); free(gor);
    }
    /* 5. vocab-parallel embedding and cross-entropy */
    if (s == EFF_OK) {
        float *table = fbuf(TP_V * TP_C), *out = fbuf(TP_M * TP_C), *dtab = fbuf(TP_V * TP_C), *dtr = fbuf(Vl * TP_C),
              *logits = fbuf(TP_M * TP_V), *dlog = fbuf(TP_M * TP_V), *lr = fbuf(TP_M * Vl), *dlr = fbuf(TP_M * Vl), *loss = fbuf(TP_M),
              *lossr = fbuf(TP_M);
        int32_t ids[TP_M] = {3, 19, 0, 7, 7, 12, 5, 16}, tg[TP_M] = {1, 18, -100, 9, 4, 11, 0, 19};
        eff_tensor TAB = T2(table, TP_V, TP_C), OUT = T2(out, TP_M, TP_C), IDS = eff_tensor_1d(ids, EFF_I32, TP_M),
                   DTAB = T2(dtab, TP_V, TP_C), DOUT = T2(dyC, TP_M, TP_C), TABr = T2(table + r * Vl * TP_C, Vl, TP_C),
                   OUTl = T2(y, Ml, TP_C), DOUTl = T2(dyC + m0 * TP_C, Ml, TP_C), DTr = T2(dtr, Vl, TP_C);
        eff_tensor LG = T2(logits, TP_M, TP_V), DLG = T2(dlog, TP_M, TP_V), TG = eff_tensor_1d(tg, EFF_I32, TP_M), LOSS = T1(loss, TP_M),
                   LGr = T2(lr, TP_M, Vl), DLGr = T2(dlr, TP_M, Vl), LOSSr = T1(lossr, TP_M);
        float mean = 0.0f, meanr = -1.0f;
        rnd(table, TP_V * TP_C, 21); rnd(logits, TP_M * TP_V, 22);
        eff_embedding_forward(ctx, &OUT, &IDS, &TAB);
        eff_embedding_backward(ctx, &DTAB, &DOUT, &IDS);
        s = eff_tp_vocab_embedding_forward(c, &OUTl, &IDS, &TABr, sp);
        if (s == EFF_OK) s = eff_tp_vocab_embedding_backward(c, &DTr, &DOUTl, &IDS, sp);
        TP_CLOSE("vocab embedding out", y, out + m0 * TP_C, Ml * TP_C);
        TP_CLOSE("vocab embedding dtable shard", dtr, dtab + r * Vl * TP_C, Vl * TP_C);
        eff_cross_entropy_forward(ctx, &LOSS, &mean, &LG, &TG, NULL);
        eff_cross_entropy_backward(ctx, &DLG, &LG, &TG, 0.0f, NULL);
        cols_of(lr, logits, TP_M, TP_V, r * Vl, Vl);
        if (s == EFF_OK) s = eff_tp_vocab_cross_entropy_forward(c, &LOSSr, &meanr, &LGr, &TG);
        if (s == EFF_OK) s = eff_tp_vocab_cross_entropy_backward(c, &DLGr, &LGr, &TG, 0.0f);
        TP_CLOSE("vocab cross-entropy losses", lossr, loss, TP_M);
        tlog_check(L, fabsf(meanr - mean) < 1e-5f * fabsf(mean), "tp t=%d sp=%d vocab cross-entropy mean %g vs %g", t, sp, (double)meanr,
                   (double)mean);
        cols_of(lr, dlog, TP_M, TP_V, r * Vl, Vl);
        TP_CLOSE("vocab cross-entropy dlogits shard", dlr, lr, TP_M * Vl);
        free(table); free(out); free(dtab); free(dtr); free(logits); free(dlog); free(lr); free(dlr); free(loss); free(lossr);
    }
    tlog_check(L, s == EFF_OK, "tp t=%d sp=%d: no error (%s: %s)", t, sp, eff_status_str(s), s ? eff_ctx_last_error(ctx) : "");
    free(x); free(W1); free(b1); free(W3); free(W2); free(b2); free(dyF); free(dyC); free(ry); free(rdx); free(rdW); free(rdb);
    free(rdW3); free(ry2); free(rdW2); free(rdb2); free(h1); free(h3); free(ha); free(dh); free(dh3); free(tmp); free(W1r); free(b1r);
    free(W3r); free(W2r); free(xr); free(y); free(dx); free(dW); free(db); free(dW3); free(dyr); free(want);
    return s;
}

static void test_tensor_parallel(void) {
    static const int ts[3] = {1, 2, 4};
    int ti, sp, r;
    for (ti = 0; ti < 3; ti++)
        for (sp = 0; sp < 2; sp++) {
            tp_arg *a = (tp_arg *)calloc(1, sizeof *a);
            eff_status st;
            if (!a) return;
            a->sp = sp;
            st = eff_comm_local_run(ts[ti], tp_rank, a);
            EFF_CHECK(st == EFF_OK, "tp t=%d sp=%d: run %s", ts[ti], sp, eff_status_str(st));
            tlog_merge(a->logs, ts[ti], "tp");
            for (r = 0; r < ts[ti]; r++) tlog_free(&a->logs[r]);
            free(a);
        }
}

/* ---------------------------------------------------------------------------
   Pipeline: schedule properties against the formulas, the validator, and the
   executor: gradients of a pipelined run equal a sequential run's.
   --------------------------------------------------------------------------- */
static void test_pp_schedules(void) {
    static const int ps[5] = {1, 2, 3, 4, 8}, ms[8] = {1, 2, 3, 4, 5, 8, 12, 16};
    eff_ctx *ctx;
    int pi, mi, kind, v, i, bad_valid = 0, bad_bubble = 0, bad_peak = 0, n_sched = 0, n_formula = 0;
    char buf[4096];
    if (eff_ctx_create(NULL, &ctx) != EFF_OK) return;
    for (kind = 0; kind <= EFF_PP_ZB_H1; kind++)
        for (pi = 0; pi < 5; pi++)
            for (mi = 0; mi < 8; mi++)
                for (v = 1; v <= (kind == EFF_PP_INTERLEAVED ? 4 : 1); v *= 2) {
                    int p = ps[pi], m = ms[mi];
                    eff_pp_schedule s;
                    double want = -1.0;
                    if (kind == EFF_PP_INTERLEAVED && m % p) continue;
                    if (eff_pp_schedule_create(ctx, kind, p, m, v, &s) != EFF_OK) { bad_valid++; continue; }
                    n_sched++;
                    if (eff_pp_schedule_validate(ctx, &s) != EFF_OK) bad_valid++;
                    if (kind == EFF_PP_GPIPE) want = (double)(p - 1) / m;
                    else if (kind == EFF_PP_1F1B && m >= p) want = (double)(p - 1) / m;
                    else if (kind == EFF_PP_INTERLEAVED && m >= p) want = (double)(p - 1) / (v * m);
                    else if (kind == EFF_PP_ZB_H1 && m >= p) want = (double)(p - 1) / (3 * m);
                    if (want >= 0.0) {
                        n_formula++;
                        if (fabs(s.bubble - want) > 1e-12) {
                            bad_bubble++;
                            printf("  %s p=%d m=%d v=%d: bubble %.4f, formula %.4f\n", eff_pp_schedule_name(kind), p, m, v, s.bubble, want);
                        }
                        if (kind == EFF_PP_GPIPE && fabs(s.idle_fraction - (double)(p - 1) / (m + p - 1)) > 1e-12) bad_bubble++;
                        for (i = 0; i < p; i++) {
                            int64_t pk = kind == EFF_PP_GPIPE ? m : kind == EFF_PP_1F1B ? p - i : kind == EFF_PP_ZB_H1 ? p
                                       : m == p ? (int64_t)m * v : 2 * (p - i - 1) + (int64_t)(v - 1) * p + 1;
                            if (s.peak_inflight[i] != pk) {
                                bad_peak++;
                                printf("  %s p=%d m=%d v=%d stage %d: peak %lld, formula %lld\n", eff_pp_schedule_name(kind), p, m, v, i,
                                       (long long)s.peak_inflight[i], (long long)pk);
                            }
                        }
                    }
                    eff_pp_schedule_free(ctx, &s);
                }
    EFF_CHECK(bad_valid == 0, "pp: %d generated schedules (4 kinds, p 1..8, m 1..16, v 1..4) all validate (%d fail)", n_sched, bad_valid);
    EFF_CHECK(bad_bubble == 0, "pp: bubble = (p-1)/m (GPipe, 1F1B), (p-1)/(vm) (interleaved), (p-1)/(3m) (ZB-H1) on %d schedules (%d off)",
              n_formula, bad_bubble);
    EFF_CHECK(bad_peak == 0, "pp: peak in-flight = m (GPipe), p-i (1F1B), 2(p-i-1)+(v-1)p+1 (interleaved), p (ZB-H1) (%d off)", bad_peak);
    /* the reference's ZB-H1 example, p = 4, m = 8, stage 3 */
    {
        eff_pp_schedule s;
        static const char *want = "F0 B0 F1 B1 F2 B2 F3 B3 W0 F4 B4 W1 F5 B5 W2 F6 B6 W3 F7 B7 W4 W5 W6 W7 ";
        char got[256];
        int64_t k, len = 0;
        if (eff_pp_schedule_create(ctx, EFF_PP_ZB_H1, 4, 8, 1, &s) == EFF_OK) {
            for (k = 0; k < s.n_actions[3]; k++)
                len += snprintf(got + len, sizeof got - (size_t)len, "%c%d ", "FBW"[s.actions[3][k].kind], s.actions[3][k].mb);
            EFF_CHECK(strcmp(got, want) == 0, "pp: ZB-H1 p=4 m=8 stage 3 order is the reference's (%s)", got);
            eff_pp_schedule_free(ctx, &s);
        }
        if (eff_pp_schedule_create(ctx, EFF_PP_1F1B, 4, 8, 1, &s) == EFF_OK) {
            static const char *want0 = "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7 ";
            for (len = 0, k = 0; k < s.n_actions[0]; k++)
                len += snprintf(got + len, sizeof got - (size_t)len, "%c%d ", "FBW"[s.actions[0][k].kind], s.actions[0][k].mb);
            EFF_CHECK(strcmp(got, want0) == 0, "pp: 1F1B p=4 m=8 stage 0 order is Megatron's (%s)", got);
            /* a broken order: stage 0 starts with B0 before any F -> deadlock */
            eff_status vs;
            s.actions[0][0].kind = EFF_PP_B; s.actions[0][4].kind = EFF_PP_F;
            vs = eff_pp_schedule_validate(ctx, &s);
            EFF_CHECK(vs == EFF_ERR_FORMAT && strstr(eff_ctx_last_error(ctx), "deadlock"),
                      "pp: the validator finds a deadlocking order (%s)", eff_ctx_last_error(ctx));
            s.actions[0][0].kind = EFF_PP_F; s.actions[0][4].kind = EFF_PP_B;
            s.actions[1][0].mb = 1;   /* F1 twice, F0 never */
            vs = eff_pp_schedule_validate(ctx, &s);
            EFF_CHECK(vs == EFF_ERR_FORMAT && strstr(eff_ctx_last_error(ctx), "repeats"),
                      "pp: the validator finds a repeated op (%s)", eff_ctx_last_error(ctx));
            s.actions[1][0].mb = 0;
            EFF_CHECK(eff_pp_schedule_validate(ctx, &s) == EFF_OK, "pp: the restored schedule validates");
            {
                int64_t need = eff_pp_schedule_format(&s, buf, sizeof buf), small = eff_pp_schedule_format(&s, buf, 10);
                EFF_CHECK(need > 100 && small == need && strlen(buf) == 9, "pp: format reports the full length (%lld) and truncates safely",
                          (long long)need);
                eff_pp_schedule_format(&s, buf, sizeof buf);
                EFF_CHECK(strstr(buf, "stage  3 |.  .  .  F0 B0 F1 B1") != NULL, "pp: the printed timetable shows stage 3's warm-up");
                if (eff_test_g.verbose) printf("%s", buf);
            }
            eff_pp_schedule_free(ctx, &s);
        }
        EFF_CHECK(eff_pp_schedule_create(ctx, EFF_PP_INTERLEAVED, 4, 6, 2, &s) == EFF_ERR_INVALID_ARG, "pp: interleaved needs m %% p == 0");
        EFF_CHECK(eff_pp_schedule_create(ctx, EFF_PP_1F1B, 4, 8, 2, &s) == EFF_ERR_INVALID_ARG, "pp: v > 1 only for interleaved");
        EFF_CHECK(eff_pp_schedule_create(ctx, EFF_PP_1F1B, 0, 8, 1, &s) == EFF_ERR_INVALID_ARG, "pp: p = 0 is rejected");
    }
    eff_ctx_destroy(ctx);
}

/* A stack of p*v layers y = gelu(x W_l^T) (W_l [PP_D, PP_D]), loss 0.5 |y - t|^2 / rows. */
enum { PP_D = 6, PP_BM = 3, PP_MAXL = 8, PP_MAXM = 8 };
typedef struct pp_user {
    eff_ctx *ctx;
    int p, v, m, rank, zb;
    float W[PP_MAXL][PP_D * PP_D], dW[PP_MAXL][PP_D * PP_D];
    float x0[PP_MAXM][PP_BM * PP_D], tgt[PP_MAXM][PP_BM * PP_D];
    float xs[PP_MAXM][PP_MAXL][PP_BM * PP_D], hs[PP_MAXM][PP_MAXL][PP_BM * PP_D], dh[PP_MAXM][PP_MAXL][PP_BM * PP_D];
    float dlast[PP_MAXM][PP_BM * PP_D];
} pp_user;

static void pp_user_init(pp_user *u, int p, int v, int m) {
    eff_rng g;
    int l, k;
    memset(u, 0, sizeof *u);
    u->p = p; u->v = v; u->m = m;
    eff_rng_seed(&g, 77);
    for (l = 0; l < PP_MAXL; l++) eff_rng_fill_normal(&g, u->W[l], PP_D * PP_D, 0.0f, 0.6f);
    for (k = 0; k < PP_MAXM; k++) { eff_rng_fill_normal(&g, u->x0[k], PP_BM * PP_D, 0.0f, 1.0f); eff_rng_fill_normal(&g, u->tgt[k], PP_BM * PP_D, 0.0f, 1.0f); }
}
static eff_status pp_fwd(void *user, int mb, int chunk, const float *in, float *out) {
    pp_user *u = (pp_user *)user;
    int vs = chunk * u->p + u->rank, V = u->p * u->v, i;
    eff_tensor X = T2(u->xs[mb][vs], PP_BM, PP_D), H = T2(u->hs[mb][vs], PP_BM, PP_D), W = T2(u->W[vs], PP_D, PP_D);
    float a[PP_BM * PP_D];
    eff_tensor A = T2(a, PP_BM, PP_D);
    eff_status s;
    memcpy(u->xs[mb][vs], vs == 0 ? u->x0[mb] : in, sizeof a);
    s = eff_linear_forward(u->ctx, &H, &X, &W, NULL);
    if (s == EFF_OK) s = eff_gelu_forward(u->ctx, &A, &H);
    if (s != EFF_OK) return s;
    if (vs < V - 1) { memcpy(out, a, sizeof a); return EFF_OK; }
    for (i = 0; i < PP_BM * PP_D; i++) u->dlast[mb][i] = (a[i] - u->tgt[mb][i]) / (float)(u->m * PP_BM);
    return EFF_OK;
}
static eff_status pp_wgrad(void *user, int mb, int chunk) {
    pp_user *u = (pp_user *)user;
    int vs = chunk * u->p + u->rank;
    eff_tensor X = T2(u->xs[mb][vs], PP_BM, PP_D), DH = T2(u->dh[mb][vs], PP_BM, PP_D), W = T2(u->W[vs], PP_D, PP_D),
               DW = T2(u->dW[vs], PP_D, PP_D);
    return eff_linear_backward(u->ctx, NULL, &DW, NULL, &DH, &X, &W);
}
static eff_status pp_bwd(void *user, int mb, int chunk, const float *dout, float *din) {
    pp_user *u = (pp_user *)user;
    int vs = chunk * u->p + u->rank;
    eff_tensor DY = T2((void *)(dout ? dout : u->dlast[mb]), PP_BM, PP_D), H = T2(u->hs[mb][vs], PP_BM, PP_D),
               DH = T2(u->dh[mb][vs], PP_BM, PP_D), W = T2(u->W[vs], PP_D, PP_D), DIN = T2(din, PP_BM, PP_D);
    eff_status s = eff_gelu_backward(u->ctx, &DH, &DY, &H);
    if (s == EFF_OK && din) s = eff_linear_backward(u->ctx, &DIN, NULL, NULL, &DH, &H, &W);
    if (s == EFF_OK && !u->zb) s = pp_wgrad(user, mb, chunk);   /* B does the weight gradient unless W ops run it */
    return s;
}

typedef struct pp_arg { int kind, m, v; pp_user *users; float ref[PP_MAXL][PP_D * PP_D]; tlog logs[8]; } pp_arg;

static eff_status pp_rank(eff_comm *c, void *p) {
    pp_arg *a = (pp_arg *)p;
    int r = eff_comm_rank(c), P = eff_comm_size(c), ch;
    pp_user *u = &a->users[r];
    eff_pp_schedule s;
    eff_pp_stage_fns f;
    eff_status st;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    pp_user_init(u, P, a->v, a->m);
    u->ctx = eff_comm_ctx(c); u->rank = r; u->zb = a->kind == EFF_PP_ZB_H1;
    st = eff_pp_schedule_create(u->ctx, a->kind, P, a->m, a->v, &s);
    if (st != EFF_OK) return st;
    memset(&f, 0, sizeof f);
    f.forward = pp_fwd; f.backward = pp_bwd; f.backward_weight = u->zb ? pp_wgrad : NULL; f.user = u; f.act_count = PP_BM * PP_D;
    st = eff_pp_run(c, &s, &f);
    for (ch = 0; st == EFF_OK && ch < a->v; ch++) {
        int vs = ch * P + r;
        double e = eff_test_nmse_ff(u->dW[vs], a->ref[vs], PP_D * PP_D);
        tlog_check(&a->logs[r], e < 1e-12, "pp %s p=%d m=%d v=%d: stage %d layer %d gradient equals the sequential run (nmse %.2g)",
                   eff_pp_schedule_name(a->kind), P, a->m, a->v, r, vs, e);
    }
    eff_pp_schedule_free(u->ctx, &s);
    return st;
}

/* The sequential reference: every micro-batch through all layers, forward then backward. */
static void pp_reference(pp_arg *a, int P) {
    pp_user *u = (pp_user *)calloc(1, sizeof *u);
    eff_ctx *ctx;
    int mb, l, V = P * a->v;
    float buf[PP_BM * PP_D], din[PP_BM * PP_D];
    if (!u || eff_ctx_create(NULL, &ctx) != EFF_OK) { free(u); return; }
    pp_user_init(u, V, 1, a->m);   /* p = V stages of one chunk, all on "rank" = layer */
    u->ctx = ctx;
    for (mb = 0; mb < a->m; mb++) {
        for (l = 0; l < V; l++) { u->rank = l; pp_fwd(u, mb, 0, buf, l < V - 1 ? buf : NULL); }
        for (l = V - 1; l >= 0; l--) { u->rank = l; pp_bwd(u, mb, 0, l < V - 1 ? buf : NULL, l > 0 ? din : NULL); memcpy(buf, din, sizeof buf); }
    }
    memcpy(a->ref, u->dW, sizeof a->ref);
    eff_ctx_destroy(ctx);
    free(u);
}

static void test_pp_executor(void) {
    static const int ps[3] = {1, 2, 4};
    int pi, kind, mi, r;
    for (pi = 0; pi < 3; pi++)
        for (kind = 0; kind <= EFF_PP_ZB_H1; kind++)
            for (mi = 0; mi < 2; mi++) {
                pp_arg *a = (pp_arg *)calloc(1, sizeof *a);
                int P = ps[pi];
                eff_status st;
                if (!a) return;
                a->kind = kind; a->m = mi ? 8 : 4; a->v = kind == EFF_PP_INTERLEAVED ? 2 : 1;
                a->users = (pp_user *)calloc((size_t)P, sizeof(pp_user));
                if (!a->users) { free(a); return; }
                pp_reference(a, P);
                st = eff_comm_local_run(P, pp_rank, a);
                EFF_CHECK(st == EFF_OK, "pp %s p=%d m=%d: executor run %s", eff_pp_schedule_name(kind), P, a->m, eff_status_str(st));
                tlog_merge(a->logs, P, "pp");
                for (r = 0; r < P; r++) tlog_free(&a->logs[r]);
                free(a->users);
                free(a);
            }
}
/* A stage callback fails in the middle of a 1F1B run: every stage stops at once. */
typedef struct ppf_arg { eff_status st[8]; double dt[8]; int rank[8]; } ppf_arg;
static eff_status ppf_fwd(void *user, int mb, int chunk, const float *in, float *out) {
    (void)user; (void)mb; (void)chunk;
    if (out) { out[0] = in ? in[0] + 1.0f : 0.0f; out[1] = 0.0f; }
    return EFF_OK;
}
static eff_status ppf_bwd(void *user, int mb, int chunk, const float *dout, float *din) {
    (void)chunk; (void)dout;
    if (*(const int *)user == 1 && mb == 2) return EFF_ERR_NUMERIC;
    if (din) { din[0] = 1.0f; din[1] = 0.0f; }
    return EFF_OK;
}
static eff_status ppf_rank(eff_comm *c, void *p) {
    ppf_arg *a = (ppf_arg *)p;
    int r = eff_comm_rank(c);
    eff_pp_schedule s;
    eff_pp_stage_fns f;
    double t0 = now_s();
    eff_status st;
    if (r < 0 || r >= 8) return EFF_ERR_INVALID_ARG;
    a->rank[r] = r;
    eff_comm_set_timeout(c, 5.0);
    st = eff_pp_schedule_create(eff_comm_ctx(c), EFF_PP_1F1B, eff_comm_size(c), 8, 1, &s);
    if (st != EFF_OK) return st;
    memset(&f, 0, sizeof f);
    f.forward = ppf_fwd; f.backward = ppf_bwd; f.user = &a->rank[r]; f.act_count = 2;
    a->st[r] = eff_pp_run(c, &s, &f);
    a->dt[r] = now_s() - t0;
    eff_pp_schedule_free(eff_comm_ctx(c), &s);
    eff_comm_destroy(c);   /* the launcher owns it: a no-op, not a double free */
    return a->st[r];
}
static void test_pp_fault(void) {
    ppf_arg a;
    int r;
    eff_status st;
    memset(&a, 0, sizeof a);
    st = eff_comm_local_run(4, ppf_rank, &a);
    EFF_CHECK(st == EFF_ERR_NUMERIC, "pp fault: the launcher returns the failing callback's status (%s)", eff_status_str(st));
    for (r = 0; r < 4; r++)
        EFF_CHECK(a.st[r] == (r == 1 ? EFF_ERR_NUMERIC : EFF_ERR_PEER) && a.dt[r] < 2.0,
                  "pp fault: stage %d stops with %s in %.2f s (timeout 5 s)", r, eff_status_str(a.st[r]), a.dt[r]);
}

/* ---------------------------------------------------------------------------
   Expert parallelism: top-2 routing over E = 2n linear experts, with and
   without capacity drops, forward and backward, against a per-token reference.
   --------------------------------------------------------------------------- */
enum { EP_T = 6, EP_C = 4, EP_K = 2 };
typedef struct ep_arg { int64_t cap; tlog logs[8]; } ep_arg;

static int ep_expert(int r, int t, int j, int E) { return (t * 3 + j * 5 + r * 7) % E; }
static void ep_data(int r, float *x, float *gate, float *dy) {
    rnd(x, EP_T * EP_C, 100 + (uint64_t)r);
    rnd(gate, EP_T * EP_K, 300 + (uint64_t)r);
    rnd(dy, EP_T * EP_C, 200 + (uint64_t)r);
}
/* kept[t*k+j]: the choice fits in its expert's capacity (token-major, per source rank) */
static void ep_kept(int r, int E, int64_t cap, int *kept) {
    int64_t fill[64] = {0};
    int i;
    for (i = 0; i < EP_T * EP_K; i++) kept[i] = fill[ep_expert(r, i / EP_K, i % EP_K, E)]++ < cap;
}

static eff_status ep_rank(eff_comm *c, void *p) {
    ep_arg *a = (ep_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    int n = eff_comm_size(c), r = eff_comm_rank(c), E = 2 * n, El = 2, le, i, q, kept[EP_T * EP_K], dropped = 0;
    int64_t cap = a->cap, rows = n * cap, d;
    tlog *L = &a->logs[r];
    float x[EP_T * EP_C], gate[EP_T * EP_K], dy[EP_T * EP_C], W[16][EP_C * EP_C], y[EP_T * EP_C], dx[EP_T * EP_C], dg[EP_T * EP_K];
    float ry[EP_T * EP_C], rdx[EP_T * EP_C], rdg[EP_T * EP_K], rdW[2][EP_C * EP_C], dW[2][EP_C * EP_C];
    float *in = fbuf(El * rows * EP_C), *out = fbuf(El * rows * EP_C), *dout = fbuf(El * rows * EP_C), *din = fbuf(El * rows * EP_C),
          *cache = fbuf(n * El * cap * EP_C);
    int32_t expert[EP_T * EP_K], slot[EP_T * EP_K];
    eff_tensor X = T2(x, EP_T, EP_C), Y = T2(y, EP_T, EP_C), DX = T2(dx, EP_T, EP_C), DY = T2(dy, EP_T, EP_C);
    eff_tensor IN = eff_tensor_3d(in, EFF_F32, El, rows, EP_C), OUT = eff_tensor_3d(out, EFF_F32, El, rows, EP_C),
               DOUT = eff_tensor_3d(dout, EFF_F32, El, rows, EP_C), DIN = eff_tensor_3d(din, EFF_F32, El, rows, EP_C);
    eff_status s;
    if (r < 0 || r >= 8 || !cache) return EFF_ERR_OOM;
    for (i = 0; i < E; i++) rnd(W[i], EP_C * EP_C, 400 + (uint64_t)i);
    ep_data(r, x, gate, dy);
    for (i = 0; i < EP_T * EP_K; i++) expert[i] = ep_expert(r, i / EP_K, i % EP_K, E);
    /* reference for this rank's tokens */
    ep_kept(r, E, cap, kept);
    memset(ry, 0, sizeof ry); memset(rdx, 0, sizeof rdx);
    for (i = 0; i < EP_T * EP_K; i++) {
        const float *We = W[expert[i]], *xt = x + (i / EP_K) * EP_C, *dyt = dy + (i / EP_K) * EP_C;
        int o, k2;
        rdg[i] = 0.0f;
        if (!kept[i]) { dropped++; continue; }
        for (o = 0; o < EP_C; o++) {
            float v = 0.0f;
            for (k2 = 0; k2 < EP_C; k2++) { v += We[o * EP_C + k2] * xt[k2]; rdx[(i / EP_K) * EP_C + k2] += gate[i] * We[o * EP_C + k2] * dyt[o]; }
            ry[(i / EP_K) * EP_C + o] += gate[i] * v;
            rdg[i] += dyt[o] * v;
        }
    }
    /* reference weight gradients of this rank's experts: every rank's kept tokens */
    memset(rdW, 0, sizeof rdW);
    for (q = 0; q < n; q++) {
        float xq[EP_T * EP_C], gq[EP_T * EP_K], dyq[EP_T * EP_C];
        int kq[EP_T * EP_K], o, k2;
        ep_data(q, xq, gq, dyq);
        ep_kept(q, E, cap, kq);
        for (i = 0; i < EP_T * EP_K; i++) {
            int e = ep_expert(q, i / EP_K, i % EP_K, E);
            if (!kq[i] || e / El != r) continue;
            for (o = 0; o < EP_C; o++)
                for (k2 = 0; k2 < EP_C; k2++) rdW[e % El][o * EP_C + k2] += gq[i] * dyq[(i / EP_K) * EP_C + o] * xq[(i / EP_K) * EP_C + k2];
        }
    }
    /* expert parallel: dispatch, run the local experts, combine; then backward */
    memset(dW, 0, sizeof dW);
    s = eff_ep_dispatch_forward(c, E, cap, EP_K, &X, expert, slot, &IN);
    for (le = 0; le < El && s == EFF_OK; le++) {
        eff_tensor Xi = T2(in + le * rows * EP_C, rows, EP_C), Yo = T2(out + le * rows * EP_C, rows, EP_C), We = T2(W[r * El + le], EP_C, EP_C);
        s = eff_linear_forward(ctx, &Yo, &Xi, &We, NULL);
    }
    if (s == EFF_OK) s = eff_ep_combine_forward(c, E, cap, EP_K, slot, gate, &OUT, &Y, cache);
    if (s == EFF_OK) s = eff_ep_combine_backward(c, E, cap, EP_K, slot, gate, cache, &DY, &DOUT, dg);
    for (le = 0; le < El && s == EFF_OK; le++) {
        eff_tensor Xi = T2(in + le * rows * EP_C, rows, EP_C), Dyo = T2(dout + le * rows * EP_C, rows, EP_C),
                   Dxi = T2(din + le * rows * EP_C, rows, EP_C), We = T2(W[r * El + le], EP_C, EP_C), DWe = T2(dW[le], EP_C, EP_C);
        s = eff_linear_backward(ctx, &Dxi, &DWe, NULL, &Dyo, &Xi, &We);
    }
    if (s == EFF_OK) s = eff_ep_dispatch_backward(c, E, cap, EP_K, slot, &DIN, &DX);
    for (i = 0, d = 0; i < EP_T * EP_K; i++) d += (slot[i] < 0) != !kept[i];
    tlog_check(L, s == EFF_OK && d == 0, "ep n=%d E=%d cap=%lld: the same %d choices dropped as the reference (%s)", n, E, (long long)cap,
               dropped, eff_status_str(s));
    {
        double e1 = eff_test_nmse_ff(y, ry, EP_T * EP_C), e2 = eff_test_nmse_ff(dx, rdx, EP_T * EP_C),
               e3 = eff_test_nmse_ff(dg, rdg, EP_T * EP_K), e4 = eff_test_nmse_ff(dW[0], rdW[0], 2 * EP_C * EP_C);
        tlog_check(L, e1 < 1e-12, "ep n=%d cap=%lld: combine(experts(dispatch(x))) = reference (nmse %.2g)", n, (long long)cap, e1);
        tlog_check(L, e2 < 1e-12, "ep n=%d cap=%lld: dx through both all-to-alls (nmse %.2g)", n, (long long)cap, e2);
        tlog_check(L, e3 < 1e-12, "ep n=%d cap=%lld: gate gradients (nmse %.2g)", n, (long long)cap, e3);
        tlog_check(L, e4 < 1e-12, "ep n=%d cap=%lld: local experts' weight gradients from every rank's tokens (nmse %.2g)", n,
                   (long long)cap, e4);
    }
    free(in); free(out); free(dout); free(din); free(cache);
    return s;
}

static void test_expert_parallel(void) {
    static const int ns[3] = {1, 2, 4};
    int ni, ci, r;
    for (ni = 0; ni < 3; ni++)
        for (ci = 0; ci < 2; ci++) {
            ep_arg *a = (ep_arg *)calloc(1, sizeof *a);
            eff_status st;
            if (!a) return;
            a->cap = ci ? EP_T * EP_K : 1;   /* 1: many choices are dropped */
            st = eff_comm_local_run(ns[ni], ep_rank, a);
            EFF_CHECK(st == EFF_OK, "ep n=%d cap=%lld: run %s", ns[ni], (long long)a->cap, eff_status_str(st));
            tlog_merge(a->logs, ns[ni], "ep");
            for (r = 0; r < ns[ni]; r++) tlog_free(&a->logs[r]);
            free(a);
        }
}

/* ---------------------------------------------------------------------------
   Ring and striped attention: n = 1..4 ranks, causal or not, equal one rank's
   flash attention over the whole sequence, forward and backward (GQA; the local
   Q is a strided [B, Tl, H, d] view). Shard and unshard round-trip the tokens.
   --------------------------------------------------------------------------- */
enum { RA_B = 2, RA_HQ = 4, RA_HKV = 2, RA_TL = 24, RA_D = 16 };
typedef struct ra_ref {
    int64_t T;
    float *q, *k, *v, *dout, *o, *lse, *dq, *dk, *dv;   /* full [B, H, T, d] inputs and flash reference */
} ra_ref;
typedef struct ra_arg { const ra_ref *ref; int layout, causal; tlog logs[8]; } ra_arg;

static eff_tensor ra_t4(float *p, int64_t h, int64_t t) { return eff_tensor_4d(p, EFF_F32, RA_B, h, t, RA_D); }

static eff_status ra_reference(eff_ctx *ctx, ra_ref *R, int64_t T, int causal) {
    eff_attn_opts ao;
    eff_tensor Q, K, V, O, L, dO, dQ, dK, dV;
    int64_t nq = RA_B * RA_HQ * T * RA_D, nk = RA_B * RA_HKV * T * RA_D;
    eff_status s;
    memset(&ao, 0, sizeof ao);
    ao.causal = causal;
    R->T = T;
    R->q = fbuf(nq); R->k = fbuf(nk); R->v = fbuf(nk); R->dout = fbuf(nq); R->o = fbuf(nq); R->lse = fbuf(nq / RA_D);
    R->dq = fbuf(nq); R->dk = fbuf(nk); R->dv = fbuf(nk);
    rnd(R->q, nq, 71); rnd(R->k, nk, 72); rnd(R->v, nk, 73); rnd(R->dout, nq, 74);
    Q = ra_t4(R->q, RA_HQ, T); K = ra_t4(R->k, RA_HKV, T); V = ra_t4(R->v, RA_HKV, T); O = ra_t4(R->o, RA_HQ, T);
    dO = ra_t4(R->dout, RA_HQ, T); dQ = ra_t4(R->dq, RA_HQ, T); dK = ra_t4(R->dk, RA_HKV, T); dV = ra_t4(R->dv, RA_HKV, T);
    L = eff_tensor_3d(R->lse, EFF_F32, RA_B, RA_HQ, T);
    s = eff_attn_flash_forward(ctx, &O, &L, &Q, &K, &V, &ao);
    if (s == EFF_OK) s = eff_attn_flash_backward(ctx, &dQ, &dK, &dV, &dO, &Q, &K, &V, &O, &L, &ao);
    return s;
}
static void ra_ref_free(ra_ref *R) {
    free(R->q); free(R->k); free(R->v); free(R->dout); free(R->o); free(R->lse); free(R->dq); free(R->dk); free(R->dv);
}

static eff_status ra_rank(eff_comm *c, void *p) {
    ra_arg *a = (ra_arg *)p;
    const ra_ref *R = a->ref;
    int n = eff_comm_size(c), r = eff_comm_rank(c);
    tlog *L = &a->logs[r];
    const char *lay = a->layout == EFF_RING_STRIPED ? "striped" : "ring";
    int64_t T = R->T, Tl = T / n, nq = RA_B * RA_HQ * Tl * RA_D, nk = RA_B * RA_HKV * Tl * RA_D;
    static const int perm[4] = {0, 2, 1, 3};
    float *qbuf = fbuf(nq), *k = fbuf(nk), *v = fbuf(nk), *dout = fbuf(nq), *o = fbuf(nq), *lse = fbuf(nq / RA_D);
    float *dq = fbuf(nq), *dk = fbuf(nk), *dv = fbuf(nk), *ro = fbuf(nq), *rl = fbuf(nq / RA_D), *rdq = fbuf(nq), *rdk = fbuf(nk),
          *rdv = fbuf(nk), *full = fbuf(RA_B * RA_HQ * T * RA_D);
    eff_ring_attn_opts ro_;
    eff_tensor Qbt, Q, K = ra_t4(k, RA_HKV, Tl), V = ra_t4(v, RA_HKV, Tl), dO = ra_t4(dout, RA_HQ, Tl), O = ra_t4(o, RA_HQ, Tl);
    eff_tensor LSE = eff_tensor_3d(lse, EFF_F32, RA_B, RA_HQ, Tl), dQ = ra_t4(dq, RA_HQ, Tl), dK = ra_t4(dk, RA_HKV, Tl),
               dV = ra_t4(dv, RA_HKV, Tl);
    eff_tensor fQ = ra_t4(R->q, RA_HQ, T), fK = ra_t4(R->k, RA_HKV, T), fV = ra_t4(R->v, RA_HKV, T), fdO = ra_t4(R->dout, RA_HQ, T);
    eff_tensor fO = ra_t4(R->o, RA_HQ, T), fdQ = ra_t4(R->dq, RA_HQ, T),
               fdK = ra_t4(R->dk, RA_HKV, T), fdV = ra_t4(R->dv, RA_HKV, T), Full = ra_t4(full, RA_HQ, T);
    eff_tensor rO = ra_t4(ro, RA_HQ, Tl), rdQ = ra_t4(rdq, RA_HQ, Tl),
               rdK = ra_t4(rdk, RA_HKV, Tl), rdV = ra_t4(rdv, RA_HKV, Tl), fL4, rL4;
    eff_status s;
    if (!full) return EFF_ERR_OOM;
    /* this rank's Q lives in a [B, Tl, H, d] buffer, seen as a strided [B, H, Tl, d] view */
    Qbt = eff_tensor_4d(qbuf, EFF_F32, RA_B, Tl, RA_HQ, RA_D);
    s = eff_tensor_permute(eff_comm_ctx(c), &Q, &Qbt, perm);
    /* lse [B, H, T] as [B, H, T, 1] so the same sharding applies */
    fL4 = eff_tensor_4d(R->lse, EFF_F32, RA_B, RA_HQ, T, 1);
    rL4 = eff_tensor_4d(rl, EFF_F32, RA_B, RA_HQ, Tl, 1);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &Q, &fQ, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &K, &fK, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &V, &fV, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &dO, &fdO, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &rO, &fO, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &rL4, &fL4, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &rdQ, &fdQ, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &rdK, &fdK, a->layout);
    if (s == EFF_OK) s = eff_ring_attn_shard(c, &rdV, &fdV, a->layout);
    memset(&ro_, 0, sizeof ro_);
    ro_.layout = a->layout; ro_.causal = a->causal;
    if (s == EFF_OK) s = eff_ring_attn_forward(c, &O, &LSE, &Q, &K, &V, &ro_);
    tlog_check(L, s == EFF_OK, "%s n=%d causal=%d: forward runs (%s: %s)", lay, n, a->causal, eff_status_str(s),
               s ? eff_ctx_last_error(eff_comm_ctx(c)) : "");
    {
        double e1 = eff_test_nmse_ff(o, ro, nq), e2 = eff_test_nmse_ff(lse, rl, nq / RA_D);
        tlog_check(L, e1 < 1e-10 && e2 < 1e-10, "%s n=%d causal=%d: O and lse equal one rank's flash attention (nmse %.2g, %.2g)", lay,
                   n, a->causal, e1, e2);
    }
    if (s == EFF_OK) s = eff_ring_attn_backward(c, &dQ, &dK, &dV, &dO, &Q, &K, &V, &O, &LSE, &ro_);
    {
        double e1 = eff_test_nmse_ff(dq, rdq, nq), e2 = eff_test_nmse_ff(dk, rdk, nk), e3 = eff_test_nmse_ff(dv, rdv, nk);
        tlog_check(L, s == EFF_OK && e1 < 1e-10 && e2 < 1e-10 && e3 < 1e-10,
                   "%s n=%d causal=%d: dQ, dK, dV equal one rank's flash backward (nmse %.2g, %.2g, %.2g; %s)", lay, n, a->causal, e1,
                   e2, e3, eff_status_str(s));
    }
    if (s == EFF_OK) s = eff_ring_attn_unshard(c, &Full, &O, a->layout);
    {
        double e = eff_test_nmse_ff(full, R->o, RA_B * RA_HQ * T * RA_D);
        tlog_check(L, s == EFF_OK && e < 1e-10, "%s n=%d causal=%d: unshard gathers the whole output (nmse %.2g)", lay, n, a->causal, e);
    }
    free(qbuf); free(k); free(v); free(dout); free(o); free(lse); free(dq); free(dk); free(dv);
    free(ro); free(rl); free(rdq); free(rdk); free(rdv); free(full);
    return s;
}

/* A recv's readiness check is asked again after it said yes (eff__lwait re-checks
   after a sleep): it must keep the message it took, not take the next one with the
   same (source, tag). This lost messages when a fast sender queued several. */
static void test_recv_ready_idempotent(void) {
    eff__lbox box;
    eff__lrecv_arg a;
    eff__lmsg *m1 = (eff__lmsg *)calloc(1, sizeof(eff__lmsg)), *m2 = (eff__lmsg *)calloc(1, sizeof(eff__lmsg));
    int r1, r2;
    if (!m1 || !m2) { free(m1); free(m2); return; }
    memset(&box, 0, sizeof box);
    pthread_mutex_init(&box.mu, NULL);
    m1->src = m2->src = 0; m1->tag = m2->tag = 5; m1->next = m2;
    box.head = m1; box.tail = m2;
    a.box = &box; a.src = 0; a.tag = 5; a.found = NULL;
    r1 = eff__lrecv_ready(&a);
    r2 = eff__lrecv_ready(&a);
    EFF_CHECK(r1 && r2 && a.found == m1 && box.head == m2 && box.tail == m2,
              "recv: asking again after a yes keeps the oldest message and leaves the next one queued");
    pthread_mutex_destroy(&box.mu);
    free(m1); free(m2);
}

static void test_ring_attention(void) {
    eff_ctx *ctx;
    int n, layout, causal, r;
    if (eff_ctx_create(NULL, &ctx) != EFF_OK) return;
    test_recv_ready_idempotent();
    for (n = 1; n <= 4; n++)
        for (causal = 0; causal < 2; causal++) {
            ra_ref R;
            eff_status s = ra_reference(ctx, &R, (int64_t)n * RA_TL, causal);
            EFF_CHECK(s == EFF_OK, "ring reference n=%d (%s)", n, eff_status_str(s));
            for (layout = 0; layout < 2 && s == EFF_OK; layout++) {
                ra_arg *a = (ra_arg *)calloc(1, sizeof *a);
                if (!a) break;
                a->ref = &R; a->layout = layout; a->causal = causal;
                s = eff_comm_local_run(n, ra_rank, a);
                EFF_CHECK(s == EFF_OK, "%s n=%d causal=%d: run %s", layout ? "striped" : "ring", n, causal, eff_status_str(s));
                tlog_merge(a->logs, n, "ring attention");
                for (r = 0; r < n; r++) tlog_free(&a->logs[r]);
                free(a);
            }
            ra_ref_free(&R);
        }
    {   /* bad arguments name what is wrong */
        float x[RA_B * RA_HQ * 4 * RA_D], l[RA_B * RA_HQ * 4];
        eff_tensor Q = ra_t4(x, RA_HQ, 4), K = ra_t4(x, RA_HKV, 3), O = ra_t4(x, RA_HQ, 4), L = eff_tensor_3d(l, EFF_F32, RA_B, RA_HQ, 4);
        eff_ring_attn_opts o;
        eff_comm *c = NULL;
        memset(&o, 0, sizeof o);
        if (eff_comm_create_custom(ctx, 0, 1, &eff__local_backend, NULL, &c) == EFF_OK) {
            EFF_CHECK_STATUS(ctx, eff_ring_attn_forward(c, &O, &L, &Q, &K, &K, &o), EFF_ERR_SHAPE, "ring: K with another token count");
            o.layout = 7;
            EFF_CHECK_STATUS(ctx, eff_ring_attn_forward(c, &O, &L, &Q, &Q, &Q, &o), EFF_ERR_INVALID_ARG, "ring: unknown layout");
            eff_ctx_free(ctx, c);
        }
    }
    eff_ctx_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Estimator: the papers' numbers
   --------------------------------------------------------------------------- */
static void test_estimator(void) {
    /* GPT-3 (Korthikanti et al. 2022, section 4): s = 2048, h = 12288, a = 96, b = 1 */
    double s = 2048, h = 12288, a = 96, sbh = s * h;
    eff_est_config c;
    eff_est_result r, r3;
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 1, 0, 0) == 34 * sbh + 5 * a * s * s, "activations, no parallelism: sbh(34 + 5as/h)");
    EFF_CHECK(fabs(34 * sbh / 1e9 - 0.86) < 0.005 && fabs(5 * a * s * s / 1e9 - 2.01) < 0.005,
              "GPT-3 per layer: 34sbh = 0.86 GB, 5as^2b = 2.01 GB (the paper's numbers)");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 8, 0, 0) == sbh * (10 + 24.0 / 8 + 5 * a * s / (h * 8)), "activations, TP t=8");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 8, 1, 0) == sbh * (34.0 / 8 + 5 * a * s / (h * 8)), "activations, TP + SP");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 8, 0, 1) == sbh * (10 + 24.0 / 8), "activations, TP + selective recompute");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 8, 1, 1) == 34 * sbh / 8, "activations, TP + SP + selective recompute");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 8, 1, 2) == 2 * sbh, "activations, full recompute: 2sbh");
    EFF_CHECK(eff_est_activation_bytes(s, 1, h, a, 0, 0, 0) < 0, "activations: t = 0 is rejected");
    memset(&c, 0, sizeof c);
    c.n_params = 7.5e9; c.n_layers = 32; c.hidden = 4096; c.heads = 32; c.seq = 1024; c.vocab = 50257; c.dp = 64;
    EFF_CHECK(eff_est_run(&c, &r) == EFF_OK && fabs(r.params + r.grads + r.optim - 120e9) < 1, "estimate: 7.5B plain DP = 120 GB of model states");
    EFF_CHECK(fabs(r.comm_dp - 2.0 * 63.0 / 64.0 * 7.5e9 * 2) < 1, "estimate: DP all-reduce sends 2(n-1)/n x 2 psi bytes");
    c.zero_stage = 3;
    EFF_CHECK(eff_est_run(&c, &r3) == EFF_OK && fabs(r3.comm_dp / r.comm_dp - 1.5) < 1e-12 && fabs(r3.params + r3.grads + r3.optim - 1.875e9) < 1,
              "estimate: ZeRO-3 moves 1.5x DP's bytes and holds 16 psi / 64");
    c.zero_stage = 0; c.n_params = 0; c.n_layers = 96; c.hidden = 12288; c.heads = 96; c.seq = 2048; c.vocab = 51200;
    {
        eff_status st = eff_est_run(&c, &r);
        EFF_CHECK(st == EFF_OK && fabs(r.n_params / 175e9 - 1) < 0.01, "estimate: 12Lh^2(...) gives GPT-3's 175B (%.4g)", r.n_params);
    }
    c.tp = 8; c.pp = 8; c.sp = 1; c.n_micro = 16;
    EFF_CHECK(eff_est_run(&c, &r) == EFF_OK && r.act == r.act_layer * 12 * 8 && r.comm_pp > 0 && r.comm_tp > 0,
              "estimate: 1F1B stage 0 holds p micro-batches of L/p layers");
    c.tp = 5;
    EFF_CHECK(eff_est_run(&c, &r) == EFF_ERR_INVALID_ARG, "estimate: heads not divisible by tp are rejected");
}

/* ---------------------------------------------------------------------------
   Data-parallel training of eff_model.h's tiny Llama: n ranks, each a replica with its
   own context that runs a B/n slice of every batch, with eff_dp_optim at ZeRO stage
   0-3, follow the loss curve of one rank on the full batch (eff_optim's AdamW with the
   same clipping and weight decay) and end at the same parameters.
   --------------------------------------------------------------------------- */
enum { MD_B = 4, MD_T = 16, MD_STEPS = 6 };
#define MD_LR 1e-2f
typedef struct md_arg {
    int zero;
    float loss[MD_STEPS];
    float *params;              /* rank 0's final parameters, flattened */
    int64_t n_params;
    tlog logs[8];
} md_arg;

static void md_batch(int step, int32_t *x, int32_t *y) {
    int i;
    for (i = 0; i < MD_B * MD_T; i++) {
        x[i] = (int32_t)((i * 7 + (step % 2) * 13 + (i / 5) * 3) % 256);
        y[i] = (int32_t)((i * 7 + (step % 2) * 13 + (i / 5) * 3 + 11) % 256);
    }
}
static eff_status md_model(eff_ctx *ctx, eff_model *m, eff_optim *reg, int adamw) {
    eff_model_config c;
    eff_optim_opts oo;
    eff_status s = eff_model_config_preset(&c, "tiny-llama");
    memset(m, 0, sizeof *m);
    if (s == EFF_OK) s = eff_model_init(ctx, m, &c);
    if (s == EFF_OK) s = eff_model_alloc_grads(ctx, m);
    memset(&oo, 0, sizeof oo);
    oo.kind = adamw ? EFF_OPTIM_ADAMW : EFF_OPTIM_SGD;   /* SGD without momentum: a registry of (param, grad), no state */
    oo.lr = MD_LR; oo.weight_decay = 0.01f; oo.max_grad_norm = adamw ? 1.0f : 0.0f;
    if (s == EFF_OK) s = eff_optim_init(ctx, reg, &oo);
    if (s == EFF_OK) s = eff_optim_add_model(ctx, reg, m, 0, 0);
    return s;
}
static int64_t md_flatten(const eff_optim *reg, float *out) {
    int64_t i, n = 0;
    for (i = 0; i < reg->n_params; i++) {
        if (out) memcpy(out + n, reg->params[i].param->data, sizeof(float) * (size_t)reg->params[i].n);
        n += reg->params[i].n;
    }
    return n;
}

static eff_status md_rank(eff_comm *c, void *p) {
    md_arg *a = (md_arg *)p;
    eff_ctx *ctx = NULL;   /* the replica's own context, seeded as the reference's (MPI ranks share no RNG) */
    eff_ctx_opts co;
    int n = eff_comm_size(c), r = eff_comm_rank(c), step, i;
    int64_t rows = MD_B / n;
    eff_model m;
    eff_optim reg;
    eff_dp_optim *dpo = NULL;
    eff_dp_optim_opts o;
    float **params = NULL, **grads = NULL;
    int64_t *counts = NULL;
    int32_t x[MD_B * MD_T], y[MD_B * MD_T];
    eff_status s;
    memset(&co, 0, sizeof co);
    co.seed = 77; co.n_threads = 1;
    if ((s = eff_ctx_create(&co, &ctx)) != EFF_OK) return s;
    s = md_model(ctx, &m, &reg, 0);
    if (s == EFF_OK) {
        params = (float **)calloc((size_t)reg.n_params, sizeof(float *));
        grads = (float **)calloc((size_t)reg.n_params, sizeof(float *));
        counts = (int64_t *)calloc((size_t)reg.n_params, sizeof(int64_t));
        if (!params || !grads || !counts) s = EFF_ERR_OOM;
    }
    for (i = 0; s == EFF_OK && i < reg.n_params; i++) {
        params[i] = (float *)reg.params[i].param->data; grads[i] = (float *)reg.params[i].grad->data; counts[i] = reg.params[i].n;
    }
    memset(&o, 0, sizeof o);
    o.zero_stage = a->zero; o.adamw.weight_decay = 0.01f; o.max_grad_norm = 1.0f;
    if (s == EFF_OK) s = eff_dp_optim_create(c, (int)reg.n_params, params, grads, counts, &o, &dpo);
    for (step = 0; step < MD_STEPS && s == EFF_OK; step++) {
        float loss = 0.0f;
        md_batch(step, x, y);
        /* this rank's rows of the global batch; the mean of the ranks' mean losses is the full batch's */
        s = eff_model_forward(ctx, &m, x + r * rows * MD_T, y + r * rows * MD_T, rows, MD_T, &loss);
        if (s == EFF_OK) s = eff_model_backward(ctx, &m);
        if (s == EFF_OK) s = eff_dp_optim_step(dpo, MD_LR);
        if (s == EFF_OK) s = eff_comm_all_reduce(c, &loss, 1, EFF_F32, EFF_RED_AVG);
        a->loss[step] = loss;
    }
    tlog_check(&a->logs[r], s == EFF_OK, "dp model n=%d zero-%d: training runs (%s: %s)", n, a->zero, eff_status_str(s),
               s ? eff_ctx_last_error(eff_comm_ctx(c)) : "");
    if (s == EFF_OK && r == 0) {
        a->n_params = md_flatten(&reg, NULL);
        a->params = (float *)malloc(sizeof(float) * (size_t)a->n_params);
        if (a->params) md_flatten(&reg, a->params);
    }
    eff_dp_optim_destroy(dpo);
    free(params); free(grads); free(counts);
    eff_optim_free(ctx, &reg);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    return s;
}

/* One rank on the full batch with eff_optim: the losses and the final parameters (malloc'd). */
static eff_status md_reference(float *ref_loss, float **ref, int64_t *nref) {
    eff_ctx *ctx;
    eff_ctx_opts co;
    eff_model m;
    eff_optim opt;
    int32_t x[MD_B * MD_T], y[MD_B * MD_T];
    int step;
    eff_status s;
    *ref = NULL; *nref = 0;
    memset(&co, 0, sizeof co);
    co.seed = 77; co.n_threads = 1;
    if ((s = eff_ctx_create(&co, &ctx)) != EFF_OK) return s;
    s = md_model(ctx, &m, &opt, 1);
    for (step = 0; step < MD_STEPS && s == EFF_OK; step++) {
        md_batch(step, x, y);
        s = eff_model_forward(ctx, &m, x, y, MD_B, MD_T, &ref_loss[step]);
        if (s == EFF_OK) s = eff_model_backward(ctx, &m);
        if (s == EFF_OK) s = eff_optim_step(ctx, &opt);
    }
    if (s == EFF_OK) {
        *nref = md_flatten(&opt, NULL);
        *ref = (float *)malloc(sizeof(float) * (size_t)*nref);
        if (*ref) md_flatten(&opt, *ref);
        else s = EFF_ERR_OOM;
    }
    eff_optim_free(ctx, &opt);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    return s;
}
/* the largest relative loss difference and the parameter nmse of a run against the reference */
static void md_compare(const md_arg *a, const float *ref_loss, const float *ref, int64_t nref, double *worst, double *e) {
    int step;
    *worst = 0.0;
    for (step = 0; step < MD_STEPS; step++) {
        double d = fabs((double)a->loss[step] - ref_loss[step]) / fabs((double)ref_loss[step]);
        if (d > *worst) *worst = d;
    }
    *e = a->params && a->n_params == nref ? eff_test_nmse_ff(a->params, ref, nref) : INFINITY;
}

static void test_model_data_parallel(void) {
    float ref_loss[MD_STEPS], *ref = NULL;
    int64_t nref = 0;
    int n, z, r;
    eff_status s = md_reference(ref_loss, &ref, &nref);
    EFF_CHECK(s == EFF_OK, "dp model: single-rank reference trains (%s)", eff_status_str(s));
    for (n = 1; n <= 4 && ref; n *= 2)
        for (z = 0; z <= 3; z++) {
            md_arg *a = (md_arg *)calloc(1, sizeof *a);
            double worst, e;
            if (!a) break;
            a->zero = z;
            s = eff_comm_local_run(n, md_rank, a);
            tlog_merge(a->logs, n, "dp model");
            md_compare(a, ref_loss, ref, nref, &worst, &e);
            EFF_CHECK(s == EFF_OK && worst < 1e-5 && e < 1e-10,
                      "dp model n=%d zero-%d: %d steps follow one rank's loss curve (rel %.2g; %.4f -> %.4f) and parameters (nmse %.2g)",
                      n, z, MD_STEPS, worst, (double)ref_loss[0], (double)ref_loss[MD_STEPS - 1], e);
            for (r = 0; r < n; r++) tlog_free(&a->logs[r]);
            free(a->params);
            free(a);
        }
    free(ref);
}

#ifndef TEST_PARALLEL_NO_MAIN
int main(void) {
    EFF_TEST_BEGIN("test_parallel");
    test_collectives();
    test_faults();
    test_bad_args();
    test_data_parallel();
    test_zero_equivalence();
    test_zero_memory();
    test_zero_checkpoint();
    test_tensor_parallel();
    test_pp_schedules();
    test_pp_executor();
    test_pp_fault();
    test_expert_parallel();
    test_ring_attention();
    test_estimator();
    test_model_data_parallel();
    return EFF_TEST_END();
}
#endif
