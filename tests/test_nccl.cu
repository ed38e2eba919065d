/* test_nccl.cu - the NCCL backend (cuda/eff_nccl.cu) against the local backend:
   every collective x dtype x op x size on device buffers, the host-buffer staging
   path, point to point in a ring (sends before receives: the deferred, grouped
   sends), split, barrier, and a receive nobody answers, which must time out and
   abort instead of hanging. One rank thread per GPU, bootstrapped through the
   local communicator (eff_comm_nccl_create_over); the same collective on the
   local communicator over host copies is the reference. Inputs are small
   integers, so results compare bit for bit (AVG of floats within rounding: NCCL
   pre-multiplies by 1/n).

   Built with EFF_MPI (make cuda builds test_nccl_mpi_sm_*) and started under
   mpirun with more than one process, it bootstraps through MPI instead
   (eff_comm_nccl_create_mpi) and compares with the MPI backend, one GPU per
   process. Built by `make cuda`; skips with a message where no GPU exists. */
#ifndef EFF_CUDA
#define EFF_CUDA
#endif
#ifndef EFF_NCCL
#define EFF_NCCL
#endif
/* the implementation comes from a C object built by the Makefile (build/cuda/eff_impl.o) */
#include "eff_parallel.h"
#include "eff_test.h"

#include <cuda_runtime.h>
#include <stdarg.h>
#include <string>
#include <vector>

/* ---------------------------------------------------------------------------
   Per-rank check logs (the harness is not thread-safe): merged on the main thread
   --------------------------------------------------------------------------- */
struct rank_log {
    std::vector<int> ok;
    std::vector<std::string> what;
};
static void rcheck(rank_log *L, int ok, const char *fmt, ...) {
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    L->ok.push_back(ok != 0);
    L->what.push_back(buf);
}

static const int dtypes[4] = {EFF_F32, EFF_BF16, EFF_F16, EFF_I32};
static size_t esz(int dt) { return dt == EFF_F32 || dt == EFF_I32 ? 4 : 2; }
static int ival(int r, int64_t i, int k) { return (int)((i * 7 + r * 13 + k * 5 + (i >> 5)) % 17) - 8; }
static void put(void *b, int dt, int64_t i, double v) {
    if (dt == EFF_F32) ((float *)b)[i] = (float)v;
    else if (dt == EFF_I32) ((int32_t *)b)[i] = (int32_t)v;
    else if (dt == EFF_BF16) ((uint16_t *)b)[i] = eff_fp32_to_bf16((float)v);
    else ((uint16_t *)b)[i] = eff_fp32_to_fp16((float)v);
}
static double get(const void *b, int dt, int64_t i) {
    if (dt == EFF_F32) return ((const float *)b)[i];
    if (dt == EFF_I32) return ((const int32_t *)b)[i];
    if (dt == EFF_BF16) return eff_bf16_to_fp32(((const uint16_t *)b)[i]);
    return eff_fp16_to_fp32(((const uint16_t *)b)[i]);
}
static std::vector<char> filled(int dt, int r, int64_t n, int k) {
    std::vector<char> v((size_t)(n > 0 ? n : 1) * esz(dt));
    for (int64_t i = 0; i < n; i++) put(v.data(), dt, i, ival(r, i, k));
    return v;
}
/* Equal bit for bit, or within rounding for AVG of float dtypes. */
static int same(const std::vector<char> &a, const std::vector<char> &b, int dt, int64_t n, int avg) {
    double tol = dt == EFF_BF16 ? 1e-2 : dt == EFF_F16 ? 1e-3 : 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double x = get(a.data(), dt, i), y = get(b.data(), dt, i);
        if (avg && dt != EFF_I32) { if (fabs(x - y) > tol * (fabs(y) > 1 ? fabs(y) : 1)) return 0; }
        else if (x != y) return 0;
    }
    return 1;
}

/* A device buffer holding host data (freed by the destructor). */
struct dbuf {
    void *p;
    size_t nb;
    explicit dbuf(size_t bytes) : p(NULL), nb(bytes) { if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) p = NULL; }
    ~dbuf() { if (p) cudaFree(p); }
    void put(const std::vector<char> &h) { if (p && nb) cudaMemcpy(p, h.data(), nb, cudaMemcpyHostToDevice); }
    std::vector<char> get() const {
        std::vector<char> h(nb ? nb : 1);
        if (p && nb) cudaMemcpy(h.data(), p, nb, cudaMemcpyDeviceToHost);
        return h;
    }
};

static const char *dn(int dt) { return eff_dtype_name(dt); }

/* Every check, on communicator nc (NCCL) against ref (local or MPI), rank r of n. */
static void nccl_checks(eff_comm *ref, eff_comm *nc, rank_log *L) {
    static const int64_t sizes[] = {0, 1, 7, 1001, 65539, (4 << 20) + 1};
    const int n = eff_comm_size(ref), r = eff_comm_rank(ref);
    eff_status s, s2;
    for (int si = 0; si < 6; si++)
        for (int di = 0; di < 4; di++) {
            const int dt = dtypes[di];
            const int64_t cnt = sizes[si], small = cnt <= 65539;
            const size_t nb = (size_t)cnt * esz(dt);
            for (int op = 0; op < EFF_RED_COUNT; op++) {   /* all-reduce */
                std::vector<char> h = filled(dt, r, cnt, op), want = h;
                dbuf d(nb);
                d.put(h);
                s = eff_comm_all_reduce(ref, want.data(), cnt, dt, op);
                s2 = eff_comm_all_reduce(nc, d.p, cnt, dt, op);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && same(d.get(), want, dt, cnt, op == EFF_RED_AVG),
                       "nccl n=%d all_reduce %s op %d count %lld (%s)", n, dn(dt), op, (long long)cnt, eff_status_str(s2));
            }
            if (!small) continue;
            {   /* reduce-scatter (sum), all-gather, broadcast (root n-1), reduce (max to root 0), all-to-all */
                std::vector<char> h = filled(dt, r, cnt * n, 11), want((size_t)(cnt > 0 ? cnt : 1) * esz(dt));
                dbuf ds(nb * (size_t)n), dr(nb);
                ds.put(h);
                s = eff_comm_reduce_scatter(ref, h.data(), want.data(), cnt, dt, EFF_RED_SUM);
                s2 = eff_comm_reduce_scatter(nc, ds.p, dr.p, cnt, dt, EFF_RED_SUM);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && same(dr.get(), want, dt, cnt, 0), "nccl n=%d reduce_scatter %s count %lld (%s)", n,
                       dn(dt), (long long)cnt, eff_status_str(s2));
            }
            {
                std::vector<char> h = filled(dt, r, cnt, 12), want((size_t)(cnt * n > 0 ? cnt * n : 1) * esz(dt));
                dbuf ds(nb), dr(nb * (size_t)n);
                ds.put(h);
                s = eff_comm_all_gather(ref, h.data(), want.data(), cnt, dt);
                s2 = eff_comm_all_gather(nc, ds.p, dr.p, cnt, dt);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && same(dr.get(), want, dt, cnt * n, 0), "nccl n=%d all_gather %s count %lld (%s)", n,
                       dn(dt), (long long)cnt, eff_status_str(s2));
            }
            {
                std::vector<char> h = filled(dt, r, cnt, 13), want = h;
                dbuf d(nb);
                d.put(h);
                s = eff_comm_broadcast(ref, want.data(), cnt, dt, n - 1);
                s2 = eff_comm_broadcast(nc, d.p, cnt, dt, n - 1);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && same(d.get(), want, dt, cnt, 0), "nccl n=%d broadcast %s count %lld (%s)", n, dn(dt),
                       (long long)cnt, eff_status_str(s2));
            }
            {
                std::vector<char> h = filled(dt, r, cnt, 14), want = h;
                dbuf ds(nb), dr(nb);
                ds.put(h);
                s = eff_comm_reduce(ref, h.data(), want.data(), cnt, dt, EFF_RED_MAX, 0);
                s2 = eff_comm_reduce(nc, ds.p, dr.p, cnt, dt, EFF_RED_MAX, 0);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && (r != 0 || same(dr.get(), want, dt, cnt, 0)), "nccl n=%d reduce %s count %lld (%s)", n,
                       dn(dt), (long long)cnt, eff_status_str(s2));
            }
            {
                std::vector<char> h = filled(dt, r, cnt * n, 15), want((size_t)(cnt * n > 0 ? cnt * n : 1) * esz(dt));
                dbuf ds(nb * (size_t)n), dr(nb * (size_t)n);
                ds.put(h);
                s = eff_comm_all_to_all(ref, h.data(), want.data(), cnt, dt);
                s2 = eff_comm_all_to_all(nc, ds.p, dr.p, cnt, dt);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                rcheck(L, s == EFF_OK && s2 == EFF_OK && same(dr.get(), want, dt, cnt * n, 0), "nccl n=%d all_to_all %s count %lld (%s)", n,
                       dn(dt), (long long)cnt, eff_status_str(s2));
            }
        }
    {   /* host buffers go through the staging path and are complete on return */
        const int64_t cnt = 1001;
        std::vector<char> h = filled(EFF_F32, r, cnt, 21), want = h, g((size_t)(cnt * n) * 4), gwant = g;
        s = eff_comm_all_reduce(ref, want.data(), cnt, EFF_F32, EFF_RED_SUM);
        s2 = eff_comm_all_reduce(nc, h.data(), cnt, EFF_F32, EFF_RED_SUM);
        rcheck(L, s == EFF_OK && s2 == EFF_OK && same(h, want, EFF_F32, cnt, 0), "nccl n=%d all_reduce of a host buffer (%s)", n, eff_status_str(s2));
        h = filled(EFF_F32, r, cnt, 22);
        s = eff_comm_all_gather(ref, h.data(), gwant.data(), cnt, EFF_F32);
        s2 = eff_comm_all_gather(nc, h.data(), g.data(), cnt, EFF_F32);
        rcheck(L, s == EFF_OK && s2 == EFF_OK && same(g, gwant, EFF_F32, cnt * n, 0), "nccl n=%d all_gather of host buffers (%s)", n, eff_status_str(s2));
    }
    if (n > 1) {   /* sendrecv: three ring shifts (one NCCL group each) */
        const int64_t cnt = 4099;
        int ok = 1;
        s2 = EFF_OK;
        for (int k = 0; k < 3 && s2 == EFF_OK; k++) {
            dbuf ds(cnt * 4), dr(cnt * 4);
            ds.put(filled(EFF_F32, r, cnt, 30 + k));
            s2 = eff_comm_sendrecv(nc, ds.p, cnt, (r + 1) % n, dr.p, cnt, (r + n - 1) % n, EFF_F32, 7);
            if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
            if (s2 == EFF_OK && !same(dr.get(), filled(EFF_F32, (r + n - 1) % n, cnt, 30 + k), EFF_F32, cnt, 0)) ok = 0;
        }
        rcheck(L, s2 == EFF_OK && ok, "nccl n=%d sendrecv ring shifts (%s)", n, eff_status_str(s2));
    }
    if (n > 1) {   /* plain send/recv along a chain 0 -> 1 -> ... : three messages sent before the first recv */
        const int64_t cnt = 517;
        int ok = 1;
        s2 = EFF_OK;
        std::vector<std::vector<char> > got;
        if (r > 0)
            for (int k = 0; k < 3 && s2 == EFF_OK; k++) {
                dbuf d(cnt * 4);
                s2 = eff_comm_recv(nc, d.p, cnt, EFF_F32, r - 1, 3);
                if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);
                got.push_back(d.get());
                if (s2 == EFF_OK && !same(got.back(), filled(EFF_F32, 0, cnt, 50 + k), EFF_F32, cnt, 0)) ok = 0;
            }
        if (r < n - 1)
            for (int k = 0; k < 3 && s2 == EFF_OK; k++) {
                dbuf d(cnt * 4);
                d.put(r == 0 ? filled(EFF_F32, 0, cnt, 50 + k) : got[(size_t)k]);
                s2 = eff_comm_send(nc, d.p, cnt, EFF_F32, r + 1, 3);   /* eager: d may go at once */
            }
        if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(nc);   /* issues the last rank's pending sends */
        rcheck(L, s2 == EFF_OK && ok, "nccl n=%d send/recv chain of 3 messages, in order (%s)", n, eff_status_str(s2));
    }
    {   /* split into even and odd ranks */
        eff_comm *sub = NULL, *rsub = NULL;
        s = eff_comm_split(ref, r % 2, r, &rsub);
        s2 = eff_comm_split(nc, r % 2, r, &sub);
        rcheck(L, s == EFF_OK && s2 == EFF_OK && sub && eff_comm_rank(sub) == eff_comm_rank(rsub) && eff_comm_size(sub) == eff_comm_size(rsub),
               "nccl n=%d split by parity: rank %d of %d (%s)", n, eff_comm_rank(sub), eff_comm_size(sub), eff_status_str(s2));
        if (sub && rsub) {
            std::vector<char> h = filled(EFF_F32, r, 333, 40), want = h;
            dbuf d(333 * 4);
            d.put(h);
            s = eff_comm_all_reduce(rsub, want.data(), 333, EFF_F32, EFF_RED_SUM);
            s2 = eff_comm_all_reduce(sub, d.p, 333, EFF_F32, EFF_RED_SUM);
            if (s2 == EFF_OK) s2 = eff_comm_nccl_synchronize(sub);
            rcheck(L, s == EFF_OK && s2 == EFF_OK && same(d.get(), want, EFF_F32, 333, 0), "nccl n=%d all_reduce on the sub-communicator (%s)", n,
                   eff_status_str(s2));
        }
        eff_comm_destroy(sub);
        eff_comm_destroy(rsub);
    }
    s2 = eff_comm_barrier(nc);
    rcheck(L, s2 == EFF_OK, "nccl n=%d barrier (%s)", n, eff_status_str(s2));
    if (n > 1) {   /* a receive nobody answers: timeout and abort, never a hang (on a duplicate, which breaks) */
        eff_comm *dup = NULL;
        s2 = eff_comm_split(nc, 0, r, &dup);
        if (s2 == EFF_OK && dup) {
            float x[4];
            eff_comm_set_timeout(dup, 1.0);
            s2 = r == 0 ? eff_comm_recv(dup, x, 4, EFF_F32, 1, 9) : EFF_ERR_TIMEOUT;
            rcheck(L, s2 == EFF_ERR_TIMEOUT, "nccl n=%d: an unanswered recv times out (%s)", n, eff_status_str(s2));
            if (r == 0) rcheck(L, eff_comm_barrier(dup) == EFF_ERR_PEER, "nccl n=%d: the aborted communicator refuses later calls", n);
            else rcheck(L, 1, "nccl n=%d: the aborted communicator refuses later calls", n);
        }
        eff_comm_destroy(dup);
    }
}

/* Check i passes when it passed on every rank. */
static void merge(rank_log *logs, int n) {
    size_t len = logs[0].ok.size();
    for (int r = 1; r < n; r++)
        if (logs[r].ok.size() != len) {
            EFF_CHECK(0, "rank %d made %zu checks, rank 0 made %zu", r, logs[r].ok.size(), len);
            if (logs[r].ok.size() < len) len = logs[r].ok.size();
        }
    for (size_t i = 0; i < len; i++) {
        int ok = 1;
        for (int r = 0; r < n; r++) ok &= logs[r].ok[i];
        eff_test_report(ok, __FILE__, __LINE__, logs[0].what[i].c_str());
    }
}

struct local_arg {
    rank_log logs[8];
};
static eff_status local_rank(eff_comm *c, void *p) {
    local_arg *a = (local_arg *)p;
    rank_log *L = &a->logs[eff_comm_rank(c)];
    eff_comm_nccl_opts o;
    eff_comm *nc = NULL;
    eff_status s;
    memset(&o, 0, sizeof o);
    o.has_device = 1;
    o.device = eff_comm_rank(c);
    o.timeout = 120.0;
    s = eff_comm_nccl_create_over(c, &o, &nc);
    rcheck(L, s == EFF_OK, "nccl n=%d: communicator bootstrapped through the local backend (%s: %s)", eff_comm_size(c), eff_status_str(s),
           s ? eff_ctx_last_error(eff_comm_ctx(c)) : "");
    if (s == EFF_OK) nccl_checks(c, nc, L);
    eff_comm_destroy(nc);
    return s;
}

#ifdef EFF_MPI
/* One process per GPU under mpirun: NCCL through MPI, compared with the MPI backend. */
static int run_mpi(int size) {
    eff_ctx *ctx = NULL;
    eff_comm *world = NULL, *nc = NULL;
    rank_log L;
    eff_comm_nccl_opts o;
    int ndev = 0, rank = 0;
    eff_status s;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    printf("   %d MPI processes\n", size);
    memset(&o, 0, sizeof o);
    o.timeout = 120.0;
    s = eff_ctx_create(NULL, &ctx);
    if (s == EFF_OK) s = eff_comm_mpi_create(ctx, MPI_COMM_WORLD, &world);
    if (s == EFF_OK && (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)) s = EFF_ERR_DEVICE;
    if (s == EFF_OK) s = eff_comm_nccl_create_mpi(ctx, MPI_COMM_WORLD, &o, &nc);
    rcheck(&L, s == EFF_OK, "nccl over mpi n=%d: communicator (%s)", size, eff_status_str(s));
    if (s == EFF_OK) nccl_checks(world, nc, &L);
    {
        int cnt = (int)L.ok.size(), lo = 0;
        MPI_Allreduce(&cnt, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        for (int i = 0; i < lo; i++) {
            int ok = L.ok[(size_t)i], all = 0;
            MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            eff_test_report(all, __FILE__, __LINE__, L.what[(size_t)i].c_str());
        }
    }
    eff_comm_destroy(nc);
    eff_comm_destroy(world);
    eff_ctx_destroy(ctx);
    return rank;
}
#endif

int main(int argc, char **argv) {
    int ndev = 0, n;
    cudaError_t e;
    (void)argc; (void)argv;
#ifdef EFF_MPI
    int size = 1, rank = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
#endif
    EFF_TEST_BEGIN("test_nccl");
    e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        printf("skipped: no CUDA device here (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
#ifdef EFF_MPI
        MPI_Finalize();
#endif
        return EFF_TEST_END();
    }
#ifdef EFF_MPI
    if (size > 1) {
        run_mpi(size);
        n = EFF_TEST_END();
        MPI_Finalize();
        return n;
    }
#endif
    n = ndev < 8 ? ndev : 8;
    printf("   %d GPU rank threads\n", n);
    {
        local_arg *a = new local_arg;
        eff_comm_local_opts lo;
        memset(&lo, 0, sizeof lo);
        lo.timeout = 300.0;
        eff_status s = eff_comm_local_run_opts(n, local_rank, a, &lo);
        EFF_CHECK(s == EFF_OK, "local run of %d NCCL ranks (%s)", n, eff_status_str(s));
        merge(a->logs, n);
        delete a;
    }
    n = EFF_TEST_END();
#ifdef EFF_MPI
    MPI_Finalize();
#endif
    return n;
}
