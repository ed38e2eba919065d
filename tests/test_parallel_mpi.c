/* test_parallel_mpi.c - eff_parallel.h's MPI backend, run under `mpirun -np 2`
   and `-np 4 --oversubscribe` (make test-mpi): the collective, point to point and
   split checks of test_parallel.c, argument mismatch and timeout, and the same
   rank functions that test data parallel, ZeRO, tensor/sequence parallel, the
   pipeline executor, expert parallelism, ring attention and data-parallel training
   of the tiny model on the local backend, now one rank per MPI process.
   Every rank checks the merged results (so every rank's exit status agrees);
   only rank 0 prints. */
#define TEST_PARALLEL_NO_MAIN
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"   /* the local-only drivers */
#endif
#include "test_parallel.c"

/* a check passes when it passed on every process */
static void mpi_merge(tlog *L, const char *prefix) {
    int n = L->n, nmin = 0, nmax = 0, i;
    MPI_Allreduce(&n, &nmin, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&n, &nmax, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    EFF_CHECK(nmin == nmax, "%s: all ranks made the same number of checks (%d..%d)", prefix, nmin, nmax);
    MPI_Allreduce(MPI_IN_PLACE, L->ok, nmin, MPI_UNSIGNED_CHAR, MPI_MIN, MPI_COMM_WORLD);
    for (i = 0; i < nmin; i++) eff_test_report(L->ok[i], __FILE__, __LINE__, L->what[i]);
}
/* every rank's status is OK */
static int mpi_all_ok(eff_status s) {
    int v = s != EFF_OK, any = 0;
    MPI_Allreduce(&v, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return !any;
}

/* DP, ZeRO, TP and PP rank functions on the MPI communicator. */
static void mpi_training(eff_comm *world, eff_comm *self, tlog *L) {
    int R = eff_comm_size(world), r = eff_comm_rank(world), stage, di, sp, kind;
    /* data parallel: R ranks (x 2 micro-batches) == one rank on the full batch */
    {
        dp_arg *ref = (dp_arg *)calloc(1, sizeof *ref), *a = (dp_arg *)calloc(1, sizeof *a);
        int m;
        if (ref && a) {
            eff_status s;
            ref->m = 1; ref->steps = 5; ref->bucket_bytes = 256;
            s = dp_rank(self, ref);
            for (m = 1; m <= 2; m++) {
                double e;
                memset(a, 0, sizeof *a);
                a->m = m; a->steps = 5; a->bucket_bytes = 256;
                if (s == EFF_OK) s = dp_rank(world, a);
                e = eff_test_nmse_ff(a->params[r], ref->params[0], MLP_NP);
                tlog_check(L, mpi_all_ok(s) && e < 1e-12, "mpi n=%d dp x %d micro-batches == 1 rank full batch: nmse %.2g", R, m, e);
            }
        }
        free(ref); free(a);
    }
    /* ZeRO-1/2/3 == plain DP, bit for bit, f32 and bf16 */
    for (di = 0; di < 2; di++) {
        static float base[MLP_NP];
        for (stage = 0; stage <= 3; stage++) {
            zero_arg *a = (zero_arg *)calloc(1, sizeof *a);
            eff_status s;
            if (!a) return;
            a->stage = stage; a->dtype = di ? EFF_BF16 : EFF_F32; a->m = 1; a->steps = 4;
            s = zero_rank(world, a);
            if (stage == 0) memcpy(base, a->params[r], sizeof base);
            else tlog_check(L, mpi_all_ok(s) && memcmp(base, a->params[r], sizeof base) == 0,
                            "mpi n=%d zero-%d %s: parameters bitwise equal plain DP's", R, stage, eff_dtype_name(a->dtype));
            free(a);
        }
    }
    /* ZeRO checkpoint: save at stage 2 after 2 steps, resume at stage 3 */
    {
        zero_arg *a = (zero_arg *)calloc(1, sizeof *a), *b = (zero_arg *)calloc(1, sizeof *b);
        char prefix[256];
        long pid = (long)getpid();
        eff_status s1, s2;
        char path[300];
        if (!a || !b) { free(a); free(b); return; }
        MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
        snprintf(prefix, sizeof prefix, "/tmp/eff_test_parallel_mpi_%ld", pid);
        a->stage = 2; a->dtype = EFF_F32; a->m = 1; a->steps = 2; a->save_after = 2; a->save_prefix = prefix;
        s1 = zero_rank(world, a);
        b->stage = 3; b->dtype = EFF_F32; b->m = 1; b->steps = 2; b->load_prefix = prefix;
        s2 = zero_rank(world, b);
        tlog_check(L, mpi_all_ok(s1) && mpi_all_ok(s2) && b->st_load[r] == EFF_OK && memcmp(a->params[r], b->params[r], sizeof a->params[r]) == 0,
                   "mpi n=%d zero checkpoint: saved at stage 2, resumed at stage 3: identical parameters", R);
        snprintf(path, sizeof path, "%s.rank%d-of-%d", prefix, r, R);
        remove(path);
        free(a); free(b);
    }
    /* tensor + sequence parallel layers */
    for (sp = 0; sp < 2; sp++) {
        tp_arg *a = (tp_arg *)calloc(1, sizeof *a);
        if (!a) return;
        a->sp = sp;
        tp_rank(world, a);
        mpi_merge(&a->logs[r], "mpi tp");
        tlog_free(&a->logs[r]);
        free(a);
    }
    /* expert parallelism, with and without capacity drops */
    for (sp = 0; sp < 2; sp++) {
        ep_arg *a = (ep_arg *)calloc(1, sizeof *a);
        if (!a) return;
        a->cap = sp ? EP_T * EP_K : 1;
        ep_rank(world, a);
        mpi_merge(&a->logs[r], "mpi ep");
        tlog_free(&a->logs[r]);
        free(a);
    }
    /* data-parallel training of the tiny Llama, ZeRO 0-3 == one rank on the full batch */
    if (MD_B % R == 0) {
        float ref_loss[MD_STEPS], *ref = NULL;
        int64_t nref = 0;
        eff_status s0 = md_reference(ref_loss, &ref, &nref);
        for (stage = 0; stage <= 3 && s0 == EFF_OK; stage++) {
            md_arg *a = (md_arg *)calloc(1, sizeof *a);
            double worst = 1, e = 1;
            eff_status s;
            if (!a) break;
            a->zero = stage;
            s = md_rank(world, a);
            if (r == 0) md_compare(a, ref_loss, ref, nref, &worst, &e);
            MPI_Bcast(&worst, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            MPI_Bcast(&e, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            tlog_check(L, mpi_all_ok(s) && worst < 1e-5 && e < 1e-10,
                       "mpi n=%d dp model zero-%d: the loss curve (rel %.2g) and parameters (nmse %.2g) of one rank", R, stage, worst, e);
            tlog_free(&a->logs[r]);
            free(a->params);
            free(a);
        }
        free(ref);
    }
    /* ring and striped attention, one sequence block per process */
    for (sp = 0; sp < 4; sp++) {
        ra_ref ref;
        ra_arg *a = (ra_arg *)calloc(1, sizeof *a);
        if (!a) return;
        if (ra_reference(eff_comm_ctx(world), &ref, (int64_t)R * RA_TL, sp & 1) == EFF_OK) {
            a->ref = &ref; a->layout = sp >> 1; a->causal = sp & 1;
            ra_rank(world, a);
            mpi_merge(&a->logs[r], "mpi ring attention");
            tlog_free(&a->logs[r]);
        }
        ra_ref_free(&ref);
        free(a);
    }
    /* the pipeline executor, one stage per process */
    for (kind = 0; kind <= EFF_PP_ZB_H1; kind++) {
        pp_arg *a = (pp_arg *)calloc(1, sizeof *a);
        if (!a) return;
        a->kind = kind; a->m = 8; a->v = kind == EFF_PP_INTERLEAVED ? 2 : 1;
        a->users = (pp_user *)calloc((size_t)R, sizeof(pp_user));
        if (a->users) {
            pp_reference(a, R);
            pp_rank(world, a);
            mpi_merge(&a->logs[r], "mpi pp");
            tlog_free(&a->logs[r]);
        }
        free(a->users);
        free(a);
    }
}

int main(int argc, char **argv) {
    static const int64_t sizes[] = {0, 1, 7, 1001, 33333, (1 << 20) + 3};
    int rank = 0, size = 0;
    eff_ctx *ctx = NULL;
    eff_comm *world = NULL, *sub = NULL, *self = NULL;
    tlog L;
    coll_cfg cfg;
    eff_status s;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    EFF_TEST_BEGIN("test_parallel_mpi");
    printf("   %d MPI processes\n", size);
    memset(&L, 0, sizeof L);
    s = eff_ctx_create(NULL, &ctx);
    if (s == EFF_OK) s = eff_comm_mpi_create(ctx, MPI_COMM_WORLD, &world);
    EFF_CHECK(s == EFF_OK && eff_comm_size(world) == size && eff_comm_rank(world) == rank, "eff_comm_mpi_create (%s)",
              eff_status_str(s));
    if (s == EFF_OK) {
        cfg.sizes = sizes;
        cfg.n_sizes = quick_mode() ? 5 : 6;
        cfg.algo = 0;
        eff_comm_set_timeout(world, 60.0);
        s = check_collectives(world, &L, &cfg);
        if (s == EFF_OK) s = check_p2p(world, &L);
        if (s == EFF_OK) s = check_split(world, &L);
        tlog_check(&L, s == EFF_OK, "mpi n=%d: no communication error (%s: %s)", size, eff_status_str(s),
                   s ? eff_ctx_last_error(ctx) : "");
    }
    /* disagreeing ranks get EFF_ERR_SHAPE everywhere (on a duplicate: it breaks) */
    if (eff_comm_split(world, 0, rank, &sub) == EFF_OK) {
        float x[8] = {0};
        s = eff_comm_all_reduce(sub, x, rank == 1 ? 7 : 8, EFF_F32, EFF_RED_SUM);
        tlog_check(&L, s == EFF_ERR_SHAPE, "mpi n=%d: count mismatch gives shape error on every rank (%s)", size, eff_status_str(s));
        s = eff_comm_barrier(sub);
        tlog_check(&L, s == EFF_ERR_PEER, "mpi n=%d: the broken communicator refuses later calls (%s)", size, eff_status_str(s));
        eff_comm_destroy(sub);
        sub = NULL;
    }
    /* a recv nobody answers times out */
    if (eff_comm_split(world, 0, rank, &sub) == EFF_OK) {
        float x[4];
        double t0 = now_s();
        eff_comm_set_timeout(sub, 0.5);
        s = rank == 0 ? eff_comm_recv(sub, x, 4, EFF_F32, 1, 9) : EFF_ERR_TIMEOUT;
        tlog_check(&L, s == EFF_ERR_TIMEOUT && now_s() - t0 < 2.0, "mpi n=%d: unanswered recv times out (%s)", size,
                   eff_status_str(s));
        eff_comm_destroy(sub);
    }
    mpi_merge(&L, "mpi");
    tlog_free(&L);
    /* training: the local-backend rank functions on MPI */
    if (eff_comm_split(world, rank, 0, &self) == EFF_OK) {
        mpi_training(world, self, &L);
        mpi_merge(&L, "mpi training");
        tlog_free(&L);
        eff_comm_destroy(self);
    }
    eff_comm_destroy(world);
    eff_ctx_destroy(ctx);
    s = (eff_status)EFF_TEST_END();
    MPI_Finalize();
    return (int)s;
}
