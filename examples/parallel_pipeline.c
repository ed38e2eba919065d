/* parallel_pipeline.c - pipeline-parallel schedules side by side: GPipe, 1F1B,
   interleaved 1F1B and zero-bubble H1 on p = 4 stages with m = 8 micro-batches.
   Each row is a stage, each cell one time unit (F = forward, B = backward of the
   input gradient, W = weight gradient, "F3.1" = micro-batch 3 on chunk 1, "." =
   idle). The bubble (idle / compute) is printed next to its formula, and the
   peak number of micro-batches whose activations a stage holds. */
#define EFF_IMPLEMENTATION
#include "eff_parallel.h"
#include <stdio.h>

int main(void) {
    static const int kinds[4] = {EFF_PP_GPIPE, EFF_PP_1F1B, EFF_PP_INTERLEAVED, EFF_PP_ZB_H1};
    const int p = 4, m = 8;
    char text[8192];
    eff_ctx *ctx;
    int i;
    if (eff_ctx_create(NULL, &ctx) != EFF_OK) return 1;
    for (i = 0; i < 4; i++) {
        int v = kinds[i] == EFF_PP_INTERLEAVED ? 2 : 1;
        double formula = kinds[i] == EFF_PP_INTERLEAVED ? (p - 1.0) / (v * m)
                       : kinds[i] == EFF_PP_ZB_H1      ? (p - 1.0) / (3 * m)
                                                       : (p - 1.0) / m;
        eff_pp_schedule s;
        eff_status st = eff_pp_schedule_create(ctx, kinds[i], p, m, v, &s);
        if (st != EFF_OK) { printf("%s\n", eff_ctx_last_error(ctx)); return 1; }
        eff_pp_schedule_format(&s, text, sizeof text);
        printf("%s", text);
        printf("   bubble formula %s = %.4f\n\n",
               kinds[i] == EFF_PP_INTERLEAVED ? "(p-1)/(v*m)" : kinds[i] == EFF_PP_ZB_H1 ? "(p-1)/(3m)" : "(p-1)/m", formula);
        eff_pp_schedule_free(ctx, &s);
    }
    eff_ctx_destroy(ctx);
    return 0;
}
