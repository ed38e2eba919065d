/* bench_util.h - what every eff benchmark shares: a monotonic clock, the
   machine line (CPU model, threads, SIMD, flags),
   the measured fp32 FMA peak and the measured memory read / copy bandwidth
   (one streaming-read kernel, bench_read_sum, for every read figure), so each
   table can be read against this machine in this run.

   Include after eff_tensor.h (with its implementation in the same program). */
#ifndef EFF_BENCH_UTIL_H
#define EFF_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef EFF_BENCH_FLAGS
#define EFF_BENCH_FLAGS "(flags not recorded)"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BENCH_UNUSED __attribute__((unused))
#else
#define BENCH_UNUSED
#endif

BENCH_UNUSED static double bench_now(void) { return eff_time_seconds(); }

BENCH_UNUSED static void bench_cpu_model(char *buf, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, n, "unknown CPU");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = 0;
                snprintf(buf, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* Prints the header every eff benchmark starts with. */
BENCH_UNUSED static void bench_print_machine(const char *title, int n_threads) {
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("## %s\n", title);
    printf("cpu: %s | threads: %d | simd: %s | flags: %s\n", cpu, n_threads, EFF_SIMD_NAME, EFF_BENCH_FLAGS);
}

/* Measured fp32 FMA peak in GFLOP/s on n_threads threads: 12 independent
   vector FMA chains per thread, all in registers. */
BENCH_UNUSED static double bench_fma_peak(int n_threads) {
    double best = 0.0;
    int rep;
    (void)n_threads;
    for (rep = 0; rep < 10; rep++) {   /* ~10 ms each; the best of 10 rides out a noisy neighbour */
        const long iters = 4000000;
        double t0 = bench_now(), dt;
        float sink = 0.0f;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads) reduction(+ : sink)
#endif
        {
            /* distinct starting values, so the compiler cannot merge the chains */
            eff__vf a0 = eff__vset1(1.00f), a1 = eff__vset1(1.01f), a2 = eff__vset1(1.02f), a3 = eff__vset1(1.03f);
            eff__vf a4 = eff__vset1(1.04f), a5 = eff__vset1(1.05f), a6 = eff__vset1(1.06f), a7 = eff__vset1(1.07f);
            eff__vf a8 = eff__vset1(1.08f), a9 = eff__vset1(1.09f), a10 = eff__vset1(1.10f), a11 = eff__vset1(1.11f);
            eff__vf m = eff__vset1(0.999999f), c = eff__vset1(1e-7f);
            long i;
            for (i = 0; i < iters; i++) {
                a0 = eff__vfma(a0, m, c); a1 = eff__vfma(a1, m, c); a2 = eff__vfma(a2, m, c); a3 = eff__vfma(a3, m, c);
                a4 = eff__vfma(a4, m, c); a5 = eff__vfma(a5, m, c); a6 = eff__vfma(a6, m, c); a7 = eff__vfma(a7, m, c);
                a8 = eff__vfma(a8, m, c); a9 = eff__vfma(a9, m, c); a10 = eff__vfma(a10, m, c); a11 = eff__vfma(a11, m, c);
            }
            a0 = eff__vadd(eff__vadd(eff__vadd(a0, a1), eff__vadd(a2, a3)), eff__vadd(eff__vadd(a4, a5), eff__vadd(a6, a7)));
            a0 = eff__vadd(a0, eff__vadd(eff__vadd(a8, a9), eff__vadd(a10, a11)));
            sink += eff__vhsum(a0);
        }
        dt = bench_now() - t0;
        if (sink == 12345.0f) printf(" ");
        {
            int nt = 1;
#ifdef _OPENMP
            nt = n_threads;
#endif
            double gf = 2.0 * 12.0 * EFF__VL * (double)iters * nt / dt * 1e-9;
            if (gf > best) best = gf;
        }
    }
    return best;
}

/* Streaming read of a[0:n] on n_threads threads: chunks of 4096 floats, four
   independent vector accumulators each. Returns the sum, so the reads cannot be
   optimized away. The one read kernel every bandwidth figure here is timed with. */
BENCH_UNUSED static float bench_read_sum(const float *a, int64_t n, int n_threads) {
    float total = 0.0f;
    int64_t c;
    (void)n_threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(+ : total) schedule(static)
#endif
    for (c = 0; c < n; c += 4096) {
        eff__vf s0 = eff__vzero(), s1 = eff__vzero(), s2 = eff__vzero(), s3 = eff__vzero();
        int64_t i, e = c + 4096 < n ? c + 4096 : n;
        float tail = 0.0f;
        for (i = c; i + 4 * EFF__VL <= e; i += 4 * EFF__VL) {
            s0 = eff__vadd(s0, eff__vload(a + i));
            s1 = eff__vadd(s1, eff__vload(a + i + EFF__VL));
            s2 = eff__vadd(s2, eff__vload(a + i + 2 * EFF__VL));
            s3 = eff__vadd(s3, eff__vload(a + i + 3 * EFF__VL));
        }
        for (; i < e; i++) tail += a[i];
        total += eff__vhsum(eff__vadd(eff__vadd(s0, s1), eff__vadd(s2, s3))) + tail;
    }
    return total;
}

/* Measured read bandwidth (GB/s) of bench_read_sum over the first `bytes` of
   buf (make it >> L3) on n_threads threads: best of 3 passes after a warm-up pass.
   bench_read_bw allocates and fills the buffer itself; bench_read_bw_buf reads
   one the caller keeps (e.g. to time reads of smaller regions of it later). */
BENCH_UNUSED static double bench_read_bw_buf(int n_threads, const float *buf, size_t bytes) {
    int64_t n = (int64_t)(bytes / sizeof(float));
    double best = 0.0;
    volatile float sink = 0.0f;
    int rep;
    for (rep = 0; rep < 4; rep++) {
        double t0 = bench_now(), dt;
        sink += bench_read_sum(buf, n, n_threads);
        dt = bench_now() - t0;
        if (rep > 0 && (double)n * sizeof(float) / dt * 1e-9 > best) best = (double)n * sizeof(float) / dt * 1e-9;
    }
    (void)sink;
    return best;
}

BENCH_UNUSED static double bench_read_bw(int n_threads, size_t bytes) {
    size_t n = bytes / sizeof(float), i;
    float *buf = (float *)malloc(n * sizeof(float));
    double bw;
    if (!buf) return 0.0;
    for (i = 0; i < n; i++) buf[i] = (float)(i & 7);
    bw = bench_read_bw_buf(n_threads, buf, bytes);
    free(buf);
    return bw;
}

/* Measured copy bandwidth (GB/s): memcpy of bytes/2 to bytes/2 on n_threads
   threads (chunks of 256 KiB), counting read + written bytes. Best of 3 after a
   warm-up copy. bench_copy_bw is the single-threaded figure. */
BENCH_UNUSED static double bench_copy_bw_threads(int n_threads, size_t bytes) {
    size_t half = bytes / 2;
    char *a = (char *)malloc(half), *b = (char *)malloc(half);
    const int64_t chunk = (int64_t)1 << 18;
    double best = 0.0;
    int rep;
    (void)n_threads;
    if (!a || !b) { free(a); free(b); return 0.0; }
    memset(a, 1, half);
    memset(b, 2, half);
    for (rep = 0; rep < 4; rep++) {
        char *dst = rep & 1 ? a : b;
        const char *src = rep & 1 ? b : a;
        int64_t c, h = (int64_t)half;
        double t0 = bench_now(), dt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static)
#endif
        for (c = 0; c < h; c += chunk) memcpy(dst + c, src + c, (size_t)(h - c < chunk ? h - c : chunk));
        dt = bench_now() - t0;
        if (rep > 0 && 2.0 * (double)half / dt * 1e-9 > best) best = 2.0 * (double)half / dt * 1e-9;
    }
    free(a);
    free(b);
    return best;
}

BENCH_UNUSED static double bench_copy_bw(size_t bytes) { return bench_copy_bw_threads(1, bytes); }

#endif /* EFF_BENCH_UTIL_H */
