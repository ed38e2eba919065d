/* cuda/eff_nccl.cu - the NCCL backend of eff_parallel.h's communicator.

   Compiled only with EFF_NCCL (nvcc -DEFF_NCCL -c cuda/eff_nccl.cu; link -lnccl).
   With EFF_MPI as well (and mpi.h on the include path) it also defines
   eff_comm_nccl_create_mpi. One rank per GPU; every algorithm of eff_parallel.h
   runs on it through the eff_comm_backend table, like the local and MPI backends.

   How the NCCL documentation's rules are met:
     - Bootstrap: ncclGetUniqueId on one rank, the 128 bytes distributed through MPI,
       a file or another eff_comm, then ncclCommInitRankConfig.
     - No hang on a dead peer: communicators are non-blocking (config.blocking = 0),
       so init, split, group ends and collectives return ncclInProgress instead of
       blocking; every wait polls ncclCommGetAsyncError (and cudaStreamQuery for
       completion) against the communicator's timeout and calls ncclCommAbort when
       it runs out or an asynchronous error appears. ncclCommDestroy is used only
       after ncclCommFinalize on a healthy communicator, abort otherwise.
     - Stream order: device buffers are used in place on the communicator's stream
       and the call returns once enqueued (eff_comm_nccl_synchronize waits); host
       buffers are staged through device memory and waited for, so callers that
       read the result on the CPU see it when the call returns.
     - Point to point: an NCCL send blocks the GPU until the peer receives, and a
       group completes only as a whole. eff_comm_sendrecv (ring shifts, exchanges:
       ring attention uses it) is one group of the send and the receive. A plain
       send is eager (the data is copied in stream order into a buffer from
       cudaMallocAsync) and issued later: all pending sends go in one group with
       this rank's next receive (pipelines: warm-up sends reach the next stage
       before this stage waits for its first gradient), or before its next
       collective, synchronize or destroy. So a peer must receive before its own
       next collective, and a ring of plain sends with more than one message in
       flight would deadlock: use sendrecv. Messages match in order per peer (NCCL
       has no tags).
   Every kernel-free operation here goes through the NCCL or CUDA runtime API; there
   is no <<< >>> launch in this file. */
#ifdef EFF_NCCL

#include "eff_parallel.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <thread>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 18, 0)
#error "eff_nccl.cu needs NCCL >= 2.18 (non-blocking communicators, ncclCommSplit, bf16, ncclAvg)"
#endif

extern "C" {

/* ---------------------------------------------------------------------------
   State
   --------------------------------------------------------------------------- */
typedef struct eff__nsend {     /* an eager send waiting for the next group */
    void *buf;                  /* cudaMallocAsync'd copy, freed in stream order after the send */
    size_t count;
    ncclDataType_t dt;
    int peer;
} eff__nsend;

typedef struct eff__nccl {
    ncclComm_t comm;            /* NULL once aborted or destroyed */
    cudaStream_t stream;
    int own_stream;
    int device;
    int blocking, check;
    eff__nsend *pending;
    int n_pending, cap_pending;
    void *scratch;              /* device staging for host buffers (stream-ordered allocation) */
    size_t scratch_bytes;
} eff__nccl;

typedef std::chrono::steady_clock eff__nclock;
static double eff__nsince(eff__nclock::time_point t0) {
    return std::chrono::duration<double>(eff__nclock::now() - t0).count();
}
/* Polling: spin a little, then yield, then sleep 50 us per round. */
static void eff__npause(int it) {
    if (it < 64) return;
    if (it < 1024) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
}

static eff__nccl *eff__nimpl(const eff_comm *c) { return (eff__nccl *)eff_comm_impl(c); }
static const char *const eff__nccl_name = "nccl";
static int eff__is_nccl(const eff_comm *c) { return c && eff_comm_backend_name(c) == eff__nccl_name; }

static ncclDataType_t eff__ntype(int dt) {
    if (dt == EFF_F32) return ncclFloat32;
    if (dt == EFF_BF16) return ncclBfloat16;
    if (dt == EFF_F16) return ncclFloat16;
    return ncclInt32;
}
static ncclRedOp_t eff__nop(int op) {
    if (op == EFF_RED_AVG) return ncclAvg;
    if (op == EFF_RED_MAX) return ncclMax;
    if (op == EFF_RED_MIN) return ncclMin;
    return ncclSum;
}
static size_t eff__nesize(int dt) { return dt == EFF_F32 || dt == EFF_I32 ? 4 : 2; }

/* ---------------------------------------------------------------------------
   Errors, aborts and waits
   --------------------------------------------------------------------------- */
static void eff__nabort(eff__nccl *n) {
    if (n && n->comm) { ncclCommAbort(n->comm); n->comm = NULL; }
}

static eff_status eff__ncuda(eff_ctx *ctx, cudaError_t e, const char *fn, const char *what) {
    if (e == cudaSuccess) return EFF_OK;
    return eff_ctx_error(ctx, EFF_ERR_DEVICE, "%s: %s: %s", fn, what, cudaGetErrorString(e));
}

/* An NCCL result as an eff_status (with NCCL's last error text). */
static eff_status eff__nres(eff_ctx *ctx, ncclComm_t comm, ncclResult_t r, const char *fn, int rank) {
    const char *detail = comm ? ncclGetLastError(comm) : "";
    eff_status s;
    if (r == ncclSuccess) return EFF_OK;
    switch (r) {
    case ncclInvalidArgument: case ncclInvalidUsage: s = EFF_ERR_INVALID_ARG; break;
    case ncclRemoteError: s = EFF_ERR_PEER; break;
    case ncclUnhandledCudaError: s = EFF_ERR_DEVICE; break;
    default: s = EFF_ERR_PEER; break;
    }
    return eff_ctx_error(ctx, s, "%s: rank %d: NCCL error: %s%s%s", fn, rank, ncclGetErrorString(r), detail && detail[0] ? ": " : "",
                         detail ? detail : "");
}

/* A non-blocking call returned r: wait (up to timeout) until the communicator is no
   longer in progress; abort it on error or timeout. */
static eff_status eff__nsettle_raw(eff_ctx *ctx, ncclComm_t *comm, ncclResult_t r, double timeout, const char *fn, int rank) {
    eff__nclock::time_point t0 = eff__nclock::now();
    int it = 0;
    while (r == ncclInProgress && *comm) {
        ncclResult_t a = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(*comm, &a);
        if (q != ncclSuccess) { r = q; break; }
        r = a;
        if (r != ncclInProgress) break;
        if (eff__nsince(t0) > timeout) {
            ncclCommAbort(*comm);
            *comm = NULL;
            return eff_ctx_error(ctx, EFF_ERR_TIMEOUT, "%s: rank %d: NCCL still in progress after %.3g s (timeout; communicator aborted)", fn,
                                 rank, eff__nsince(t0));
        }
        eff__npause(it++);
    }
    if (r != ncclSuccess && *comm) {
        eff_status s = eff__nres(ctx, *comm, r, fn, rank);
        ncclCommAbort(*comm);
        *comm = NULL;
        return s;
    }
    return r == ncclSuccess ? EFF_OK : eff__nres(ctx, NULL, r, fn, rank);
}
static eff_status eff__nsettle(eff_comm *c, ncclResult_t r, const char *fn) {
    return eff__nsettle_raw(eff_comm_ctx(c), &eff__nimpl(c)->comm, r, eff_comm_timeout(c), fn, eff_comm_rank(c));
}

/* Waits until the stream has run everything enqueued, polling NCCL's asynchronous error;
   a timeout or an error aborts the communicator (which ends its kernels). */
static eff_status eff__nwait(eff_comm *c, const char *fn) {
    eff__nccl *n = eff__nimpl(c);
    eff_ctx *ctx = eff_comm_ctx(c);
    eff__nclock::time_point t0 = eff__nclock::now();
    int it = 0;
    for (;;) {
        cudaError_t q = cudaStreamQuery(n->stream);
        ncclResult_t a = ncclSuccess;
        if (q == cudaSuccess) return EFF_OK;
        if (q != cudaErrorNotReady) { eff__nabort(n); return eff__ncuda(ctx, q, fn, "cudaStreamQuery"); }
        if (n->comm && ncclCommGetAsyncError(n->comm, &a) == ncclSuccess && a != ncclSuccess && a != ncclInProgress) {
            eff_status s = eff__nres(ctx, n->comm, a, fn, eff_comm_rank(c));
            eff__nabort(n);
            return s;
        }
        if (eff__nsince(t0) > eff_comm_timeout(c)) {
            eff__nabort(n);
            return eff_ctx_error(ctx, EFF_ERR_TIMEOUT, "%s: rank %d waited %.3g s for the GPU (timeout; communicator aborted)", fn,
                                 eff_comm_rank(c), eff__nsince(t0));
        }
        eff__npause(it++);
    }
}

static int eff__non_device(const void *p) {
    cudaPointerAttributes a;
    if (!p) return 1;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) { cudaGetLastError(); return 0; }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* Device staging of at least `bytes` (stream-ordered: no device-wide synchronization). */
static eff_status eff__nscratch(eff_comm *c, size_t bytes, char **out) {
    eff__nccl *n = eff__nimpl(c);
    if (bytes > n->scratch_bytes) {
        size_t want = bytes < 4096 ? 4096 : bytes;
        if (n->scratch) cudaFreeAsync(n->scratch, n->stream);
        n->scratch = NULL;
        n->scratch_bytes = 0;
        cudaError_t e = cudaMallocAsync(&n->scratch, want, n->stream);
        if (e != cudaSuccess) { n->scratch = NULL; return eff__ncuda(eff_comm_ctx(c), e, "eff_comm (nccl)", "cudaMallocAsync"); }
        n->scratch_bytes = want;
    }
    *out = (char *)n->scratch;
    return EFF_OK;
}
static eff_status eff__ncopy_async(eff_comm *c, void *dst, const void *src, size_t nb, const char *fn) {
    if (nb == 0 || dst == src) return EFF_OK;
    return eff__ncuda(eff_comm_ctx(c), cudaMemcpyAsync(dst, src, nb, cudaMemcpyDefault, eff__nimpl(c)->stream), fn, "cudaMemcpyAsync");
}

/* Issues the pending sends, plus one send and one receive when given (count > 0), as
   one group: NCCL runs them concurrently, so a ring shift cannot deadlock. */
static eff_status eff__ngroup(eff_comm *c, const char *fn, const void *sbuf, size_t scount, int speer, void *rbuf, size_t rcount,
                              int rpeer, ncclDataType_t dt) {
    eff__nccl *n = eff__nimpl(c);
    ncclResult_t r = ncclSuccess, first = ncclSuccess;
    eff_status s;
    int i;
    if (n->n_pending == 0 && scount == 0 && rcount == 0) return EFF_OK;
    r = ncclGroupStart();
    if (r != ncclSuccess) return eff__nres(eff_comm_ctx(c), n->comm, r, fn, eff_comm_rank(c));
    for (i = 0; i < n->n_pending; i++) {
        r = ncclSend(n->pending[i].buf, n->pending[i].count, n->pending[i].dt, n->pending[i].peer, n->comm, n->stream);
        if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
    }
    if (scount > 0) {
        r = ncclSend(sbuf, scount, dt, speer, n->comm, n->stream);
        if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
    }
    if (rcount > 0) {
        r = ncclRecv(rbuf, rcount, dt, rpeer, n->comm, n->stream);
        if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
    }
    r = ncclGroupEnd();
    s = eff__nsettle(c, first != ncclSuccess ? first : r, fn);
    for (i = 0; i < n->n_pending; i++) cudaFreeAsync(n->pending[i].buf, n->stream);   /* after the sends, in stream order */
    n->n_pending = 0;
    return s;
}
static eff_status eff__nflush(eff_comm *c, const char *fn) { return eff__ngroup(c, fn, NULL, 0, 0, NULL, 0, 0, ncclFloat32); }

/* Every call: the right device, a live communicator, pending sends out before a
   collective, and (check_calls) the agreement of every rank on the call. */
static eff_status eff__nbegin(eff_comm *c, const char *fn, int kind, int64_t count, int dtype, int op, int root) {
    eff__nccl *n = eff__nimpl(c);
    eff_ctx *ctx = eff_comm_ctx(c);
    char *d;
    int64_t v[10], w[10];
    int i;
    eff_status s;
    if (!n || !n->comm)
        return eff_ctx_error(ctx, EFF_ERR_PEER, "%s: rank %d: the NCCL communicator was aborted", fn, eff_comm_rank(c));
    s = eff__ncuda(ctx, cudaSetDevice(n->device), fn, "cudaSetDevice");
    if (s != EFF_OK || kind == 0) return s;   /* point to point: no flush, no agreement */
    s = eff__nflush(c, fn);
    if (s != EFF_OK || !n->check) return s;
    /* the stream is idle before the pageable copy of the signature (no wait without a timeout) */
    v[0] = kind; v[1] = count; v[2] = dtype; v[3] = op; v[4] = root;
    for (i = 0; i < 5; i++) v[5 + i] = -v[i];
    s = eff__nwait(c, fn);
    if (s == EFF_OK) s = eff__nscratch(c, sizeof v, &d);
    if (s == EFF_OK) s = eff__ncopy_async(c, d, v, sizeof v, fn);
    if (s == EFF_OK) s = eff__nsettle(c, ncclAllReduce(d, d, 10, ncclInt64, ncclMax, n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nwait(c, fn);
    if (s == EFF_OK) s = eff__ncopy_async(c, w, d, sizeof w, fn);
    if (s == EFF_OK) s = eff__nwait(c, fn);
    if (s != EFF_OK) return s;
    for (i = 0; i < 5; i++)
        if (w[i] != -w[5 + i])
            return eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: ranks disagree on the call (rank %d: kind %d, count %lld, %s, op %d, root %d)", fn,
                                 eff_comm_rank(c), kind, (long long)count, eff_dtype_name(dtype), op, root);
    return EFF_OK;
}
/* After an operation on device buffers: wait only in blocking mode. */
static eff_status eff__nend(eff_comm *c, const char *fn, int staged) {
    return staged || eff__nimpl(c)->blocking ? eff__nwait(c, fn) : EFF_OK;
}

/* ---------------------------------------------------------------------------
   Staging of host buffers: a device pointer is used as it is; a host one is copied
   into the scratch at offset off (input) or only gets a place there (output).
   --------------------------------------------------------------------------- */
typedef struct eff__nstage {
    char *base;                 /* scratch */
    int staged;                 /* some buffer is on the host: wait for the stream first and at the end */
} eff__nstage;

static eff_status eff__nstage_begin(eff_comm *c, const char *fn, eff__nstage *st, int any_host, size_t bytes) {
    st->base = NULL;
    st->staged = any_host;
    if (!any_host) return EFF_OK;
    /* the stream must be idle before pageable copies, which would otherwise wait for it without a timeout */
    eff_status s = eff__nwait(c, fn);
    if (s == EFF_OK) s = eff__nscratch(c, bytes, &st->base);
    return s;
}

/* ---------------------------------------------------------------------------
   Collectives
   --------------------------------------------------------------------------- */
static eff_status eff__nbarrier(eff_comm *c) {
    const char *fn = "eff_comm_barrier";
    eff__nccl *n = eff__nimpl(c);
    char *d;
    eff_status s = eff__nbegin(c, fn, 1, 0, EFF_F32, 0, 0);
    if (s == EFF_OK) s = eff__nscratch(c, 4, &d);
    if (s == EFF_OK) s = eff__ncuda(eff_comm_ctx(c), cudaMemsetAsync(d, 0, 4, n->stream), fn, "cudaMemsetAsync");
    if (s == EFF_OK) s = eff__nsettle(c, ncclAllReduce(d, d, 1, ncclFloat32, ncclSum, n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__nbroadcast(eff_comm *c, void *buf, int64_t count, int dtype, int root) {
    const char *fn = "eff_comm_broadcast";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)count * eff__nesize(dtype);
    int dev = eff__non_device(buf);
    eff__nstage st;
    void *d = buf;
    eff_status s = eff__nbegin(c, fn, 2, count, dtype, 0, root);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !dev, nb);
    if (s != EFF_OK) return s;
    if (!dev) { d = st.base; if (eff_comm_rank(c) == root) s = eff__ncopy_async(c, d, buf, nb, fn); }
    if (s == EFF_OK) s = eff__nsettle(c, ncclBroadcast(d, d, (size_t)count, eff__ntype(dtype), root, n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !dev && eff_comm_rank(c) != root) s = eff__ncopy_async(c, buf, d, nb, fn);
    if (s == EFF_OK && !dev) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__nreduce(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root) {
    const char *fn = "eff_comm_reduce";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)count * eff__nesize(dtype), off = (nb + 255) / 256 * 256;
    int is_root = eff_comm_rank(c) == root, sdev = eff__non_device(send), rdev = !is_root || eff__non_device(recv);
    eff__nstage st;
    const void *ds = send;
    void *dr = is_root ? recv : NULL;
    eff_status s = eff__nbegin(c, fn, 3, count, dtype, op, root);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !sdev || !rdev, 2 * off);
    if (s != EFF_OK) return s;
    if (!sdev) { ds = st.base; s = eff__ncopy_async(c, st.base, send, nb, fn); }
    if (!rdev) dr = send == recv ? (void *)ds : (void *)(st.base + off);
    if (s == EFF_OK) s = eff__nsettle(c, ncclReduce(ds, dr, (size_t)count, eff__ntype(dtype), eff__nop(op), root, n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !rdev) s = eff__ncopy_async(c, recv, dr, nb, fn);
    if (s == EFF_OK && !rdev) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__nall_reduce(eff_comm *c, void *buf, int64_t count, int dtype, int op) {
    const char *fn = "eff_comm_all_reduce";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)count * eff__nesize(dtype);
    int dev = eff__non_device(buf);
    eff__nstage st;
    void *d = buf;
    eff_status s = eff__nbegin(c, fn, 4, count, dtype, op, 0);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !dev, nb);
    if (s != EFF_OK) return s;
    if (!dev) { d = st.base; s = eff__ncopy_async(c, d, buf, nb, fn); }
    if (s == EFF_OK) s = eff__nsettle(c, ncclAllReduce(d, d, (size_t)count, eff__ntype(dtype), eff__nop(op), n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !dev) s = eff__ncopy_async(c, buf, d, nb, fn);
    if (s == EFF_OK && !dev) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__nreduce_scatter(eff_comm *c, const void *send, void *recv, int64_t rc, int dtype, int op) {
    const char *fn = "eff_comm_reduce_scatter";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)rc * eff__nesize(dtype), total = nb * (size_t)eff_comm_size(c), off = (total + 255) / 256 * 256;
    int inplace = (const char *)recv == (const char *)send + (size_t)eff_comm_rank(c) * nb;
    int sdev = eff__non_device(send), rdev = eff__non_device(recv);
    eff__nstage st;
    const void *ds = send;
    void *dr = recv;
    eff_status s = eff__nbegin(c, fn, 5, rc, dtype, op, 0);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !sdev || !rdev, off + nb);
    if (s != EFF_OK) return s;
    if (!sdev) { ds = st.base; s = eff__ncopy_async(c, st.base, send, total, fn); }
    if (!rdev) dr = inplace ? (char *)ds + (size_t)eff_comm_rank(c) * nb : st.base + off;
    if (s == EFF_OK) s = eff__nsettle(c, ncclReduceScatter(ds, dr, (size_t)rc, eff__ntype(dtype), eff__nop(op), n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !rdev) s = eff__ncopy_async(c, recv, dr, nb, fn);
    if (s == EFF_OK && !rdev) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__nall_gather(eff_comm *c, const void *send, void *recv, int64_t sc, int dtype) {
    const char *fn = "eff_comm_all_gather";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)sc * eff__nesize(dtype), total = nb * (size_t)eff_comm_size(c), off = (total + 255) / 256 * 256;
    int inplace = (const char *)send == (const char *)recv + (size_t)eff_comm_rank(c) * nb;
    int sdev = eff__non_device(send), rdev = eff__non_device(recv);
    eff__nstage st;
    const void *ds = send;
    void *dr = recv;
    eff_status s = eff__nbegin(c, fn, 6, sc, dtype, 0, 0);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !sdev || !rdev, off + nb);
    if (s != EFF_OK) return s;
    if (!rdev) dr = st.base;
    if (!sdev || !rdev) {   /* the send block lands in its place of the gathered buffer (NCCL's in-place form) or its own */
        ds = !rdev ? (const void *)(st.base + (size_t)eff_comm_rank(c) * nb) : (const void *)(st.base + off);
        if (inplace && sdev) ds = send;
        s = eff__ncopy_async(c, (void *)ds, send, nb, fn);
    }
    if (s == EFF_OK) s = eff__nsettle(c, ncclAllGather(ds, dr, (size_t)sc, eff__ntype(dtype), n->comm, n->stream), fn);
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !rdev) s = eff__ncopy_async(c, recv, dr, total, fn);
    if (s == EFF_OK && !rdev) s = eff__nwait(c, fn);
    return s;
}

/* All-to-all as one group of sends and receives (the block for itself is a copy). */
static eff_status eff__nall_to_all(eff_comm *c, const void *send, void *recv, int64_t cnt, int dtype) {
    const char *fn = "eff_comm_all_to_all";
    eff__nccl *n = eff__nimpl(c);
    size_t nb = (size_t)cnt * eff__nesize(dtype), total = nb * (size_t)eff_comm_size(c), off = (total + 255) / 256 * 256;
    int sdev = eff__non_device(send), rdev = eff__non_device(recv), j, me = eff_comm_rank(c);
    eff__nstage st;
    const char *ds = (const char *)send;
    char *dr = (char *)recv;
    ncclResult_t r = ncclSuccess, first = ncclSuccess;
    eff_status s = eff__nbegin(c, fn, 7, cnt, dtype, 0, 0);
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !sdev || !rdev, off + total);
    if (s != EFF_OK) return s;
    if (!sdev) { ds = st.base; s = eff__ncopy_async(c, st.base, send, total, fn); }
    if (!rdev) dr = st.base + off;
    if (s == EFF_OK) s = eff__ncopy_async(c, dr + (size_t)me * nb, ds + (size_t)me * nb, nb, fn);
    if (s == EFF_OK && nb > 0) {
        r = ncclGroupStart();
        if (r != ncclSuccess) return eff__nres(eff_comm_ctx(c), n->comm, r, fn, me);
        for (j = 0; j < eff_comm_size(c); j++) {
            if (j == me) continue;
            r = ncclSend(ds + (size_t)j * nb, (size_t)cnt, eff__ntype(dtype), j, n->comm, n->stream);
            if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
            r = ncclRecv(dr + (size_t)j * nb, (size_t)cnt, eff__ntype(dtype), j, n->comm, n->stream);
            if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
        }
        r = ncclGroupEnd();
        s = eff__nsettle(c, first != ncclSuccess ? first : r, fn);
    }
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !rdev) s = eff__ncopy_async(c, recv, dr, total, fn);
    if (s == EFF_OK && !rdev) s = eff__nwait(c, fn);
    return s;
}

/* ---------------------------------------------------------------------------
   Point to point
   --------------------------------------------------------------------------- */
static eff_status eff__nsend_(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_send";
    eff__nccl *n = eff__nimpl(c);
    eff_ctx *ctx = eff_comm_ctx(c);
    size_t nb = (size_t)count * eff__nesize(dtype);
    void *copy = NULL;
    eff_status s = eff__nbegin(c, fn, 0, count, dtype, 0, 0);
    (void)tag;   /* NCCL matches in order per peer */
    if (s != EFF_OK || count == 0) return s;   /* empty messages are not sent (the receiver skips them too) */
    if (!eff__non_device(buf)) s = eff__nwait(c, fn);   /* pageable copies must not wait on a stuck stream */
    if (s != EFF_OK) return s;
    if (n->n_pending == n->cap_pending) {
        int cap = n->cap_pending ? 2 * n->cap_pending : 16;
        eff__nsend *p = (eff__nsend *)eff_ctx_alloc(ctx, sizeof(eff__nsend) * (size_t)cap);
        if (!p) return EFF_ERR_OOM;
        if (n->n_pending) memcpy(p, n->pending, sizeof(eff__nsend) * (size_t)n->n_pending);
        eff_ctx_free(ctx, n->pending);
        n->pending = p;
        n->cap_pending = cap;
    }
    s = eff__ncuda(ctx, cudaMallocAsync(&copy, nb ? nb : 1, n->stream), fn, "cudaMallocAsync");
    if (s == EFF_OK) s = eff__ncopy_async(c, copy, buf, nb, fn);
    if (s != EFF_OK) { if (copy) cudaFreeAsync(copy, n->stream); return s; }
    n->pending[n->n_pending].buf = copy;
    n->pending[n->n_pending].count = (size_t)count;
    n->pending[n->n_pending].dt = eff__ntype(dtype);
    n->pending[n->n_pending].peer = peer;
    n->n_pending++;
    return EFF_OK;
}

static eff_status eff__nrecv(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_recv";
    size_t nb = (size_t)count * eff__nesize(dtype);
    int dev = eff__non_device(buf);
    eff__nstage st;
    void *d = buf;
    eff_status s = eff__nbegin(c, fn, 0, count, dtype, 0, 0);
    (void)tag;
    if (s != EFF_OK || count == 0) return s;
    s = eff__nstage_begin(c, fn, &st, !dev, nb);
    if (s != EFF_OK) return s;
    if (!dev) d = st.base;
    s = eff__ngroup(c, fn, NULL, 0, 0, d, (size_t)count, peer, eff__ntype(dtype));
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !dev) s = eff__ncopy_async(c, buf, d, nb, fn);
    if (s == EFF_OK && !dev) s = eff__nwait(c, fn);
    return s;
}

/* One group: the pending sends, this send (read in stream order: no copy needed) and this
   receive. */
static eff_status eff__nsendrecv(eff_comm *c, const void *send, int64_t send_count, int dest, void *recv, int64_t recv_count, int src,
                                 int dtype, int tag) {
    const char *fn = "eff_comm_sendrecv";
    size_t sb = (size_t)send_count * eff__nesize(dtype), rb = (size_t)recv_count * eff__nesize(dtype), off = (sb + 255) / 256 * 256;
    int sdev = eff__non_device(send), rdev = eff__non_device(recv);
    eff__nstage st;
    const void *ds = send;
    void *dr = recv;
    eff_status s = eff__nbegin(c, fn, 0, send_count, dtype, 0, 0);
    (void)tag;
    if (s == EFF_OK) s = eff__nstage_begin(c, fn, &st, !sdev || !rdev, off + rb);
    if (s != EFF_OK) return s;
    if (!sdev) { ds = st.base; s = eff__ncopy_async(c, st.base, send, sb, fn); }
    if (!rdev) dr = st.base + off;
    if (s == EFF_OK) s = eff__ngroup(c, fn, ds, (size_t)send_count, dest, dr, (size_t)recv_count, src, eff__ntype(dtype));
    if (s == EFF_OK) s = eff__nend(c, fn, st.staged);
    if (s == EFF_OK && !rdev) s = eff__ncopy_async(c, recv, dr, rb, fn);
    if (s == EFF_OK && !rdev) s = eff__nwait(c, fn);
    return s;
}

static eff_status eff__ncopy(eff_comm *c, void *dst, const void *src, size_t bytes) {
    const char *fn = "eff_comm (nccl copy)";
    eff_status s = eff__nbegin(c, fn, 0, 0, EFF_F32, 0, 0);
    int host = !eff__non_device(dst) || !eff__non_device(src);
    if (s == EFF_OK && host) s = eff__nwait(c, fn);
    if (s == EFF_OK) s = eff__ncopy_async(c, dst, src, bytes, fn);
    if (s == EFF_OK) s = eff__nend(c, fn, host);
    return s;
}

/* ---------------------------------------------------------------------------
   Lifetime: create, split, abort, destroy
   --------------------------------------------------------------------------- */
static void eff__nfree(eff_ctx *ctx, eff__nccl *n) {
    int i;
    if (!n) return;
    cudaSetDevice(n->device);
    for (i = 0; i < n->n_pending; i++) cudaFreeAsync(n->pending[i].buf, n->stream);
    if (n->scratch) cudaFreeAsync(n->scratch, n->stream);
    if (n->own_stream && n->stream) cudaStreamDestroy(n->stream);   /* returns at once; resources go when the work is done */
    eff_ctx_free(ctx, n->pending);
    eff_ctx_free(ctx, n);
}

static void eff__nabort_hook(eff_comm *c) { eff__nabort(eff__nimpl(c)); }

/* A healthy communicator is drained (bounded by the timeout), finalized and destroyed;
   one that fails on the way, or was aborted, is aborted. */
static void eff__ndestroy(eff_comm *c) {
    const char *fn = "eff_comm_destroy";
    eff__nccl *n = eff__nimpl(c);
    if (!n) return;
    if (n->comm) {
        eff_status s = eff__ncuda(eff_comm_ctx(c), cudaSetDevice(n->device), fn, "cudaSetDevice");
        if (s == EFF_OK) s = eff__nflush(c, fn);
        if (s == EFF_OK) s = eff__nwait(c, fn);
        if (s == EFF_OK) s = eff__nsettle(c, ncclCommFinalize(n->comm), fn);
        if (s == EFF_OK && n->comm) { ncclCommDestroy(n->comm); n->comm = NULL; }
        eff__nabort(n);
    }
    eff__nfree(eff_comm_ctx(c), n);
}

static eff_status eff__nsplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out);

static const eff_comm_backend eff__nccl_backend = {
    eff__nccl_name, eff__nbarrier, eff__nbroadcast, eff__nreduce, eff__nall_reduce, eff__nreduce_scatter, eff__nall_gather,
    eff__nall_to_all, eff__nsend_, eff__nrecv, eff__nsplit, eff__nabort_hook, eff__ndestroy, eff__ncopy, eff__nsendrecv
};

/* Wraps an initialized ncclComm_t (aborted on failure). */
static eff_status eff__nwrap(eff_ctx *ctx, ncclComm_t comm, int rank, int size, int device, cudaStream_t stream, int own_stream,
                             const eff_comm_nccl_opts *o, double timeout, eff_comm **out) {
    eff__nccl *n = (eff__nccl *)eff_ctx_alloc(ctx, sizeof *n);
    eff_status s;
    if (!n) {
        ncclCommAbort(comm);
        if (own_stream) cudaStreamDestroy(stream);
        return EFF_ERR_OOM;
    }
    memset(n, 0, sizeof *n);
    n->comm = comm; n->stream = stream; n->own_stream = own_stream; n->device = device;
    n->blocking = o->blocking; n->check = o->check_calls;
    s = eff_comm_create_custom(ctx, rank, size, &eff__nccl_backend, n, out);
    if (s == EFF_OK) s = eff_comm_set_timeout(*out, timeout);
    if (s != EFF_OK) {
        if (*out) { eff_comm_destroy(*out); *out = NULL; }   /* finalizes and frees n */
        else { eff__nabort(n); eff__nfree(ctx, n); }
    }
    return s;
}

static eff_status eff__nsplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out) {
    const char *fn = "eff_comm_split";
    eff__nccl *n = eff__nimpl(c);
    eff_ctx *ctx = eff_comm_ctx(c);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    ncclComm_t nc = NULL;
    cudaStream_t stream = n->stream;
    eff_comm_nccl_opts o;
    int got_rank = -1, got_size = 0, own = 0;
    eff_status s = eff__nbegin(c, fn, 8, 0, EFF_F32, 0, 0);
    (void)members;
    *out = NULL;
    if (s != EFF_OK) return s;
    cfg.blocking = 0;
    s = eff__nsettle(c, ncclCommSplit(n->comm, color == EFF_COMM_UNDEFINED ? NCCL_SPLIT_NOCOLOR : color, key, &nc, &cfg), fn);
    if (s == EFF_OK && nc) s = eff__nsettle_raw(ctx, &nc, ncclInProgress, eff_comm_timeout(c), fn, eff_comm_rank(c));
    if (s != EFF_OK || !nc) return s;
    if (ncclCommUserRank(nc, &got_rank) != ncclSuccess || ncclCommCount(nc, &got_size) != ncclSuccess || got_rank != new_rank ||
        got_size != new_size) {
        ncclCommAbort(nc);
        return eff_ctx_error(ctx, EFF_ERR_PEER, "%s: ncclCommSplit made rank %d of %d, expected %d of %d", fn, got_rank, got_size, new_rank,
                             new_size);
    }
    if (n->own_stream) {   /* the parent's own stream stays the parent's: the child gets its own */
        s = eff__ncuda(ctx, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), fn, "cudaStreamCreate");
        if (s != EFF_OK) { ncclCommAbort(nc); return s; }
        own = 1;
    }
    memset(&o, 0, sizeof o);
    o.blocking = n->blocking; o.check_calls = n->check;
    return eff__nwrap(ctx, nc, new_rank, new_size, n->device, stream, own, &o, eff_comm_timeout(c), out);
}

/* ---------------------------------------------------------------------------
   Public entry points
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_comm_nccl_unique_id(eff_ctx *ctx, unsigned char id[EFF_NCCL_ID_BYTES]) {
    ncclUniqueId u;
    ncclResult_t r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    if (!id) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_comm_nccl_unique_id: argument 'id' is NULL");
    r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) return eff__nres(ctx, NULL, r, "eff_comm_nccl_unique_id", 0);
    memcpy(id, u.internal, EFF_NCCL_ID_BYTES);
    return EFF_OK;
}

EFFDEF eff_status eff_comm_nccl_create_id(eff_ctx *ctx, const unsigned char id[EFF_NCCL_ID_BYTES], int rank, int size,
                                          const eff_comm_nccl_opts *opts, eff_comm **out) {
    const char *fn = "eff_comm_nccl_create_id";
    eff_comm_nccl_opts o;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    ncclUniqueId u;
    ncclComm_t comm = NULL;
    cudaStream_t stream = NULL;
    int ndev = 0, device, own = 0;
    double timeout;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    if (!out) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'out' is NULL", fn);
    *out = NULL;
    if (!id) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'id' is NULL", fn);
    if (size < 1 || rank < 0 || rank >= size)
        return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: rank %d / size %d out of range", fn, rank, size);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (!(o.timeout >= 0.0)) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: opts 'timeout' = %g < 0", fn, o.timeout);
    timeout = o.timeout > 0.0 ? o.timeout : 30.0;
    s = eff__ncuda(ctx, cudaGetDeviceCount(&ndev), fn, "cudaGetDeviceCount");
    if (s != EFF_OK) return s;
    if (ndev < 1) return eff_ctx_error(ctx, EFF_ERR_DEVICE, "%s: no CUDA device", fn);
    device = o.has_device ? o.device : rank % ndev;
    if (device < 0 || device >= ndev) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: opts 'device' = %d not in [0, %d)", fn, device, ndev);
    s = eff__ncuda(ctx, cudaSetDevice(device), fn, "cudaSetDevice");
    if (s != EFF_OK) return s;
    if (o.stream) stream = (cudaStream_t)o.stream;
    else {
        s = eff__ncuda(ctx, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), fn, "cudaStreamCreate");
        if (s != EFF_OK) return s;
        own = 1;
    }
    memcpy(u.internal, id, EFF_NCCL_ID_BYTES);
    cfg.blocking = 0;   /* the init and every call return ncclInProgress instead of blocking: polled against the timeout */
    {
        ncclResult_t r = ncclCommInitRankConfig(&comm, size, u, rank, &cfg);
        if (r != ncclSuccess && r != ncclInProgress) {
            s = eff__nres(ctx, NULL, r, fn, rank);
            if (comm) ncclCommAbort(comm);
        } else {
            s = eff__nsettle_raw(ctx, &comm, ncclInProgress, timeout, fn, rank);
        }
    }
    if (s != EFF_OK) {
        if (own) cudaStreamDestroy(stream);
        return s;
    }
    return eff__nwrap(ctx, comm, rank, size, device, stream, own, &o, timeout, out);
}

EFFDEF eff_status eff_comm_nccl_create_over(eff_comm *boot, const eff_comm_nccl_opts *opts, eff_comm **out) {
    int32_t msg[1 + EFF_NCCL_ID_BYTES / 4];   /* rank 0's status, then the id */
    eff_ctx *ctx;
    eff_status s;
    if (!boot) return EFF_ERR_INVALID_ARG;
    ctx = eff_comm_ctx(boot);
    if (!out) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_comm_nccl_create_over: argument 'out' is NULL");
    *out = NULL;
    memset(msg, 0, sizeof msg);
    if (eff_comm_rank(boot) == 0) msg[0] = (int32_t)eff_comm_nccl_unique_id(ctx, (unsigned char *)(msg + 1));
    s = eff_comm_broadcast(boot, msg, 1 + EFF_NCCL_ID_BYTES / 4, EFF_I32, 0);   /* every rank learns rank 0's status */
    if (s != EFF_OK) return s;
    if (msg[0] != EFF_OK)
        return eff_ctx_error(ctx, (eff_status)msg[0], "eff_comm_nccl_create_over: rank 0 could not make an NCCL id (%s)",
                             eff_status_str((eff_status)msg[0]));
    return eff_comm_nccl_create_id(ctx, (const unsigned char *)(msg + 1), eff_comm_rank(boot), eff_comm_size(boot), opts, out);
}

#define EFF__NFILE_MAGIC "EFFNCCLID1\n"
EFFDEF eff_status eff_comm_nccl_create_file(eff_ctx *ctx, const char *path, int rank, int size, const eff_comm_nccl_opts *opts,
                                            eff_comm **out) {
    const char *fn = "eff_comm_nccl_create_file";
    unsigned char id[EFF_NCCL_ID_BYTES], buf[sizeof(EFF__NFILE_MAGIC) - 1 + EFF_NCCL_ID_BYTES];
    const size_t ml = sizeof(EFF__NFILE_MAGIC) - 1;
    double timeout = opts && opts->timeout > 0.0 ? opts->timeout : 30.0;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    if (!out) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'out' is NULL", fn);
    *out = NULL;
    if (!path || !path[0]) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'path' is NULL or empty", fn);
    if (size < 1 || rank < 0 || rank >= size) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: rank %d / size %d out of range", fn, rank, size);
    if (rank == 0) {   /* write path.tmp, then rename: readers never see half a file */
        size_t pl = strlen(path);
        char *tmp = (char *)eff_ctx_alloc(ctx, pl + 8);
        FILE *f;
        int ok;
        if (!tmp) return EFF_ERR_OOM;
        memcpy(tmp, path, pl);
        memcpy(tmp + pl, ".tmp", 5);
        s = eff_comm_nccl_unique_id(ctx, id);
        if (s != EFF_OK) { eff_ctx_free(ctx, tmp); return s; }
        memcpy(buf, EFF__NFILE_MAGIC, ml);
        memcpy(buf + ml, id, EFF_NCCL_ID_BYTES);
        f = fopen(tmp, "wb");
        ok = f && fwrite(buf, 1, sizeof buf, f) == sizeof buf;
        if (f && fclose(f) != 0) ok = 0;
        if (ok) ok = rename(tmp, path) == 0;
        if (!ok) remove(tmp);
        eff_ctx_free(ctx, tmp);
        if (!ok) return eff_ctx_error(ctx, EFF_ERR_IO, "%s: cannot write the NCCL id to '%s'", fn, path);
    } else {
        eff__nclock::time_point t0 = eff__nclock::now();
        int it = 0;
        for (;;) {
            FILE *f = fopen(path, "rb");
            size_t got = 0;
            if (f) { got = fread(buf, 1, sizeof buf, f); fclose(f); }
            if (got == sizeof buf && memcmp(buf, EFF__NFILE_MAGIC, ml) == 0) break;
            if (got > 0 && memcmp(buf, EFF__NFILE_MAGIC, got < ml ? got : ml) != 0)
                return eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: '%s' is not an eff NCCL id file", fn, path);
            if (eff__nsince(t0) > timeout)
                return eff_ctx_error(ctx, EFF_ERR_TIMEOUT, "%s: rank %d waited %.3g s for '%s' (timeout)", fn, rank, eff__nsince(t0), path);
            if (it++ < 16) std::this_thread::yield();
            else std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        memcpy(id, buf + ml, EFF_NCCL_ID_BYTES);
    }
    s = eff_comm_nccl_create_id(ctx, id, rank, size, opts, out);
    if (rank == 0) remove(path);   /* every rank has joined (or the init failed): the id is spent */
    return s;
}

#ifdef EFF_MPI
EFFDEF eff_status eff_comm_nccl_create_mpi(eff_ctx *ctx, MPI_Comm mpi_comm, const eff_comm_nccl_opts *opts, eff_comm **out) {
    const char *fn = "eff_comm_nccl_create_mpi";
    unsigned char msg[4 + EFF_NCCL_ID_BYTES];   /* rank 0's status (int32), then the id */
    int32_t st = EFF_OK;
    int rank = 0, size = 0, init = 0;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    if (!out) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'out' is NULL", fn);
    *out = NULL;
    MPI_Initialized(&init);
    if (!init) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: MPI is not initialized (call MPI_Init first)", fn);
    if (mpi_comm == MPI_COMM_NULL) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: argument 'mpi_comm' is MPI_COMM_NULL", fn);
    if (MPI_Comm_rank(mpi_comm, &rank) != MPI_SUCCESS || MPI_Comm_size(mpi_comm, &size) != MPI_SUCCESS)
        return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: MPI_Comm_rank/size failed", fn);
    memset(msg, 0, sizeof msg);
    if (rank == 0) st = (int32_t)eff_comm_nccl_unique_id(ctx, msg + 4);
    memcpy(msg, &st, 4);
    if (MPI_Bcast(msg, (int)sizeof msg, MPI_BYTE, 0, mpi_comm) != MPI_SUCCESS)
        return eff_ctx_error(ctx, EFF_ERR_PEER, "%s: MPI_Bcast of the NCCL id failed", fn);
    memcpy(&st, msg, 4);
    if (st != EFF_OK)
        return eff_ctx_error(ctx, (eff_status)st, "%s: rank 0 could not make an NCCL id (%s)", fn, eff_status_str((eff_status)st));
    return eff_comm_nccl_create_id(ctx, msg + 4, rank, size, opts, out);
}
#endif

EFFDEF eff_status eff_comm_nccl_synchronize(eff_comm *c) {
    const char *fn = "eff_comm_nccl_synchronize";
    eff_status s;
    if (!c) return EFF_ERR_INVALID_ARG;
    if (!eff__is_nccl(c))
        return eff_ctx_error(eff_comm_ctx(c), EFF_ERR_INVALID_ARG, "%s: argument 'c' is a '%s' communicator, not nccl", fn,
                             eff_comm_backend_name(c));
    s = eff__nbegin(c, fn, 0, 0, EFF_F32, 0, 0);
    if (s == EFF_OK) s = eff__nflush(c, fn);
    if (s == EFF_OK) s = eff__nwait(c, fn);
    return s;
}

EFFDEF void *eff_comm_nccl_stream(const eff_comm *c) { return eff__is_nccl(c) ? (void *)eff__nimpl(c)->stream : NULL; }

} /* extern "C" */

#endif /* EFF_NCCL */
