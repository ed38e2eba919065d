/* parallel_estimate.c - how much memory each rank needs and how many bytes it sends per
   training step, for a GPT-style model on a dp x tp x pp grid (eff_parallel.h's
   estimator). With no arguments it reproduces the papers' examples:
     - the ZeRO paper's Table 1 (Rajbhandari et al. 2020): model-state GB per device for
       7.5B, 128B and 1T parameters at N_d = 1 .. 1024, checked against the printed table;
     - Korthikanti et al. 2022, Table 2 for GPT-3 175B (s = 2048, h = 12288, a = 96, b = 1,
       t = 8): activation bytes per layer with and without TP, SP and recomputation;
     - the per-rank budget of GPT-3 175B on 8-way TP x 8-way PP with SP and selective
       recomputation, for each ZeRO stage over 8 data-parallel ranks.

     parallel_estimate [--params P] [--layers L] [--hidden h] [--heads a] [--seq s] [--batch b]
                       [--vocab V] [--micro m] [--dp d] [--tp t] [--pp p] [--cp c] [--sp 0|1]
                       [--zero 0..3] [--recompute none|selective|full] [--gpipe]
   --params 0 (default) derives P = 12 L h^2 (1 + 13/(12h) + (V + s)/(12 L h)). */
#define EFF_IMPLEMENTATION
#include "eff_parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    int i;
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}
static int flag(int argc, char **argv, const char *name) {
    int i;
    for (i = 1; i < argc; i++) if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}
static double gb(double bytes) { return bytes / 1e9; }   /* the papers' GB */

/* ZeRO Table 1 as printed (GB): [N_d][model][stage 1, 2, 3]. The paper rounds the 7.5B
   column and truncates the 128B and 1T columns. */
static const double zero_table[6][3][3] = {
    {{120, 120, 120}, {2048, 2048, 2048}, {16000, 16000, 16000}},
    {{52.5, 41.3, 30}, {896, 704, 512}, {7000, 5500, 4000}},
    {{35.6, 21.6, 7.5}, {608, 368, 128}, {4750, 2875, 1000}},
    {{31.4, 16.6, 1.88}, {536, 284, 32}, {4187, 2218, 250}},
    {{30.4, 15.4, 0.47}, {518, 263, 8}, {4046, 2054, 62.5}},
    {{30.1, 15.1, 0.12}, {513, 257, 2}, {4011, 2013, 15.6}},
};
/* The printed p is v rounded half up, or truncated, to 0, 1 or 2 decimals. */
static int zero_matches(double v, double p) {
    double f = 1.0;
    int d;
    for (d = 0; d <= 2; d++, f *= 10.0)
        if (fabs(floor(v * f + 0.5) / f - p) < 1e-9 || fabs(floor(v * f) / f - p) < 1e-9) return 1;
    return 0;
}

static void zero_table1(void) {
    static const double psi[3] = {7.5e9, 128e9, 1e12};
    static const int nd[6] = {1, 4, 16, 64, 256, 1024};
    int i, j, k, ok = 0;
    printf("ZeRO (Rajbhandari et al. 2020), Table 1: model states per device in GB, mixed-precision Adam (K = 12):\n"
           "  P_os = 2psi + 2psi + K psi/N_d, P_os+g = 2psi + (2+K) psi/N_d, P_os+g+p = (2+2+K) psi/N_d\n\n");
    printf("%6s |%27s |%27s |%27s\n", "", "7.5B", "128B", "1T");
    printf("%6s |%9s%9s%9s |%9s%9s%9s |%9s%9s%9s\n", "N_d", "P_os", "P_os+g", "+p", "P_os", "P_os+g", "+p", "P_os", "P_os+g", "+p");
    for (i = 0; i < 6; i++) {
        printf("%6d |", nd[i]);
        for (j = 0; j < 3; j++) {
            for (k = 0; k < 3; k++) {
                eff_zero_mem m;
                eff_zero_memory_estimate(k + 1, psi[j], nd[i], 2, 2, 12, &m);
                printf("%9.5g", gb(m.total));
                ok += zero_matches(gb(m.total), zero_table[i][j][k]);
            }
            printf(" |");
        }
        printf("\n");
    }
    printf("%d of 54 entries equal the paper's table as printed (rounded or truncated there)\n\n", ok);
}

static void activation_table(double s, double b, double h, double a, int t) {
    static const struct { const char *name; int t1, sp, rc; } rows[] = {
        {"no parallelism", 1, 0, EFF_RECOMPUTE_NONE},
        {"tensor parallel (TP)", 0, 0, EFF_RECOMPUTE_NONE},
        {"TP + sequence parallel (SP)", 0, 1, EFF_RECOMPUTE_NONE},
        {"TP + selective recompute", 0, 0, EFF_RECOMPUTE_SELECTIVE},
        {"TP + SP + selective recompute", 0, 1, EFF_RECOMPUTE_SELECTIVE},
        {"full recompute", 0, 0, EFF_RECOMPUTE_FULL},
    };
    static const char *formula[] = {"sbh(34 + 5as/h)", "sbh(10 + 24/t + 5as/(ht))", "sbh(34/t + 5as/(ht))", "sbh(10 + 24/t)",
                                    "34 sbh/t", "2 sbh"};
    size_t i;
    double base = eff_est_activation_bytes(s, b, h, a, 1, 0, 0);
    printf("Activations per layer and micro-batch (Korthikanti et al. 2022, Table 2), s=%.0f b=%.0f h=%.0f a=%.0f t=%d:\n", s, b, h, a, t);
    printf("  (GPT-3: 34 sbh = %.2f GB and 5 a s^2 b = %.2f GB per layer: the paper's 0.86 and 2.01)\n", gb(34 * s * b * h),
           gb(5 * a * s * s * b));
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double v = eff_est_activation_bytes(s, b, h, a, rows[i].t1 ? 1 : t, rows[i].sp, rows[i].rc);
        printf("  %-31s %-26s %8.3f GB  %5.1f%%\n", rows[i].name, formula[i], gb(v), 100.0 * v / base);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    eff_est_config c;
    eff_est_result r;
    const char *rc = arg(argc, argv, "--recompute", "selective");
    int z;
    if (flag(argc, argv, "--help")) {
        printf("usage: parallel_estimate [--params P] [--layers L] [--hidden h] [--heads a] [--seq s] [--batch b] [--vocab V]\n"
               "                         [--micro m] [--dp d] [--tp t] [--pp p] [--cp c] [--sp 0|1] [--zero 0..3]\n"
               "                         [--recompute none|selective|full] [--gpipe]\n");
        return 0;
    }
    memset(&c, 0, sizeof c);
    c.n_params = atof(arg(argc, argv, "--params", "0"));
    c.n_layers = atoll(arg(argc, argv, "--layers", "96"));
    c.hidden = atoll(arg(argc, argv, "--hidden", "12288"));
    c.heads = atoll(arg(argc, argv, "--heads", "96"));
    c.seq = atoll(arg(argc, argv, "--seq", "2048"));
    c.micro_batch = atoll(arg(argc, argv, "--batch", "1"));
    c.vocab = atoll(arg(argc, argv, "--vocab", "51200"));
    c.n_micro = atoll(arg(argc, argv, "--micro", "64"));
    c.dp = atoi(arg(argc, argv, "--dp", "8"));
    c.tp = atoi(arg(argc, argv, "--tp", "8"));
    c.pp = atoi(arg(argc, argv, "--pp", "8"));
    c.cp = atoi(arg(argc, argv, "--cp", "1"));
    c.sp = atoi(arg(argc, argv, "--sp", "1"));
    c.zero_stage = atoi(arg(argc, argv, "--zero", "1"));
    c.recompute = strcmp(rc, "full") == 0 ? EFF_RECOMPUTE_FULL : strcmp(rc, "none") == 0 ? EFF_RECOMPUTE_NONE : EFF_RECOMPUTE_SELECTIVE;
    c.gpipe = flag(argc, argv, "--gpipe");

    zero_table1();
    activation_table((double)c.seq, (double)c.micro_batch, (double)c.hidden, (double)c.heads, c.tp);

    if (eff_est_run(&c, &r) != EFF_OK) {
        fprintf(stderr, "invalid configuration (layers %% pp, seq %% cp and heads %% tp must be 0; degrees >= 1)\n");
        return 2;
    }
    printf("Per-rank budget: %.4g parameters, L=%lld h=%lld a=%lld s=%lld b=%lld, %lld micro-batches per step,\n"
           "  dp=%d x tp=%d x pp=%d x cp=%d = %lld ranks, SP %s, %s recompute, %s schedule (16-bit weights and activations, Adam):\n",
           r.n_params, (long long)c.n_layers, (long long)c.hidden, (long long)c.heads, (long long)c.seq, (long long)c.micro_batch,
           (long long)c.n_micro, c.dp, c.tp, c.pp, c.cp, (long long)c.dp * c.tp * c.pp * c.cp, c.sp ? "on" : "off",
           c.recompute == EFF_RECOMPUTE_FULL ? "full" : c.recompute == EFF_RECOMPUTE_NONE ? "no" : "selective", c.gpipe ? "GPipe" : "1F1B");
    printf("\n%6s | %8s %8s %8s %8s %8s | %9s %9s %9s %9s %9s\n", "", "params", "grads", "optim", "acts", "total", "sent: dp", "tp",
           "pp", "cp", "total");
    for (z = 0; z <= 3; z++) {
        eff_est_config cz = c;
        eff_est_result rz;
        cz.zero_stage = z;
        eff_est_run(&cz, &rz);
        printf("%5s%d | %8.2f %8.2f %8.2f %8.2f %8.2f | %9.2f %9.2f %9.2f %9.2f %9.2f%s\n", z ? "ZeRO-" : "DP  ", z, gb(rz.params),
               gb(rz.grads), gb(rz.optim), gb(rz.act), gb(rz.total), gb(rz.comm_dp), gb(rz.comm_tp), gb(rz.comm_pp), gb(rz.comm_cp),
               gb(rz.comm_total), z == c.zero_stage ? "  <- --zero" : "");
    }
    printf("(GB per rank; 'sent' = GB each rank sends per step with ring collectives: DP all-reduce 2(d-1)/d x 2 psi_local,\n"
           " ZeRO-1/2 reduce-scatter + all-gather (the same), ZeRO-3 adds an all-gather per micro-batch (1.5x DP at m = 1);\n"
           " TP 4 all-reduces of s b h per layer and micro-batch; PP one activation each way per micro-batch; activations\n"
           " per rank = %.3f GB per layer x %lld layers x %lld micro-batches in flight on stage 0)\n",
           gb(r.act_layer), (long long)(c.n_layers / c.pp), (long long)(c.gpipe ? c.n_micro : (c.n_micro < c.pp ? c.n_micro : c.pp)));
    return 0;
}
