/* bench_util.h - what every eff benchmark shares: a monotonic clock, a
   "best of k runs" timer, the machine line (CPU model, threads, SIMD, flags),
   the measured fp32 FMA peak and the measured memory read / copy bandwidth,
   so each table can be read against this machine in this run.

   Include after eff_tensor.h (with its implementation in the same program). */
#ifndef EFF_BENCH_UTIL_H
#define EFF_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

BENCH_UNUSED static double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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
    for (rep = 0; rep < 3; rep++) {
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

/* Measured read bandwidth (GB/s): sums a buffer of `bytes` (make it >> L3) on
   n_threads threads; and copy bandwidth (memcpy of bytes/2 to bytes/2, counting
   read + write bytes). Best of 3. */
BENCH_UNUSED static double bench_read_bw(int n_threads, size_t bytes) {
    size_t n = bytes / sizeof(float), i;
    float *buf = (float *)malloc(n * sizeof(float));
    double best = 0.0;
    int rep;
    (void)n_threads;
    if (!buf) return 0.0;
    for (i = 0; i < n; i++) buf[i] = (float)(i & 7);
    for (rep = 0; rep < 4; rep++) {
        double t0 = bench_now(), dt;
        float total = 0.0f;
        long j, nn = (long)n;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(+ : total) schedule(static)
#endif
        for (j = 0; j < nn / 64; j++) {
            eff__vf s = eff__vzero();
            int k;
            for (k = 0; k < 64; k += EFF__VL) s = eff__vadd(s, eff__vload(buf + j * 64 + k));
            total += eff__vhsum(s);
        }
        dt = bench_now() - t0;
        if (total == -1.0f) printf(" ");
        if (rep > 0 && (double)bytes / dt * 1e-9 > best) best = (double)bytes / dt * 1e-9;
    }
    free(buf);
    return best;
}

BENCH_UNUSED static double bench_copy_bw(size_t bytes) {
    size_t half = bytes / 2;
    char *a = (char *)malloc(half), *b = (char *)malloc(half);
    double best = 0.0;
    int rep;
    if (!a || !b) { free(a); free(b); return 0.0; }
    memset(a, 1, half);
    memset(b, 2, half);
    for (rep = 0; rep < 4; rep++) {
        double t0 = bench_now(), dt;
        memcpy(rep & 1 ? a : b, rep & 1 ? b : a, half);
        dt = bench_now() - t0;
        if (rep > 0 && 2.0 * (double)half / dt * 1e-9 > best) best = 2.0 * (double)half / dt * 1e-9;
    }
    free(a);
    free(b);
    return best;
}

#endif /* EFF_BENCH_UTIL_H */
