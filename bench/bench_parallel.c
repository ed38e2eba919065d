/* bench_parallel.c - local-backend collectives: all-reduce bus bandwidth vs size
   (nccl-tests definitions: algbw = S/t, busbw = algbw * 2(n-1)/n) for 2 ranks and
   4 ranks (oversubscribed on small machines), next to memcpy bandwidth measured
   in the same run with a working set far beyond the last-level cache.
   Target (DESIGN.md section 6): busbw >= 70 % of memcpy bandwidth at >= 16 MiB.

   EFF_BENCH_QUICK=1 runs fewer sizes. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#define EFF_IMPLEMENTATION
#include "eff_parallel.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef EFF_BENCH_FLAGS
#define EFF_BENCH_FLAGS "(unknown)"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cpu_model(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, n, "unknown");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* memcpy bandwidth (bytes copied per second) over a 2 x 256 MiB working set. */
static double memcpy_bw(size_t bytes, int reps) {
    char *a = (char *)malloc(bytes), *b = (char *)malloc(bytes);
    double best = 1e30;
    int i;
    if (!a || !b) { free(a); free(b); return 0.0; }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    for (i = 0; i < reps; i++) {
        double t0 = now_s(), dt;
        memcpy(i & 1 ? a : b, i & 1 ? b : a, bytes);
        dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    return (double)bytes / best;
}

/* The same copy done by every rank of a local run at once (aggregate bandwidth). */
typedef struct mc_arg { size_t bytes; double t; } mc_arg;
static eff_status memcpy_rank(eff_comm *c, void *p) {
    mc_arg *a = (mc_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    char *x = (char *)eff_ctx_alloc(ctx, a->bytes), *y = (char *)eff_ctx_alloc(ctx, a->bytes);
    double best = 1e30;
    int i;
    eff_status s = x && y ? EFF_OK : EFF_ERR_OOM;
    if (s == EFF_OK) { memset(x, 1, a->bytes); memset(y, 2, a->bytes); }
    for (i = 0; i < 4 && s == EFF_OK; i++) {
        double t0;
        s = eff_comm_barrier(c);
        t0 = now_s();
        memcpy(i & 1 ? x : y, i & 1 ? y : x, a->bytes);
        if (s == EFF_OK) s = eff_comm_barrier(c);
        if (now_s() - t0 < best) best = now_s() - t0;
    }
    if (eff_comm_rank(c) == 0) a->t = best;
    eff_ctx_free(ctx, x);
    eff_ctx_free(ctx, y);
    return s;
}

#define MAX_SIZES 32
typedef struct ar_arg {
    int n_sizes;
    int64_t bytes[MAX_SIZES];
    double t[MAX_SIZES];     /* seconds per all-reduce (best of a few batches) */
    int algo;
} ar_arg;

static eff_status ar_rank(eff_comm *c, void *p) {
    ar_arg *a = (ar_arg *)p;
    eff_ctx *ctx = eff_comm_ctx(c);
    int si, i, b;
    eff_status s = EFF_OK;
    eff_comm_set_algo(c, a->algo);
    for (si = 0; si < a->n_sizes && s == EFF_OK; si++) {
        int64_t count = a->bytes[si] / 4;
        float *x = (float *)eff_ctx_alloc(ctx, (size_t)a->bytes[si]);
        double best = 1e30;
        int iters = (int)(((int64_t)64 << 20) / a->bytes[si]);
        if (iters < 2) iters = 2;
        if (iters > 2000) iters = 2000;
        if (!x) return EFF_ERR_OOM;
        for (i = 0; i < count; i++) x[i] = (float)((i + eff_comm_rank(c)) & 7);
        s = eff_comm_all_reduce(c, x, count, EFF_F32, EFF_RED_SUM);   /* warm-up: page faults */
        for (b = 0; b < 3 && s == EFF_OK; b++) {
            double t0, dt;
            s = eff_comm_barrier(c);
            t0 = now_s();
            for (i = 0; i < iters && s == EFF_OK; i++) s = eff_comm_all_reduce(c, x, count, EFF_F32, EFF_RED_SUM);
            dt = (now_s() - t0) / iters;
            if (dt < best) best = dt;
        }
        if (eff_comm_rank(c) == 0) a->t[si] = best;
        eff_ctx_free(ctx, x);
    }
    return s;
}

static void fmt_bytes(int64_t b, char *out, size_t n) {
    if (b >= (1 << 20)) snprintf(out, n, "%lld MiB", (long long)(b >> 20));
    else snprintf(out, n, "%lld KiB", (long long)(b >> 10));
}

int main(void) {
    char cpu[256];
    int quick = getenv("EFF_BENCH_QUICK") != NULL, ni, si;
    static const int nranks[2] = {2, 4};
    size_t mc_bytes = (size_t)256 << 20;
    double mc, mc2 = 0.0;
    ar_arg *direct = (ar_arg *)calloc(2, sizeof(ar_arg)), *ring = (ar_arg *)calloc(2, sizeof(ar_arg));
    mc_arg m2;
    if (!direct || !ring) return 1;
    cpu_model(cpu, sizeof cpu);
    printf("== bench_parallel: local-backend all-reduce (f32 sum)\n");
    printf("cpu: %s, %ld hardware threads, SIMD %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), EFF_SIMD_NAME);
    printf("flags: %s\n", EFF_BENCH_FLAGS);
    mc = memcpy_bw(mc_bytes, quick ? 3 : 6);
    m2.bytes = mc_bytes / 2; m2.t = 0.0;
    if (eff_comm_local_run(2, memcpy_rank, &m2) == EFF_OK && m2.t > 0.0) mc2 = 2.0 * (double)m2.bytes / m2.t;

    for (ni = 0; ni < 2; ni++) {
        int64_t b;
        eff_comm_local_opts o;
        eff_status s1, s2;
        memset(&o, 0, sizeof o);
        o.timeout = 600;
        direct[ni].algo = EFF_COMM_ALGO_AUTO;
        ring[ni].algo = EFF_COMM_ALGO_RING;
        for (b = 4096; b <= ((int64_t)256 << 20); b *= quick ? 16 : 4) {
            direct[ni].bytes[direct[ni].n_sizes++] = b;
            ring[ni].bytes[ring[ni].n_sizes++] = b;
        }
        s1 = eff_comm_local_run_opts(nranks[ni], ar_rank, &direct[ni], &o);
        s2 = eff_comm_local_run_opts(nranks[ni], ar_rank, &ring[ni], &o);
        if (s1 != EFF_OK || s2 != EFF_OK) { printf("run failed: %s %s\n", eff_status_str(s1), eff_status_str(s2)); return 1; }
    }
    {   /* memcpy again after the runs: the machine may be shared, so compare with the better of the two */
        double again = memcpy_bw(mc_bytes, quick ? 3 : 6);
        printf("memcpy bandwidth (256 MiB, 1 thread): %.2f GB/s before, %.2f GB/s after the all-reduce runs; "
               "2 threads copying at once: %.2f GB/s aggregate\n", mc * 1e-9, again * 1e-9, mc2 * 1e-9);
        if (again > mc) mc = again;
    }
    printf("\n%9s | %-35s | %-35s\n", "", "2 ranks: auto (small|direct)   ring", "4 ranks: auto (small|direct)   ring");
    printf("%9s | %8s %8s %6s %9s | %8s %8s %6s %9s\n", "size", "time us", "busbw", "%mcpy", "ring bus", "time us", "busbw",
           "%mcpy", "ring bus");
    for (si = 0; si < direct[0].n_sizes; si++) {
        char sz[32];
        fmt_bytes(direct[0].bytes[si], sz, sizeof sz);
        printf("%9s |", sz);
        for (ni = 0; ni < 2; ni++) {
            int n = nranks[ni];
            double f = 2.0 * (n - 1) / n;
            double bus = (double)direct[ni].bytes[si] / direct[ni].t[si] * f, rbus = (double)ring[ni].bytes[si] / ring[ni].t[si] * f;
            printf(" %8.1f %8.2f %5.0f%% %9.2f |", direct[ni].t[si] * 1e6, bus * 1e-9, 100.0 * bus / mc, rbus * 1e-9);
        }
        printf("\n");
    }
    printf("(busbw and ring bus in GB/s; %%mcpy = busbw / the better 1-thread memcpy bandwidth; results >= 8 MiB per rank use\n"
           " non-temporal stores; 4 ranks share the cores when the machine has fewer)\n");
    free(direct);
    free(ring);
    return 0;
}
