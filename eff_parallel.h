/* eff_parallel.h - v0.2 - training parallelism for eff: a communicator with
   collectives on three backends, data parallel with bucketing, ZeRO-1/2/3,
   Megatron tensor + sequence parallel layers, pipeline schedules and an
   executor, ring and striped attention, expert parallelism, and a memory /
   communication estimator.   Public domain / MIT.

   Every algorithm here is written once against eff_comm, so the same program
   runs on N threads of one process (the "local" backend: tests, teaching, a
   laptop), on MPI processes (EFF_MPI) and on GPUs through NCCL (EFF_NCCL,
   cuda/eff_nccl.cu).
   The header knows nothing of the model: ZeRO works on flat parameter buffers
   with eff_adamw_step, tensor-parallel layers are functions over tensors, and
   the pipeline executor calls stage callbacks.

   USAGE
     In exactly one C or C++ file:
         #define EFF_PARALLEL_IMPLEMENTATION    (or EFF_IMPLEMENTATION for all eff headers)
         #include "eff_parallel.h"
     (and EFF_TENSOR_IMPLEMENTATION somewhere, as for every eff header).

     Four ranks as threads, each summing a buffer with the others:

         static eff_status rank_main(eff_comm *comm, void *arg) {
             float x[3] = {1, 2, (float)eff_comm_rank(comm)};
             eff_status s = eff_comm_all_reduce(comm, x, 3, EFF_F32, EFF_RED_SUM);
             // x = {4, 8, 0+1+2+3}; on error s says why and
             // eff_ctx_last_error(eff_comm_ctx(comm)) says where
             (void)arg; return s;
         }
         int main(void) { return (int)eff_comm_local_run(4, rank_main, NULL); }

     Under MPI the same rank_main runs once per process:
         MPI_Init(&argc, &argv); eff_ctx_create(NULL, &ctx);
         eff_comm_mpi_create(ctx, MPI_COMM_WORLD, &comm); rank_main(comm, NULL);
         eff_comm_destroy(comm); MPI_Finalize();

   THE COMMUNICATOR (eff_comm)
     - rank/size, split(color, key) into sub-communicators (TP x PP x DP grids),
       barrier, broadcast, reduce, all-reduce, reduce-scatter, all-gather,
       all-to-all, eager send / tag-matched recv / sendrecv, for f32, bf16, f16 and i32
       buffers and the reductions sum, avg, max, min. bf16/f16 accumulate in f32
       (local backend: one rounding per element; MPI: see below).
     - Every call returns eff_status. A wait longer than the communicator's
       timeout returns EFF_ERR_TIMEOUT; a peer that failed or returned makes the
       others return EFF_ERR_PEER. After any error the communicator is broken:
       every later call returns EFF_ERR_PEER (peers may be stuck inside the
       failed call, so no later call could be matched).
     - Collectives are matched by order: every rank calls the same sequence with
       the same counts, dtypes, ops and roots. The local and MPI backends check
       this and return EFF_ERR_SHAPE on every rank when the arguments disagree.
     - In place: all_reduce always; reduce with send == recv on the root;
       reduce_scatter with recv == send + rank*recv_count; all_gather with
       send == recv + rank*send_count (NCCL's conventions).

   LOCAL BACKEND (threads; POSIX + GCC/Clang atomics; always compiled)
     eff_comm_local_run(n, fn, arg) starts n threads, gives each its own eff_ctx
     (contexts are not thread-safe; n_threads 1 by default so ranks do not
     oversubscribe the cores) and a communicator, and returns when all are done.
     Shared state lives in one heap object owned by the launcher. Algorithms:
       small (<= small_bytes per rank, 32 KiB): copy into a per-rank staging
         slot, one barrier, every rank reads every slot (latency bound);
       direct (large, default): reduce-scatter and all-gather fused per 64 KiB
         tile: a rank reads the tile of every peer's buffer, reduces it (in rank
         order, so results do not depend on who computes them) and writes it into
         every peer's buffer. Each element is read n times and written n times,
         the minimum, between two barriers; on shared memory this beats the ring.
         Tiles are claimed from a shared counter, so ranks that run do the work
         of ranks the OS has descheduled (shared or oversubscribed cores);
       ring (EFF_COMM_ALGO_RING): the NCCL/Gloo ring, n-1 reduce-scatter steps
         and n-1 all-gather steps between neighbours, synchronised by per-rank
         progress counters (f32 and i32; 16-bit types fall back to direct so
         they keep a single f32 accumulation).
     Results larger than stream_bytes (8 MiB) per rank are written with
     non-temporal stores, which skip the read-for-ownership of lines that will
     not fit in cache anyway. Waiting spins, then yields, then sleeps on a
     condition variable, so oversubscribed runs (8 ranks on 2 cores) stay fast.

   MPI BACKEND (EFF_MPI; any MPI-3)
     Non-blocking collectives polled against the timeout. bf16/f16 reductions
     use user-defined MPI ops that add in f32 but, as in any MPI reduction tree,
     round partial results back to 16 bits between steps. Sends are buffered
     (copied, then MPI_Isend), like the local backend's eager sends.

   NCCL BACKEND (EFF_NCCL; cuda/eff_nccl.cu, link -lnccl -lcudart)
     One rank per GPU. Bootstrap: rank 0's ncclGetUniqueId reaches the others
     through MPI_Bcast (eff_comm_nccl_create_mpi), a file (eff_comm_nccl_create_file),
     any other eff_comm (eff_comm_nccl_create_over: local threads in the tests)
     or the caller (eff_comm_nccl_create_id). Communicators are non-blocking
     (ncclConfig_t.blocking = 0): every NCCL call, the init included, is polled
     with ncclCommGetAsyncError against the timeout, and ncclCommAbort ends a
     communicator whose peer died, so nothing hangs. Buffers in device (or
     managed) memory are stream-ordered on the communicator's CUDA stream: a call
     returns once enqueued, eff_comm_nccl_synchronize waits (with the timeout);
     opts.blocking waits in every call. Host buffers are staged through device
     memory and complete before the call returns, so the algorithms below run
     unchanged on host data. eff_comm_sendrecv is one NCCL group (ring shifts
     and exchanges, as ring attention does them). A plain send is eager in
     stream order (the data is copied) and goes out with this rank's next recv
     (all pending sends and the recv in one group) or before its next
     collective: a peer must receive before its own next collective, and rings
     with several plain sends in flight need sendrecv. Messages match in order
     per peer (NCCL has no tags). bf16/f16 reduce in NCCL's native precision.
     Split is ncclCommSplit. opts.check_calls adds the argument agreement of the
     other backends (one small all-reduce and a host sync per call).

   ON TOP OF THE COMMUNICATOR (each section below has its own comment)
     eff_dp_all_reduce_grads    DDP: gradient buffers averaged in size-capped
                                buckets, in backward order; accumulate micro-
                                batches with +=, reduce once with scale = 1/m
     eff_zero_*                 ZeRO-1/2/3 over a flat parameter vector in layers:
                                sharded AdamW state, reduce-scattered gradients,
                                parameters gathered per layer and freed; f32 or
                                bf16 + fp32 master; memory = the paper's formulas
                                (eff_zero_memory_estimate); sharded checkpoints;
                                global-norm clipping
     eff_dp_optim_*             data-parallel AdamW for model replicas: a list of
                                parameter / gradient tensors, gradients averaged,
                                clipped, updated at ZeRO stage 0-3 (examples/
                                train.c --ranks N --zero k)
     eff_tp_*, eff_sp_*         Megatron column/row-parallel linear with the f/g
                                operators, parallel MLP (GeLU, SwiGLU), vocab-
                                parallel embedding and cross-entropy, sequence-
                                parallel all-gather / reduce-scatter regions
     eff_ep_*                   expert parallelism: top-k tokens dispatched to
                                their experts' ranks and combined back (all-to-all
                                with a capacity), forward and backward
     eff_pp_*                   GPipe, 1F1B, interleaved 1F1B and ZB-H1 as per-
                                stage action lists, simulated into a timetable
                                (bubble, peak in-flight), printed, validated, and
                                run over a communicator with stage callbacks
     eff_ring_attn_*            ring attention (contiguous sequence shards) and
                                striped attention (token t on rank t mod n): K/V
                                blocks rotate around the ranks, partials merged by
                                (O, lse); forward and backward (dK/dV travel with
                                their block and return home)
     eff_est_*                  per-rank memory (ZeRO stages, Korthikanti et al.'s
                                activation formulas with TP/SP/recompute, pipeline
                                in-flight micro-batches) and bytes sent per step by
                                DP, ZeRO, TP(+SP), PP and ring attention;
                                examples/parallel_estimate.c prints the papers' tables
     The DP/ZeRO/TP/PP functions are collective over the communicator they get;
     build TP x PP x DP grids with eff_comm_split. examples/parallel_pipeline.c
     prints the four pipeline timetables, examples/parallel_estimate.c the memory
     and communication estimates; tests/test_parallel.c has a tiny MLP trained
     with DP and ZeRO, TP layers, a pipelined layer stack, ring attention and the
     tiny Llama of eff_model.h trained data-parallel; bench/bench_comm.c measures
     bus bandwidth.

   DEFINES
     EFF_PARALLEL_IMPLEMENTATION / EFF_IMPLEMENTATION   emit the definitions
     EFF_MPI             compile the MPI backend (include mpi.h; build with mpicc)
     EFF_NCCL            declare the NCCL backend (cuda/eff_nccl.cu defines it)
     EFF_STATIC, EFF_MALLOC/EFF_REALLOC/EFF_FREE         as in eff_tensor.h

   LINKING
     The local backend uses pthreads: glibc >= 2.34 has them in libc; elsewhere
     link with -pthread.

   NOT YET
     Recomputation in the pipeline executor, asynchronous (overlapped) buckets,
     overlap of ring attention's K/V transfer with its compute (each step's
     sendrecv completes before the block is computed), a per-layer gather hook
     in eff_model.h so that eff_dp_optim's ZeRO-2/3 also shrink the replicas.

   VERSIONS
     0.2  NCCL backend (cuda/eff_nccl.cu), eff_comm_sendrecv, ring and striped
          attention (forward + backward), the estimator, eff_dp_optim, ZeRO
          gradient clipping and lr control; a recv no longer takes two queued
          messages when it wakes from a sleep (local backend).
     0.1  communicator (local + MPI backends), collectives, DP, ZeRO-1/2/3,
          tensor + sequence parallel layers, pipeline schedules and executor,
          expert-parallel dispatch/combine.
*/
#ifndef EFF_PARALLEL_H
#define EFF_PARALLEL_H

#include "eff_attn.h"

#ifdef EFF_MPI
#if defined(__cplusplus) && !defined(OMPI_SKIP_MPICXX)
#define OMPI_SKIP_MPICXX 1      /* eff uses MPI's C API; the deprecated C++ bindings warn under -Wextra */
#endif
#if defined(__cplusplus) && !defined(MPICH_SKIP_MPICXX)
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Communicator
   --------------------------------------------------------------------------- */
typedef struct eff_comm eff_comm;

typedef enum eff_red_op { EFF_RED_SUM = 0, EFF_RED_AVG = 1, EFF_RED_MAX = 2, EFF_RED_MIN = 3, EFF_RED_COUNT } eff_red_op;

/* Algorithm choice of the local backend (other backends ignore it). */
enum { EFF_COMM_ALGO_AUTO = 0, EFF_COMM_ALGO_SMALL = 1, EFF_COMM_ALGO_DIRECT = 2, EFF_COMM_ALGO_RING = 3 };
/* Color for eff_comm_split: this rank joins no sub-communicator (*out = NULL). */
enum { EFF_COMM_UNDEFINED = -1 };
/* Tags of send/recv are in [0, EFF_COMM_TAG_MAX] (MPI guarantees at least this). */
enum { EFF_COMM_TAG_MAX = 32767 };

/* The function each rank runs. Its status is the rank's result; a non-OK
   status makes every peer's pending and later calls return EFF_ERR_PEER. */
typedef eff_status (*eff_comm_rank_fn)(eff_comm *comm, void *arg);

typedef struct eff_comm_local_opts {
    double timeout;           /* seconds a wait may last; 0: 30 */
    eff_ctx_opts ctx_opts;    /* options of every rank's context; n_threads 0 means 1 here.
                                 A custom allocator must be thread-safe. */
    int64_t small_bytes;      /* staging size per rank for the small algorithms; 0: 32 KiB */
    int64_t stream_bytes;     /* results of at least this many bytes per rank are written with
                                 non-temporal stores (they will not fit in cache); 0: 8 MiB, -1: never */
    int algo;                 /* EFF_COMM_ALGO_*; 0: auto */
    eff_status *rank_status;  /* optional [n]: each rank function's return value */
} eff_comm_local_opts;

/* Runs fn on n ranks (threads) and waits for all. Returns EFF_OK when every rank
   returned EFF_OK, otherwise the first rank's error that is not a consequence of
   another rank's (EFF_ERR_PEER). */
EFFDEF eff_status eff_comm_local_run(int n, eff_comm_rank_fn fn, void *arg);
EFFDEF eff_status eff_comm_local_run_opts(int n, eff_comm_rank_fn fn, void *arg, const eff_comm_local_opts *opts);

#ifdef EFF_MPI
/* A communicator over a duplicate of mpi_comm; MPI must be initialized. ctx is
   this process's context (used for errors and allocations). */
EFFDEF eff_status eff_comm_mpi_create(eff_ctx *ctx, MPI_Comm mpi_comm, eff_comm **out);
#endif

#ifdef EFF_NCCL
/* NCCL backend (cuda/eff_nccl.cu): one rank per GPU; see "NCCL BACKEND" above. */
enum { EFF_NCCL_ID_BYTES = 128 };   /* sizeof(ncclUniqueId) */
typedef struct eff_comm_nccl_opts {
    int has_device;     /* 0: device = rank % (devices visible to this process) */
    int device;         /* CUDA device of this rank when has_device */
    void *stream;       /* cudaStream_t for every operation; NULL: the communicator creates one */
    double timeout;     /* seconds, for the init and every wait; 0: 30 */
    int blocking;       /* 1: every call waits for completion (device buffers too) */
    int check_calls;    /* 1: ranks check that they make the same call (an all-reduce + sync per call) */
} eff_comm_nccl_opts;
/* A fresh ncclUniqueId (call on one rank, give the bytes to every rank). */
EFFDEF eff_status eff_comm_nccl_unique_id(eff_ctx *ctx, unsigned char id[EFF_NCCL_ID_BYTES]);
/* Rank `rank` of `size` joins the communicator of id. Collective over the size ranks. */
EFFDEF eff_status eff_comm_nccl_create_id(eff_ctx *ctx, const unsigned char id[EFF_NCCL_ID_BYTES], int rank, int size,
                                          const eff_comm_nccl_opts *opts, eff_comm **out);
/* Bootstrap through another communicator (local threads, MPI): its rank 0 makes the id
   and broadcasts it; rank and size are boot's. The new communicator uses boot's context. */
EFFDEF eff_status eff_comm_nccl_create_over(eff_comm *boot, const eff_comm_nccl_opts *opts, eff_comm **out);
/* Bootstrap through a file every rank can read (a shared file system): rank 0 writes the
   id to path atomically, the others poll for it (up to the timeout); rank 0 removes it once
   every rank has joined. Use a fresh path per job: a stale file from a failed run would be read. */
EFFDEF eff_status eff_comm_nccl_create_file(eff_ctx *ctx, const char *path, int rank, int size, const eff_comm_nccl_opts *opts,
                                            eff_comm **out);
#ifdef EFF_MPI
/* Rank 0 of mpi_comm calls ncclGetUniqueId and MPI_Bcast's it; ranks as in mpi_comm. */
EFFDEF eff_status eff_comm_nccl_create_mpi(eff_ctx *ctx, MPI_Comm mpi_comm, const eff_comm_nccl_opts *opts, eff_comm **out);
#endif
/* Waits for every operation enqueued on c (pending sends are issued first), polling the
   communicator's asynchronous error; aborts it on error or timeout. */
EFFDEF eff_status eff_comm_nccl_synchronize(eff_comm *c);
/* The cudaStream_t of c (as void *), or NULL if c is not an NCCL communicator. */
EFFDEF void      *eff_comm_nccl_stream(const eff_comm *c);
#endif

EFFDEF int         eff_comm_rank(const eff_comm *c);          /* -1 for NULL */
EFFDEF int         eff_comm_size(const eff_comm *c);          /* 0 for NULL */
EFFDEF eff_ctx    *eff_comm_ctx(const eff_comm *c);
EFFDEF const char *eff_comm_backend_name(const eff_comm *c);
EFFDEF double      eff_comm_timeout(const eff_comm *c);
EFFDEF eff_status  eff_comm_set_timeout(eff_comm *c, double seconds);
EFFDEF eff_status  eff_comm_set_algo(eff_comm *c, int algo);  /* EFF_COMM_ALGO_* */
/* Collective over c: ranks with the same color form a new communicator, ranked by
   (key, rank in c). color EFF_COMM_UNDEFINED gives *out = NULL. The new communicator
   shares c's context and timeout; destroy it before its parent. */
EFFDEF eff_status  eff_comm_split(eff_comm *c, int color, int key, eff_comm **out);
/* Frees this rank's handle. Not collective (the local backend frees shared state
   with the last handle); a communicator made by eff_comm_local_run is freed by it. */
EFFDEF void        eff_comm_destroy(eff_comm *c);

/* Collectives. count is in elements of dtype (EFF_F32, EFF_BF16, EFF_F16, EFF_I32);
   op is an eff_red_op. AVG divides the sum by the size (truncating for i32). */
EFFDEF eff_status eff_comm_barrier(eff_comm *c);
EFFDEF eff_status eff_comm_broadcast(eff_comm *c, void *buf, int64_t count, int dtype, int root);
/* recv[count] on root = op over ranks of send[count]; recv is ignored elsewhere. */
EFFDEF eff_status eff_comm_reduce(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root);
EFFDEF eff_status eff_comm_all_reduce(eff_comm *c, void *buf, int64_t count, int dtype, int op);
/* send[size * recv_count]; rank r gets block r of the reduction. */
EFFDEF eff_status eff_comm_reduce_scatter(eff_comm *c, const void *send, void *recv, int64_t recv_count, int dtype, int op);
/* recv[size * send_count]; rank r's send lands at block r. */
EFFDEF eff_status eff_comm_all_gather(eff_comm *c, const void *send, void *recv, int64_t send_count, int dtype);
/* send[size * count], recv[size * count]: block j of send goes to rank j, block j of
   recv comes from rank j. send and recv must not overlap. */
EFFDEF eff_status eff_comm_all_to_all(eff_comm *c, const void *send, void *recv, int64_t count, int dtype);
/* Point to point. send is eager: it copies the message and returns. recv takes the
   oldest message from peer with this tag; count and dtype must equal the sender's. */
EFFDEF eff_status eff_comm_send(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag);
EFFDEF eff_status eff_comm_recv(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag);
/* send[send_count] to dest and recv[recv_count] from src in one step: a ring shift
   (dest = rank+1, src = rank-1) or a pairwise exchange (dest = src). The messages match
   the peers' send / recv / sendrecv like the separate calls. On NCCL the two go out as one
   group, which rings need (there, separate sends wait for the next recv and go with it);
   the other backends send (eagerly), then receive. send and recv must not overlap. */
EFFDEF eff_status eff_comm_sendrecv(eff_comm *c, const void *send, int64_t send_count, int dest, void *recv, int64_t recv_count,
                                    int src, int dtype, int tag);

/* Backend interface, for backends that live outside this header (NCCL in cuda/).
   The eff_comm_* wrappers validate every argument, then call these; a backend
   reports errors through eff_ctx_error(eff_comm_ctx(c), ...). */
typedef struct eff_comm_backend {
    const char *name;
    eff_status (*barrier)(eff_comm *c);
    eff_status (*broadcast)(eff_comm *c, void *buf, int64_t count, int dtype, int root);
    eff_status (*reduce)(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root);
    eff_status (*all_reduce)(eff_comm *c, void *buf, int64_t count, int dtype, int op);
    eff_status (*reduce_scatter)(eff_comm *c, const void *send, void *recv, int64_t recv_count, int dtype, int op);
    eff_status (*all_gather)(eff_comm *c, const void *send, void *recv, int64_t send_count, int dtype);
    eff_status (*all_to_all)(eff_comm *c, const void *send, void *recv, int64_t count, int dtype);
    eff_status (*send)(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag);
    eff_status (*recv)(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag);
    /* members: the parent ranks of the new communicator in new-rank order (NULL when
       color is EFF_COMM_UNDEFINED); the backend sets *out (NULL for non-members). */
    eff_status (*split)(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out);
    void (*abort)(eff_comm *c);     /* tell peers this rank failed (may be NULL) */
    void (*destroy)(eff_comm *c);   /* free impl (the handle itself is freed by the caller) */
    /* copies bytes between buffers of this backend's memory (the size-1 cases of the
       collectives); NULL: memmove */
    eff_status (*copy)(eff_comm *c, void *dst, const void *src, size_t bytes);
    /* NULL: send, then recv */
    eff_status (*sendrecv)(eff_comm *c, const void *send, int64_t send_count, int dest, void *recv, int64_t recv_count, int src,
                           int dtype, int tag);
} eff_comm_backend;
EFFDEF eff_status eff_comm_create_custom(eff_ctx *ctx, int rank, int size, const eff_comm_backend *be, void *impl,
                                         eff_comm **out);
EFFDEF void      *eff_comm_impl(const eff_comm *c);

/* ---------------------------------------------------------------------------
   Data parallel: gradient all-reduce in size-capped buckets.
   Gradient accumulation: let backward add (+=) m micro-batches into the
   gradient buffers, then reduce once with scale = 1/m.
   --------------------------------------------------------------------------- */
typedef struct eff_dp_opts {
    int64_t bucket_bytes;   /* cap of one all-reduce; 0: 25 MiB (PyTorch DDP's bucket_cap_mb) */
    int sum;                /* 0: average over ranks (DDP); 1: sum */
    float scale;            /* multiply after the reduction, e.g. 1/micro_batches; 0: 1 */
} eff_dp_opts;
typedef struct eff_dp_stats {
    int64_t n_buckets;      /* all-reduce calls made */
    int64_t bytes;          /* bytes reduced */
    int64_t max_bucket_bytes;
} eff_dp_stats;
/* All-reduces grads[i][0:counts[i]] (all of dtype) over c, in reverse buffer order
   (the order backward produces them). Buffers smaller than the cap are packed into
   a staging bucket (from the communicator's context); larger ones are reduced in
   place in cap-sized pieces. stats may be NULL. Collective. */
EFFDEF eff_status eff_dp_all_reduce_grads(eff_comm *c, int n_bufs, void *const *grads, const int64_t *counts, int dtype,
                                          const eff_dp_opts *opts, eff_dp_stats *stats);

/* ---------------------------------------------------------------------------
   ZeRO (Rajbhandari et al., SC'20) over a flat parameter vector split into layers.
   Each layer of count_l parameters is padded to N*ceil(count_l/N) and rank r owns
   slice r of every layer (FSDP's flat-parameter sharding), so a layer is gathered
   or reduce-scattered with one collective.
     stage 0  plain DP: parameters, gradients, AdamW state replicated
     stage 1  + AdamW state (m, v, fp32 master) sharded; gradients reduce-scattered
              at the step, updated parameters all-gathered
     stage 2  + gradients sharded: each layer's gradient is reduce-scattered when
              backward is done with it (eff_zero_grad_done)
     stage 3  + parameters sharded: eff_zero_gather_layer all-gathers a layer for
              forward/backward, eff_zero_release_layer frees it
   Parameters are f32, or bf16 with fp32 master weights in the optimizer state;
   gradients have the parameters' dtype. Every buffer comes from the
   communicator's context, so eff_ctx_bytes_peak measures the formulas of
   eff_zero_memory_estimate. One training step, for every micro-batch:
       for each layer l (forward):   eff_zero_gather_layer(z, l, &p) ... eff_zero_release_layer(z, l)
       for each layer l (backward):  eff_zero_gather_layer(z, l, &p); eff_zero_grad_layer(z, l, &g);
                                     g += dL/dp ...; eff_zero_grad_done(z, l); eff_zero_release_layer(z, l)
   then eff_zero_step(z). All eff_zero_* calls are collective except grad_layer.
   --------------------------------------------------------------------------- */
typedef struct eff_zero eff_zero;
typedef struct eff_zero_opts {
    int stage;                      /* 0, 1, 2 or 3 */
    int param_dtype;                /* EFF_F32 (default) or EFF_BF16 (fp32 master weights) */
    int n_layers;                   /* 0: one layer holding every parameter */
    const int64_t *layer_counts;    /* [n_layers], summing to n_params */
    eff_adamw_opts adamw;           /* .step is ignored: the object counts steps */
    float max_grad_norm;            /* > 0: clip the global L2 norm of the averaged gradients to
                                       this (torch's clip_grad_norm_: x min(1, max / (norm + 1e-6))) */
} eff_zero_opts;
EFFDEF eff_status eff_zero_create(eff_comm *c, int64_t n_params, const eff_zero_opts *opts, eff_zero **out);
EFFDEF void       eff_zero_destroy(eff_zero *z);
/* Every rank passes the same full f32 vector; each keeps what its stage keeps. */
EFFDEF eff_status eff_zero_set_params(eff_zero *z, const float *params);
/* The full parameters as f32 (stage 3 gathers them; collective). */
EFFDEF eff_status eff_zero_get_params(eff_zero *z, float *params);
/* The same with one pointer per layer (layers[l] holds count_l floats): a model whose
   parameter tensors are the layers needs no flat copy. get: a NULL layers[l] is skipped. */
EFFDEF eff_status eff_zero_set_params_v(eff_zero *z, const float *const *layers);
EFFDEF eff_status eff_zero_get_params_v(eff_zero *z, float *const *layers);
/* Layer l's parameters (count_l elements of param_dtype): a pointer into the
   replicated copy (stages 0-2), or an all-gathered copy (stage 3). */
EFFDEF eff_status eff_zero_gather_layer(eff_zero *z, int layer, void **params);
EFFDEF eff_status eff_zero_release_layer(eff_zero *z, int layer);
/* Layer l's gradient buffer (count_l elements of param_dtype) to add into: the
   replicated gradients (stages 0-1), or a zeroed buffer (stages 2-3) that
   eff_zero_grad_done reduce-scatters (averaging over ranks) into this rank's
   gradient shard and frees. Not collective. */
EFFDEF eff_status eff_zero_grad_layer(eff_zero *z, int layer, void **grad);
EFFDEF eff_status eff_zero_grad_done(eff_zero *z, int layer);
/* Averages the gradients over ranks (stages 0-1), runs AdamW on this rank's
   shard, all-gathers the parameters (stages 1-2) and zeroes the gradients. */
EFFDEF eff_status eff_zero_step(eff_zero *z);
EFFDEF int64_t    eff_zero_step_count(const eff_zero *z);
/* The lr of the next steps (a schedule calls it before each step); 0 skips the update. */
EFFDEF eff_status eff_zero_set_lr(eff_zero *z, float lr);
/* Global L2 norm of the last step's averaged gradients (before clipping; computed only
   with max_grad_norm > 0, else 0). */
EFFDEF double     eff_zero_last_grad_norm(const eff_zero *z);
/* Sharded checkpoint: rank r writes "<prefix>.rank<r>-of-<N>" atomically (its
   slice of parameters, master weights, m and v, a checksum). The format does not
   depend on the stage: a checkpoint loads at any stage with the same N, dtype
   and layer sizes. Loading checks every header field and the checksum. */
EFFDEF eff_status eff_zero_save(eff_zero *z, const char *prefix);
EFFDEF eff_status eff_zero_load(eff_zero *z, const char *prefix);

/* Data-parallel AdamW over tensors that every rank holds (a model replica): after each
   rank's backward has written its gradients into grads[i], eff_dp_optim_step averages
   them over the ranks, clips the global norm, runs AdamW and writes the new values into
   params[i] on every rank, then zeroes grads[i] (as a local optimizer step would).
   Underneath is eff_zero with one layer per tensor, so stage 1-3 shard the AdamW state
   (and at 2-3 the gradients and parameters) exactly as above; the replica's own tensors
   stay the working copy for forward and backward. f32 tensors. Collective. */
typedef struct eff_dp_optim eff_dp_optim;
typedef struct eff_dp_optim_opts {
    int zero_stage;             /* 0 (plain DP) .. 3 */
    eff_adamw_opts adamw;       /* lr is replaced by each step's; .step ignored */
    float max_grad_norm;        /* > 0: clip_grad_norm_ of the averaged gradients */
} eff_dp_optim_opts;
EFFDEF eff_status eff_dp_optim_create(eff_comm *c, int n, float *const *params, float *const *grads, const int64_t *counts,
                                      const eff_dp_optim_opts *opts, eff_dp_optim **out);
/* One update with learning rate lr (0 skips the update). Every rank passes the same lr. */
EFFDEF eff_status eff_dp_optim_step(eff_dp_optim *o, float lr);
EFFDEF eff_zero  *eff_dp_optim_zero(const eff_dp_optim *o);   /* the underlying ZeRO object (norms, checkpoints) */
EFFDEF void       eff_dp_optim_destroy(eff_dp_optim *o);

/* Model-state bytes per rank of ZeRO stage 0-3 (ZeRO paper section 5.1):
   params = P*psi, grads = G*psi, optim = K*psi, each divided by n_ranks where the
   stage shards it (K = 12 for mixed-precision Adam, 8 for f32 Adam). */
typedef struct eff_zero_mem { double params, grads, optim, total; } eff_zero_mem;
EFFDEF eff_status eff_zero_memory_estimate(int stage, double n_params, int n_ranks, double param_bytes, double grad_bytes,
                                           double optim_bytes, eff_zero_mem *out);

/* ---------------------------------------------------------------------------
   Tensor parallel (Megatron-LM: Shoeybi et al. 2019) and sequence parallel
   (Korthikanti et al. 2022) over a TP communicator of t ranks.
   Activations are contiguous f32 [M, features] with M = tokens; under sequence
   parallelism each rank holds a contiguous block of M/t rows (Megatron's [s, b, h]
   layout puts the sequence outermost, so its blocks are contiguous). Weights are
   PyTorch's [out, in] (any dtype eff_linear_forward reads); weight gradients f32.
     column-parallel linear: W_r = rows block r of W [out, in]   -> y_r = x W_r^T + b_r
     row-parallel linear:    W_r = column block r of W [out, in] -> y = sum_r x_r W_r^T + b
   The conjugate operators (paper section 3): f is the identity forward and an
   all-reduce backward (in front of a column-parallel layer); g is an all-reduce
   forward and the identity backward (after a row-parallel layer). Under sequence
   parallelism f becomes an all-gather forward / reduce-scatter backward and g a
   reduce-scatter forward / all-gather backward (same volume: AR = RS + AG).
   Parameters replicated across TP ranks whose gradient is computed from a
   sequence block (the row-parallel bias here, LayerNorm weights in a model) get
   partial gradients: these functions all-reduce the bias's; all-reduce the
   others with eff_tp_all_reduce.
   Every function is collective over tp and returns an eff_status.
   --------------------------------------------------------------------------- */
/* Rank r's block [*start, *start + *len) of n items; n must be divisible by the size. */
EFFDEF eff_status eff_tp_part(eff_comm *tp, int64_t n, int64_t *start, int64_t *len);
/* Copies this rank's shard of a full weight: rows block (column-parallel) or column
   block (row-parallel) of src [n, k] into dst. Any 2-byte or 4-byte dtype. */
EFFDEF eff_status eff_tp_shard_rows(eff_comm *tp, eff_tensor *dst, const eff_tensor *src);
EFFDEF eff_status eff_tp_shard_cols(eff_comm *tp, eff_tensor *dst, const eff_tensor *src);
/* Sum of a contiguous f32 tensor over the TP ranks (f backward, g forward). */
EFFDEF eff_status eff_tp_all_reduce(eff_comm *tp, eff_tensor *x);
/* Sequence-parallel conjugates: gather = all-gather rows forward, reduce-scatter backward;
   scatter = reduce-scatter rows forward, all-gather backward. full: [M, C], local: [M/t, C]. */
EFFDEF eff_status eff_sp_gather_forward(eff_comm *tp, eff_tensor *full, const eff_tensor *local);
EFFDEF eff_status eff_sp_gather_backward(eff_comm *tp, eff_tensor *dlocal, const eff_tensor *dfull);
EFFDEF eff_status eff_sp_scatter_forward(eff_comm *tp, eff_tensor *local, const eff_tensor *full);
EFFDEF eff_status eff_sp_scatter_backward(eff_comm *tp, eff_tensor *dfull, const eff_tensor *dlocal);

/* Column-parallel linear. x [M, in] (sp: [M/t, in], all-gathered first); W_r [out/t, in];
   b_r [out/t] or NULL; y [M, out/t]. Backward: dx (=, summed over ranks; sp: reduce-
   scattered to [M/t, in]) may be NULL on every rank; dW_r, db_r (+=) may be NULL. */
EFFDEF eff_status eff_tp_column_linear_forward(eff_comm *tp, eff_tensor *y, const eff_tensor *x, const eff_tensor *W,
                                               const eff_tensor *b, int sp);
EFFDEF eff_status eff_tp_column_linear_backward(eff_comm *tp, eff_tensor *dx, eff_tensor *dW, eff_tensor *db, const eff_tensor *dy,
                                                const eff_tensor *x, const eff_tensor *W, int sp);
/* Row-parallel linear. x_r [M, in/t]; W_r [out, in/t]; b [out] (replicated) or NULL;
   y [M, out] summed over ranks (sp: reduce-scattered to [M/t, out]); the bias is added
   once, after the sum. Backward: dy [M, out] (sp: [M/t, out], all-gathered); dx_r (=),
   dW_r (+=), db (+=, the same on every rank) may be NULL. */
EFFDEF eff_status eff_tp_row_linear_forward(eff_comm *tp, eff_tensor *y, const eff_tensor *x, const eff_tensor *W,
                                            const eff_tensor *b, int sp);
EFFDEF eff_status eff_tp_row_linear_backward(eff_comm *tp, eff_tensor *dx, eff_tensor *dW, eff_tensor *db, const eff_tensor *dy,
                                             const eff_tensor *x, const eff_tensor *W, int sp);

/* Parallel MLP: y = act(x W1^T + b1) W2^T + b2 with W1 (and W3) column-parallel and W2
   row-parallel, one collective each way (two under sp, none in between).
   GELU: act(h1) = gelu(h1). SWIGLU: act = silu(x W1^T) * (x W3^T) (W1 = gate, W3 = up). */
enum { EFF_TP_GELU = 0, EFF_TP_SWIGLU = 1 };
typedef struct eff_tp_mlp {     /* this rank's shards; a bias with data == NULL is absent */
    eff_tensor w1, b1;          /* [F/t, C], [F/t] */
    eff_tensor w3;              /* [F/t, C] (SWIGLU only) */
    eff_tensor w2, b2;          /* [C, F/t], [C] */
} eff_tp_mlp;
typedef struct eff_tp_mlp_opts {
    int act;                    /* EFF_TP_GELU (default) or EFF_TP_SWIGLU */
    int sequence_parallel;      /* x and y are [M/t, C] sequence blocks */
} eff_tp_mlp_opts;
typedef struct eff_tp_mlp_cache { eff_tensor h1, h3, a; } eff_tp_mlp_cache;   /* [M, F/t] each, from the context */
EFFDEF eff_status eff_tp_mlp_forward(eff_comm *tp, const eff_tp_mlp *m, const eff_tp_mlp_opts *opts, eff_tensor *y,
                                     const eff_tensor *x, eff_tp_mlp_cache *cache);
/* grads: tensors of the shapes of m's to add (+=) into (any may have data == NULL);
   dx (=) may be NULL on every rank. */
EFFDEF eff_status eff_tp_mlp_backward(eff_comm *tp, const eff_tp_mlp *m, const eff_tp_mlp_opts *opts, eff_tp_mlp *grads,
                                      eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x, const eff_tp_mlp_cache *cache);
EFFDEF void       eff_tp_mlp_cache_free(eff_comm *tp, eff_tp_mlp_cache *cache);

/* Vocab-parallel embedding: table_r = rows [r*V/t, (r+1)*V/t) of table [V, C]; ids [M]
   i32 (global). out [M, C] = sum over ranks of the masked lookups (sp: reduce-scattered
   to [M/t, C]). Backward: dtable_r[id - v0] += dout (sp: dout all-gathered first). */
EFFDEF eff_status eff_tp_vocab_embedding_forward(eff_comm *tp, eff_tensor *out, const eff_tensor *ids, const eff_tensor *table,
                                                 int sp);
EFFDEF eff_status eff_tp_vocab_embedding_backward(eff_comm *tp, eff_tensor *dtable, const eff_tensor *dout, const eff_tensor *ids,
                                                  int sp);
/* Vocab-parallel cross-entropy (Megatron cross_entropy.py): logits_r [N, V/t] are this
   rank's vocabulary columns; targets [N] i32 global ids (-100: ignored). Three all-
   reduces of N floats (max, target logit, sum of exp) instead of gathering [N, V].
   losses [N] (may be NULL), *mean_loss over non-ignored rows (may be NULL).
   Backward: dlogits_r = (softmax - onehot) * dloss, dloss = 0 means 1/n_valid. */
EFFDEF eff_status eff_tp_vocab_cross_entropy_forward(eff_comm *tp, eff_tensor *losses, float *mean_loss, const eff_tensor *logits,
                                                     const eff_tensor *targets);
EFFDEF eff_status eff_tp_vocab_cross_entropy_backward(eff_comm *tp, eff_tensor *dlogits, const eff_tensor *logits,
                                                      const eff_tensor *targets, float dloss);

/* ---------------------------------------------------------------------------
   Pipeline parallelism: schedules as per-stage action lists, simulated into a
   timetable, and an executor that runs one over a communicator (rank = stage).
   p stages, m micro-batches, v model chunks per stage (interleaved: virtual
   stage vs = chunk*p + stage). Every op (a forward F, an input-gradient backward
   B, a weight-gradient backward W) of one chunk takes one time unit; makespan,
   bubble and in-flight counts come from an event simulation with the real
   dependencies: F(vs) after F(vs-1); B(vs) after B(vs+1) (the last virtual stage:
   after its own F); W after its B.
     GPIPE        all forwards, then all backwards          bubble (p-1)/m
     1F1B         PipeDream-Flush (Megatron)                 bubble (p-1)/m, peak p-i
     INTERLEAVED  Megatron's interleaved 1F1B (m % p == 0)   bubble (p-1)/(v m)
     ZB_H1        zero bubble H1 (Qi et al. 2024): B and W   bubble (p-1)/(3m)
   bubble = idle time / compute time, summed over stages; as a fraction of wall
   time GPipe's is (p-1)/(m+p-1).
   --------------------------------------------------------------------------- */
enum { EFF_PP_GPIPE = 0, EFF_PP_1F1B = 1, EFF_PP_INTERLEAVED = 2, EFF_PP_ZB_H1 = 3 };
enum { EFF_PP_F = 0, EFF_PP_B = 1, EFF_PP_W = 2 };
typedef struct eff_pp_action { int32_t kind, mb, chunk; int64_t start; } eff_pp_action;   /* start: simulated time */
typedef struct eff_pp_schedule {
    int kind, p, m, v;
    int64_t *n_actions;         /* [p] */
    eff_pp_action **actions;    /* [p][n_actions[i]] in execution order */
    int64_t makespan;           /* simulated time units */
    double bubble;              /* idle / compute, over all stages */
    double idle_fraction;       /* idle / (p * makespan) */
    int64_t *peak_inflight;     /* [p] most micro-batch chunks whose activations are held */
} eff_pp_schedule;
EFFDEF const char *eff_pp_schedule_name(int kind);
/* Generates and simulates. EFF_ERR_INVALID_ARG for p, m, v out of range (v > 1
   only for INTERLEAVED, which also needs m % p == 0). */
EFFDEF eff_status eff_pp_schedule_create(eff_ctx *ctx, int kind, int p, int m, int v, eff_pp_schedule *out);
EFFDEF void       eff_pp_schedule_free(eff_ctx *ctx, eff_pp_schedule *s);
/* Checks that every (micro-batch, virtual stage) has one F, one B (and one W for
   ZB_H1) and that the per-stage orders can run (no deadlock); EFF_ERR_FORMAT if not. */
EFFDEF eff_status eff_pp_schedule_validate(eff_ctx *ctx, const eff_pp_schedule *s);
/* The timetable as text: one row per stage, one cell per time unit ("F3", "B0",
   "W5", "F3.1" for chunk 1, "." idle), with a header line. Writes at most size
   bytes (NUL-terminated) and returns the length the whole text needs. */
EFFDEF int64_t    eff_pp_schedule_format(const eff_pp_schedule *s, char *buf, size_t size);

/* Stage callbacks for eff_pp_run. Activations between stages are f32 arrays of
   act_count elements. forward: in is NULL on the first virtual stage, out NULL on
   the last (where the callback computes the loss); backward: dout NULL on the last,
   din NULL on the first. backward_weight runs the W ops of ZB_H1 (NULL: W is a
   no-op, so backward must also do the weight gradient). The callbacks keep
   whatever they need between an F and its B. */
typedef struct eff_pp_stage_fns {
    eff_status (*forward)(void *user, int mb, int chunk, const float *in, float *out);
    eff_status (*backward)(void *user, int mb, int chunk, const float *dout, float *din);
    eff_status (*backward_weight)(void *user, int mb, int chunk);
    void *user;
    int64_t act_count;
} eff_pp_stage_fns;
/* Runs this rank's action list (rank = stage; size must equal s->p), sending
   activations forward and gradients backward with eff_comm_send/recv. Collective. */
EFFDEF eff_status eff_pp_run(eff_comm *pp, const eff_pp_schedule *s, const eff_pp_stage_fns *fns);


/* ---------------------------------------------------------------------------
   Expert parallelism (GShard, Switch Transformer): E experts over the n ranks of
   an EP communicator, rank q owning experts [q*E/n, (q+1)*E/n). Each rank routes
   its T tokens x [T, C] to k experts each (expert ids [T*k], token-major); an
   expert takes at most `cap` tokens from each source rank, first come first
   served, and later ones are dropped (they contribute nothing). Expert inputs
   and outputs are laid out [E/n, n*cap, C]: local expert e's slots from source
   rank j are rows [j*cap, (j+1)*cap); unused slots are zero. One all-to-all of
   n*(E/n)*cap*C floats each way, and the same in backward (Megatron's _AllToAll).
     dispatch: x -> expert inputs; slot[T*k] gets each choice's position in the
               send layout [n, E/n, cap] (-1: dropped)
     combine:  expert outputs -> y[t] = sum_j gate[t*k+j] * out(slot) ; cache
               (may be NULL; needed by backward) keeps the returned outputs
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_ep_dispatch_forward(eff_comm *ep, int64_t n_experts, int64_t cap, int k, const eff_tensor *x,
                                          const int32_t *expert, int32_t *slot, eff_tensor *expert_in);
/* dx (=) [T, C] from the expert-input gradient [E/n, n*cap, C]. */
EFFDEF eff_status eff_ep_dispatch_backward(eff_comm *ep, int64_t n_experts, int64_t cap, int k, const int32_t *slot,
                                           const eff_tensor *dexpert_in, eff_tensor *dx);
/* cache: [n*(E/n)*cap*C] f32 or NULL. */
EFFDEF eff_status eff_ep_combine_forward(eff_comm *ep, int64_t n_experts, int64_t cap, int k, const int32_t *slot, const float *gate,
                                         const eff_tensor *expert_out, eff_tensor *y, float *cache);
/* dexpert_out (=) [E/n, n*cap, C] and dgate (=, [T*k], may be NULL) from dy [T, C]. */
EFFDEF eff_status eff_ep_combine_backward(eff_comm *ep, int64_t n_experts, int64_t cap, int k, const int32_t *slot, const float *gate,
                                          const float *cache, const eff_tensor *dy, eff_tensor *dexpert_out, float *dgate);

/* ---------------------------------------------------------------------------
   Ring attention (Liu, Zaharia & Abbeel 2023) and striped attention (Brandon et
   al. 2023): the sequence of T = n * Tl tokens is split over the n ranks of a
   sequence-parallel communicator; each rank keeps its queries and passes its K/V
   block around the ring (send to rank+1, receive from rank-1), runs flash
   attention on (its Q, the visiting K/V) and merges the partial (O, lse) with
   eff_attn_merge. After n steps every query has seen every key exactly once, so
   the result equals one rank's flash attention over the whole sequence.
     EFF_RING_CONTIGUOUS  rank r holds tokens [r Tl, (r+1) Tl). Causal: block q is
                          full for q < r, the usual causal diagonal for q = r and
                          invisible for q > r (skipped), so rank n-1 works n times
                          as long as rank 0.
     EFF_RING_STRIPED     rank r holds tokens r, r+n, r+2n, ... Local query a is token
                          a n + r, local key b of block q is b n + q, so causal means
                          b <= a for q <= r and b < a for q > r: every block is a half
                          triangle (causal offset 0 or -1) and the work is balanced.
   Shapes (eff_attn.h's): Q [B, Hq, Tl, d], K [B, Hkv, Tl, d], V [B, Hkv, Tl, dv],
   any float dtypes and outer strides; O [B, Hq, Tl, dv] and lse [B, Hq, Tl] f32.
   Every rank passes the same shapes. Collective; n - 1 K/V transfers forward.
   Backward circulates K/V with dK/dV accumulators (f32) that return to their owner
   after n hops; it needs the forward's O and lse (the global ones). dQ, dK, dV (=).
   --------------------------------------------------------------------------- */
enum { EFF_RING_CONTIGUOUS = 0, EFF_RING_STRIPED = 1 };
typedef struct eff_ring_attn_opts {
    int layout;         /* EFF_RING_CONTIGUOUS (default) or EFF_RING_STRIPED */
    int causal;
    double scale;       /* 0: 1/sqrt(d) */
} eff_ring_attn_opts;
EFFDEF eff_status eff_ring_attn_forward(eff_comm *c, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q, const eff_tensor *K,
                                        const eff_tensor *V, const eff_ring_attn_opts *opts);
EFFDEF eff_status eff_ring_attn_backward(eff_comm *c, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV, const eff_tensor *dO,
                                         const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V, const eff_tensor *O,
                                         const eff_tensor *lse, const eff_ring_attn_opts *opts);
/* This rank's tokens of a full [B, H, T, d] tensor (dim 2 split by layout; T divisible
   by the size): local (=) [B, H, T/n, d]. Not collective. */
EFFDEF eff_status eff_ring_attn_shard(eff_comm *c, eff_tensor *local, const eff_tensor *full, int layout);
/* The inverse: every rank's tokens gathered into full (=) on every rank. Collective. */
EFFDEF eff_status eff_ring_attn_unshard(eff_comm *c, eff_tensor *full, const eff_tensor *local, int layout);

/* ---------------------------------------------------------------------------
   Estimator: memory per rank and bytes each rank sends per training step, for a
   GPT-style transformer in Megatron's notation (L layers, hidden h, a heads,
   sequence s, micro-batch b, vocabulary V) on a dp x tp x pp grid (x cp ranks of
   ring attention). Collectives are costed as ring algorithms: an all-reduce of S
   bytes sends 2 (n-1)/n S per rank, a reduce-scatter or all-gather (n-1)/n S.
   --------------------------------------------------------------------------- */
enum { EFF_RECOMPUTE_NONE = 0, EFF_RECOMPUTE_SELECTIVE = 1, EFF_RECOMPUTE_FULL = 2 };
/* Activation bytes of one layer for one micro-batch (Korthikanti et al. 2022, Table 2;
   16-bit activations and 1-byte dropout masks), on one of t tensor-parallel ranks:
     no parallelism        s b h (34 + 5 a s / h)
     TP                    s b h (10 + 24/t + 5 a s / (h t))
     TP + SP               s b h (34/t + 5 a s / (h t))
     selective recompute   drops the 5 a s / h term (FlashAttention stores the same)
     full recompute        2 s b h (only the layer input is kept)
   t = 1 is the no-parallelism row. Returns -1 for invalid arguments. */
EFFDEF double eff_est_activation_bytes(double s, double b, double h, double a, int t, int sp, int recompute);
typedef struct eff_est_config {
    double n_params;            /* psi; 0: 12 L h^2 (1 + 13/(12 h) + (V + s)/(12 L h)) (Narayanan et al. 2021) */
    int64_t n_layers, hidden, heads, seq, micro_batch, vocab;
    int64_t n_micro;            /* micro-batches per step (gradient accumulation / pipeline); 0: 1 */
    int dp, tp, pp, cp;         /* data, tensor, pipeline, context (ring attention) degrees; 0: 1 */
    int sp;                     /* sequence parallelism in the TP regions */
    int zero_stage;             /* 0..3 over the dp ranks */
    int recompute;              /* EFF_RECOMPUTE_* */
    int gpipe;                  /* 1: GPipe keeps all n_micro micro-batches; 0: 1F1B keeps min(pp, n_micro) */
    double param_bytes, grad_bytes, optim_bytes;   /* per parameter; 0: 2, 2, 12 (mixed-precision Adam) */
} eff_est_config;
typedef struct eff_est_result {
    double n_params;            /* psi used */
    double params, grads, optim;/* model-state bytes per rank: psi / (tp pp), sharded over dp by ZeRO */
    double act_layer;           /* activation bytes per layer and micro-batch on one rank (s / cp tokens) */
    double act;                 /* activation bytes at the peak: act_layer x L/pp layers x micro-batches in flight */
    double total;               /* params + grads + optim + act */
    double comm_dp;             /* gradient all-reduce, or ZeRO's reduce-scatter + all-gathers (stage 3: per micro-batch) */
    double comm_tp;             /* 4 all-reduces of s b h per layer and micro-batch (SP: 4 all-gathers + 4 reduce-scatters) */
    double comm_pp;             /* activations forward, gradients backward, per micro-batch (SP: sharded by t) */
    double comm_cp;             /* ring attention: K/V hops forward and backward, dK/dV hops backward */
    double comm_total;
} eff_est_result;
EFFDEF eff_status eff_est_run(const eff_est_config *cfg, eff_est_result *out);

#ifdef __cplusplus
}
#endif
#endif /* EFF_PARALLEL_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_PARALLEL_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_PARALLEL_IMPLEMENTED)
#define EFF_PARALLEL_IMPLEMENTED
#define EFF__WANT_INTERNALS
#include "eff_tensor.h"

#if !defined(EFF_NO_SIMD) && (defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__))
#include <immintrin.h>
#endif
#if defined(EFF__POSIX) && (defined(__GNUC__) || defined(__clang__))
#define EFF__LOCAL_COMM 1
#include <pthread.h>
#include <sched.h>
#include <sys/time.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   The communicator handle and the argument-checking wrappers
   --------------------------------------------------------------------------- */
struct eff_comm {
    const eff_comm_backend *be;
    void *impl;
    eff_ctx *ctx;
    int rank, size;
    double timeout;     /* seconds */
    int algo;
    int broken;         /* an earlier call failed */
    int launcher_owned; /* eff_comm_local_run frees it; eff_comm_destroy ignores it */
};

static size_t eff__comm_esize(int dt) {
    switch (dt) {
    case EFF_F32: case EFF_I32: return 4;
    case EFF_BF16: case EFF_F16: return 2;
    default: return 0;
    }
}
static const char *eff__red_name(int op) {
    static const char *const names[] = {"sum", "avg", "max", "min"};
    return op >= 0 && op < EFF_RED_COUNT ? names[op] : "?";
}

EFFDEF eff_status eff_comm_create_custom(eff_ctx *ctx, int rank, int size, const eff_comm_backend *be, void *impl,
                                         eff_comm **out) {
    eff_comm *c;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, out);
    *out = NULL;
    EFF__CHECK_PTR(ctx, be);
    EFF__CHECK(ctx, size >= 1 && rank >= 0 && rank < size, EFF_ERR_INVALID_ARG,
               "eff_comm_create_custom: rank %d / size %d out of range", rank, size);
    c = (eff_comm *)eff_ctx_calloc(ctx, sizeof *c);
    if (!c) return EFF_ERR_OOM;
    c->be = be; c->impl = impl; c->ctx = ctx; c->rank = rank; c->size = size;
    c->timeout = 30.0;
    *out = c;
    return EFF_OK;
}
EFFDEF void *eff_comm_impl(const eff_comm *c) { return c ? c->impl : NULL; }
EFFDEF int eff_comm_rank(const eff_comm *c) { return c ? c->rank : -1; }
EFFDEF int eff_comm_size(const eff_comm *c) { return c ? c->size : 0; }
EFFDEF eff_ctx *eff_comm_ctx(const eff_comm *c) { return c ? c->ctx : NULL; }
EFFDEF const char *eff_comm_backend_name(const eff_comm *c) { return c && c->be ? c->be->name : "none"; }
EFFDEF double eff_comm_timeout(const eff_comm *c) { return c ? c->timeout : 0.0; }
EFFDEF eff_status eff_comm_set_timeout(eff_comm *c, double seconds) {
    if (!c) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(c->ctx, seconds > 0.0 && seconds == seconds, EFF_ERR_INVALID_ARG,
               "eff_comm_set_timeout: argument 'seconds' = %g must be > 0", seconds);
    c->timeout = seconds;
    return EFF_OK;
}
EFFDEF eff_status eff_comm_set_algo(eff_comm *c, int algo) {
    if (!c) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(c->ctx, algo >= EFF_COMM_ALGO_AUTO && algo <= EFF_COMM_ALGO_RING, EFF_ERR_INVALID_ARG,
               "eff_comm_set_algo: argument 'algo' = %d is not an EFF_COMM_ALGO_*", algo);
    c->algo = algo;
    return EFF_OK;
}
EFFDEF void eff_comm_destroy(eff_comm *c) {
    eff_ctx *ctx;
    if (!c || c->launcher_owned) return;
    ctx = c->ctx;
    if (c->be && c->be->destroy) c->be->destroy(c);
    eff_ctx_free(ctx, c);
}

/* A failed call breaks the communicator: peers may already wait inside it. */
static eff_status eff__comm_fail(eff_comm *c, eff_status s) {
    if (s != EFF_OK && !c->broken) {
        c->broken = 1;
        if (c->be->abort) c->be->abort(c);
    }
    return s;
}

/* The size-1 collectives copy through the backend (device memory for NCCL). */
static eff_status eff__comm_copy(eff_comm *c, void *dst, const void *src, size_t nb) {
    if (nb == 0 || dst == src) return EFF_OK;
    if (c->be->copy) return c->be->copy(c, dst, src, nb);
    memmove(dst, src, nb);
    return EFF_OK;
}

/* Checks shared by every collective (buffers are checked by each caller). */
static eff_status eff__comm_check(eff_comm *c, const char *fn, int64_t count, const char *count_name, int dtype,
                                  int op, int root) {
    int64_t total;
    EFF__CHECK(c->ctx, !c->broken, EFF_ERR_PEER, "%s: the communicator is broken by an earlier error", fn);
    EFF__CHECK(c->ctx, count >= 0, EFF_ERR_INVALID_ARG, "%s: argument '%s' = %lld < 0", fn, count_name, (long long)count);
    EFF__CHECK(c->ctx, eff__comm_esize(dtype) != 0, EFF_ERR_DTYPE, "%s: argument 'dtype' = %s; f32, bf16, f16 or i32 expected",
               fn, eff_dtype_name(dtype) ? eff_dtype_name(dtype) : "unknown");
    EFF__CHECK(c->ctx, eff__mul_ovf(count, (int64_t)c->size * (int64_t)eff__comm_esize(dtype), &total) == 0,
               EFF_ERR_OVERFLOW, "%s: argument '%s' = %lld overflows the byte size", fn, count_name, (long long)count);
    EFF__CHECK(c->ctx, op >= 0 && op < EFF_RED_COUNT, EFF_ERR_INVALID_ARG, "%s: argument 'op' = %d is not an eff_red_op", fn, op);
    EFF__CHECK(c->ctx, root >= 0 && root < c->size, EFF_ERR_INVALID_ARG, "%s: argument 'root' = %d not in [0, %d)", fn, root,
               c->size);
    return EFF_OK;
}
#define EFF__COMM_BEGIN(fn)                                                                  \
    (void)fn;                                                                                \
    if (!c) return EFF_ERR_INVALID_ARG

EFFDEF eff_status eff_comm_barrier(eff_comm *c) {
    const char *fn = "eff_comm_barrier";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, 0, "count", EFF_F32, 0, 0);
    if (s == EFF_OK && c->size > 1) s = c->be->barrier(c);
    return eff__comm_fail(c, s);
}

EFFDEF eff_status eff_comm_broadcast(eff_comm *c, void *buf, int64_t count, int dtype, int root) {
    const char *fn = "eff_comm_broadcast";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, count, "count", dtype, 0, root);
    if (s == EFF_OK && !buf && count > 0) s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'buf' is NULL", fn);
    if (s == EFF_OK && c->size > 1) s = c->be->broadcast(c, buf, count, dtype, root);
    return eff__comm_fail(c, s);
}

/* Reduction of one rank (size 1): recv = send, AVG divides by 1. */
EFFDEF eff_status eff_comm_reduce(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root) {
    const char *fn = "eff_comm_reduce";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, count, "count", dtype, op, root);
    if (s == EFF_OK && !send && count > 0) s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'send' is NULL", fn);
    if (s == EFF_OK && !recv && count > 0 && c->rank == root)
        s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'recv' is NULL on the root", fn);
    if (s == EFF_OK) {
        if (c->size > 1) s = c->be->reduce(c, send, recv, count, dtype, op, root);
        else if (count > 0) s = eff__comm_copy(c, recv, send, (size_t)count * eff__comm_esize(dtype));
    }
    return eff__comm_fail(c, s);
}

EFFDEF eff_status eff_comm_all_reduce(eff_comm *c, void *buf, int64_t count, int dtype, int op) {
    const char *fn = "eff_comm_all_reduce";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, count, "count", dtype, op, 0);
    if (s == EFF_OK && !buf && count > 0) s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'buf' is NULL", fn);
    if (s == EFF_OK && c->size > 1) s = c->be->all_reduce(c, buf, count, dtype, op);
    return eff__comm_fail(c, s);
}

static int eff__overlap(const void *a, size_t na, const void *b, size_t nb) {
    const char *pa = (const char *)a, *pb = (const char *)b;
    return na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

EFFDEF eff_status eff_comm_reduce_scatter(eff_comm *c, const void *send, void *recv, int64_t recv_count, int dtype, int op) {
    const char *fn = "eff_comm_reduce_scatter";
    eff_status s;
    size_t es, nb;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, recv_count, "recv_count", dtype, op, 0);
    if (s == EFF_OK && (!send || !recv) && recv_count > 0)
        s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, send ? "recv" : "send");
    if (s == EFF_OK) {
        es = eff__comm_esize(dtype); nb = (size_t)recv_count * es;
        if ((const char *)recv != (const char *)send + (size_t)c->rank * nb && eff__overlap(send, nb * (size_t)c->size, recv, nb))
            s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG,
                              "%s: 'recv' overlaps 'send' but is not send + rank*recv_count (the in-place form)", fn);
    }
    if (s == EFF_OK) {
        if (c->size > 1) s = c->be->reduce_scatter(c, send, recv, recv_count, dtype, op);
        else if (recv_count > 0) s = eff__comm_copy(c, recv, send, (size_t)recv_count * eff__comm_esize(dtype));
    }
    return eff__comm_fail(c, s);
}

EFFDEF eff_status eff_comm_all_gather(eff_comm *c, const void *send, void *recv, int64_t send_count, int dtype) {
    const char *fn = "eff_comm_all_gather";
    eff_status s;
    size_t nb;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, send_count, "send_count", dtype, 0, 0);
    if (s == EFF_OK && (!send || !recv) && send_count > 0)
        s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, send ? "recv" : "send");
    if (s == EFF_OK) {
        nb = (size_t)send_count * eff__comm_esize(dtype);
        if ((const char *)send != (const char *)recv + (size_t)c->rank * nb && eff__overlap(send, nb, recv, nb * (size_t)c->size))
            s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG,
                              "%s: 'send' overlaps 'recv' but is not recv + rank*send_count (the in-place form)", fn);
    }
    if (s == EFF_OK) {
        if (c->size > 1) s = c->be->all_gather(c, send, recv, send_count, dtype);
        else if (send_count > 0) s = eff__comm_copy(c, recv, send, (size_t)send_count * eff__comm_esize(dtype));
    }
    return eff__comm_fail(c, s);
}

EFFDEF eff_status eff_comm_all_to_all(eff_comm *c, const void *send, void *recv, int64_t count, int dtype) {
    const char *fn = "eff_comm_all_to_all";
    eff_status s;
    size_t nb;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_check(c, fn, count, "count", dtype, 0, 0);
    if (s == EFF_OK && (!send || !recv) && count > 0)
        s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, send ? "recv" : "send");
    if (s == EFF_OK) {
        nb = (size_t)count * eff__comm_esize(dtype) * (size_t)c->size;
        if (eff__overlap(send, nb, recv, nb)) s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: 'send' and 'recv' overlap", fn);
    }
    if (s == EFF_OK) {
        if (c->size > 1) s = c->be->all_to_all(c, send, recv, count, dtype);
        else if (count > 0) s = eff__comm_copy(c, recv, send, (size_t)count * eff__comm_esize(dtype));
    }
    return eff__comm_fail(c, s);
}

static eff_status eff__comm_p2p_check(eff_comm *c, const char *fn, const void *buf, int64_t count, int dtype, int peer, int tag) {
    EFF__TRY(eff__comm_check(c, fn, count, "count", dtype, 0, 0));
    EFF__CHECK(c->ctx, buf != NULL || count == 0, EFF_ERR_INVALID_ARG, "%s: argument 'buf' is NULL", fn);
    EFF__CHECK(c->ctx, peer >= 0 && peer < c->size && peer != c->rank, EFF_ERR_INVALID_ARG,
               "%s: argument 'peer' = %d must be another rank in [0, %d)", fn, peer, c->size);
    EFF__CHECK(c->ctx, tag >= 0 && tag <= EFF_COMM_TAG_MAX, EFF_ERR_INVALID_ARG, "%s: argument 'tag' = %d not in [0, %d]", fn,
               tag, (int)EFF_COMM_TAG_MAX);
    return EFF_OK;
}
EFFDEF eff_status eff_comm_send(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_send";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_p2p_check(c, fn, buf, count, dtype, peer, tag);
    if (s == EFF_OK) s = c->be->send(c, buf, count, dtype, peer, tag);
    return eff__comm_fail(c, s);
}
EFFDEF eff_status eff_comm_recv(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_recv";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_p2p_check(c, fn, buf, count, dtype, peer, tag);
    if (s == EFF_OK) s = c->be->recv(c, buf, count, dtype, peer, tag);
    return eff__comm_fail(c, s);
}
EFFDEF eff_status eff_comm_sendrecv(eff_comm *c, const void *send, int64_t send_count, int dest, void *recv, int64_t recv_count,
                                    int src, int dtype, int tag) {
    const char *fn = "eff_comm_sendrecv";
    eff_status s;
    EFF__COMM_BEGIN(fn);
    s = eff__comm_p2p_check(c, fn, send, send_count, dtype, dest, tag);
    if (s == EFF_OK) s = eff__comm_p2p_check(c, fn, recv, recv_count, dtype, src, tag);
    if (s == EFF_OK && eff__overlap(send, (size_t)send_count * eff__comm_esize(dtype), recv, (size_t)recv_count * eff__comm_esize(dtype)))
        s = eff_ctx_error(c->ctx, EFF_ERR_INVALID_ARG, "%s: 'send' and 'recv' overlap", fn);
    if (s == EFF_OK) {
        if (c->be->sendrecv) s = c->be->sendrecv(c, send, send_count, dest, recv, recv_count, src, dtype, tag);
        else {
            s = c->be->send(c, send, send_count, dtype, dest, tag);
            if (s == EFF_OK) s = c->be->recv(c, recv, recv_count, dtype, src, tag);
        }
    }
    return eff__comm_fail(c, s);
}

/* Split: gather every rank's (color, key) through the parent, so each rank knows
   its group and its new rank; the backend then builds the group's shared state. */
EFFDEF eff_status eff_comm_split(eff_comm *c, int color, int key, eff_comm **out) {
    const char *fn = "eff_comm_split";
    int32_t mine[2];
    int32_t *all = NULL;
    int *members = NULL;
    int i, j, n_members = 0, new_rank = -1;
    eff_status s;
    if (!c) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(c->ctx, out);
    *out = NULL;
    EFF__CHECK(c->ctx, color >= 0 || color == EFF_COMM_UNDEFINED, EFF_ERR_INVALID_ARG,
               "%s: argument 'color' = %d must be >= 0 or EFF_COMM_UNDEFINED", fn, color);
    mine[0] = color; mine[1] = key;
    all = (int32_t *)eff_ctx_alloc(c->ctx, sizeof(int32_t) * 2 * (size_t)c->size);
    members = (int *)eff_ctx_alloc(c->ctx, sizeof(int) * (size_t)c->size);
    if (!all || !members) { eff_ctx_free(c->ctx, all); eff_ctx_free(c->ctx, members); return eff__comm_fail(c, EFF_ERR_OOM); }
    s = eff_comm_all_gather(c, mine, all, 2, EFF_I32);
    if (s == EFF_OK && color != EFF_COMM_UNDEFINED) {
        /* members in (key, parent rank) order: insertion sort, sizes are small */
        for (i = 0; i < c->size; i++) {
            if (all[2 * i] != color) continue;
            for (j = n_members; j > 0; j--) {
                int p = members[j - 1];
                if (all[2 * p + 1] < all[2 * i + 1] || (all[2 * p + 1] == all[2 * i + 1] && p < i)) break;
                members[j] = p;
            }
            members[j] = i;
            n_members++;
        }
        for (i = 0; i < n_members; i++) if (members[i] == c->rank) new_rank = i;
    }
    if (s == EFF_OK)
        s = c->be->split(c, color, key, new_rank, n_members, color == EFF_COMM_UNDEFINED ? NULL : members, out);
    if (s == EFF_OK && *out) { (*out)->timeout = c->timeout; (*out)->algo = c->algo; }
    eff_ctx_free(c->ctx, all);
    eff_ctx_free(c->ctx, members);
    return eff__comm_fail(c, s);
}

/* ---------------------------------------------------------------------------
   Reduction kernels shared by the backends: accumulate tiles of up to EFF__RTILE
   elements in f32 (i32 for EFF_I32), then round once into the buffer's dtype.
   --------------------------------------------------------------------------- */
#define EFF__RTILE 2048
typedef union eff__rtile { float f[EFF__RTILE]; int32_t i[EFF__RTILE]; } eff__rtile;

static void eff__red_load_f32(int dt, const void *src, int64_t off, int64_t len, float *dst) {
    if (dt == EFF_F32) memcpy(dst, (const float *)src + off, (size_t)len * 4);
    else if (dt == EFF_BF16) eff_bf16_to_fp32_row((const uint16_t *)src + off, dst, len);
    else eff_fp16_to_fp32_row((const uint16_t *)src + off, dst, len);
}
static void eff__red_combine_f32(int op, float *EFF__RESTRICT a, const float *EFF__RESTRICT b, int64_t len) {
    int64_t i = 0;
    if (op == EFF_RED_MAX) {
        for (; i + EFF__VL <= len; i += EFF__VL) eff__vstore(a + i, eff__vmax(eff__vload(a + i), eff__vload(b + i)));
        for (; i < len; i++) a[i] = a[i] > b[i] ? a[i] : b[i];
    } else if (op == EFF_RED_MIN) {
        for (; i + EFF__VL <= len; i += EFF__VL) eff__vstore(a + i, eff__vmin(eff__vload(a + i), eff__vload(b + i)));
        for (; i < len; i++) a[i] = a[i] < b[i] ? a[i] : b[i];
    } else {
        for (; i + EFF__VL <= len; i += EFF__VL) eff__vstore(a + i, eff__vadd(eff__vload(a + i), eff__vload(b + i)));
        for (; i < len; i++) a[i] += b[i];
    }
}
static void eff__red_combine_i32(int op, int32_t *EFF__RESTRICT a, const int32_t *EFF__RESTRICT b, int64_t len) {
    int64_t i;
    if (op == EFF_RED_MAX) for (i = 0; i < len; i++) a[i] = a[i] > b[i] ? a[i] : b[i];
    else if (op == EFF_RED_MIN) for (i = 0; i < len; i++) a[i] = a[i] < b[i] ? a[i] : b[i];
    else for (i = 0; i < len; i++) a[i] = (int32_t)((uint32_t)a[i] + (uint32_t)b[i]);   /* wraps, no UB */
}

/* acc[0:len] = op over the n sources src[j] + off, in source order 0..n-1, then AVG
   divides by avg_n (pass n; 0 = no division). acc is f32 (i32 for EFF_I32), tmp
   a scratch of EFF__RTILE floats for 16-bit sources. len <= EFF__RTILE. */
static void eff__red_tile(int dt, int op, int n, const void *const *src, int64_t off, int64_t len, void *acc, float *tmp,
                          int avg_n) {
    int j;
    int64_t i;
    if (dt == EFF_I32) {
        int32_t *a = (int32_t *)acc;
        memcpy(a, (const int32_t *)src[0] + off, (size_t)len * 4);
        for (j = 1; j < n; j++) eff__red_combine_i32(op, a, (const int32_t *)src[j] + off, len);
        if (op == EFF_RED_AVG && avg_n > 1) for (i = 0; i < len; i++) a[i] /= avg_n;
        return;
    }
    eff__red_load_f32(dt, src[0], off, len, (float *)acc);
    for (j = 1; j < n; j++) {
        if (dt == EFF_F32) eff__red_combine_f32(op, (float *)acc, (const float *)src[j] + off, len);
        else { eff__red_load_f32(dt, src[j], off, len, tmp); eff__red_combine_f32(op, (float *)acc, tmp, len); }
    }
    if (op == EFF_RED_AVG && avg_n > 1) {
        float *a = (float *)acc, d = (float)avg_n;
        for (i = 0; i < len; i++) a[i] /= d;
    }
}
/* dst + off = acc[0:len] rounded into dt. */
static void eff__red_store(int dt, const void *acc, void *dst, int64_t off, int64_t len) {
    if (dt == EFF_F32 || dt == EFF_I32) memcpy((char *)dst + off * 4, acc, (size_t)len * 4);
    else if (dt == EFF_BF16) eff_fp32_to_bf16_row((const float *)acc, (uint16_t *)dst + off, len);
    else eff_fp32_to_fp16_row((const float *)acc, (uint16_t *)dst + off, len);
}
/* Non-temporal copy for results far larger than the caches: the stores skip
   the read-for-ownership and do not evict useful lines. Call eff__stream_fence()
   before another thread may read dst.
   TODO(eff_tensor.h): a streaming store in the SIMD layer (eff__vstream). */
static void eff__stream_copy(void *dst, const void *src, size_t nb) {
#if !defined(EFF_NO_SIMD) && (defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__))
#if defined(__AVX512F__)
    const size_t V = 64;
#elif defined(__AVX__)
    const size_t V = 32;
#else
    const size_t V = 16;
#endif
    char *d = (char *)dst;
    const char *s = (const char *)src;
    size_t head = (V - ((uintptr_t)d & (V - 1))) & (V - 1);
    if (head > nb) head = nb;
    memcpy(d, s, head);
    d += head; s += head; nb -= head;
    for (; nb >= V; nb -= V, d += V, s += V) {
#if defined(__AVX512F__)
        _mm512_stream_ps((float *)(void *)d, _mm512_loadu_ps((const float *)(const void *)s));
#elif defined(__AVX__)
        _mm256_stream_ps((float *)(void *)d, _mm256_loadu_ps((const float *)(const void *)s));
#else
        _mm_stream_ps((float *)(void *)d, _mm_loadu_ps((const float *)(const void *)s));
#endif
    }
    memcpy(d, s, nb);
#else
    memcpy(dst, src, nb);
#endif
}
static void eff__stream_fence(void) {
#if !defined(EFF_NO_SIMD) && (defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__))
    _mm_sfence();
#endif
}

/* Reduce elements [lo, hi) of n sources into every one of the nd destinations
   (at element offset - dst_shift), with streaming stores when nt. */
static void eff__red_range(int dt, int op, int n, const void *const *src, int nd, void *const *dst, int64_t lo, int64_t hi,
                           int64_t dst_shift, int nt) {
    eff__rtile acc;
    float tmp[EFF__RTILE];
    uint16_t half[EFF__RTILE];
    int64_t off;
    int d;
    size_t es = eff__comm_esize(dt);
    for (off = lo; off < hi; off += EFF__RTILE) {
        int64_t len = hi - off < EFF__RTILE ? hi - off : EFF__RTILE;
        void *a = dt == EFF_I32 ? (void *)acc.i : (void *)acc.f;
        eff__red_tile(dt, op, n, src, off, len, a, tmp, n);
        if (!nt) {
            for (d = 0; d < nd; d++) eff__red_store(dt, a, dst[d], off - dst_shift, len);
            continue;
        }
        if (es == 2) { eff__red_store(dt, a, half, 0, len); a = half; }
        for (d = 0; d < nd; d++) eff__stream_copy((char *)dst[d] + (size_t)(off - dst_shift) * es, a, (size_t)len * es);
    }
    if (nt) eff__stream_fence();
}

/* ---------------------------------------------------------------------------
   Local backend: ranks are threads of one process.

   Synchronisation is one primitive: each rank publishes a monotonically
   increasing progress counter ("phases completed") and waits until a peer's
   counter reaches a value. Every collective starts with an entry phase in which
   each rank publishes a descriptor (kind, count, dtype, op, root, buffers);
   after it every rank checks that all descriptors agree and can read the
   peers' buffers directly. Descriptors and staging slots are double-buffered
   by the parity of the collective's sequence number: a rank can be at most one
   collective ahead of the slowest, because each entry phase waits for all.
   --------------------------------------------------------------------------- */
#ifdef EFF__LOCAL_COMM

#define EFF__LSTRIDE 16        /* uint64 per progress counter: 128 bytes apart, no false sharing */
#define EFF__LMAX_RANKS 256
#define EFF__ALOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define EFF__ASTORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define EFF__AADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#if defined(__x86_64__) || defined(__i386__)
#define EFF__CPU_RELAX() __builtin_ia32_pause()
#else
#define EFF__CPU_RELAX() ((void)0)
#endif

enum { EFF__LK_BARRIER = 1, EFF__LK_BCAST, EFF__LK_REDUCE, EFF__LK_ALLREDUCE, EFF__LK_RSCATTER, EFF__LK_AGATHER,
       EFF__LK_A2A, EFF__LK_SPLIT };
static const char *eff__lkind_name(int k) {
    static const char *const names[] = {"?", "barrier", "broadcast", "reduce", "all_reduce", "reduce_scatter",
                                        "all_gather", "all_to_all", "split"};
    return k >= 1 && k <= EFF__LK_SPLIT ? names[k] : "?";
}

typedef struct eff__ldesc {
    int kind, dtype, op, root, algo;
    int64_t count;
    const void *sbuf;
    void *rbuf;
} eff__ldesc;

typedef struct eff__lmsg {
    struct eff__lmsg *next;
    int src, tag, dtype;
    int64_t count;
    /* payload follows the header */
} eff__lmsg;
#define EFF__LMSG_HDR ((sizeof(eff__lmsg) + 63) / 64 * 64)

typedef struct eff__lbox {      /* messages waiting for one destination rank */
    pthread_mutex_t mu;
    eff__lmsg *head, *tail;
} eff__lbox;

typedef struct eff__lworld eff__lworld;
typedef struct eff__lgroup {    /* shared by the members of one communicator */
    eff__lworld *w;
    int size;
    int refs;                   /* live handles; under w->mu */
    int *wrank;                 /* [size] world rank of each member */
    uint64_t *progress;         /* [size * EFF__LSTRIDE] */
    eff__ldesc *desc;           /* [size * 2] */
    void **split_ptr;           /* [size] */
    unsigned char *scratch;     /* [size][2][small_bytes] staging slots */
    eff__lbox *box;             /* [size] */
    uint64_t *tiles;            /* tiles claimed so far by the direct algorithms (own cache line) */
    struct eff__lgroup *next;   /* the world's list */
} eff__lgroup;

struct eff__lworld {
    eff_allocator alloc;        /* raw, thread-safe allocator for shared objects */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int sleepers;               /* atomic: threads in pthread_cond_timedwait */
    int abort_flag;             /* atomic: some rank failed */
    int *exited;                /* [n] atomic: rank's function returned */
    int64_t small_bytes;
    int64_t stream_bytes;       /* INT64_MAX: never */
    int spin;                   /* busy-wait iterations before yielding (0 when ranks outnumber cores) */
    eff__lgroup *groups;
};

typedef struct eff__lcomm {     /* one rank's view of a group */
    eff__lgroup *g;
    int rank;
    uint64_t phase;             /* phases this rank has published */
    uint64_t seq;               /* collectives started */
    uint64_t tile_base;         /* tiles of all earlier collectives (the same on every rank) */
} eff__lcomm;


static void *eff__lraw_alloc(eff__lworld *w, size_t n) {
    void *p = w->alloc.alloc(n, w->alloc.user);
    if (p) memset(p, 0, n);
    return p;
}
static void eff__lraw_free(eff__lworld *w, void *p) { if (p) w->alloc.free(p, w->alloc.user); }

static void eff__lgroup_free(eff__lworld *w, eff__lgroup *g) {
    int i;
    if (!g) return;
    if (g->box) {
        for (i = 0; i < g->size; i++) {
            eff__lmsg *m = g->box[i].head;
            while (m) { eff__lmsg *nx = m->next; eff__lraw_free(w, m); m = nx; }
            pthread_mutex_destroy(&g->box[i].mu);
        }
    }
    eff__lraw_free(w, g->wrank); eff__lraw_free(w, g->progress); eff__lraw_free(w, g->desc);
    eff__lraw_free(w, g->split_ptr); eff__lraw_free(w, g->scratch); eff__lraw_free(w, g->box);
    eff__lraw_free(w, g->tiles);
    eff__lraw_free(w, g);
}

/* A group of `size` members whose world ranks are wrank[] (NULL: identity). */
static eff__lgroup *eff__lgroup_create(eff__lworld *w, int size, const int *wrank) {
    eff__lgroup *g = (eff__lgroup *)eff__lraw_alloc(w, sizeof *g);
    int i, ok;
    if (!g) return NULL;
    g->w = w; g->size = size; g->refs = size;
    g->wrank = (int *)eff__lraw_alloc(w, sizeof(int) * (size_t)size);
    g->progress = (uint64_t *)eff__lraw_alloc(w, sizeof(uint64_t) * EFF__LSTRIDE * (size_t)size);
    g->desc = (eff__ldesc *)eff__lraw_alloc(w, sizeof(eff__ldesc) * 2 * (size_t)size);
    g->split_ptr = (void **)eff__lraw_alloc(w, sizeof(void *) * (size_t)size);
    g->scratch = (unsigned char *)eff__lraw_alloc(w, (size_t)w->small_bytes * 2 * (size_t)size + 64);
    g->box = (eff__lbox *)eff__lraw_alloc(w, sizeof(eff__lbox) * (size_t)size);
    g->tiles = (uint64_t *)eff__lraw_alloc(w, sizeof(uint64_t) * EFF__LSTRIDE);
    ok = g->wrank && g->progress && g->desc && g->split_ptr && g->scratch && g->box && g->tiles;
    for (i = 0; ok && i < size; i++) {
        g->wrank[i] = wrank ? wrank[i] : i;
        if (pthread_mutex_init(&g->box[i].mu, NULL) != 0) {
            int k;
            for (k = 0; k < i; k++) pthread_mutex_destroy(&g->box[k].mu);
            eff__lraw_free(w, g->box); g->box = NULL;
            ok = 0;
        }
    }
    if (!ok) { eff__lgroup_free(w, g); return NULL; }
    pthread_mutex_lock(&w->mu);
    g->next = w->groups; w->groups = g;
    pthread_mutex_unlock(&w->mu);
    return g;
}

static void eff__lwake(eff__lworld *w) {
    if (EFF__ALOAD(&w->sleepers) > 0) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}
static void eff__lset_abort(eff__lworld *w) { EFF__ASTORE(&w->abort_flag, 1); eff__lwake(w); }

static void eff__lpublish(eff__lcomm *h) {
    EFF__ASTORE(&h->g->progress[(size_t)h->rank * EFF__LSTRIDE], h->phase);
    eff__lwake(h->g->w);
}

typedef struct { const uint64_t *p; uint64_t target; } eff__lprog_arg;
static int eff__lprog_ready(void *a) {
    const eff__lprog_arg *x = (const eff__lprog_arg *)a;
    return EFF__ALOAD(x->p) >= x->target;
}

/* Waits until ready(arg), failing on abort, on `peer` having returned, or after the
   timeout. Spins ~200 times (a few microseconds; not at all when ranks outnumber
   cores: the peer needs this core), yields ~100 times, then sleeps in 2 ms slices. */
static eff_status eff__lwait(eff_comm *c, const char *fn, int (*ready)(void *), void *arg, int peer) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__lworld *w = h->g->w;
    double start = 0.0, now;
    int it;
    for (it = 0;; it++) {
        if (ready(arg)) return EFF_OK;
        if (EFF__ALOAD(&w->abort_flag))
            return eff_ctx_error(c->ctx, EFF_ERR_PEER, "%s: rank %d: another rank failed", fn, c->rank);
        if (peer >= 0 && EFF__ALOAD(&w->exited[h->g->wrank[peer]])) {
            if (ready(arg)) return EFF_OK;
            return eff_ctx_error(c->ctx, EFF_ERR_PEER, "%s: rank %d waits for rank %d, which has returned from its function",
                                 fn, c->rank, peer);
        }
        if (it < w->spin) { EFF__CPU_RELAX(); continue; }
        now = eff__now();
        if (start == 0.0) start = now;
        else if (now - start > c->timeout) {
            eff__lset_abort(w);
            return eff_ctx_error(c->ctx, EFF_ERR_TIMEOUT, "%s: rank %d waited %.3g s for rank %d (timeout)", fn, c->rank,
                                 now - start, peer);
        }
        if (it < w->spin + 100) { sched_yield(); continue; }
        pthread_mutex_lock(&w->mu);
        EFF__AADD(&w->sleepers, 1);
        if (!ready(arg) && !EFF__ALOAD(&w->abort_flag) && !(peer >= 0 && EFF__ALOAD(&w->exited[h->g->wrank[peer]]))) {
            struct timespec ts;
            double until = now + 0.002, end = start + c->timeout;
            if (until > end) until = end;
            ts.tv_sec = (time_t)until;
            ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        EFF__AADD(&w->sleepers, -1);
        pthread_mutex_unlock(&w->mu);
    }
}

static eff_status eff__lwait_rank(eff_comm *c, const char *fn, int j, uint64_t target) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__lprog_arg a;
    a.p = &h->g->progress[(size_t)j * EFF__LSTRIDE];
    a.target = target;
    if (eff__lprog_ready(&a)) return EFF_OK;
    return eff__lwait(c, fn, eff__lprog_ready, &a, j);
}
static eff_status eff__lwait_all(eff_comm *c, const char *fn, uint64_t target) {
    int j;
    for (j = 0; j < c->size; j++) EFF__TRY(eff__lwait_rank(c, fn, j, target));
    return EFF_OK;
}
/* Completes a phase: publish it; if all, wait until every rank has completed it too. */
static eff_status eff__lphase(eff_comm *c, const char *fn, int all) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    h->phase++;
    eff__lpublish(h);
    return all ? eff__lwait_all(c, fn, h->phase) : EFF_OK;
}

/* Parity of the next collective (its descriptor and staging slot). */
static int eff__lnext_par(const eff_comm *c) { return (int)((((const eff__lcomm *)c->impl)->seq + 1) & 1); }
static unsigned char *eff__lslot(const eff_comm *c, int j, int par) {
    const eff__lcomm *h = (const eff__lcomm *)c->impl;
    return h->g->scratch + ((size_t)j * 2 + (size_t)par) * (size_t)h->g->w->small_bytes;
}
static const eff__ldesc *eff__ldesc_of(const eff_comm *c, int j) {
    const eff__lcomm *h = (const eff__lcomm *)c->impl;
    return &h->g->desc[2 * (size_t)j + (size_t)(h->seq & 1)];
}

/* Entry phase: publish this rank's descriptor, wait for all, check they agree. */
static eff_status eff__lenter(eff_comm *c, const char *fn, int kind, int algo, int64_t count, int dtype, int op, int root,
                              const void *sbuf, void *rbuf) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__ldesc *d;
    int j;
    if (EFF__ALOAD(&h->g->w->abort_flag))
        return eff_ctx_error(c->ctx, EFF_ERR_PEER, "%s: rank %d: another rank failed", fn, c->rank);
    h->seq++;
    d = &h->g->desc[2 * (size_t)h->rank + (size_t)(h->seq & 1)];
    d->kind = kind; d->algo = algo; d->count = count; d->dtype = dtype; d->op = op; d->root = root;
    d->sbuf = sbuf; d->rbuf = rbuf;
    EFF__TRY(eff__lphase(c, fn, 1));
    for (j = 0; j < c->size; j++) {
        const eff__ldesc *e = eff__ldesc_of(c, j);
        if (e->kind != kind || e->count != count || e->dtype != dtype || e->op != op || e->root != root || e->algo != algo)
            return eff_ctx_error(c->ctx, EFF_ERR_SHAPE,
                                 "%s: ranks disagree: rank %d called %s(count %lld, %s, %s, root %d, algo %d), "
                                 "rank %d called %s(count %lld, %s, %s, root %d, algo %d)",
                                 fn, c->rank, eff__lkind_name(kind), (long long)count, eff_dtype_name(dtype),
                                 eff__red_name(op), root, algo, j, eff__lkind_name(e->kind), (long long)e->count,
                                 eff_dtype_name(e->dtype) ? eff_dtype_name(e->dtype) : "?", eff__red_name(e->op), e->root,
                                 e->algo);
    }
    return EFF_OK;
}

/* Elements [lo, hi) that rank r of n owns in a buffer of count elements; slices
   are multiples of 16 elements so ranks do not write the same cache line. */
static void eff__lslice(int64_t count, int n, int r, int64_t *lo, int64_t *hi) {
    int64_t per = (count + n - 1) / n;
    per = (per + 15) / 16 * 16;
    *lo = per * r < count ? per * r : count;
    *hi = per * (r + 1) < count ? per * (r + 1) : count;
}

/* Work sharing for the direct algorithms: a collective's T tiles are claimed from
   the group's counter, so a rank that is descheduled (a shared or oversubscribed
   machine) does not hold the others back; the running ranks do its tiles. Every
   rank advances tile_base by T, and a compare-and-swap never claims past the end,
   so the next collective's tiles start at the same base everywhere (its entry
   phase waits for all ranks to leave this one). */
#define EFF__LTILE ((int64_t)16384)     /* elements per tile: 64 KiB of f32 */
static int64_t eff__lclaim(eff__lcomm *h, uint64_t base, int64_t T) {
    uint64_t v = EFF__ALOAD(h->g->tiles);
    while (v < base + (uint64_t)T)
        if (__atomic_compare_exchange_n(h->g->tiles, &v, v + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return (int64_t)(v - base);
    return -1;
}

static int eff__lalgo(const eff_comm *c, int64_t staged_bytes, int dtype, int ring_ok) {
    const eff__lcomm *h = (const eff__lcomm *)c->impl;
    int64_t small = h->g->w->small_bytes;
    if (c->algo == EFF_COMM_ALGO_RING && ring_ok && (dtype == EFF_F32 || dtype == EFF_I32)) return EFF_COMM_ALGO_RING;
    if (c->algo == EFF_COMM_ALGO_DIRECT || c->algo == EFF_COMM_ALGO_RING) return EFF_COMM_ALGO_DIRECT;
    return staged_bytes <= small ? EFF_COMM_ALGO_SMALL : EFF_COMM_ALGO_DIRECT;
}

static eff_status eff__lbarrier(eff_comm *c) {
    return eff__lenter(c, "eff_comm_barrier", EFF__LK_BARRIER, 0, 0, EFF_F32, 0, 0, NULL, NULL);
}

static eff_status eff__lbroadcast(eff_comm *c, void *buf, int64_t count, int dtype, int root) {
    const char *fn = "eff_comm_broadcast";
    size_t nb = (size_t)count * eff__comm_esize(dtype);
    int algo = eff__lalgo(c, (int64_t)nb, dtype, 0), par = eff__lnext_par(c);
    if (algo == EFF_COMM_ALGO_SMALL) {
        if (c->rank == root && nb) memcpy(eff__lslot(c, root, par), buf, nb);
        EFF__TRY(eff__lenter(c, fn, EFF__LK_BCAST, algo, count, dtype, 0, root, NULL, buf));
        if (c->rank != root && nb) memcpy(buf, eff__lslot(c, root, par), nb);
        return EFF_OK;
    }
    EFF__TRY(eff__lenter(c, fn, EFF__LK_BCAST, algo, count, dtype, 0, root, NULL, buf));
    if (c->rank != root && nb) memcpy(buf, eff__ldesc_of(c, root)->rbuf, nb);
    return eff__lphase(c, fn, c->rank == root);   /* the root returns when nobody reads its buffer */
}

static eff_status eff__lreduce(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    const char *fn = "eff_comm_reduce";
    const void *src[EFF__LMAX_RANKS];
    size_t nb = (size_t)count * eff__comm_esize(dtype);
    int algo = eff__lalgo(c, (int64_t)nb, dtype, 0), par = eff__lnext_par(c), j, n = c->size;
    int64_t lo, hi, T, t;
    uint64_t base;
    void *dst;
    if (algo == EFF_COMM_ALGO_SMALL) {
        if (nb) memcpy(eff__lslot(c, c->rank, par), send, nb);
        EFF__TRY(eff__lenter(c, fn, EFF__LK_REDUCE, algo, count, dtype, op, root, send, recv));
        if (c->rank == root) {
            for (j = 0; j < n; j++) src[j] = eff__lslot(c, j, par);
            eff__red_range(dtype, op, n, src, 1, &recv, 0, count, 0, 0);
        }
        return EFF_OK;
    }
    EFF__TRY(eff__lenter(c, fn, EFF__LK_REDUCE, algo, count, dtype, op, root, send, recv));
    for (j = 0; j < n; j++) src[j] = eff__ldesc_of(c, j)->sbuf;
    dst = eff__ldesc_of(c, root)->rbuf;
    T = (count + EFF__LTILE - 1) / EFF__LTILE;
    base = h->tile_base;
    h->tile_base += (uint64_t)T;
    while ((t = eff__lclaim(h, base, T)) >= 0) {
        lo = t * EFF__LTILE; hi = lo + EFF__LTILE < count ? lo + EFF__LTILE : count;
        eff__red_range(dtype, op, n, src, 1, &dst, lo, hi, 0, (int64_t)nb >= h->g->w->stream_bytes);
    }
    return eff__lphase(c, fn, 1);
}

/* The ring (Patarasuk & Yuan 2009; NCCL, Gloo): n-1 reduce-scatter steps, then n-1
   all-gather steps, each between neighbours only. Progress counters order them:
   step k of rank r reads its left neighbour's slice after that neighbour has
   finished step k-1, and all-gather writes wait until the right neighbour has
   finished reading the slice being overwritten. */
static eff_status eff__lring_all_reduce(eff_comm *c, const char *fn, int dtype, int op, int64_t count) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    int n = c->size, r = c->rank, left = (r + n - 1) % n, right = (r + 1) % n, k;
    uint64_t E = h->phase;
    void *own = eff__ldesc_of(c, r)->rbuf;
    const void *lbuf = eff__ldesc_of(c, left)->rbuf;
    size_t es = eff__comm_esize(dtype);
    for (k = 0; k < n - 1; k++) {
        int ch = (r - k - 1 + 2 * n) % n;
        int64_t lo, hi, off;
        const void *src[2];
        eff__rtile acc;
        float tmp[EFF__RTILE];
        void *a = dtype == EFF_I32 ? (void *)acc.i : (void *)acc.f;
        EFF__TRY(eff__lwait_rank(c, fn, left, E + (uint64_t)k));
        eff__lslice(count, n, ch, &lo, &hi);
        src[0] = lbuf; src[1] = own;
        for (off = lo; off < hi; off += EFF__RTILE) {
            int64_t len = hi - off < EFF__RTILE ? hi - off : EFF__RTILE;
            eff__red_tile(dtype, op, 2, src, off, len, a, tmp, k == n - 2 ? n : 0);
            eff__red_store(dtype, a, own, off, len);
        }
        EFF__TRY(eff__lphase(c, fn, 0));
    }
    for (k = 0; k < n - 1; k++) {
        int ch = (r - k + n) % n;
        int64_t lo, hi;
        EFF__TRY(eff__lwait_rank(c, fn, left, E + (uint64_t)(n - 1 + k)));
        EFF__TRY(eff__lwait_rank(c, fn, right, E + (uint64_t)(k + 1)));
        eff__lslice(count, n, ch, &lo, &hi);
        if (hi > lo) memcpy((char *)own + (size_t)lo * es, (const char *)lbuf + (size_t)lo * es, (size_t)(hi - lo) * es);
        EFF__TRY(eff__lphase(c, fn, 0));
    }
    return eff__lwait_rank(c, fn, right, E + (uint64_t)(2 * (n - 1)));
}

static eff_status eff__lall_reduce(eff_comm *c, void *buf, int64_t count, int dtype, int op) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    const char *fn = "eff_comm_all_reduce";
    const void *src[EFF__LMAX_RANKS];
    void *dst[EFF__LMAX_RANKS];
    size_t nb = (size_t)count * eff__comm_esize(dtype);
    int algo = eff__lalgo(c, (int64_t)nb, dtype, 1), par = eff__lnext_par(c), j, n = c->size;
    int64_t lo, hi, T, t;
    uint64_t base;
    if (algo == EFF_COMM_ALGO_SMALL) {
        if (nb) memcpy(eff__lslot(c, c->rank, par), buf, nb);
        EFF__TRY(eff__lenter(c, fn, EFF__LK_ALLREDUCE, algo, count, dtype, op, 0, NULL, buf));
        for (j = 0; j < n; j++) src[j] = eff__lslot(c, j, par);
        eff__red_range(dtype, op, n, src, 1, &buf, 0, count, 0, 0);
        return EFF_OK;
    }
    EFF__TRY(eff__lenter(c, fn, EFF__LK_ALLREDUCE, algo, count, dtype, op, 0, NULL, buf));
    if (algo == EFF_COMM_ALGO_RING) return eff__lring_all_reduce(c, fn, dtype, op, count);
    for (j = 0; j < n; j++) { src[j] = eff__ldesc_of(c, j)->rbuf; dst[j] = eff__ldesc_of(c, j)->rbuf; }
    /* reduce-scatter + all-gather fused per tile: read the tile of every buffer,
       reduce in f32 (in rank order, so every element's result is the same whoever
       computes it), write it into every buffer */
    T = (count + EFF__LTILE - 1) / EFF__LTILE;
    base = h->tile_base;
    h->tile_base += (uint64_t)T;
    while ((t = eff__lclaim(h, base, T)) >= 0) {
        lo = t * EFF__LTILE; hi = lo + EFF__LTILE < count ? lo + EFF__LTILE : count;
        eff__red_range(dtype, op, n, src, n, dst, lo, hi, 0, (int64_t)nb >= h->g->w->stream_bytes);
    }
    return eff__lphase(c, fn, 1);
}

static eff_status eff__lreduce_scatter(eff_comm *c, const void *send, void *recv, int64_t rc, int dtype, int op) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    const char *fn = "eff_comm_reduce_scatter";
    const void *src[EFF__LMAX_RANKS];
    size_t nb = (size_t)rc * eff__comm_esize(dtype) * (size_t)c->size;
    int algo = eff__lalgo(c, (int64_t)nb, dtype, 0), par = eff__lnext_par(c), j, n = c->size;
    int64_t lo = rc * c->rank;
    if (algo == EFF_COMM_ALGO_SMALL) {
        if (nb) memcpy(eff__lslot(c, c->rank, par), send, nb);
        EFF__TRY(eff__lenter(c, fn, EFF__LK_RSCATTER, algo, rc, dtype, op, 0, send, recv));
        for (j = 0; j < n; j++) src[j] = eff__lslot(c, j, par);
        eff__red_range(dtype, op, n, src, 1, &recv, lo, lo + rc, lo, 0);
        return EFF_OK;
    }
    EFF__TRY(eff__lenter(c, fn, EFF__LK_RSCATTER, algo, rc, dtype, op, 0, send, recv));
    for (j = 0; j < n; j++) src[j] = eff__ldesc_of(c, j)->sbuf;
    {   /* tiles of every rank's block; any rank may write any rank's recv */
        int64_t Tq = (rc + EFF__LTILE - 1) / EFF__LTILE, T = Tq * n, t;
        uint64_t base = h->tile_base;
        h->tile_base += (uint64_t)T;
        while ((t = eff__lclaim(h, base, T)) >= 0) {
            int q = (int)(t / Tq);
            int64_t b0 = rc * q, tlo = b0 + (t % Tq) * EFF__LTILE, thi = tlo + EFF__LTILE < b0 + rc ? tlo + EFF__LTILE : b0 + rc;
            void *dst = eff__ldesc_of(c, q)->rbuf;
            eff__red_range(dtype, op, n, src, 1, &dst, tlo, thi, b0, (int64_t)(nb / (size_t)n) >= h->g->w->stream_bytes);
        }
    }
    return eff__lphase(c, fn, 1);
}

static eff_status eff__lall_gather(eff_comm *c, const void *send, void *recv, int64_t sc, int dtype) {
    const char *fn = "eff_comm_all_gather";
    size_t nb = (size_t)sc * eff__comm_esize(dtype);
    int algo = eff__lalgo(c, (int64_t)nb, dtype, 0), par = eff__lnext_par(c), j, n = c->size;
    char *out = (char *)recv;
    if (algo == EFF_COMM_ALGO_SMALL && nb) memcpy(eff__lslot(c, c->rank, par), send, nb);
    EFF__TRY(eff__lenter(c, fn, EFF__LK_AGATHER, algo, sc, dtype, 0, 0, send, recv));
    if (nb == 0) return algo == EFF_COMM_ALGO_SMALL ? EFF_OK : eff__lphase(c, fn, 1);
    for (j = 0; j < n; j++) {
        if (j == c->rank) { if (out + (size_t)j * nb != (const char *)send) memcpy(out + (size_t)j * nb, send, nb); }
        else memcpy(out + (size_t)j * nb, algo == EFF_COMM_ALGO_SMALL ? eff__lslot(c, j, par) : eff__ldesc_of(c, j)->sbuf, nb);
    }
    return algo == EFF_COMM_ALGO_SMALL ? EFF_OK : eff__lphase(c, fn, 1);
}

static eff_status eff__lall_to_all(eff_comm *c, const void *send, void *recv, int64_t cnt, int dtype) {
    const char *fn = "eff_comm_all_to_all";
    size_t nb = (size_t)cnt * eff__comm_esize(dtype);
    int algo = eff__lalgo(c, (int64_t)(nb * (size_t)c->size), dtype, 0), par = eff__lnext_par(c), j, n = c->size;
    if (algo == EFF_COMM_ALGO_SMALL && nb) memcpy(eff__lslot(c, c->rank, par), send, nb * (size_t)n);
    EFF__TRY(eff__lenter(c, fn, EFF__LK_A2A, algo, cnt, dtype, 0, 0, send, recv));
    for (j = 0; j < n && nb; j++) {
        const char *from = algo == EFF_COMM_ALGO_SMALL ? (const char *)eff__lslot(c, j, par) : (const char *)eff__ldesc_of(c, j)->sbuf;
        memcpy((char *)recv + (size_t)j * nb, from + (size_t)c->rank * nb, nb);
    }
    return algo == EFF_COMM_ALGO_SMALL ? EFF_OK : eff__lphase(c, fn, 1);
}

static eff_status eff__lsend(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__lworld *w = h->g->w;
    size_t nb = (size_t)count * eff__comm_esize(dtype);
    eff__lmsg *m = (eff__lmsg *)w->alloc.alloc(EFF__LMSG_HDR + nb, w->alloc.user);
    eff__lbox *box = &h->g->box[peer];
    EFF__CHECK(c->ctx, m != NULL, EFF_ERR_OOM, "eff_comm_send: no memory for a %zu-byte message", nb);
    m->next = NULL; m->src = c->rank; m->tag = tag; m->dtype = dtype; m->count = count;
    if (nb) memcpy((char *)m + EFF__LMSG_HDR, buf, nb);
    pthread_mutex_lock(&box->mu);
    if (box->tail) box->tail->next = m; else box->head = m;
    box->tail = m;
    pthread_mutex_unlock(&box->mu);
    eff__lwake(w);
    return EFF_OK;
}

typedef struct { eff__lbox *box; int src, tag; eff__lmsg *found; } eff__lrecv_arg;
static int eff__lrecv_ready(void *a) {
    eff__lrecv_arg *x = (eff__lrecv_arg *)a;
    eff__lmsg *m, *prev = NULL;
    /* eff__lwait may ask again after a yes: never take a second message */
    if (x->found) return 1;
    pthread_mutex_lock(&x->box->mu);
    for (m = x->box->head; m; prev = m, m = m->next) {
        if (m->src != x->src || m->tag != x->tag) continue;
        if (prev) prev->next = m->next; else x->box->head = m->next;
        if (x->box->tail == m) x->box->tail = prev;
        x->found = m;
        break;
    }
    pthread_mutex_unlock(&x->box->mu);
    return x->found != NULL;
}
static eff_status eff__lrecv(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__lworld *w = h->g->w;
    eff__lrecv_arg a;
    eff_status s;
    a.box = &h->g->box[c->rank]; a.src = peer; a.tag = tag; a.found = NULL;
    s = eff__lwait(c, "eff_comm_recv", eff__lrecv_ready, &a, peer);
    if (s != EFF_OK) return s;
    if (a.found->count != count || a.found->dtype != dtype) {
        s = eff_ctx_error(c->ctx, EFF_ERR_SHAPE, "eff_comm_recv: rank %d expects %lld x %s from rank %d (tag %d), got %lld x %s",
                          c->rank, (long long)count, eff_dtype_name(dtype), peer, tag, (long long)a.found->count,
                          eff_dtype_name(a.found->dtype));
    } else if (count) {
        memcpy(buf, (char *)a.found + EFF__LMSG_HDR, (size_t)count * eff__comm_esize(dtype));
    }
    w->alloc.free(a.found, w->alloc.user);
    return s;
}

static void eff__lcomm_release(eff__lworld *w, eff__lgroup *g) {
    int last;
    pthread_mutex_lock(&w->mu);
    last = --g->refs == 0;
    if (last) {
        eff__lgroup **p = &w->groups;
        while (*p && *p != g) p = &(*p)->next;
        if (*p) *p = g->next;
    }
    pthread_mutex_unlock(&w->mu);
    if (last) eff__lgroup_free(w, g);
}
static void eff__ldestroy(eff_comm *c) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    if (!h) return;
    eff__lcomm_release(h->g->w, h->g);
    eff_ctx_free(c->ctx, h);
    c->impl = NULL;
}
static void eff__labort(eff_comm *c) {
    eff__lcomm *h = (eff__lcomm *)c->impl;
    if (h) eff__lset_abort(h->g->w);
}

static eff_status eff__lsplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out);

static const eff_comm_backend eff__local_backend = {
    "local", eff__lbarrier, eff__lbroadcast, eff__lreduce, eff__lall_reduce, eff__lreduce_scatter, eff__lall_gather,
    eff__lall_to_all, eff__lsend, eff__lrecv, eff__lsplit, eff__labort, eff__ldestroy, NULL, NULL
};

static eff_status eff__lhandle(eff_ctx *ctx, eff__lgroup *g, int rank, eff_comm **out) {
    eff__lcomm *h = (eff__lcomm *)eff_ctx_calloc(ctx, sizeof *h);
    eff_status s;
    if (!h) return EFF_ERR_OOM;
    h->g = g; h->rank = rank;
    s = eff_comm_create_custom(ctx, rank, g->size, &eff__local_backend, h, out);
    if (s != EFF_OK) eff_ctx_free(ctx, h);
    return s;
}

/* The new group's rank 0 creates its shared state and publishes the pointer in
   its parent slot; two parent barriers make it visible, then reusable. */
static eff_status eff__lsplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out) {
    const char *fn = "eff_comm_split";
    eff__lcomm *h = (eff__lcomm *)c->impl;
    eff__lgroup *ng = NULL;
    int wr[EFF__LMAX_RANKS], i;
    eff_status s;
    (void)color; (void)key;
    *out = NULL;
    if (members && new_rank == 0) {
        for (i = 0; i < new_size; i++) wr[i] = h->g->wrank[members[i]];
        ng = eff__lgroup_create(h->g->w, new_size, wr);
    }
    h->g->split_ptr[c->rank] = ng;
    EFF__TRY(eff__lenter(c, fn, EFF__LK_SPLIT, 0, 0, EFF_F32, 0, 0, NULL, NULL));
    if (members) ng = (eff__lgroup *)h->g->split_ptr[members[0]];
    EFF__TRY(eff__lenter(c, fn, EFF__LK_SPLIT, 0, 0, EFF_F32, 0, 0, NULL, NULL));
    if (!members) return EFF_OK;
    if (!ng) return eff_ctx_error(c->ctx, EFF_ERR_OOM, "%s: rank %d: the new group's shared state could not be allocated", fn,
                                  c->rank);
    s = eff__lhandle(c->ctx, ng, new_rank, out);
    if (s != EFF_OK) eff__lcomm_release(ng->w, ng);
    return s;
}

typedef struct eff__lthread {
    eff_comm *comm;
    eff_comm_rank_fn fn;
    void *arg;
    eff__lworld *w;
    int rank;
    eff_status st;
    pthread_t th;
} eff__lthread;

static void *eff__lthread_main(void *p) {
    eff__lthread *t = (eff__lthread *)p;
    t->st = t->fn(t->comm, t->arg);
    if (t->st != EFF_OK) EFF__ASTORE(&t->w->abort_flag, 1);
    EFF__ASTORE(&t->w->exited[t->rank], 1);
    eff__lwake(t->w);
    return NULL;
}
#endif /* EFF__LOCAL_COMM */

static void *eff__default_raw_alloc(size_t n, void *user) { (void)user; return EFF_MALLOC(n); }
static void eff__default_raw_free(void *p, void *user) { (void)user; EFF_FREE(p); }

EFFDEF eff_status eff_comm_local_run(int n, eff_comm_rank_fn fn, void *arg) {
    return eff_comm_local_run_opts(n, fn, arg, NULL);
}

EFFDEF eff_status eff_comm_local_run_opts(int n, eff_comm_rank_fn fn, void *arg, const eff_comm_local_opts *opts) {
#ifdef EFF__LOCAL_COMM
    eff_comm_local_opts o;
    eff__lworld *w;
    eff__lthread *t;
    eff__lgroup *world_g;
    eff_status result = EFF_OK;
    int r, started = 0, sync_ok = 0;
    if (n < 1 || n > EFF__LMAX_RANKS || !fn) return EFF_ERR_INVALID_ARG;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.timeout == 0.0) o.timeout = 30.0;
    if (o.small_bytes == 0) o.small_bytes = 32 * 1024;
    if (!(o.timeout > 0.0) || o.small_bytes < 0 || o.small_bytes > ((int64_t)1 << 30) || o.algo < 0 ||
        o.algo > EFF_COMM_ALGO_RING || !o.ctx_opts.alloc.alloc != !o.ctx_opts.alloc.free)
        return EFF_ERR_INVALID_ARG;
    o.small_bytes = (o.small_bytes + 63) / 64 * 64;
    if (o.ctx_opts.n_threads == 0) o.ctx_opts.n_threads = 1;
    if (!o.ctx_opts.alloc.alloc) { o.ctx_opts.alloc.alloc = eff__default_raw_alloc; o.ctx_opts.alloc.free = eff__default_raw_free; }
    w = (eff__lworld *)o.ctx_opts.alloc.alloc(sizeof *w, o.ctx_opts.alloc.user);
    if (!w) return EFF_ERR_OOM;
    memset(w, 0, sizeof *w);
    w->alloc = o.ctx_opts.alloc; w->n = n; w->small_bytes = o.small_bytes;
    w->stream_bytes = o.stream_bytes == 0 ? ((int64_t)8 << 20) : o.stream_bytes < 0 ? INT64_MAX : o.stream_bytes;
    {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        w->spin = ncpu > 0 && n > ncpu ? 0 : 200;
    }
    if (pthread_mutex_init(&w->mu, NULL) == 0) {
        if (pthread_cond_init(&w->cv, NULL) == 0) sync_ok = 1;
        else pthread_mutex_destroy(&w->mu);
    }
    if (!sync_ok) { w->alloc.free(w, w->alloc.user); return EFF_ERR_UNSUPPORTED; }
    w->exited = (int *)eff__lraw_alloc(w, sizeof(int) * (size_t)n);
    t = (eff__lthread *)eff__lraw_alloc(w, sizeof(eff__lthread) * (size_t)n);
    world_g = w->exited && t ? eff__lgroup_create(w, n, NULL) : NULL;
    if (!world_g) result = EFF_ERR_OOM;
    for (r = 0; r < n && result == EFF_OK; r++) {
        eff_ctx *ctx = NULL;
        t[r].rank = r; t[r].fn = fn; t[r].arg = arg; t[r].w = w;
        result = eff_ctx_create(&o.ctx_opts, &ctx);
        if (result == EFF_OK) {
            result = eff__lhandle(ctx, world_g, r, &t[r].comm);
            if (result != EFF_OK) eff_ctx_destroy(ctx);
            else { t[r].comm->timeout = o.timeout; t[r].comm->algo = o.algo; t[r].comm->launcher_owned = 1; world_g->refs = n; }
        }
    }
    for (r = 0; r < n && result == EFF_OK; r++) {
        if (pthread_create(&t[r].th, NULL, eff__lthread_main, &t[r]) != 0) { result = EFF_ERR_UNSUPPORTED; break; }
        started++;
    }
    if (result != EFF_OK && started > 0) eff__lset_abort(w);   /* the started ranks fail fast */
    for (r = 0; r < started; r++) pthread_join(t[r].th, NULL);
    if (result == EFF_OK) {
        for (r = 0; r < n; r++) if (t[r].st != EFF_OK && t[r].st != EFF_ERR_PEER) { result = t[r].st; break; }
        for (r = 0; r < n && result == EFF_OK; r++) if (t[r].st != EFF_OK) result = t[r].st;
        if (o.rank_status) for (r = 0; r < n; r++) o.rank_status[r] = t[r].st;
    }
    for (r = 0; t && r < n; r++) {
        if (t[r].comm) {
            eff_ctx *ctx = t[r].comm->ctx;
            t[r].comm->launcher_owned = 0;
            eff_comm_destroy(t[r].comm);   /* the last one frees the world group */
            eff_ctx_destroy(ctx);
        }
    }
    while (w->groups) {   /* groups whose handles a rank did not destroy */
        eff__lgroup *g = w->groups;
        w->groups = g->next;
        eff__lgroup_free(w, g);
    }
    eff__lraw_free(w, t);
    eff__lraw_free(w, w->exited);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->alloc.free(w, w->alloc.user);
    return result;
#else
    (void)n; (void)fn; (void)arg; (void)opts;
    return EFF_ERR_UNSUPPORTED;
#endif
}

/* ---------------------------------------------------------------------------
   MPI backend: non-blocking MPI-3 collectives polled against the timeout, on a
   duplicate of the user's communicator with MPI_ERRORS_RETURN. Every collective
   first all-reduces a signature (kind, count, dtype, op, root) so that ranks
   disagreeing on the call get EFF_ERR_SHAPE instead of undefined behaviour.
   --------------------------------------------------------------------------- */
#ifdef EFF_MPI
typedef struct eff__mpending {
    struct eff__mpending *next;
    MPI_Request req;
} eff__mpending;
#define EFF__MPENDING_HDR ((sizeof(eff__mpending) + 63) / 64 * 64)

typedef struct eff__mcomm {
    MPI_Comm comm;
    MPI_Op ops[2][3];   /* [bf16, f16][sum, max, min] */
    eff__mpending *pending;   /* buffered sends in flight */
} eff__mcomm;

#define EFF__MPI_HALF_OP(NAME, TO, FROM, EXPR)                                              \
    static void NAME(void *in, void *inout, int *len, MPI_Datatype *dt) {                  \
        const uint16_t *a = (const uint16_t *)in;                                          \
        uint16_t *b = (uint16_t *)inout;                                                   \
        int i;                                                                             \
        (void)dt;                                                                          \
        for (i = 0; i < *len; i++) { float x = TO(a[i]), y = TO(b[i]); b[i] = FROM(EXPR); } \
    }
EFF__MPI_HALF_OP(eff__mpi_bf16_sum, eff_bf16_to_fp32, eff_fp32_to_bf16, x + y)
EFF__MPI_HALF_OP(eff__mpi_bf16_max, eff_bf16_to_fp32, eff_fp32_to_bf16, x > y ? x : y)
EFF__MPI_HALF_OP(eff__mpi_bf16_min, eff_bf16_to_fp32, eff_fp32_to_bf16, x < y ? x : y)
EFF__MPI_HALF_OP(eff__mpi_f16_sum, eff_fp16_to_fp32, eff_fp32_to_fp16, x + y)
EFF__MPI_HALF_OP(eff__mpi_f16_max, eff_fp16_to_fp32, eff_fp32_to_fp16, x > y ? x : y)
EFF__MPI_HALF_OP(eff__mpi_f16_min, eff_fp16_to_fp32, eff_fp32_to_fp16, x < y ? x : y)

static MPI_Datatype eff__mpi_type(int dt) {
    if (dt == EFF_F32) return MPI_FLOAT;
    if (dt == EFF_I32) return MPI_INT32_T;
    return MPI_UINT16_T;
}
static MPI_Op eff__mpi_op(const eff__mcomm *m, int dt, int op) {
    int k = op == EFF_RED_MAX ? 1 : op == EFF_RED_MIN ? 2 : 0;
    if (dt == EFF_BF16) return m->ops[0][k];
    if (dt == EFF_F16) return m->ops[1][k];
    return k == 1 ? MPI_MAX : k == 2 ? MPI_MIN : MPI_SUM;
}
static eff_status eff__mpi_err(eff_comm *c, const char *fn, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0, cls = 0;
    MPI_Error_class(rc, &cls);
    MPI_Error_string(rc, msg, &len);
    return eff_ctx_error(c->ctx, cls == MPI_ERR_TRUNCATE ? EFF_ERR_SHAPE : EFF_ERR_PEER, "%s: rank %d: MPI error: %s", fn,
                         c->rank, msg);
}
/* Frees buffered sends that have completed. */
static void eff__mpi_progress(eff_comm *c) {
    eff__mcomm *m = (eff__mcomm *)c->impl;
    eff__mpending **p = &m->pending;
    while (*p) {
        int flag = 0;
        MPI_Test(&(*p)->req, &flag, MPI_STATUS_IGNORE);
        if (flag) { eff__mpending *d = *p; *p = d->next; eff_ctx_free(c->ctx, d); }
        else p = &(*p)->next;
    }
}
static eff_status eff__mpi_wait(eff_comm *c, const char *fn, int rc, MPI_Request *req, MPI_Status *st) {
    double t0;
    int flag = 0, it = 0;
    MPI_Status tmp;
    if (rc != MPI_SUCCESS) return eff__mpi_err(c, fn, rc);
    if (!st) st = &tmp;
    t0 = MPI_Wtime();
    for (;;) {
        rc = MPI_Test(req, &flag, st);
        if (rc != MPI_SUCCESS) return eff__mpi_err(c, fn, rc == MPI_ERR_IN_STATUS ? st->MPI_ERROR : rc);
        if (flag) return EFF_OK;
        if (MPI_Wtime() - t0 > c->timeout)
            return eff_ctx_error(c->ctx, EFF_ERR_TIMEOUT, "%s: rank %d waited %.3g s (timeout)", fn, c->rank, MPI_Wtime() - t0);
#ifdef EFF__LOCAL_COMM
        if (++it > 1000) sched_yield();
#else
        (void)it;
#endif
    }
}
/* All ranks agree on (kind, count, dtype, op, root), or all get EFF_ERR_SHAPE. */
static eff_status eff__mpi_agree(eff_comm *c, const char *fn, int kind, int64_t count, int dtype, int op, int root) {
    eff__mcomm *m = (eff__mcomm *)c->impl;
    int64_t v[10];
    MPI_Request req;
    int i;
    eff__mpi_progress(c);
    v[0] = kind; v[1] = count; v[2] = dtype; v[3] = op; v[4] = root;
    for (i = 0; i < 5; i++) v[5 + i] = -v[i];
    EFF__TRY(eff__mpi_wait(c, fn, MPI_Iallreduce(MPI_IN_PLACE, v, 10, MPI_INT64_T, MPI_MAX, m->comm, &req), &req, NULL));
    for (i = 0; i < 5; i++)
        if (v[i] != -v[5 + i])
            return eff_ctx_error(c->ctx, EFF_ERR_SHAPE,
                                 "%s: ranks disagree on the call (rank %d: kind %d, count %lld, %s, %s, root %d)", fn, c->rank,
                                 kind, (long long)count, eff_dtype_name(dtype), eff__red_name(op), root);
    return EFF_OK;
}
static eff_status eff__mpi_fits(eff_comm *c, const char *fn, int64_t count) {
    EFF__CHECK(c->ctx, count <= INT_MAX, EFF_ERR_OVERFLOW, "%s: count %lld exceeds MPI's int counts", fn, (long long)count);
    return EFF_OK;
}
/* AVG = SUM / size, in f32 (C division for i32), rounded once into dtype. */
static void eff__mpi_divide(void *buf, int64_t count, int dtype, int n) {
    int64_t i;
    for (i = 0; i < count; i++) {
        if (dtype == EFF_F32) ((float *)buf)[i] /= (float)n;
        else if (dtype == EFF_I32) ((int32_t *)buf)[i] /= n;
        else if (dtype == EFF_BF16) ((uint16_t *)buf)[i] = eff_fp32_to_bf16(eff_bf16_to_fp32(((uint16_t *)buf)[i]) / (float)n);
        else ((uint16_t *)buf)[i] = eff_fp32_to_fp16(eff_fp16_to_fp32(((uint16_t *)buf)[i]) / (float)n);
    }
}

/* The agreement all-reduce synchronises every rank: it is the barrier. */
static eff_status eff__mbarrier(eff_comm *c) { return eff__mpi_agree(c, "eff_comm_barrier", 1, 0, EFF_F32, 0, 0); }
static eff_status eff__mbroadcast(eff_comm *c, void *buf, int64_t count, int dtype, int root) {
    const char *fn = "eff_comm_broadcast";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    int64_t off, step = (int64_t)1 << 30;
    EFF__TRY(eff__mpi_agree(c, fn, 2, count, dtype, 0, root));
    for (off = 0; off < count; off += step) {
        int k = (int)(count - off < step ? count - off : step);
        EFF__TRY(eff__mpi_wait(c, fn, MPI_Ibcast((char *)buf + (size_t)off * eff__comm_esize(dtype), k, eff__mpi_type(dtype),
                                                 root, m->comm, &req), &req, NULL));
    }
    return EFF_OK;
}
static eff_status eff__mreduce(eff_comm *c, const void *send, void *recv, int64_t count, int dtype, int op, int root) {
    const char *fn = "eff_comm_reduce";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    int64_t off, step = (int64_t)1 << 30;
    size_t es = eff__comm_esize(dtype);
    EFF__TRY(eff__mpi_agree(c, fn, 3, count, dtype, op, root));
    for (off = 0; off < count; off += step) {
        int k = (int)(count - off < step ? count - off : step);
        const void *s = (const char *)send + (size_t)off * es;
        void *r = c->rank == root ? (char *)recv + (size_t)off * es : NULL;
        EFF__TRY(eff__mpi_wait(c, fn, MPI_Ireduce(c->rank == root && send == recv ? MPI_IN_PLACE : s, r, k, eff__mpi_type(dtype),
                                                  eff__mpi_op(m, dtype, op), root, m->comm, &req), &req, NULL));
    }
    if (op == EFF_RED_AVG && c->rank == root) eff__mpi_divide(recv, count, dtype, c->size);
    return EFF_OK;
}
static eff_status eff__mall_reduce(eff_comm *c, void *buf, int64_t count, int dtype, int op) {
    const char *fn = "eff_comm_all_reduce";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    int64_t off, step = (int64_t)1 << 30;
    EFF__TRY(eff__mpi_agree(c, fn, 4, count, dtype, op, 0));
    for (off = 0; off < count; off += step) {
        int k = (int)(count - off < step ? count - off : step);
        EFF__TRY(eff__mpi_wait(c, fn, MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * eff__comm_esize(dtype), k,
                                                     eff__mpi_type(dtype), eff__mpi_op(m, dtype, op), m->comm, &req), &req, NULL));
    }
    if (op == EFF_RED_AVG) eff__mpi_divide(buf, count, dtype, c->size);
    return EFF_OK;
}
static eff_status eff__mreduce_scatter(eff_comm *c, const void *send, void *recv, int64_t rc, int dtype, int op) {
    const char *fn = "eff_comm_reduce_scatter";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    size_t nb = (size_t)rc * eff__comm_esize(dtype);
    int inplace = (const char *)recv == (const char *)send + (size_t)c->rank * nb && nb > 0;
    void *out = recv;
    eff_status s;
    EFF__TRY(eff__mpi_agree(c, fn, 5, rc, dtype, op, 0));
    EFF__TRY(eff__mpi_fits(c, fn, rc));
    if (inplace) {   /* MPI forbids aliasing send and recv; NCCL's in-place form does */
        out = eff_ctx_alloc(c->ctx, nb);
        if (!out) return EFF_ERR_OOM;
    }
    s = eff__mpi_wait(c, fn, MPI_Ireduce_scatter_block(send, out, (int)rc, eff__mpi_type(dtype), eff__mpi_op(m, dtype, op), m->comm,
                                                       &req), &req, NULL);
    if (s == EFF_OK && op == EFF_RED_AVG) eff__mpi_divide(out, rc, dtype, c->size);
    if (inplace) { if (s == EFF_OK) memcpy(recv, out, nb); eff_ctx_free(c->ctx, out); }
    return s;
}
static eff_status eff__mall_gather(eff_comm *c, const void *send, void *recv, int64_t sc, int dtype) {
    const char *fn = "eff_comm_all_gather";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    size_t nb = (size_t)sc * eff__comm_esize(dtype);
    int inplace = (const char *)send == (const char *)recv + (size_t)c->rank * nb && nb > 0;
    EFF__TRY(eff__mpi_agree(c, fn, 6, sc, dtype, 0, 0));
    EFF__TRY(eff__mpi_fits(c, fn, sc * c->size));
    return eff__mpi_wait(c, fn, MPI_Iallgather(inplace ? MPI_IN_PLACE : send, (int)sc, eff__mpi_type(dtype), recv, (int)sc,
                                               eff__mpi_type(dtype), m->comm, &req), &req, NULL);
}
static eff_status eff__mall_to_all(eff_comm *c, const void *send, void *recv, int64_t cnt, int dtype) {
    const char *fn = "eff_comm_all_to_all";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    EFF__TRY(eff__mpi_agree(c, fn, 7, cnt, dtype, 0, 0));
    EFF__TRY(eff__mpi_fits(c, fn, cnt * c->size));
    return eff__mpi_wait(c, fn, MPI_Ialltoall(send, (int)cnt, eff__mpi_type(dtype), recv, (int)cnt, eff__mpi_type(dtype), m->comm,
                                              &req), &req, NULL);
}
static eff_status eff__msend(eff_comm *c, const void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_send";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    size_t nb = (size_t)count * eff__comm_esize(dtype);
    eff__mpending *p;
    int rc;
    EFF__TRY(eff__mpi_fits(c, fn, count));
    eff__mpi_progress(c);
    p = (eff__mpending *)eff_ctx_alloc(c->ctx, EFF__MPENDING_HDR + nb);
    if (!p) return EFF_ERR_OOM;
    if (nb) memcpy((char *)p + EFF__MPENDING_HDR, buf, nb);
    rc = MPI_Isend((char *)p + EFF__MPENDING_HDR, (int)count, eff__mpi_type(dtype), peer, tag, m->comm, &p->req);
    if (rc != MPI_SUCCESS) { eff_ctx_free(c->ctx, p); return eff__mpi_err(c, fn, rc); }
    p->next = m->pending; m->pending = p;
    return EFF_OK;
}
static eff_status eff__mrecv(eff_comm *c, void *buf, int64_t count, int dtype, int peer, int tag) {
    const char *fn = "eff_comm_recv";
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Request req;
    MPI_Status st;
    int got = 0;
    EFF__TRY(eff__mpi_fits(c, fn, count));
    eff__mpi_progress(c);
    EFF__TRY(eff__mpi_wait(c, fn, MPI_Irecv(buf, (int)count, eff__mpi_type(dtype), peer, tag, m->comm, &req), &req, &st));
    MPI_Get_count(&st, eff__mpi_type(dtype), &got);
    EFF__CHECK(c->ctx, got == count, EFF_ERR_SHAPE, "%s: rank %d expects %lld x %s from rank %d (tag %d), got %d", fn, c->rank,
               (long long)count, eff_dtype_name(dtype), peer, tag, got);
    return EFF_OK;
}

static void eff__mfree(eff_ctx *ctx, eff__mcomm *m) {
    int i, j;
    double t0 = MPI_Wtime();
    while (m->pending) {   /* let buffered sends finish (bounded), then drop them */
        eff__mpending *p = m->pending;
        int flag = 0;
        MPI_Test(&p->req, &flag, MPI_STATUS_IGNORE);
        if (!flag && MPI_Wtime() - t0 < 5.0) continue;
        if (!flag) { MPI_Cancel(&p->req); MPI_Request_free(&p->req); }
        m->pending = p->next;
        eff_ctx_free(ctx, p);
    }
    for (i = 0; i < 2; i++) for (j = 0; j < 3; j++) if (m->ops[i][j] != MPI_OP_NULL) MPI_Op_free(&m->ops[i][j]);
    if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    eff_ctx_free(ctx, m);
}
static void eff__mdestroy(eff_comm *c) {
    if (c->impl) eff__mfree(c->ctx, (eff__mcomm *)c->impl);
    c->impl = NULL;
}
static eff_status eff__msplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out);

static const eff_comm_backend eff__mpi_backend = {
    "mpi", eff__mbarrier, eff__mbroadcast, eff__mreduce, eff__mall_reduce, eff__mreduce_scatter, eff__mall_gather,
    eff__mall_to_all, eff__msend, eff__mrecv, eff__msplit, NULL, eff__mdestroy, NULL, NULL
};

/* Wraps an MPI communicator we own (freed on failure). */
static eff_status eff__mwrap(eff_ctx *ctx, MPI_Comm comm, eff_comm **out) {
    static MPI_User_function *const fns[2][3] = {{eff__mpi_bf16_sum, eff__mpi_bf16_max, eff__mpi_bf16_min},
                                                 {eff__mpi_f16_sum, eff__mpi_f16_max, eff__mpi_f16_min}};
    eff__mcomm *m = (eff__mcomm *)eff_ctx_calloc(ctx, sizeof *m);
    int i, j, rank = 0, size = 0, rc = MPI_SUCCESS;
    eff_status s;
    if (!m) { MPI_Comm_free(&comm); return EFF_ERR_OOM; }
    m->comm = comm;
    for (i = 0; i < 2; i++) for (j = 0; j < 3; j++) m->ops[i][j] = MPI_OP_NULL;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    for (i = 0; i < 2 && rc == MPI_SUCCESS; i++)
        for (j = 0; j < 3 && rc == MPI_SUCCESS; j++) rc = MPI_Op_create(fns[i][j], 1, &m->ops[i][j]);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &size);
    if (rc != MPI_SUCCESS) { eff__mfree(ctx, m); return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "eff_comm_mpi_create: MPI setup failed"); }
    s = eff_comm_create_custom(ctx, rank, size, &eff__mpi_backend, m, out);
    if (s != EFF_OK) eff__mfree(ctx, m);
    return s;
}

EFFDEF eff_status eff_comm_mpi_create(eff_ctx *ctx, MPI_Comm mpi_comm, eff_comm **out) {
    int init = 0;
    MPI_Comm dup;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, out);
    *out = NULL;
    MPI_Initialized(&init);
    EFF__CHECK(ctx, init, EFF_ERR_INVALID_ARG, "eff_comm_mpi_create: MPI is not initialized (call MPI_Init first)");
    EFF__CHECK(ctx, mpi_comm != MPI_COMM_NULL, EFF_ERR_INVALID_ARG, "eff_comm_mpi_create: argument 'mpi_comm' is MPI_COMM_NULL");
    if (MPI_Comm_dup(mpi_comm, &dup) != MPI_SUCCESS)
        return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "eff_comm_mpi_create: MPI_Comm_dup failed");
    return eff__mwrap(ctx, dup, out);
}

static eff_status eff__msplit(eff_comm *c, int color, int key, int new_rank, int new_size, const int *members, eff_comm **out) {
    eff__mcomm *m = (eff__mcomm *)c->impl;
    MPI_Comm nc = MPI_COMM_NULL;
    int rc;
    (void)new_rank; (void)new_size; (void)members;
    rc = MPI_Comm_split(m->comm, color == EFF_COMM_UNDEFINED ? MPI_UNDEFINED : color, key, &nc);
    if (rc != MPI_SUCCESS) return eff__mpi_err(c, "eff_comm_split", rc);
    if (nc == MPI_COMM_NULL) { *out = NULL; return EFF_OK; }
    return eff__mwrap(c->ctx, nc, out);
}
#endif /* EFF_MPI */

/* ---------------------------------------------------------------------------
   Data parallel
   --------------------------------------------------------------------------- */
/* Element i of a f32 / bf16 / f16 buffer, as f32, and back (rounding to nearest even). */
static float eff__ld_f(const void *p, int dt, int64_t i) {
    if (dt == EFF_F32) return ((const float *)p)[i];
    if (dt == EFF_BF16) return eff_bf16_to_fp32(((const uint16_t *)p)[i]);
    return eff_fp16_to_fp32(((const uint16_t *)p)[i]);
}
static void eff__st_f(void *p, int dt, int64_t i, float v) {
    if (dt == EFF_F32) ((float *)p)[i] = v;
    else if (dt == EFF_BF16) ((uint16_t *)p)[i] = eff_fp32_to_bf16(v);
    else ((uint16_t *)p)[i] = eff_fp32_to_fp16(v);
}
/* x[0:n] *= s in dtype (f32, bf16, f16), rounding once. */
static void eff__scale_buf(void *x, int64_t n, int dt, float s) {
    int64_t i;
    if (s == 1.0f) return;
    for (i = 0; i < n; i++) {
        if (dt == EFF_F32) ((float *)x)[i] *= s;
        else if (dt == EFF_BF16) ((uint16_t *)x)[i] = eff_fp32_to_bf16(eff_bf16_to_fp32(((uint16_t *)x)[i]) * s);
        else ((uint16_t *)x)[i] = eff_fp32_to_fp16(eff_fp16_to_fp32(((uint16_t *)x)[i]) * s);
    }
}
/* y[0:n] += x[0:n] in dtype (f32, bf16, f16), rounding once. */
static void eff__add_buf(void *y, const void *x, int64_t n, int dt) {
    int64_t i;
    for (i = 0; i < n; i++) {
        if (dt == EFF_F32) ((float *)y)[i] += ((const float *)x)[i];
        else if (dt == EFF_BF16)
            ((uint16_t *)y)[i] = eff_fp32_to_bf16(eff_bf16_to_fp32(((uint16_t *)y)[i]) + eff_bf16_to_fp32(((const uint16_t *)x)[i]));
        else ((uint16_t *)y)[i] = eff_fp32_to_fp16(eff_fp16_to_fp32(((uint16_t *)y)[i]) + eff_fp16_to_fp32(((const uint16_t *)x)[i]));
    }
}

typedef struct eff__bucket {
    eff_comm *c;
    int dtype, op;
    float scale;
    size_t es;
    char *staging;
    int64_t fill;
    int *members;           /* buffer indices packed in the staging bucket */
    int n_members;
    void *const *grads;
    const int64_t *counts;
    eff_dp_stats st;
} eff__bucket;

static eff_status eff__bucket_reduce(eff__bucket *b, void *buf, int64_t count) {
    int64_t nb = count * (int64_t)b->es;
    EFF__TRY(eff_comm_all_reduce(b->c, buf, count, b->dtype, b->op));
    eff__scale_buf(buf, count, b->dtype, b->scale);
    b->st.n_buckets++;
    b->st.bytes += nb;
    if (nb > b->st.max_bucket_bytes) b->st.max_bucket_bytes = nb;
    return EFF_OK;
}
static eff_status eff__bucket_flush(eff__bucket *b) {
    int64_t off = 0;
    int k;
    if (b->fill == 0) return EFF_OK;
    EFF__TRY(eff__bucket_reduce(b, b->staging, b->fill));
    for (k = 0; k < b->n_members; k++) {
        int i = b->members[k];
        memcpy(b->grads[i], b->staging + (size_t)off * b->es, (size_t)b->counts[i] * b->es);
        off += b->counts[i];
    }
    b->fill = 0;
    b->n_members = 0;
    return EFF_OK;
}

EFFDEF eff_status eff_dp_all_reduce_grads(eff_comm *c, int n_bufs, void *const *grads, const int64_t *counts, int dtype,
                                          const eff_dp_opts *opts, eff_dp_stats *stats) {
    const char *fn = "eff_dp_all_reduce_grads";
    eff_dp_opts o;
    eff__bucket b;
    eff_ctx *ctx;
    int64_t cap, small_total = 0;
    int i;
    eff_status s = EFF_OK;
    if (!c) return EFF_ERR_INVALID_ARG;
    ctx = c->ctx;
    if (stats) memset(stats, 0, sizeof *stats);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    EFF__CHECK(ctx, n_bufs >= 0, EFF_ERR_INVALID_ARG, "%s: argument 'n_bufs' = %d < 0", fn, n_bufs);
    EFF__CHECK(ctx, n_bufs == 0 || (grads && counts), EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, grads ? "counts" : "grads");
    EFF__CHECK(ctx, dtype == EFF_F32 || dtype == EFF_BF16 || dtype == EFF_F16, EFF_ERR_DTYPE,
               "%s: argument 'dtype' = %s; gradients are f32, bf16 or f16", fn, eff_dtype_name(dtype) ? eff_dtype_name(dtype) : "?");
    EFF__CHECK(ctx, o.bucket_bytes >= 0, EFF_ERR_INVALID_ARG, "%s: opts 'bucket_bytes' = %lld < 0", fn, (long long)o.bucket_bytes);
    memset(&b, 0, sizeof b);
    b.c = c; b.dtype = dtype; b.op = o.sum ? EFF_RED_SUM : EFF_RED_AVG; b.scale = o.scale == 0.0f ? 1.0f : o.scale;
    b.es = eff__comm_esize(dtype); b.grads = grads; b.counts = counts;
    cap = (o.bucket_bytes ? o.bucket_bytes : ((int64_t)25 << 20)) / (int64_t)b.es;
    if (cap < 1) cap = 1;
    for (i = 0; i < n_bufs; i++) {
        EFF__CHECK(ctx, counts[i] >= 0, EFF_ERR_INVALID_ARG, "%s: 'counts[%d]' = %lld < 0", fn, i, (long long)counts[i]);
        EFF__CHECK(ctx, counts[i] == 0 || grads[i], EFF_ERR_INVALID_ARG, "%s: 'grads[%d]' is NULL", fn, i);
        if (counts[i] < cap) small_total += counts[i];
    }
    if (small_total > 0) {
        b.staging = (char *)eff_ctx_alloc(ctx, (size_t)(small_total < cap ? small_total : cap) * b.es);
        b.members = (int *)eff_ctx_alloc(ctx, sizeof(int) * (size_t)n_bufs);
        if (!b.staging || !b.members) s = EFF_ERR_OOM;
    }
    for (i = n_bufs - 1; i >= 0 && s == EFF_OK; i--) {
        int64_t cnt = counts[i], off;
        if (cnt == 0) continue;
        if (cnt >= cap) {
            s = eff__bucket_flush(&b);
            for (off = 0; off < cnt && s == EFF_OK; off += cap)
                s = eff__bucket_reduce(&b, (char *)grads[i] + (size_t)off * b.es, cnt - off < cap ? cnt - off : cap);
            continue;
        }
        if (b.fill + cnt > cap) s = eff__bucket_flush(&b);
        if (s != EFF_OK) break;
        memcpy(b.staging + (size_t)b.fill * b.es, grads[i], (size_t)cnt * b.es);
        b.fill += cnt;
        b.members[b.n_members++] = i;
    }
    if (s == EFF_OK) s = eff__bucket_flush(&b);
    eff_ctx_free(ctx, b.staging);
    eff_ctx_free(ctx, b.members);
    if (stats) *stats = b.st;
    return s;
}

/* ---------------------------------------------------------------------------
   ZeRO
   --------------------------------------------------------------------------- */
enum { EFF__Z_PARAMS = 0, EFF__Z_GRADS, EFF__Z_MASTER, EFF__Z_M, EFF__Z_V };

struct eff_zero {
    eff_comm *c;
    eff_ctx *ctx;
    int stage, pdt, n, r, L;
    size_t pes;                 /* bytes per parameter / gradient element */
    int64_t n_params;
    int64_t *count;             /* [L] parameters of layer l */
    int64_t *shard;             /* [L] ceil(count/n): elements of each rank's slice */
    int64_t *off_full;          /* [L] offset of layer l in the padded full layout */
    int64_t *off_shard;         /* [L] offset of this rank's slice in the shard layout */
    int64_t full_total, shard_total;
    void *params, *grads;       /* full or shard layout, by stage */
    float *master, *m, *v;      /* master only for bf16 */
    void **gathered;            /* [L] stage 3: all-gathered layers */
    void **lgrad;               /* [L] stages 2-3: layer gradients being accumulated */
    eff_adamw_opts adamw;
    int64_t step;
    float max_grad_norm;
    double last_norm;
    int lr_set;                 /* eff_zero_set_lr was called: lr 0 skips the update */
};

/* Whether buffer `which` is in the full (replicated) layout at this stage. */
static int eff__zfull(const eff_zero *z, int which) {
    if (which == EFF__Z_PARAMS) return z->stage <= 2;
    if (which == EFF__Z_GRADS) return z->stage <= 1;
    return z->stage == 0;
}
static void *eff__zbase(const eff_zero *z, int which, size_t *es) {
    *es = which <= EFF__Z_GRADS ? z->pes : 4;
    switch (which) {
    case EFF__Z_PARAMS: return z->params;
    case EFF__Z_GRADS: return z->grads;
    case EFF__Z_MASTER: return z->master;
    case EFF__Z_M: return z->m;
    default: return z->v;
    }
}
/* This rank's slice of layer l in buffer `which`. */
static char *eff__zslice(const eff_zero *z, int which, int l) {
    size_t es;
    char *base = (char *)eff__zbase(z, which, &es);
    if (!base) return NULL;
    if (eff__zfull(z, which)) return base + (size_t)(z->off_full[l] + z->r * z->shard[l]) * es;
    return base + (size_t)z->off_shard[l] * es;
}
/* Layer l in a full-layout buffer. */
static char *eff__zlayer(const eff_zero *z, int which, int l) {
    size_t es;
    char *base = (char *)eff__zbase(z, which, &es);
    return base ? base + (size_t)z->off_full[l] * es : NULL;
}
static eff_status eff__zcheck(const eff_zero *z, const char *fn, int layer) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(z->ctx, layer >= 0 && layer < z->L, EFF_ERR_INVALID_ARG, "%s: argument 'layer' = %d not in [0, %d)", fn, layer, z->L);
    return EFF_OK;
}

EFFDEF eff_status eff_zero_memory_estimate(int stage, double n_params, int n_ranks, double P, double G, double K,
                                           eff_zero_mem *out) {
    if (!out || stage < 0 || stage > 3 || n_ranks < 1 || !(n_params >= 0.0)) return EFF_ERR_INVALID_ARG;
    out->params = P * n_params / (stage >= 3 ? n_ranks : 1);
    out->grads = G * n_params / (stage >= 2 ? n_ranks : 1);
    out->optim = K * n_params / (stage >= 1 ? n_ranks : 1);
    out->total = out->params + out->grads + out->optim;
    return EFF_OK;
}

EFFDEF void eff_zero_destroy(eff_zero *z) {
    int l;
    eff_ctx *ctx;
    if (!z) return;
    ctx = z->ctx;
    for (l = 0; l < z->L; l++) {
        if (z->gathered) eff_ctx_free(ctx, z->gathered[l]);
        if (z->lgrad) eff_ctx_free(ctx, z->lgrad[l]);
    }
    eff_ctx_free(ctx, z->gathered); eff_ctx_free(ctx, z->lgrad);
    eff_ctx_free(ctx, z->params); eff_ctx_free(ctx, z->grads);
    eff_ctx_free(ctx, z->master); eff_ctx_free(ctx, z->m); eff_ctx_free(ctx, z->v);
    eff_ctx_free(ctx, z->count); eff_ctx_free(ctx, z->shard); eff_ctx_free(ctx, z->off_full); eff_ctx_free(ctx, z->off_shard);
    eff_ctx_free(ctx, z);
}

EFFDEF eff_status eff_zero_create(eff_comm *c, int64_t n_params, const eff_zero_opts *opts, eff_zero **out) {
    const char *fn = "eff_zero_create";
    eff_zero_opts o;
    eff_zero *z;
    eff_ctx *ctx;
    int64_t sum = 0, full_n, shard_n;
    int l;
    if (!c) return EFF_ERR_INVALID_ARG;
    ctx = c->ctx;
    EFF__CHECK_PTR(ctx, out);
    *out = NULL;
    EFF__CHECK_PTR(ctx, opts);
    o = *opts;
    if (o.param_dtype == 0) o.param_dtype = EFF_F32;
    EFF__CHECK(ctx, o.stage >= 0 && o.stage <= 3, EFF_ERR_INVALID_ARG, "%s: opts 'stage' = %d not in 0..3", fn, o.stage);
    EFF__CHECK(ctx, o.param_dtype == EFF_F32 || o.param_dtype == EFF_BF16, EFF_ERR_DTYPE, "%s: opts 'param_dtype' = %s; f32 or bf16",
               fn, eff_dtype_name(o.param_dtype) ? eff_dtype_name(o.param_dtype) : "?");
    EFF__CHECK(ctx, n_params >= 1, EFF_ERR_INVALID_ARG, "%s: argument 'n_params' = %lld < 1", fn, (long long)n_params);
    EFF__CHECK(ctx, o.max_grad_norm >= 0.0f, EFF_ERR_INVALID_ARG, "%s: opts 'max_grad_norm' = %g < 0", fn, (double)o.max_grad_norm);
    EFF__CHECK(ctx, o.n_layers >= 0 && (o.n_layers == 0 || o.layer_counts), EFF_ERR_INVALID_ARG,
               "%s: opts 'n_layers' = %d needs 'layer_counts'", fn, o.n_layers);
    for (l = 0; l < o.n_layers; l++) {
        EFF__CHECK(ctx, o.layer_counts[l] >= 1, EFF_ERR_INVALID_ARG, "%s: 'layer_counts[%d]' = %lld < 1", fn, l,
                   (long long)o.layer_counts[l]);
        sum += o.layer_counts[l];
    }
    EFF__CHECK(ctx, o.n_layers == 0 || sum == n_params, EFF_ERR_SHAPE, "%s: 'layer_counts' sum to %lld, 'n_params' is %lld", fn,
               (long long)sum, (long long)n_params);
    z = (eff_zero *)eff_ctx_calloc(ctx, sizeof *z);
    if (!z) return EFF_ERR_OOM;
    z->c = c; z->ctx = ctx; z->stage = o.stage; z->pdt = o.param_dtype; z->n = c->size; z->r = c->rank;
    z->L = o.n_layers ? o.n_layers : 1; z->pes = eff__comm_esize(z->pdt); z->n_params = n_params;
    z->adamw = o.adamw;
    z->max_grad_norm = o.max_grad_norm;
    z->count = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)z->L);
    z->shard = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)z->L);
    z->off_full = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)z->L);
    z->off_shard = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)z->L);
    z->gathered = (void **)eff_ctx_calloc(ctx, sizeof(void *) * (size_t)z->L);
    z->lgrad = (void **)eff_ctx_calloc(ctx, sizeof(void *) * (size_t)z->L);
    if (!z->count || !z->shard || !z->off_full || !z->off_shard || !z->gathered || !z->lgrad) {
        eff_zero_destroy(z);
        return EFF_ERR_OOM;
    }
    for (l = 0; l < z->L; l++) {
        z->count[l] = o.n_layers ? o.layer_counts[l] : n_params;
        z->shard[l] = (z->count[l] + z->n - 1) / z->n;
        z->off_full[l] = z->full_total;
        z->off_shard[l] = z->shard_total;
        z->full_total += z->shard[l] * z->n;
        z->shard_total += z->shard[l];
    }
    full_n = z->full_total; shard_n = z->shard_total;
    z->params = eff_ctx_calloc(ctx, (size_t)(z->stage <= 2 ? full_n : shard_n) * z->pes);
    z->grads = eff_ctx_calloc(ctx, (size_t)(z->stage <= 1 ? full_n : shard_n) * z->pes);
    if (z->pdt != EFF_F32) z->master = (float *)eff_ctx_calloc(ctx, (size_t)(z->stage == 0 ? full_n : shard_n) * 4);
    z->m = (float *)eff_ctx_calloc(ctx, (size_t)(z->stage == 0 ? full_n : shard_n) * 4);
    z->v = (float *)eff_ctx_calloc(ctx, (size_t)(z->stage == 0 ? full_n : shard_n) * 4);
    if (!z->params || !z->grads || (z->pdt != EFF_F32 && !z->master) || !z->m || !z->v) {
        eff_zero_destroy(z);
        return EFF_ERR_OOM;
    }
    *out = z;
    return EFF_OK;
}

EFFDEF int64_t eff_zero_step_count(const eff_zero *z) { return z ? z->step : 0; }

/* Layer l's source: params + its offset (flat) or layers[l]. */
static eff_status eff__zset(eff_zero *z, const float *flat, const float *const *layers) {
    int l;
    int64_t i, src = 0;
    for (l = 0; l < z->L; l++) {
        int64_t lo = z->r * z->shard[l], hi = lo + z->shard[l];
        const float *p = flat ? flat + src : layers[l];
        EFF__CHECK(z->ctx, p != NULL, EFF_ERR_INVALID_ARG, "eff_zero_set_params_v: 'layers[%d]' is NULL", l);
        /* replicated parameters: the whole layer; sharded ones: this rank's slice */
        if (eff__zfull(z, EFF__Z_PARAMS)) {
            char *dst = eff__zlayer(z, EFF__Z_PARAMS, l);
            for (i = 0; i < z->count[l]; i++) eff__st_f(dst, z->pdt, i, p[i]);
        } else {
            char *dst = eff__zslice(z, EFF__Z_PARAMS, l);
            for (i = lo; i < hi; i++) eff__st_f(dst, z->pdt, i - lo, i < z->count[l] ? p[i] : 0.0f);
        }
        if (z->master) {
            if (eff__zfull(z, EFF__Z_MASTER)) {
                float *dst = (float *)(void *)eff__zlayer(z, EFF__Z_MASTER, l);
                for (i = 0; i < z->count[l]; i++) dst[i] = p[i];
            } else {
                float *dst = (float *)(void *)eff__zslice(z, EFF__Z_MASTER, l);
                for (i = lo; i < hi; i++) dst[i - lo] = i < z->count[l] ? p[i] : 0.0f;
            }
        }
        src += z->count[l];
    }
    return EFF_OK;
}
EFFDEF eff_status eff_zero_set_params(eff_zero *z, const float *params) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(z->ctx, params);
    return eff__zset(z, params, NULL);
}
EFFDEF eff_status eff_zero_set_params_v(eff_zero *z, const float *const *layers) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(z->ctx, layers);
    return eff__zset(z, NULL, layers);
}

EFFDEF eff_status eff_zero_gather_layer(eff_zero *z, int layer, void **params) {
    const char *fn = "eff_zero_gather_layer";
    void *buf;
    eff_status s;
    EFF__TRY(eff__zcheck(z, fn, layer));
    EFF__CHECK_PTR(z->ctx, params);
    *params = NULL;
    if (z->stage <= 2) { *params = eff__zlayer(z, EFF__Z_PARAMS, layer); return EFF_OK; }
    if (z->gathered[layer]) { *params = z->gathered[layer]; return EFF_OK; }
    buf = eff_ctx_alloc(z->ctx, (size_t)(z->shard[layer] * z->n) * z->pes);
    if (!buf) return EFF_ERR_OOM;
    s = eff_comm_all_gather(z->c, eff__zslice(z, EFF__Z_PARAMS, layer), buf, z->shard[layer], z->pdt);
    if (s != EFF_OK) { eff_ctx_free(z->ctx, buf); return s; }
    z->gathered[layer] = buf;
    *params = buf;
    return EFF_OK;
}

EFFDEF eff_status eff_zero_release_layer(eff_zero *z, int layer) {
    EFF__TRY(eff__zcheck(z, "eff_zero_release_layer", layer));
    eff_ctx_free(z->ctx, z->gathered[layer]);
    z->gathered[layer] = NULL;
    return EFF_OK;
}

static eff_status eff__zget(eff_zero *z, float *flat, float *const *layers) {
    int l;
    int64_t i, dst = 0;
    eff_status s = EFF_OK;
    for (l = 0; l < z->L && s == EFF_OK; l++) {
        int was = z->gathered[l] != NULL;
        void *p = NULL;
        float *out = flat ? flat + dst : layers[l];
        s = eff_zero_gather_layer(z, l, &p);   /* collective at stage 3: every rank gathers every layer */
        for (i = 0; s == EFF_OK && out && i < z->count[l]; i++) out[i] = eff__ld_f(p, z->pdt, i);
        if (!was && s == EFF_OK) eff_zero_release_layer(z, l);
        dst += z->count[l];
    }
    return s;
}
EFFDEF eff_status eff_zero_get_params(eff_zero *z, float *params) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(z->ctx, params);
    return eff__zget(z, params, NULL);
}
EFFDEF eff_status eff_zero_get_params_v(eff_zero *z, float *const *layers) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(z->ctx, layers);
    return eff__zget(z, NULL, layers);
}

EFFDEF eff_status eff_zero_grad_layer(eff_zero *z, int layer, void **grad) {
    EFF__TRY(eff__zcheck(z, "eff_zero_grad_layer", layer));
    EFF__CHECK_PTR(z->ctx, grad);
    *grad = NULL;
    if (z->stage <= 1) { *grad = eff__zlayer(z, EFF__Z_GRADS, layer); return EFF_OK; }
    if (!z->lgrad[layer]) {
        z->lgrad[layer] = eff_ctx_calloc(z->ctx, (size_t)(z->shard[layer] * z->n) * z->pes);
        if (!z->lgrad[layer]) return EFF_ERR_OOM;
    }
    *grad = z->lgrad[layer];
    return EFF_OK;
}

EFFDEF eff_status eff_zero_grad_done(eff_zero *z, int layer) {
    const char *fn = "eff_zero_grad_done";
    char *g, *mine;
    eff_status s;
    EFF__TRY(eff__zcheck(z, fn, layer));
    if (z->stage <= 1) return EFF_OK;
    EFF__CHECK(z->ctx, z->lgrad[layer] != NULL, EFF_ERR_INVALID_ARG, "%s: layer %d has no gradient (call eff_zero_grad_layer)", fn,
               layer);
    g = (char *)z->lgrad[layer];
    mine = g + (size_t)(z->r * z->shard[layer]) * z->pes;
    /* in-place reduce-scatter: this rank's slice of the layer gradient, averaged */
    s = eff_comm_reduce_scatter(z->c, g, mine, z->shard[layer], z->pdt, EFF_RED_AVG);
    if (s == EFF_OK) eff__add_buf(eff__zslice(z, EFF__Z_GRADS, layer), mine, z->shard[layer], z->pdt);
    eff_ctx_free(z->ctx, g);
    z->lgrad[layer] = NULL;
    return s;
}

EFFDEF eff_status eff_zero_set_lr(eff_zero *z, float lr) {
    if (!z) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(z->ctx, lr >= 0.0f && lr == lr, EFF_ERR_INVALID_ARG, "eff_zero_set_lr: argument 'lr' = %g must be >= 0", (double)lr);
    z->adamw.lr = lr;
    z->lr_set = 1;
    return EFF_OK;
}
EFFDEF double eff_zero_last_grad_norm(const eff_zero *z) { return z ? z->last_norm : 0.0; }

/* L2 norm of the averaged gradients. Stage 0 holds all of them; otherwise each rank
   sums the squares of its shard in double, sends it as two floats (hi + lo) and
   every rank adds the n partial sums in rank order (the same result everywhere). */
static eff_status eff__zgrad_norm(eff_zero *z, double *norm) {
    double ss = 0.0;
    float mine[2], *all;
    int l, j;
    int64_t i;
    eff_status s;
    if (z->stage == 0) {
        for (i = 0; i < z->full_total; i++) { double g = eff__ld_f(z->grads, z->pdt, i); ss += g * g; }
        *norm = sqrt(ss);
        return EFF_OK;
    }
    for (l = 0; l < z->L; l++) {
        const char *g = eff__zslice(z, EFF__Z_GRADS, l);
        for (i = 0; i < z->shard[l]; i++) { double v = eff__ld_f(g, z->pdt, i); ss += v * v; }
    }
    mine[0] = (float)ss;
    mine[1] = (float)(ss - (double)mine[0]);
    all = (float *)eff_ctx_alloc(z->ctx, sizeof(float) * 2 * (size_t)z->n);
    if (!all) return EFF_ERR_OOM;
    s = eff_comm_all_gather(z->c, mine, all, 2, EFF_F32);
    for (ss = 0.0, j = 0; s == EFF_OK && j < z->n; j++) ss += (double)all[2 * j] + (double)all[2 * j + 1];
    eff_ctx_free(z->ctx, all);
    *norm = sqrt(ss);
    return s;
}

EFFDEF eff_status eff_zero_step(eff_zero *z) {
    const char *fn = "eff_zero_step";
    eff_adamw_opts o;
    eff_status s = EFF_OK;
    int l, skip;
    if (!z) return EFF_ERR_INVALID_ARG;
    for (l = 0; l < z->L; l++)
        EFF__CHECK(z->ctx, !z->lgrad[l], EFF_ERR_INVALID_ARG, "%s: layer %d's gradient is pending (call eff_zero_grad_done)", fn, l);
    o = z->adamw;
    o.step = z->step + 1;
    skip = z->lr_set && z->adamw.lr == 0.0f;   /* the kernel would read lr 0 as its default */
    /* 1. the averaged gradients where the update reads them: replicated (stage 0), this
       rank's slices (stage 1 reduce-scatters now; stages 2-3 did in eff_zero_grad_done) */
    if (z->stage == 0) s = eff_comm_all_reduce(z->c, z->grads, z->full_total, z->pdt, EFF_RED_AVG);
    for (l = 0; l < z->L && s == EFF_OK && z->stage == 1; l++) {
        char *g = eff__zlayer(z, EFF__Z_GRADS, l);
        s = eff_comm_reduce_scatter(z->c, g, g + (size_t)(z->r * z->shard[l]) * z->pes, z->shard[l], z->pdt, EFF_RED_AVG);
    }
    /* 2. global-norm clipping folded into the kernel's gradient scale */
    z->last_norm = 0.0;
    if (s == EFF_OK && z->max_grad_norm > 0.0f) {
        double nrm = 0.0, gs = o.grad_scale == 0.0f ? 1.0 : (double)o.grad_scale, coef;
        s = eff__zgrad_norm(z, &nrm);
        nrm *= gs;
        z->last_norm = nrm;
        coef = (double)z->max_grad_norm / (nrm + 1e-6);
        if (coef < 1.0) o.grad_scale = (float)(gs * coef);
    }
    /* 3. AdamW on this rank's part, then the updated parameters to every rank (stages 1-2) */
    if (s == EFF_OK && z->stage == 0 && !skip)
        s = eff_adamw_step(z->ctx, &o, z->full_total, z->params, z->pdt, z->master, z->grads, z->pdt, z->m, z->v);
    for (l = 0; l < z->L && s == EFF_OK && z->stage > 0; l++) {
        if (!skip)
            s = eff_adamw_step(z->ctx, &o, z->shard[l], eff__zslice(z, EFF__Z_PARAMS, l), z->pdt,
                               (float *)(void *)eff__zslice(z, EFF__Z_MASTER, l), eff__zslice(z, EFF__Z_GRADS, l), z->pdt,
                               (float *)(void *)eff__zslice(z, EFF__Z_M, l), (float *)(void *)eff__zslice(z, EFF__Z_V, l));
        if (s == EFF_OK && z->stage <= 2)
            s = eff_comm_all_gather(z->c, eff__zslice(z, EFF__Z_PARAMS, l), eff__zlayer(z, EFF__Z_PARAMS, l), z->shard[l], z->pdt);
    }
    if (s != EFF_OK) return s;
    memset(z->grads, 0, (size_t)(z->stage <= 1 ? z->full_total : z->shard_total) * z->pes);
    z->step++;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Data-parallel AdamW over replicated tensors (eff_zero underneath)
   --------------------------------------------------------------------------- */
struct eff_dp_optim {
    eff_zero *z;
    eff_ctx *ctx;
    int n;
    float **params, **grads;
    int64_t *counts;
};

EFFDEF void eff_dp_optim_destroy(eff_dp_optim *o) {
    eff_ctx *ctx;
    if (!o) return;
    ctx = o->ctx;
    eff_zero_destroy(o->z);
    eff_ctx_free(ctx, o->params); eff_ctx_free(ctx, o->grads); eff_ctx_free(ctx, o->counts);
    eff_ctx_free(ctx, o);
}
EFFDEF eff_zero *eff_dp_optim_zero(const eff_dp_optim *o) { return o ? o->z : NULL; }

EFFDEF eff_status eff_dp_optim_create(eff_comm *c, int n, float *const *params, float *const *grads, const int64_t *counts,
                                      const eff_dp_optim_opts *opts, eff_dp_optim **out) {
    const char *fn = "eff_dp_optim_create";
    eff_dp_optim *o;
    eff_zero_opts zo;
    eff_ctx *ctx;
    int64_t total = 0;
    eff_status s;
    int i;
    if (!c) return EFF_ERR_INVALID_ARG;
    ctx = c->ctx;
    EFF__CHECK_PTR(ctx, out);
    *out = NULL;
    EFF__CHECK_PTR(ctx, opts);
    EFF__CHECK(ctx, n >= 1 && params && grads && counts, EFF_ERR_INVALID_ARG, "%s: argument 'n' = %d or a list is NULL", fn, n);
    for (i = 0; i < n; i++) {
        EFF__CHECK(ctx, counts[i] >= 1 && params[i] && grads[i], EFF_ERR_INVALID_ARG, "%s: tensor %d: count %lld, params %p, grads %p",
                   fn, i, (long long)counts[i], (const void *)params[i], (const void *)grads[i]);
        total += counts[i];
    }
    o = (eff_dp_optim *)eff_ctx_calloc(ctx, sizeof *o);
    if (!o) return EFF_ERR_OOM;
    o->ctx = ctx; o->n = n;
    o->params = (float **)eff_ctx_alloc(ctx, sizeof(float *) * (size_t)n);
    o->grads = (float **)eff_ctx_alloc(ctx, sizeof(float *) * (size_t)n);
    o->counts = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)n);
    if (!o->params || !o->grads || !o->counts) { eff_dp_optim_destroy(o); return EFF_ERR_OOM; }
    for (i = 0; i < n; i++) { o->params[i] = params[i]; o->grads[i] = grads[i]; o->counts[i] = counts[i]; }
    memset(&zo, 0, sizeof zo);
    zo.stage = opts->zero_stage; zo.param_dtype = EFF_F32; zo.n_layers = n; zo.layer_counts = counts;
    zo.adamw = opts->adamw; zo.max_grad_norm = opts->max_grad_norm;
    s = eff_zero_create(c, total, &zo, &o->z);
    if (s == EFF_OK) s = eff_zero_set_params_v(o->z, (const float *const *)o->params);
    if (s != EFF_OK) { eff_dp_optim_destroy(o); return s; }
    *out = o;
    return EFF_OK;
}

EFFDEF eff_status eff_dp_optim_step(eff_dp_optim *o, float lr) {
    int i;
    if (!o) return EFF_ERR_INVALID_ARG;
    /* in backward order, as DDP's buckets: stages 2-3 reduce-scatter each tensor here */
    for (i = o->n - 1; i >= 0; i--) {
        void *g = NULL;
        EFF__TRY(eff_zero_grad_layer(o->z, i, &g));
        memcpy(g, o->grads[i], sizeof(float) * (size_t)o->counts[i]);
        memset(o->grads[i], 0, sizeof(float) * (size_t)o->counts[i]);
        EFF__TRY(eff_zero_grad_done(o->z, i));
    }
    EFF__TRY(eff_zero_set_lr(o->z, lr));
    EFF__TRY(eff_zero_step(o->z));
    return eff_zero_get_params_v(o->z, o->params);
}

/* Checkpoints. Header (native byte order), then per layer this rank's slices of
   params (param dtype), master (bf16 only), m, v. */
#define EFF__ZMAGIC "EFFZERO1"
typedef struct eff__zhdr {
    char magic[8];
    uint32_t version, param_dtype, world, rank, n_layers, reserved;
    int64_t n_params, step, shard_total;
    uint64_t checksum;          /* FNV-1a 64 of everything after the header */
} eff__zhdr;

static uint64_t eff__fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}
/* The byte ranges of this rank's slices, in file order: k = 0..n_parts-1. */
static int eff__zparts(const eff_zero *z) { return z->master ? 4 : 3; }
static char *eff__zpart(const eff_zero *z, int k, int l, size_t *nb) {
    static const int which3[3] = {EFF__Z_PARAMS, EFF__Z_M, EFF__Z_V};
    static const int which4[4] = {EFF__Z_PARAMS, EFF__Z_MASTER, EFF__Z_M, EFF__Z_V};
    int w = z->master ? which4[k] : which3[k];
    *nb = (size_t)z->shard[l] * (w == EFF__Z_PARAMS ? z->pes : 4);
    return eff__zslice(z, w, l);
}
static char *eff__zpath(const eff_zero *z, const char *prefix) {
    size_t n = strlen(prefix) + 64;
    char *p = (char *)eff_ctx_alloc(z->ctx, n);
    if (p) snprintf(p, n, "%s.rank%d-of-%d", prefix, z->r, z->n);
    return p;
}
/* Every rank learns the worst status of all (so no rank proceeds into a collective alone). */
static eff_status eff__zagree(eff_zero *z, eff_status mine) {
    int32_t v = (int32_t)mine;
    eff_status s = eff_comm_all_reduce(z->c, &v, 1, EFF_I32, EFF_RED_MAX);
    if (s != EFF_OK) return s;
    if (v != EFF_OK && mine == EFF_OK)
        return eff_ctx_error(z->ctx, (eff_status)v, "eff_zero: another rank failed (%s)", eff_status_str((eff_status)v));
    return (eff_status)v;
}

EFFDEF eff_status eff_zero_save(eff_zero *z, const char *prefix) {
    const char *fn = "eff_zero_save";
    eff__zhdr h;
    eff_file_writer w;
    char *path;
    eff_status s = EFF_OK;
    uint64_t sum = 0xcbf29ce484222325ull;
    int l, k;
    if (!z) return EFF_ERR_INVALID_ARG;
    if (!prefix) s = eff_ctx_error(z->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'prefix' is NULL", fn);
    memset(&h, 0, sizeof h);
    memcpy(h.magic, EFF__ZMAGIC, 8);
    h.version = 1; h.param_dtype = (uint32_t)z->pdt; h.world = (uint32_t)z->n; h.rank = (uint32_t)z->r;
    h.n_layers = (uint32_t)z->L; h.n_params = z->n_params; h.step = z->step; h.shard_total = z->shard_total;
    /* the checksum covers the layer table and the data */
    sum = eff__fnv1a(sum, z->count, sizeof(int64_t) * (size_t)z->L);
    for (l = 0; l < z->L; l++)
        for (k = 0; k < eff__zparts(z); k++) {
            size_t nb;
            char *p = eff__zpart(z, k, l, &nb);
            sum = eff__fnv1a(sum, p, nb);
        }
    h.checksum = sum;
    path = s == EFF_OK ? eff__zpath(z, prefix) : NULL;
    if (s == EFF_OK && !path) s = EFF_ERR_OOM;
    if (s == EFF_OK) s = eff_file_writer_open(z->ctx, &w, path);
    if (s == EFF_OK) {
        s = eff_file_writer_write(z->ctx, &w, &h, sizeof h);
        if (s == EFF_OK) s = eff_file_writer_write(z->ctx, &w, z->count, sizeof(int64_t) * (size_t)z->L);
        for (l = 0; l < z->L && s == EFF_OK; l++)
            for (k = 0; k < eff__zparts(z) && s == EFF_OK; k++) {
                size_t nb;
                char *p = eff__zpart(z, k, l, &nb);
                s = eff_file_writer_write(z->ctx, &w, p, nb);
            }
        if (s == EFF_OK) s = eff_file_writer_commit(z->ctx, &w);
        else eff_file_writer_abort(z->ctx, &w);
    }
    eff_ctx_free(z->ctx, path);
    return eff__zagree(z, s);
}

EFFDEF eff_status eff_zero_load(eff_zero *z, const char *prefix) {
    const char *fn = "eff_zero_load";
    eff__zhdr h;
    eff_file_map fm;
    char *path = NULL;
    eff_status s = EFF_OK;
    int64_t need, data = 0;
    int l, k, mapped = 0;
    if (!z) return EFF_ERR_INVALID_ARG;
    need = (int64_t)sizeof h + (int64_t)sizeof(int64_t) * z->L;
    memset(&fm, 0, sizeof fm);
    if (!prefix) s = eff_ctx_error(z->ctx, EFF_ERR_INVALID_ARG, "%s: argument 'prefix' is NULL", fn);
    if (s == EFF_OK) { path = eff__zpath(z, prefix); if (!path) s = EFF_ERR_OOM; }
    if (s == EFF_OK) { s = eff_file_map_open(z->ctx, path, &fm); mapped = s == EFF_OK; }
    for (l = 0; l < z->L; l++)
        for (k = 0; k < eff__zparts(z); k++) { size_t nb; eff__zpart(z, k, l, &nb); data += (int64_t)nb; }
    if (s == EFF_OK && fm.size < (int64_t)sizeof h)
        s = eff_ctx_error(z->ctx, EFF_ERR_FORMAT, "%s: '%s' is truncated (%lld bytes)", fn, path, (long long)fm.size);
    if (s == EFF_OK) {
        memcpy(&h, fm.data, sizeof h);
        if (memcmp(h.magic, EFF__ZMAGIC, 8) != 0 || h.version != 1)
            s = eff_ctx_error(z->ctx, EFF_ERR_FORMAT, "%s: '%s' is not an eff ZeRO checkpoint (version 1)", fn, path);
        else if (h.world != (uint32_t)z->n || h.rank != (uint32_t)z->r || h.param_dtype != (uint32_t)z->pdt ||
                 h.n_layers != (uint32_t)z->L || h.n_params != z->n_params || h.shard_total != z->shard_total)
            s = eff_ctx_error(z->ctx, EFF_ERR_SHAPE,
                              "%s: '%s' was written by rank %u of %u for %lld params in %u layers (%s); this is rank %d of %d, "
                              "%lld params in %d layers (%s)", fn, path, h.rank, h.world, (long long)h.n_params, h.n_layers,
                              eff_dtype_name((int)h.param_dtype) ? eff_dtype_name((int)h.param_dtype) : "?", z->r, z->n,
                              (long long)z->n_params, z->L, eff_dtype_name(z->pdt));
        else if (fm.size != need + data)
            s = eff_ctx_error(z->ctx, EFF_ERR_FORMAT, "%s: '%s' has %lld bytes, expected %lld", fn, path, (long long)fm.size,
                              (long long)(need + data));
        else if (memcmp(fm.data + sizeof h, z->count, sizeof(int64_t) * (size_t)z->L) != 0)
            s = eff_ctx_error(z->ctx, EFF_ERR_SHAPE, "%s: '%s' has different layer sizes", fn, path);
        else if (eff__fnv1a(0xcbf29ce484222325ull, fm.data + sizeof h, (size_t)(fm.size - (int64_t)sizeof h)) != h.checksum)
            s = eff_ctx_error(z->ctx, EFF_ERR_FORMAT, "%s: '%s' fails its checksum (corrupted)", fn, path);
    }
    if (s == EFF_OK) {
        const unsigned char *p = fm.data + need;
        for (l = 0; l < z->L; l++)
            for (k = 0; k < eff__zparts(z); k++) {
                size_t nb;
                char *dst = eff__zpart(z, k, l, &nb);
                memcpy(dst, p, nb);
                p += nb;
            }
        z->step = h.step;
    }
    if (mapped) eff_file_map_close(z->ctx, &fm);
    eff_ctx_free(z->ctx, path);
    EFF__TRY(eff__zagree(z, s));
    /* rebuild the replicated buffers from the slices */
    for (l = 0; l < z->L && s == EFF_OK; l++) {
        if (z->stage <= 2)
            s = eff_comm_all_gather(z->c, eff__zslice(z, EFF__Z_PARAMS, l), eff__zlayer(z, EFF__Z_PARAMS, l), z->shard[l], z->pdt);
        for (k = EFF__Z_MASTER; k <= EFF__Z_V && s == EFF_OK && z->stage == 0; k++)
            if (k != EFF__Z_MASTER || z->master)
                s = eff_comm_all_gather(z->c, eff__zslice(z, k, l), eff__zlayer(z, k, l), z->shard[l], EFF_F32);
    }
    if (s == EFF_OK) memset(z->grads, 0, (size_t)(z->stage <= 1 ? z->full_total : z->shard_total) * z->pes);
    return s;
}

/* ---------------------------------------------------------------------------
   Tensor and sequence parallel
   --------------------------------------------------------------------------- */
/* t must be a contiguous f32 CPU tensor. */
static eff_status eff__tp_f32(eff_ctx *ctx, const char *fn, const eff_tensor *t, const char *name) {
    EFF__CHECK(ctx, t != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, name);
    EFF__TRY(eff_tensor_validate(ctx, t, name));
    EFF__CHECK(ctx, t->dtype == EFF_F32, EFF_ERR_DTYPE, "%s: '%s' must be f32, got %s", fn, name, eff_dtype_name(t->dtype));
    EFF__CHECK(ctx, t->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "%s: '%s' is a CUDA tensor", fn, name);
    EFF__CHECK(ctx, eff_tensor_is_contiguous(t), EFF_ERR_SHAPE, "%s: '%s' must be contiguous", fn, name);
    EFF__CHECK(ctx, t->data != NULL || eff_tensor_nelements(t) == 0, EFF_ERR_INVALID_ARG, "%s: '%s' has no data", fn, name);
    return EFF_OK;
}
static eff_status eff__tp_comm(eff_comm *tp) { return tp ? EFF_OK : EFF_ERR_INVALID_ARG; }
/* A temporary f32 [rows, cols] from the communicator's context. */
static eff_status eff__tp_tmp(eff_comm *tp, eff_tensor *t, int64_t rows, int64_t cols) {
    int64_t ne[2];
    ne[0] = rows; ne[1] = cols;
    return eff_tensor_alloc(tp->ctx, t, EFF_F32, 2, ne);
}

EFFDEF eff_status eff_tp_part(eff_comm *tp, int64_t n, int64_t *start, int64_t *len) {
    EFF__TRY(eff__tp_comm(tp));
    EFF__CHECK_PTR(tp->ctx, start);
    EFF__CHECK_PTR(tp->ctx, len);
    EFF__CHECK(tp->ctx, n >= 0 && n % tp->size == 0, EFF_ERR_SHAPE, "eff_tp_part: argument 'n' = %lld is not divisible by %d ranks",
               (long long)n, tp->size);
    *len = n / tp->size;
    *start = *len * tp->rank;
    return EFF_OK;
}

static eff_status eff__tp_shard(eff_comm *tp, eff_tensor *dst, const eff_tensor *src, int cols, const char *fn) {
    int64_t n, k, i, s0 = 0, len = 0;
    size_t es;
    EFF__TRY(eff__tp_comm(tp));
    EFF__CHECK_PTR(tp->ctx, dst);
    EFF__CHECK_PTR(tp->ctx, src);
    EFF__TRY(eff_tensor_validate(tp->ctx, src, "src"));
    EFF__TRY(eff_tensor_validate(tp->ctx, dst, "dst"));
    es = eff_dtype_type_size(src->dtype);
    EFF__CHECK(tp->ctx, src->ndim == 2 && dst->ndim == 2 && eff_tensor_is_contiguous(src) && eff_tensor_is_contiguous(dst) &&
                            src->dtype == dst->dtype && eff_dtype_blck_size(src->dtype) == 1 && (es == 2 || es == 4),
               EFF_ERR_SHAPE, "%s: 'src' and 'dst' must be contiguous 2-D tensors of one 2- or 4-byte dtype", fn);
    n = src->ne[0]; k = src->ne[1];
    EFF__TRY(eff_tp_part(tp, cols ? k : n, &s0, &len));
    EFF__CHECK(tp->ctx, dst->ne[0] == (cols ? n : len) && dst->ne[1] == (cols ? len : k), EFF_ERR_SHAPE,
               "%s: 'dst' must be [%lld, %lld]", fn, (long long)(cols ? n : len), (long long)(cols ? len : k));
    if (!cols) { memcpy(dst->data, (const char *)src->data + (size_t)(s0 * k) * es, (size_t)(len * k) * es); return EFF_OK; }
    for (i = 0; i < n; i++)
        memcpy((char *)dst->data + (size_t)(i * len) * es, (const char *)src->data + (size_t)(i * k + s0) * es, (size_t)len * es);
    return EFF_OK;
}
EFFDEF eff_status eff_tp_shard_rows(eff_comm *tp, eff_tensor *dst, const eff_tensor *src) {
    return eff__tp_shard(tp, dst, src, 0, "eff_tp_shard_rows");
}
EFFDEF eff_status eff_tp_shard_cols(eff_comm *tp, eff_tensor *dst, const eff_tensor *src) {
    return eff__tp_shard(tp, dst, src, 1, "eff_tp_shard_cols");
}

EFFDEF eff_status eff_tp_all_reduce(eff_comm *tp, eff_tensor *x) {
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, "eff_tp_all_reduce", x, "x"));
    return eff_comm_all_reduce(tp, x->data, eff_tensor_nelements(x), EFF_F32, EFF_RED_SUM);
}

/* full [M, C] and local [M/t, C] agree. */
static eff_status eff__sp_check(eff_comm *tp, const char *fn, const eff_tensor *full, const char *fname, const eff_tensor *local,
                                const char *lname) {
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, full, fname));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, local, lname));
    EFF__CHECK(tp->ctx, eff_tensor_ncols(full) == eff_tensor_ncols(local) && eff_tensor_nrows(full) == eff_tensor_nrows(local) * tp->size,
               EFF_ERR_SHAPE, "%s: '%s' must have %d x the rows of '%s' (%lld vs %lld) and as many columns", fn, fname, tp->size, lname,
               (long long)eff_tensor_nrows(full), (long long)eff_tensor_nrows(local));
    return EFF_OK;
}
EFFDEF eff_status eff_sp_gather_forward(eff_comm *tp, eff_tensor *full, const eff_tensor *local) {
    EFF__TRY(eff__sp_check(tp, "eff_sp_gather_forward", full, "full", local, "local"));
    return eff_comm_all_gather(tp, local->data, full->data, eff_tensor_nelements(local), EFF_F32);
}
EFFDEF eff_status eff_sp_gather_backward(eff_comm *tp, eff_tensor *dlocal, const eff_tensor *dfull) {
    EFF__TRY(eff__sp_check(tp, "eff_sp_gather_backward", dfull, "dfull", dlocal, "dlocal"));
    return eff_comm_reduce_scatter(tp, dfull->data, dlocal->data, eff_tensor_nelements(dlocal), EFF_F32, EFF_RED_SUM);
}
EFFDEF eff_status eff_sp_scatter_forward(eff_comm *tp, eff_tensor *local, const eff_tensor *full) {
    EFF__TRY(eff__sp_check(tp, "eff_sp_scatter_forward", full, "full", local, "local"));
    return eff_comm_reduce_scatter(tp, full->data, local->data, eff_tensor_nelements(local), EFF_F32, EFF_RED_SUM);
}
EFFDEF eff_status eff_sp_scatter_backward(eff_comm *tp, eff_tensor *dfull, const eff_tensor *dlocal) {
    EFF__TRY(eff__sp_check(tp, "eff_sp_scatter_backward", dfull, "dfull", dlocal, "dlocal"));
    return eff_comm_all_gather(tp, dlocal->data, dfull->data, eff_tensor_nelements(dlocal), EFF_F32);
}

/* x gathered along the sequence into a new tensor (sp), or x itself. */
static eff_status eff__sp_full(eff_comm *tp, const char *fn, const eff_tensor *x, const char *name, int sp, eff_tensor *out, int *owned) {
    *owned = 0;
    EFF__TRY(eff__tp_f32(tp->ctx, fn, x, name));
    if (!sp) { *out = *x; return EFF_OK; }
    EFF__TRY(eff__tp_tmp(tp, out, eff_tensor_nrows(x) * tp->size, eff_tensor_ncols(x)));
    *owned = 1;
    return eff_sp_gather_forward(tp, out, x);
}
static void eff__tp_free(eff_comm *tp, eff_tensor *t, int owned) { if (owned) eff_tensor_free(tp->ctx, t); }
static int eff__tp_has(const eff_tensor *t) { return t && t->data; }

EFFDEF eff_status eff_tp_column_linear_forward(eff_comm *tp, eff_tensor *y, const eff_tensor *x, const eff_tensor *W,
                                               const eff_tensor *b, int sp) {
    const char *fn = "eff_tp_column_linear_forward";
    eff_tensor xf;
    int own;
    eff_status s;
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__sp_full(tp, fn, x, "x", sp, &xf, &own));
    s = eff_linear_forward(tp->ctx, y, &xf, W, b);   /* f: identity forward */
    eff__tp_free(tp, &xf, own);
    return s;
}

EFFDEF eff_status eff_tp_column_linear_backward(eff_comm *tp, eff_tensor *dx, eff_tensor *dW, eff_tensor *db, const eff_tensor *dy,
                                                const eff_tensor *x, const eff_tensor *W, int sp) {
    const char *fn = "eff_tp_column_linear_backward";
    eff_tensor xf, dxf;
    int own_x = 0, own_dx = 0;
    eff_status s = EFF_OK;
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, dy, "dy"));
    if (dW) s = eff__sp_full(tp, fn, x, "x", sp, &xf, &own_x);
    else xf = x ? *x : *dy;
    if (s == EFF_OK && dx) {
        s = eff__tp_f32(tp->ctx, fn, dx, "dx");
        if (s == EFF_OK && sp) {
            s = eff__tp_tmp(tp, &dxf, eff_tensor_nrows(dx) * tp->size, eff_tensor_ncols(dx));
            own_dx = s == EFF_OK;
        } else dxf = *dx;
    }
    if (s == EFF_OK) s = eff_linear_backward(tp->ctx, dx ? &dxf : NULL, dW, db, dy, &xf, W);
    if (s == EFF_OK && dx) s = sp ? eff_sp_gather_backward(tp, dx, &dxf) : eff_tp_all_reduce(tp, dx);   /* f backward */
    eff__tp_free(tp, &dxf, own_dx);
    eff__tp_free(tp, &xf, own_x);
    return s;
}

/* y[i, :] += b */
static void eff__tp_add_bias(eff_tensor *y, const eff_tensor *b) {
    int64_t i, j, M = eff_tensor_nrows(y), N = eff_tensor_ncols(y);
    float *yp = (float *)y->data;
    const float *bp = (const float *)b->data;
    for (i = 0; i < M; i++) for (j = 0; j < N; j++) yp[i * N + j] += bp[j];
}
/* db[j] += sum_i dy[i, j] */
static void eff__tp_bias_grad(float *db, const eff_tensor *dy) {
    int64_t i, j, M = eff_tensor_nrows(dy), N = eff_tensor_ncols(dy);
    const float *d = (const float *)dy->data;
    for (i = 0; i < M; i++) for (j = 0; j < N; j++) db[j] += d[i * N + j];
}

EFFDEF eff_status eff_tp_row_linear_forward(eff_comm *tp, eff_tensor *y, const eff_tensor *x, const eff_tensor *W,
                                            const eff_tensor *b, int sp) {
    const char *fn = "eff_tp_row_linear_forward";
    eff_tensor yf;
    int own = 0;
    eff_status s;
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, y, "y"));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, x, "x"));
    if (b) {
        EFF__TRY(eff__tp_f32(tp->ctx, fn, b, "b"));
        EFF__CHECK(tp->ctx, eff_tensor_nelements(b) == eff_tensor_ncols(y), EFF_ERR_SHAPE, "%s: 'b' must have %lld elements", fn,
                   (long long)eff_tensor_ncols(y));
    }
    yf = *y;
    if (sp) {
        EFF__CHECK(tp->ctx, eff_tensor_nrows(x) == eff_tensor_nrows(y) * tp->size, EFF_ERR_SHAPE,
                   "%s: with sequence parallelism 'y' holds rows(x)/%d rows", fn, tp->size);
        EFF__TRY(eff__tp_tmp(tp, &yf, eff_tensor_nrows(x), eff_tensor_ncols(y)));
        own = 1;
    }
    s = eff_linear_forward(tp->ctx, &yf, x, W, NULL);
    if (s == EFF_OK) s = sp ? eff_sp_scatter_forward(tp, y, &yf) : eff_tp_all_reduce(tp, y);   /* g forward */
    if (s == EFF_OK && b) eff__tp_add_bias(y, b);
    eff__tp_free(tp, &yf, own);
    return s;
}

EFFDEF eff_status eff_tp_row_linear_backward(eff_comm *tp, eff_tensor *dx, eff_tensor *dW, eff_tensor *db, const eff_tensor *dy,
                                             const eff_tensor *x, const eff_tensor *W, int sp) {
    const char *fn = "eff_tp_row_linear_backward";
    eff_tensor dyf;
    int own;
    eff_status s;
    EFF__TRY(eff__tp_comm(tp));
    if (db) {
        EFF__TRY(eff__tp_f32(tp->ctx, fn, db, "db"));
        EFF__TRY(eff__tp_f32(tp->ctx, fn, dy, "dy"));
        EFF__CHECK(tp->ctx, eff_tensor_nelements(db) == eff_tensor_ncols(dy), EFF_ERR_SHAPE, "%s: 'db' must have %lld elements", fn,
                   (long long)eff_tensor_ncols(dy));
    }
    EFF__TRY(eff__sp_full(tp, fn, dy, "dy", sp, &dyf, &own));   /* g backward: identity (sp: all-gather) */
    s = eff_linear_backward(tp->ctx, dx, dW, NULL, &dyf, x, W);
    if (s == EFF_OK && db) {
        if (!sp) eff__tp_bias_grad((float *)db->data, dy);   /* dy is replicated: the same sum everywhere */
        else {
            /* each rank sums its sequence block; the bias gradient is the sum over ranks */
            eff_tensor part;
            s = eff__tp_tmp(tp, &part, 1, eff_tensor_ncols(dy));
            if (s == EFF_OK) {
                memset(part.data, 0, (size_t)eff_tensor_nbytes(&part));
                eff__tp_bias_grad((float *)part.data, dy);
                s = eff_tp_all_reduce(tp, &part);
                if (s == EFF_OK) {
                    int64_t j;
                    for (j = 0; j < eff_tensor_ncols(dy); j++) ((float *)db->data)[j] += ((float *)part.data)[j];
                }
                eff_tensor_free(tp->ctx, &part);
            }
        }
    }
    eff__tp_free(tp, &dyf, own);
    return s;
}

EFFDEF void eff_tp_mlp_cache_free(eff_comm *tp, eff_tp_mlp_cache *cache) {
    if (!tp || !cache) return;
    if (cache->h1.data) eff_tensor_free(tp->ctx, &cache->h1);
    if (cache->h3.data) eff_tensor_free(tp->ctx, &cache->h3);
    if (cache->a.data) eff_tensor_free(tp->ctx, &cache->a);
    memset(cache, 0, sizeof *cache);
}

EFFDEF eff_status eff_tp_mlp_forward(eff_comm *tp, const eff_tp_mlp *m, const eff_tp_mlp_opts *opts, eff_tensor *y,
                                     const eff_tensor *x, eff_tp_mlp_cache *cache) {
    const char *fn = "eff_tp_mlp_forward";
    eff_tp_mlp_opts o;
    eff_tp_mlp_cache c;
    eff_tensor xf;
    int own_x = 0;
    int64_t M, F;
    eff_status s;
    EFF__TRY(eff__tp_comm(tp));
    EFF__CHECK_PTR(tp->ctx, m);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    EFF__CHECK(tp->ctx, o.act == EFF_TP_GELU || o.act == EFF_TP_SWIGLU, EFF_ERR_INVALID_ARG, "%s: opts 'act' = %d", fn, o.act);
    memset(&c, 0, sizeof c);
    if (cache) memset(cache, 0, sizeof *cache);
    EFF__TRY(eff__sp_full(tp, fn, x, "x", o.sequence_parallel, &xf, &own_x));
    M = eff_tensor_nrows(&xf);
    F = m->w1.ndim == 2 ? m->w1.ne[0] : -1;
    s = F >= 0 ? eff__tp_tmp(tp, &c.h1, M, F) : eff_ctx_error(tp->ctx, EFF_ERR_SHAPE, "%s: 'm->w1' must be 2-D", fn);
    if (s == EFF_OK) s = eff__tp_tmp(tp, &c.a, M, F);
    if (s == EFF_OK && o.act == EFF_TP_SWIGLU) s = eff__tp_tmp(tp, &c.h3, M, F);
    if (s == EFF_OK) s = eff_linear_forward(tp->ctx, &c.h1, &xf, &m->w1, eff__tp_has(&m->b1) ? &m->b1 : NULL);
    if (s == EFF_OK && o.act == EFF_TP_SWIGLU) s = eff_linear_forward(tp->ctx, &c.h3, &xf, &m->w3, NULL);
    if (s == EFF_OK) s = o.act == EFF_TP_GELU ? eff_gelu_forward(tp->ctx, &c.a, &c.h1) : eff_swiglu_forward(tp->ctx, &c.a, &c.h1, &c.h3);
    if (s == EFF_OK) s = eff_tp_row_linear_forward(tp, y, &c.a, &m->w2, eff__tp_has(&m->b2) ? &m->b2 : NULL, o.sequence_parallel);
    eff__tp_free(tp, &xf, own_x);
    if (s == EFF_OK && cache) *cache = c;
    else eff_tp_mlp_cache_free(tp, &c);
    return s;
}

EFFDEF eff_status eff_tp_mlp_backward(eff_comm *tp, const eff_tp_mlp *m, const eff_tp_mlp_opts *opts, eff_tp_mlp *grads,
                                      eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x, const eff_tp_mlp_cache *cache) {
    const char *fn = "eff_tp_mlp_backward";
    eff_tp_mlp_opts o;
    eff_tensor da, dh3, xf, dxf, tmp;
    int own_x = 0, own_dx = 0, sp, swi;
    eff_status s;
    eff_tp_mlp none;
    EFF__TRY(eff__tp_comm(tp));
    EFF__CHECK_PTR(tp->ctx, m);
    EFF__CHECK_PTR(tp->ctx, cache);
    EFF__CHECK(tp->ctx, cache->h1.data && cache->a.data, EFF_ERR_INVALID_ARG, "%s: 'cache' was not filled by eff_tp_mlp_forward", fn);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    memset(&none, 0, sizeof none);
    if (!grads) grads = &none;
    sp = o.sequence_parallel; swi = o.act == EFF_TP_SWIGLU;
    EFF__CHECK(tp->ctx, !swi || cache->h3.data, EFF_ERR_INVALID_ARG, "%s: SwiGLU needs the cache's 'h3'", fn);
    memset(&da, 0, sizeof da); memset(&dh3, 0, sizeof dh3); memset(&dxf, 0, sizeof dxf); memset(&tmp, 0, sizeof tmp);
    s = eff__tp_tmp(tp, &da, cache->a.ne[0], cache->a.ne[1]);
    if (s == EFF_OK)
        s = eff_tp_row_linear_backward(tp, &da, eff__tp_has(&grads->w2) ? &grads->w2 : NULL, eff__tp_has(&grads->b2) ? &grads->b2 : NULL,
                                       dy, &cache->a, &m->w2, sp);
    if (s == EFF_OK && swi) {
        /* gate gradient into a new buffer (eff_swiglu_backward writes it first), then the
           up gradient over da; swap so that da holds the gate's and dh3 the up's */
        eff_tensor t;
        s = eff__tp_tmp(tp, &dh3, da.ne[0], da.ne[1]);
        if (s == EFF_OK) s = eff_swiglu_backward(tp->ctx, &dh3, &da, &da, &cache->h1, &cache->h3);
        t = da; da = dh3; dh3 = t;
    } else if (s == EFF_OK) {
        s = eff_gelu_backward(tp->ctx, &da, &da, &cache->h1);
    }
    if (s == EFF_OK) s = eff__sp_full(tp, fn, x, "x", sp, &xf, &own_x);
    if (s == EFF_OK && dx) {
        s = eff__tp_f32(tp->ctx, fn, dx, "dx");
        if (s == EFF_OK && sp) { s = eff__tp_tmp(tp, &dxf, eff_tensor_nrows(&xf), eff_tensor_ncols(&xf)); own_dx = s == EFF_OK; }
        else dxf = *dx;
    }
    if (s == EFF_OK)
        s = eff_linear_backward(tp->ctx, dx ? &dxf : NULL, eff__tp_has(&grads->w1) ? &grads->w1 : NULL,
                                eff__tp_has(&grads->b1) ? &grads->b1 : NULL, &da, &xf, &m->w1);
    if (s == EFF_OK && swi) {
        if (dx) s = eff__tp_tmp(tp, &tmp, dxf.ne[0], dxf.ne[1]);
        if (s == EFF_OK) s = eff_linear_backward(tp->ctx, dx ? &tmp : NULL, eff__tp_has(&grads->w3) ? &grads->w3 : NULL, NULL, &dh3, &xf, &m->w3);
        if (s == EFF_OK && dx) {
            int64_t i, n = eff_tensor_nelements(&tmp);
            for (i = 0; i < n; i++) ((float *)dxf.data)[i] += ((float *)tmp.data)[i];
        }
    }
    if (s == EFF_OK && dx) s = sp ? eff_sp_gather_backward(tp, dx, &dxf) : eff_tp_all_reduce(tp, dx);   /* f backward, once */
    if (tmp.data) eff_tensor_free(tp->ctx, &tmp);
    eff__tp_free(tp, &dxf, own_dx);
    if (own_x) eff_tensor_free(tp->ctx, &xf);
    if (dh3.data) eff_tensor_free(tp->ctx, &dh3);
    if (da.data) eff_tensor_free(tp->ctx, &da);
    return s;
}

static eff_status eff__tp_ids(eff_comm *tp, const char *fn, const eff_tensor *ids, const char *name, int64_t V, int allow_ignore) {
    int64_t i, n;
    EFF__CHECK(tp->ctx, ids != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, name);
    EFF__TRY(eff_tensor_validate(tp->ctx, ids, name));
    EFF__CHECK(tp->ctx, ids->dtype == EFF_I32 && eff_tensor_is_contiguous(ids), EFF_ERR_DTYPE, "%s: '%s' must be contiguous i32", fn,
               name);
    n = eff_tensor_nelements(ids);
    for (i = 0; i < n; i++) {
        int32_t v = ((const int32_t *)ids->data)[i];
        EFF__CHECK(tp->ctx, (v >= 0 && v < V) || (allow_ignore && v == -100), EFF_ERR_INVALID_ARG,
                   "%s: '%s[%lld]' = %d is not in [0, %lld)", fn, name, (long long)i, (int)v, (long long)V);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_tp_vocab_embedding_forward(eff_comm *tp, eff_tensor *out, const eff_tensor *ids, const eff_tensor *table,
                                                 int sp) {
    const char *fn = "eff_tp_vocab_embedding_forward";
    eff_tensor full;
    int64_t Vl, C, M, i, v0;
    int own = 0;
    eff_status s;
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, table, "table"));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, out, "out"));
    EFF__CHECK(tp->ctx, table->ndim == 2, EFF_ERR_SHAPE, "%s: 'table' must be 2-D [V/t, C]", fn);
    Vl = table->ne[0]; C = table->ne[1]; v0 = Vl * tp->rank;
    EFF__TRY(eff__tp_ids(tp, fn, ids, "ids", Vl * tp->size, 0));
    M = eff_tensor_nelements(ids);
    EFF__CHECK(tp->ctx, eff_tensor_ncols(out) == C && eff_tensor_nrows(out) * (sp ? tp->size : 1) == M, EFF_ERR_SHAPE,
               "%s: 'out' must be [%lld, %lld]", fn, (long long)(sp ? M / tp->size : M), (long long)C);
    full = *out;
    if (sp) { EFF__TRY(eff__tp_tmp(tp, &full, M, C)); own = 1; }
    for (i = 0; i < M; i++) {   /* masked lookup: rows outside this rank's vocabulary are zero */
        int64_t id = ((const int32_t *)ids->data)[i];
        float *dst = (float *)full.data + i * C;
        if (id >= v0 && id < v0 + Vl) memcpy(dst, (const float *)table->data + (id - v0) * C, sizeof(float) * (size_t)C);
        else memset(dst, 0, sizeof(float) * (size_t)C);
    }
    s = sp ? eff_sp_scatter_forward(tp, out, &full) : eff_tp_all_reduce(tp, out);
    eff__tp_free(tp, &full, own);
    return s;
}

EFFDEF eff_status eff_tp_vocab_embedding_backward(eff_comm *tp, eff_tensor *dtable, const eff_tensor *dout, const eff_tensor *ids,
                                                  int sp) {
    const char *fn = "eff_tp_vocab_embedding_backward";
    eff_tensor df;
    int64_t Vl, C, M, i, j, v0;
    int own;
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, dtable, "dtable"));
    EFF__CHECK(tp->ctx, dtable->ndim == 2, EFF_ERR_SHAPE, "%s: 'dtable' must be 2-D [V/t, C]", fn);
    Vl = dtable->ne[0]; C = dtable->ne[1]; v0 = Vl * tp->rank;
    EFF__TRY(eff__tp_ids(tp, fn, ids, "ids", Vl * tp->size, 0));
    M = eff_tensor_nelements(ids);
    EFF__TRY(eff__sp_full(tp, fn, dout, "dout", sp, &df, &own));
    if (eff_tensor_nrows(&df) != M || eff_tensor_ncols(&df) != C) {
        eff__tp_free(tp, &df, own);
        return eff_ctx_error(tp->ctx, EFF_ERR_SHAPE, "%s: 'dout' must hold %lld rows of %lld", fn, (long long)M, (long long)C);
    }
    for (i = 0; i < M; i++) {
        int64_t id = ((const int32_t *)ids->data)[i];
        if (id < v0 || id >= v0 + Vl) continue;
        for (j = 0; j < C; j++) ((float *)dtable->data)[(id - v0) * C + j] += ((const float *)df.data)[i * C + j];
    }
    eff__tp_free(tp, &df, own);
    return EFF_OK;
}

/* Row maxima and sums of exp(logit - max) over the whole vocabulary, and (if tl)
   each row's target logit: two all-reduces (MAX, then SUM of [tl | se]). */
static eff_status eff__tp_xent_stats(eff_comm *tp, const eff_tensor *logits, const eff_tensor *targets, float *mx, float *tl, float *se) {
    int64_t N = eff_tensor_nrows(logits), Vl = eff_tensor_ncols(logits), v0 = Vl * tp->rank, i, j;
    const float *L = (const float *)logits->data;
    const int32_t *t = (const int32_t *)targets->data;
    for (i = 0; i < N; i++) {
        float m = -INFINITY;
        for (j = 0; j < Vl; j++) m = L[i * Vl + j] > m ? L[i * Vl + j] : m;
        mx[i] = m;
    }
    EFF__TRY(eff_comm_all_reduce(tp, mx, N, EFF_F32, EFF_RED_MAX));
    for (i = 0; i < N; i++) {
        float s = 0.0f;
        for (j = 0; j < Vl; j++) s += expf(L[i * Vl + j] - mx[i]);
        se[i] = s;
        tl[i] = t[i] >= v0 && t[i] < v0 + Vl ? L[i * Vl + (t[i] - v0)] : 0.0f;
    }
    return eff_comm_all_reduce(tp, tl, 2 * N, EFF_F32, EFF_RED_SUM);   /* tl and se are adjacent */
}
static eff_status eff__tp_xent_check(eff_comm *tp, const char *fn, const eff_tensor *logits, const eff_tensor *targets) {
    EFF__TRY(eff__tp_comm(tp));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, logits, "logits"));
    EFF__TRY(eff__tp_ids(tp, fn, targets, "targets", eff_tensor_ncols(logits) * tp->size, 1));
    EFF__CHECK(tp->ctx, eff_tensor_nelements(targets) == eff_tensor_nrows(logits), EFF_ERR_SHAPE,
               "%s: 'targets' must have one entry per row of 'logits' (%lld)", fn, (long long)eff_tensor_nrows(logits));
    return EFF_OK;
}

EFFDEF eff_status eff_tp_vocab_cross_entropy_forward(eff_comm *tp, eff_tensor *losses, float *mean_loss, const eff_tensor *logits,
                                                     const eff_tensor *targets) {
    const char *fn = "eff_tp_vocab_cross_entropy_forward";
    int64_t N, i, valid = 0;
    float *buf;
    double sum = 0.0;
    eff_status s;
    EFF__TRY(eff__tp_xent_check(tp, fn, logits, targets));
    N = eff_tensor_nrows(logits);
    if (losses) {
        EFF__TRY(eff__tp_f32(tp->ctx, fn, losses, "losses"));
        EFF__CHECK(tp->ctx, eff_tensor_nelements(losses) == N, EFF_ERR_SHAPE, "%s: 'losses' must have %lld elements", fn, (long long)N);
    }
    buf = (float *)eff_ctx_alloc(tp->ctx, sizeof(float) * (size_t)(3 * N + 1));
    if (!buf) return EFF_ERR_OOM;
    s = eff__tp_xent_stats(tp, logits, targets, buf, buf + N, buf + 2 * N);
    for (i = 0; s == EFF_OK && i < N; i++) {
        int32_t t = ((const int32_t *)targets->data)[i];
        float l = t == -100 ? 0.0f : logf(buf[2 * N + i]) + buf[i] - buf[N + i];
        if (losses) ((float *)losses->data)[i] = l;
        if (t != -100) { sum += l; valid++; }
    }
    if (s == EFF_OK && mean_loss) *mean_loss = valid ? (float)(sum / (double)valid) : 0.0f;
    eff_ctx_free(tp->ctx, buf);
    return s;
}

EFFDEF eff_status eff_tp_vocab_cross_entropy_backward(eff_comm *tp, eff_tensor *dlogits, const eff_tensor *logits,
                                                      const eff_tensor *targets, float dloss) {
    const char *fn = "eff_tp_vocab_cross_entropy_backward";
    int64_t N, Vl, v0, i, j, valid = 0;
    float *buf;
    eff_status s;
    EFF__TRY(eff__tp_xent_check(tp, fn, logits, targets));
    EFF__TRY(eff__tp_f32(tp->ctx, fn, dlogits, "dlogits"));
    EFF__CHECK(tp->ctx, eff_tensor_same_shape(dlogits, logits), EFF_ERR_SHAPE, "%s: 'dlogits' must have the shape of 'logits'", fn);
    N = eff_tensor_nrows(logits); Vl = eff_tensor_ncols(logits); v0 = Vl * tp->rank;
    for (i = 0; i < N; i++) valid += ((const int32_t *)targets->data)[i] != -100;
    if (dloss == 0.0f) dloss = valid ? 1.0f / (float)valid : 0.0f;
    buf = (float *)eff_ctx_alloc(tp->ctx, sizeof(float) * (size_t)(3 * N + 1));
    if (!buf) return EFF_ERR_OOM;
    s = eff__tp_xent_stats(tp, logits, targets, buf, buf + N, buf + 2 * N);
    for (i = 0; s == EFF_OK && i < N; i++) {
        int32_t t = ((const int32_t *)targets->data)[i];
        const float *L = (const float *)logits->data + i * Vl;
        float *d = (float *)dlogits->data + i * Vl, inv = 1.0f / buf[2 * N + i];
        for (j = 0; j < Vl; j++)
            d[j] = t == -100 ? 0.0f : (expf(L[j] - buf[i]) * inv - (float)(t == v0 + j)) * dloss;
    }
    eff_ctx_free(tp->ctx, buf);
    return s;
}

/* ---------------------------------------------------------------------------
   Pipeline schedules and executor
   --------------------------------------------------------------------------- */
EFFDEF const char *eff_pp_schedule_name(int kind) {
    switch (kind) {
    case EFF_PP_GPIPE: return "GPipe";
    case EFF_PP_1F1B: return "1F1B";
    case EFF_PP_INTERLEAVED: return "interleaved 1F1B";
    case EFF_PP_ZB_H1: return "ZB-H1";
    default: return "?";
    }
}

EFFDEF void eff_pp_schedule_free(eff_ctx *ctx, eff_pp_schedule *s) {
    int i;
    if (!s) return;
    for (i = 0; s->actions && i < s->p; i++) eff_ctx_free(ctx, s->actions[i]);
    eff_ctx_free(ctx, s->actions);
    eff_ctx_free(ctx, s->n_actions);
    eff_ctx_free(ctx, s->peak_inflight);
    memset(s, 0, sizeof *s);
}

static void eff__pp_push(eff_pp_schedule *s, int stage, int kind, int mb, int chunk) {
    eff_pp_action *a = &s->actions[stage][s->n_actions[stage]++];
    a->kind = kind; a->mb = mb; a->chunk = chunk; a->start = -1;
}

/* The per-stage orders (section 4 of the reference: Megatron's schedules.py, the
   zero-bubble paper's H1). */
static void eff__pp_generate(eff_pp_schedule *s) {
    int p = s->p, m = s->m, v = s->v, i, k;
    for (i = 0; i < p; i++) {
        if (s->kind == EFF_PP_GPIPE) {
            for (k = 0; k < m; k++) eff__pp_push(s, i, EFF_PP_F, k, 0);
            for (k = 0; k < m; k++) eff__pp_push(s, i, EFF_PP_B, k, 0);
        } else if (s->kind == EFF_PP_1F1B || s->kind == EFF_PP_ZB_H1) {
            int w = p - i - 1 < m ? p - i - 1 : m, nb = 0, wq = 0, zb = s->kind == EFF_PP_ZB_H1;
            for (k = 0; k < w; k++) eff__pp_push(s, i, EFF_PP_F, k, 0);
            for (k = 0; k < m; k++) {   /* steady state (F then B), then cool-down (B only) */
                if (k < m - w) eff__pp_push(s, i, EFF_PP_F, w + k, 0);
                eff__pp_push(s, i, EFF_PP_B, k, 0);
                if (zb && ++nb > i) eff__pp_push(s, i, EFF_PP_W, wq++, 0);   /* the first i W's are deferred */
            }
            while (zb && wq < m) eff__pp_push(s, i, EFF_PP_W, wq++, 0);
        } else {   /* interleaved: unit k -> (micro-batch, chunk) */
            int total = m * v, pv = p * v, warm = (p - i - 1) * 2 + (v - 1) * p;
            if (m == p || warm > total) warm = total;
#define EFF__PP_MB(k) (((k) / pv) * p + (k) % p)
#define EFF__PP_CF(k) (((k) % pv) / p)
            for (k = 0; k < warm; k++) eff__pp_push(s, i, EFF_PP_F, EFF__PP_MB(k), EFF__PP_CF(k));
            for (k = 0; k < total; k++) {
                if (warm + k < total) eff__pp_push(s, i, EFF_PP_F, EFF__PP_MB(warm + k), EFF__PP_CF(warm + k));
                eff__pp_push(s, i, EFF_PP_B, EFF__PP_MB(k), v - 1 - EFF__PP_CF(k));
            }
#undef EFF__PP_MB
#undef EFF__PP_CF
        }
    }
}

/* Event simulation: every op starts when its stage is free and its dependency has
   finished; fills start times, makespan, bubble and peaks. EFF_ERR_FORMAT on a
   missing or repeated op or a deadlock. */
static eff_status eff__pp_simulate(eff_ctx *ctx, eff_pp_schedule *s) {
    const char *fn = "eff_pp_schedule_validate";
    int p = s->p, V = s->p * s->v, i, zb = s->kind == EFF_PP_ZB_H1, progress = 1;
    int64_t n = (int64_t)s->m * V, *fin, *next, *free_at, total = 0, done = 0, k;
    unsigned char *seen;
    eff_status st = EFF_OK;
    fin = (int64_t *)eff_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(3 * n + 2 * p));
    seen = (unsigned char *)eff_ctx_calloc(ctx, (size_t)(3 * n));
    if (!fin || !seen) { eff_ctx_free(ctx, fin); eff_ctx_free(ctx, seen); return EFF_ERR_OOM; }
    next = fin + 3 * n; free_at = next + p;
    for (k = 0; k < 3 * n; k++) fin[k] = -1;
    for (i = 0; i < p; i++) { next[i] = 0; free_at[i] = 0; total += s->n_actions[i]; }
    /* each (kind, micro-batch, virtual stage) exactly once, on the right stage */
    for (i = 0; i < p && st == EFF_OK; i++)
        for (k = 0; k < s->n_actions[i]; k++) {
            const eff_pp_action *a = &s->actions[i][k];
            int64_t id;
            if (a->kind < 0 || a->kind > (zb ? EFF_PP_W : EFF_PP_B) || a->mb < 0 || a->mb >= s->m || a->chunk < 0 || a->chunk >= s->v) {
                st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: stage %d action %lld is out of range", fn, i, (long long)k);
                break;
            }
            id = (int64_t)a->kind * n + (int64_t)a->mb * V + a->chunk * p + i;
            if (seen[id]++) st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: stage %d repeats %c%d (chunk %d)", fn, i, "FBW"[a->kind], a->mb, a->chunk);
        }
    if (st == EFF_OK && total != (zb ? 3 : 2) * n)
        st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: %lld actions, expected %lld", fn, (long long)total, (long long)((zb ? 3 : 2) * n));
    while (st == EFF_OK && done < total && progress) {
        progress = 0;
        for (i = 0; i < p; i++) {
            while (next[i] < s->n_actions[i]) {
                eff_pp_action *a = &s->actions[i][next[i]];
                int vs = a->chunk * p + i;
                int64_t dep, *mine = &fin[(int64_t)a->kind * n + (int64_t)a->mb * V + vs];
                if (a->kind == EFF_PP_F) dep = vs == 0 ? 0 : fin[(int64_t)a->mb * V + vs - 1];
                else if (a->kind == EFF_PP_B) {
                    dep = vs == V - 1 ? fin[(int64_t)a->mb * V + vs] : fin[n + (int64_t)a->mb * V + vs + 1];
                    if (fin[(int64_t)a->mb * V + vs] < 0) dep = -1;
                } else dep = fin[n + (int64_t)a->mb * V + vs];
                if (dep < 0) break;
                a->start = dep > free_at[i] ? dep : free_at[i];
                *mine = free_at[i] = a->start + 1;
                next[i]++; done++; progress = 1;
            }
        }
    }
    if (st == EFF_OK && done < total)
        st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: the per-stage orders deadlock after %lld of %lld ops", fn, (long long)done,
                           (long long)total);
    if (st == EFF_OK) {
        s->makespan = 0;
        for (i = 0; i < p; i++) if (free_at[i] > s->makespan) s->makespan = free_at[i];
        s->bubble = total ? (double)(p * s->makespan - total) / (double)total : 0.0;
        s->idle_fraction = s->makespan ? (double)(p * s->makespan - total) / (double)(p * s->makespan) : 0.0;
        for (i = 0; i < p; i++) {   /* activations are held from F until the last backward op (B, or W in ZB) */
            int64_t held = 0, peak = 0;
            for (k = 0; k < s->n_actions[i]; k++) {
                int kind = s->actions[i][k].kind;
                if (kind == EFF_PP_F) held++;
                else if (kind == (zb ? EFF_PP_W : EFF_PP_B)) held--;
                if (held > peak) peak = held;
            }
            s->peak_inflight[i] = peak;
        }
    }
    eff_ctx_free(ctx, fin);
    eff_ctx_free(ctx, seen);
    return st;
}

EFFDEF eff_status eff_pp_schedule_validate(eff_ctx *ctx, const eff_pp_schedule *s) {
    eff_pp_schedule c;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, s);
    EFF__CHECK(ctx, s->p >= 1 && s->m >= 1 && s->v >= 1 && s->n_actions && s->actions && s->peak_inflight, EFF_ERR_INVALID_ARG,
               "eff_pp_schedule_validate: 's' is not a schedule");
    c = *s;   /* the simulation writes start times and statistics, which it recomputes identically */
    return eff__pp_simulate(ctx, &c);
}

EFFDEF eff_status eff_pp_schedule_create(eff_ctx *ctx, int kind, int p, int m, int v, eff_pp_schedule *out) {
    const char *fn = "eff_pp_schedule_create";
    int i;
    int64_t per;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, out);
    memset(out, 0, sizeof *out);
    EFF__CHECK(ctx, kind >= EFF_PP_GPIPE && kind <= EFF_PP_ZB_H1, EFF_ERR_INVALID_ARG, "%s: argument 'kind' = %d", fn, kind);
    EFF__CHECK(ctx, p >= 1 && p <= 4096, EFF_ERR_INVALID_ARG, "%s: argument 'p' = %d not in [1, 4096]", fn, p);
    EFF__CHECK(ctx, m >= 1 && m <= 65536, EFF_ERR_INVALID_ARG, "%s: argument 'm' = %d not in [1, 65536]", fn, m);
    EFF__CHECK(ctx, v >= 1 && v <= 64 && (v == 1 || kind == EFF_PP_INTERLEAVED), EFF_ERR_INVALID_ARG,
               "%s: argument 'v' = %d (only the interleaved schedule has v > 1 chunks per stage)", fn, v);
    EFF__CHECK(ctx, kind != EFF_PP_INTERLEAVED || m % p == 0, EFF_ERR_INVALID_ARG,
               "%s: the interleaved schedule needs m (%d) divisible by p (%d)", fn, m, p);
    out->kind = kind; out->p = p; out->m = m; out->v = v;
    per = (int64_t)m * v * (kind == EFF_PP_ZB_H1 ? 3 : 2);
    out->n_actions = (int64_t *)eff_ctx_calloc(ctx, sizeof(int64_t) * (size_t)p);
    out->peak_inflight = (int64_t *)eff_ctx_calloc(ctx, sizeof(int64_t) * (size_t)p);
    out->actions = (eff_pp_action **)eff_ctx_calloc(ctx, sizeof(eff_pp_action *) * (size_t)p);
    st = out->n_actions && out->peak_inflight && out->actions ? EFF_OK : EFF_ERR_OOM;
    for (i = 0; i < p && st == EFF_OK; i++) {
        out->actions[i] = (eff_pp_action *)eff_ctx_alloc(ctx, sizeof(eff_pp_action) * (size_t)per);
        if (!out->actions[i]) st = EFF_ERR_OOM;
    }
    if (st == EFF_OK) { eff__pp_generate(out); st = eff__pp_simulate(ctx, out); }
    if (st != EFF_OK) eff_pp_schedule_free(ctx, out);
    return st;
}

/* Appends printf output to buf at *len, never past size; *len counts what is needed. */
static void eff__pp_cat(char *buf, size_t size, int64_t *len, const char *fmt, ...) {
    va_list ap;
    int k;
    char tmp[256];
    va_start(ap, fmt);
    k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (buf && (size_t)*len < size) {
        size_t room = size - (size_t)*len;
        memcpy(buf + *len, tmp, (size_t)k < room ? (size_t)k : room);
    }
    *len += k;
}
EFFDEF int64_t eff_pp_schedule_format(const eff_pp_schedule *s, char *buf, size_t size) {
    int64_t len = 0, k, t;
    int i, w = 2;
    char cell[32];
    if (!s || !s->actions) { if (buf && size) buf[0] = 0; return 0; }
    for (i = 0; i < s->p; i++)   /* cell width: the longest label */
        for (k = 0; k < s->n_actions[i]; k++) {
            const eff_pp_action *a = &s->actions[i][k];
            int n = s->v > 1 ? snprintf(cell, sizeof cell, "F%d.%d", a->mb, a->chunk) : snprintf(cell, sizeof cell, "F%d", a->mb);
            if (n > w) w = n;
        }
    eff__pp_cat(buf, size, &len, "%s, p=%d m=%d v=%d: makespan %lld, bubble %.4f (idle %.1f%% of wall time), peak in-flight",
                eff_pp_schedule_name(s->kind), s->p, s->m, s->v, (long long)s->makespan, s->bubble, 100.0 * s->idle_fraction);
    for (i = 0; i < s->p; i++) eff__pp_cat(buf, size, &len, " %lld", (long long)s->peak_inflight[i]);
    eff__pp_cat(buf, size, &len, "\n");
    for (i = 0; i < s->p; i++) {
        eff__pp_cat(buf, size, &len, "stage %2d |", i);
        for (t = 0, k = 0; t < s->makespan; t++) {
            const eff_pp_action *a = k < s->n_actions[i] ? &s->actions[i][k] : NULL;
            if (a && a->start == t) {
                if (s->v > 1) snprintf(cell, sizeof cell, "%c%d.%d", "FBW"[a->kind], a->mb, a->chunk);
                else snprintf(cell, sizeof cell, "%c%d", "FBW"[a->kind], a->mb);
                k++;
            } else snprintf(cell, sizeof cell, ".");
            eff__pp_cat(buf, size, &len, "%-*s%s", w, cell, t + 1 < s->makespan ? " " : "");
        }
        eff__pp_cat(buf, size, &len, "|\n");
    }
    if (buf && size) buf[(size_t)len < size ? (size_t)len : size - 1] = 0;
    return len;
}

/* Messages a stage sends to itself (p == 1: consecutive virtual stages). */
typedef struct eff__pp_self { struct eff__pp_self *next; int tag; } eff__pp_self;
#define EFF__PP_SELF_HDR ((sizeof(eff__pp_self) + 63) / 64 * 64)

static eff_status eff__pp_put(eff_comm *c, eff__pp_self **q, const float *x, int64_t n, int to, int tag) {
    eff__pp_self *e, **p;
    if (to != c->rank) return eff_comm_send(c, x, n, EFF_F32, to, tag);
    e = (eff__pp_self *)eff_ctx_alloc(c->ctx, EFF__PP_SELF_HDR + sizeof(float) * (size_t)n);
    if (!e) return EFF_ERR_OOM;
    e->next = NULL; e->tag = tag;
    memcpy((char *)e + EFF__PP_SELF_HDR, x, sizeof(float) * (size_t)n);
    for (p = q; *p; p = &(*p)->next) {}
    *p = e;
    return EFF_OK;
}
static eff_status eff__pp_get(eff_comm *c, eff__pp_self **q, float *x, int64_t n, int from, int tag) {
    eff__pp_self **p;
    if (from != c->rank) return eff_comm_recv(c, x, n, EFF_F32, from, tag);
    for (p = q; *p; p = &(*p)->next)
        if ((*p)->tag == tag) {
            eff__pp_self *e = *p;
            memcpy(x, (char *)e + EFF__PP_SELF_HDR, sizeof(float) * (size_t)n);
            *p = e->next;
            eff_ctx_free(c->ctx, e);
            return EFF_OK;
        }
    return eff_ctx_error(c->ctx, EFF_ERR_FORMAT, "eff_pp_run: stage %d waits for its own message %d, which the schedule never sent",
                         c->rank, tag);
}

EFFDEF eff_status eff_pp_run(eff_comm *pp, const eff_pp_schedule *s, const eff_pp_stage_fns *fns) {
    const char *fn = "eff_pp_run";
    eff__pp_self *q = NULL;
    float *in, *out;
    int64_t k, A;
    int i, p, V;
    eff_status st = EFF_OK;
    if (!pp) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(pp->ctx, s);
    EFF__CHECK_PTR(pp->ctx, fns);
    EFF__CHECK(pp->ctx, s->actions && s->p == pp->size, EFF_ERR_SHAPE, "%s: the schedule has %d stages, the communicator %d ranks", fn,
               s->p, pp->size);
    EFF__CHECK(pp->ctx, fns->forward && fns->backward, EFF_ERR_INVALID_ARG, "%s: 'fns->forward' and 'fns->backward' are required", fn);
    EFF__CHECK(pp->ctx, fns->act_count >= 1, EFF_ERR_INVALID_ARG, "%s: 'fns->act_count' = %lld < 1", fn, (long long)fns->act_count);
    p = s->p; V = s->p * s->v; i = pp->rank; A = fns->act_count;
    EFF__CHECK(pp->ctx, (int64_t)s->m * V * 2 <= (int64_t)EFF_COMM_TAG_MAX + 1, EFF_ERR_UNSUPPORTED,
               "%s: m * p * v = %lld is too many messages to tag", fn, (long long)s->m * V);
    in = (float *)eff_ctx_alloc(pp->ctx, sizeof(float) * (size_t)A * 2);
    if (!in) return eff__comm_fail(pp, EFF_ERR_OOM);
    out = in + A;
    /* tag of a message into virtual stage vs: forward activations even, gradients odd */
#define EFF__PP_TAG(mb, vs, dir) ((((mb) * V) + (vs)) * 2 + (dir))
    for (k = 0; k < s->n_actions[i] && st == EFF_OK; k++) {
        const eff_pp_action *a = &s->actions[i][k];
        int vs = a->chunk * p + i;
        if (a->kind == EFF_PP_F) {
            if (vs > 0) st = eff__pp_get(pp, &q, in, A, (vs - 1) % p, EFF__PP_TAG(a->mb, vs, 0));
            if (st == EFF_OK) st = fns->forward(fns->user, a->mb, a->chunk, vs > 0 ? in : NULL, vs < V - 1 ? out : NULL);
            if (st == EFF_OK && vs < V - 1) st = eff__pp_put(pp, &q, out, A, (vs + 1) % p, EFF__PP_TAG(a->mb, vs + 1, 0));
        } else if (a->kind == EFF_PP_B) {
            if (vs < V - 1) st = eff__pp_get(pp, &q, in, A, (vs + 1) % p, EFF__PP_TAG(a->mb, vs, 1));
            if (st == EFF_OK) st = fns->backward(fns->user, a->mb, a->chunk, vs < V - 1 ? in : NULL, vs > 0 ? out : NULL);
            if (st == EFF_OK && vs > 0) st = eff__pp_put(pp, &q, out, A, (vs - 1) % p, EFF__PP_TAG(a->mb, vs - 1, 1));
        } else if (fns->backward_weight) {
            st = fns->backward_weight(fns->user, a->mb, a->chunk);
        }
    }
#undef EFF__PP_TAG
    while (q) { eff__pp_self *e = q; q = e->next; eff_ctx_free(pp->ctx, e); }
    eff_ctx_free(pp->ctx, in);
    return eff__comm_fail(pp, st);   /* a failed callback stops the other stages at once */
}


/* ---------------------------------------------------------------------------
   Expert parallelism
   --------------------------------------------------------------------------- */
typedef struct eff__ep { int n; int64_t El, cap, C, T, blk; } eff__ep;

static eff_status eff__ep_setup(eff_comm *ep, const char *fn, int64_t E, int64_t cap, int k, const eff_tensor *tokens,
                                const char *tname, const eff_tensor *experts, const char *ename, eff__ep *g) {
    EFF__TRY(eff__tp_comm(ep));
    EFF__CHECK(ep->ctx, E >= ep->size && E % ep->size == 0, EFF_ERR_INVALID_ARG,
               "%s: argument 'n_experts' = %lld must be a multiple of the %d ranks", fn, (long long)E, ep->size);
    EFF__CHECK(ep->ctx, cap >= 1, EFF_ERR_INVALID_ARG, "%s: argument 'cap' = %lld < 1", fn, (long long)cap);
    EFF__CHECK(ep->ctx, k >= 1 && k <= E, EFF_ERR_INVALID_ARG, "%s: argument 'k' = %d not in [1, %lld]", fn, k, (long long)E);
    EFF__TRY(eff__tp_f32(ep->ctx, fn, tokens, tname));
    EFF__TRY(eff__tp_f32(ep->ctx, fn, experts, ename));
    g->n = ep->size; g->El = E / ep->size; g->cap = cap;
    g->T = eff_tensor_nrows(tokens); g->C = eff_tensor_ncols(tokens);
    g->blk = g->El * cap * g->C;
    EFF__CHECK(ep->ctx, experts->ndim == 3 && experts->ne[0] == g->El && experts->ne[1] == g->n * cap && experts->ne[2] == g->C,
               EFF_ERR_SHAPE, "%s: '%s' must be [%lld, %lld, %lld] (local experts, ranks x cap, C)", fn, ename, (long long)g->El,
               (long long)(g->n * cap), (long long)g->C);
    return EFF_OK;
}
/* dst[b][a] = src[a][b], blocks of `row` floats; src is [A][B]. */
static void eff__ep_transpose(float *dst, const float *src, int64_t A, int64_t B, int64_t row) {
    int64_t a, b;
    for (a = 0; a < A; a++)
        for (b = 0; b < B; b++) memcpy(dst + (b * A + a) * row, src + (a * B + b) * row, sizeof(float) * (size_t)row);
}
static eff_status eff__ep_slots(eff_comm *ep, const char *fn, const int32_t *slot, int64_t T, int k, int64_t total) {
    int64_t i;
    EFF__CHECK(ep->ctx, slot != NULL || T == 0, EFF_ERR_INVALID_ARG, "%s: argument 'slot' is NULL", fn);
    for (i = 0; i < T * k; i++)
        EFF__CHECK(ep->ctx, slot[i] >= -1 && slot[i] < total, EFF_ERR_INVALID_ARG, "%s: 'slot[%lld]' = %d is not from dispatch", fn,
                   (long long)i, (int)slot[i]);
    return EFF_OK;
}

EFFDEF eff_status eff_ep_dispatch_forward(eff_comm *ep, int64_t E, int64_t cap, int k, const eff_tensor *x, const int32_t *expert,
                                          int32_t *slot, eff_tensor *expert_in) {
    const char *fn = "eff_ep_dispatch_forward";
    eff__ep g;
    float *send, *recv;
    int64_t *fill, i, total;
    eff_status s;
    EFF__TRY(eff__ep_setup(ep, fn, E, cap, k, x, "x", expert_in, "expert_in", &g));
    EFF__CHECK(ep->ctx, (expert && slot) || g.T == 0, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, expert ? "slot" : "expert");
    for (i = 0; i < g.T * k; i++)   /* every check before the collective, so no rank enters it alone */
        EFF__CHECK(ep->ctx, expert[i] >= 0 && expert[i] < E, EFF_ERR_INVALID_ARG, "%s: 'expert[%lld]' = %d not in [0, %lld)", fn,
                   (long long)i, (int)expert[i], (long long)E);
    total = g.n * g.blk;
    send = (float *)eff_ctx_calloc(ep->ctx, sizeof(float) * (size_t)(2 * total + 1));
    fill = (int64_t *)eff_ctx_calloc(ep->ctx, sizeof(int64_t) * (size_t)E);
    if (!send || !fill) { eff_ctx_free(ep->ctx, send); eff_ctx_free(ep->ctx, fill); return EFF_ERR_OOM; }
    recv = send + total;
    for (i = 0; i < g.T * k; i++) {   /* token-major: earlier tokens win the capacity */
        int64_t e = expert[i], p = fill[e]++;
        if (p >= cap) { slot[i] = -1; continue; }
        slot[i] = (int32_t)(((e / g.El) * g.El + e % g.El) * cap + p);   /* [dest rank][local expert][position] */
        memcpy(send + (int64_t)slot[i] * g.C, (const float *)x->data + (i / k) * g.C, sizeof(float) * (size_t)g.C);
    }
    s = eff_comm_all_to_all(ep, send, recv, g.blk, EFF_F32);
    if (s == EFF_OK) eff__ep_transpose((float *)expert_in->data, recv, g.n, g.El, cap * g.C);   /* [src][e] -> [e][src] */
    eff_ctx_free(ep->ctx, fill);
    eff_ctx_free(ep->ctx, send);
    return s;
}

EFFDEF eff_status eff_ep_dispatch_backward(eff_comm *ep, int64_t E, int64_t cap, int k, const int32_t *slot,
                                           const eff_tensor *dexpert_in, eff_tensor *dx) {
    const char *fn = "eff_ep_dispatch_backward";
    eff__ep g;
    float *buf, *back;
    int64_t i, total;
    eff_status s;
    EFF__TRY(eff__ep_setup(ep, fn, E, cap, k, dx, "dx", dexpert_in, "dexpert_in", &g));
    total = g.n * g.blk;
    EFF__TRY(eff__ep_slots(ep, fn, slot, g.T, k, total / g.C));
    buf = (float *)eff_ctx_alloc(ep->ctx, sizeof(float) * (size_t)(2 * total + 1));
    if (!buf) return EFF_ERR_OOM;
    back = buf + total;
    eff__ep_transpose(buf, (const float *)dexpert_in->data, g.El, g.n, cap * g.C);   /* [e][src] -> [src][e] */
    s = eff_comm_all_to_all(ep, buf, back, g.blk, EFF_F32);
    if (s == EFF_OK) {
        float *d = (float *)dx->data;
        int64_t c;
        memset(d, 0, sizeof(float) * (size_t)(g.T * g.C));
        for (i = 0; i < g.T * k; i++)
            if (slot[i] >= 0) for (c = 0; c < g.C; c++) d[(i / k) * g.C + c] += back[(int64_t)slot[i] * g.C + c];
    }
    eff_ctx_free(ep->ctx, buf);
    return s;
}

EFFDEF eff_status eff_ep_combine_forward(eff_comm *ep, int64_t E, int64_t cap, int k, const int32_t *slot, const float *gate,
                                         const eff_tensor *expert_out, eff_tensor *y, float *cache) {
    const char *fn = "eff_ep_combine_forward";
    eff__ep g;
    float *buf, *back;
    int64_t i, total;
    eff_status s;
    EFF__TRY(eff__ep_setup(ep, fn, E, cap, k, y, "y", expert_out, "expert_out", &g));
    total = g.n * g.blk;
    EFF__TRY(eff__ep_slots(ep, fn, slot, g.T, k, total / g.C));
    EFF__CHECK(ep->ctx, gate != NULL || g.T == 0, EFF_ERR_INVALID_ARG, "%s: argument 'gate' is NULL", fn);
    buf = (float *)eff_ctx_alloc(ep->ctx, sizeof(float) * (size_t)(2 * total + 1));
    if (!buf) return EFF_ERR_OOM;
    back = buf + total;
    eff__ep_transpose(buf, (const float *)expert_out->data, g.El, g.n, cap * g.C);
    s = eff_comm_all_to_all(ep, buf, back, g.blk, EFF_F32);
    if (s == EFF_OK) {
        float *d = (float *)y->data;
        int64_t c;
        memset(d, 0, sizeof(float) * (size_t)(g.T * g.C));
        for (i = 0; i < g.T * k; i++)
            if (slot[i] >= 0) for (c = 0; c < g.C; c++) d[(i / k) * g.C + c] += gate[i] * back[(int64_t)slot[i] * g.C + c];
        if (cache) memcpy(cache, back, sizeof(float) * (size_t)total);
    }
    eff_ctx_free(ep->ctx, buf);
    return s;
}

EFFDEF eff_status eff_ep_combine_backward(eff_comm *ep, int64_t E, int64_t cap, int k, const int32_t *slot, const float *gate,
                                          const float *cache, const eff_tensor *dy, eff_tensor *dexpert_out, float *dgate) {
    const char *fn = "eff_ep_combine_backward";
    eff__ep g;
    float *dback, *r;
    int64_t i, c, total;
    eff_status s;
    EFF__TRY(eff__ep_setup(ep, fn, E, cap, k, dy, "dy", dexpert_out, "dexpert_out", &g));
    total = g.n * g.blk;
    EFF__TRY(eff__ep_slots(ep, fn, slot, g.T, k, total / g.C));
    EFF__CHECK(ep->ctx, gate != NULL || g.T == 0, EFF_ERR_INVALID_ARG, "%s: argument 'gate' is NULL", fn);
    EFF__CHECK(ep->ctx, !dgate || cache, EFF_ERR_INVALID_ARG, "%s: 'dgate' needs the 'cache' filled by eff_ep_combine_forward", fn);
    dback = (float *)eff_ctx_calloc(ep->ctx, sizeof(float) * (size_t)(2 * total + 1));
    if (!dback) return EFF_ERR_OOM;
    r = dback + total;
    for (i = 0; i < g.T * k; i++) {
        const float *dyt = (const float *)dy->data + (i / k) * g.C;
        double dot = 0.0;
        if (slot[i] < 0) { if (dgate) dgate[i] = 0.0f; continue; }
        for (c = 0; c < g.C; c++) {
            dback[(int64_t)slot[i] * g.C + c] = gate[i] * dyt[c];
            if (dgate) dot += (double)dyt[c] * cache[(int64_t)slot[i] * g.C + c];
        }
        if (dgate) dgate[i] = (float)dot;
    }
    s = eff_comm_all_to_all(ep, dback, r, g.blk, EFF_F32);
    if (s == EFF_OK) eff__ep_transpose((float *)dexpert_out->data, r, g.n, g.El, cap * g.C);
    eff_ctx_free(ep->ctx, dback);
    return s;
}

/* ---------------------------------------------------------------------------
   Ring and striped attention
   --------------------------------------------------------------------------- */
enum { EFF__RING_TAG_K = 32001, EFF__RING_TAG_V, EFF__RING_TAG_DK, EFF__RING_TAG_DV };

static eff_status eff__ring_check(eff_comm *c, const char *fn, const eff_ring_attn_opts *opts, eff_ring_attn_opts *o,
                                  const eff_tensor *O, const eff_tensor *lse, const eff_tensor *Q, const eff_tensor *K,
                                  const eff_tensor *V) {
    eff_ctx *ctx = c->ctx;
    memset(o, 0, sizeof *o);
    if (opts) *o = *opts;
    EFF__CHECK(ctx, o->layout == EFF_RING_CONTIGUOUS || o->layout == EFF_RING_STRIPED, EFF_ERR_INVALID_ARG,
               "%s: opts 'layout' = %d is not EFF_RING_CONTIGUOUS or EFF_RING_STRIPED", fn, o->layout);
    EFF__CHECK(ctx, Q && K && V && O && lse, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn,
               !Q ? "Q" : !K ? "K" : !V ? "V" : !O ? "O" : "lse");
    EFF__TRY(eff_tensor_validate(ctx, Q, "Q"));
    EFF__TRY(eff_tensor_validate(ctx, K, "K"));
    EFF__TRY(eff_tensor_validate(ctx, V, "V"));
    EFF__CHECK(ctx, Q->ndim == 4 && K->ndim == 4 && V->ndim == 4, EFF_ERR_SHAPE, "%s: Q, K, V must be 4-D [B, H, Tl, d]", fn);
    EFF__CHECK(ctx, K->ne[2] == Q->ne[2] && V->ne[2] == Q->ne[2], EFF_ERR_SHAPE,
               "%s: every rank holds Tl tokens of Q, K and V; got %lld, %lld, %lld", fn, (long long)Q->ne[2], (long long)K->ne[2],
               (long long)V->ne[2]);
    EFF__CHECK(ctx, eff__comm_esize(K->dtype) && eff__comm_esize(V->dtype) && K->dtype != EFF_I32 && V->dtype != EFF_I32,
               EFF_ERR_DTYPE, "%s: K and V must be f32, bf16 or f16", fn);
    EFF__CHECK(ctx, O->dtype == EFF_F32 && lse->dtype == EFF_F32, EFF_ERR_DTYPE,
               "%s: 'O' and 'lse' must be f32 (partials are merged in place)", fn);
    return EFF_OK;
}

/* The flash options for this rank's queries (rank r) against the keys of block q;
   0 when none is visible (contiguous causal, q > r). */
static int eff__ring_opts(const eff_ring_attn_opts *o, int r, int q, eff_attn_opts *ao) {
    memset(ao, 0, sizeof *ao);
    ao->scale = o->scale;
    if (!o->causal) return 1;
    if (o->layout == EFF_RING_CONTIGUOUS && q != r) return q < r;   /* earlier blocks: all visible */
    ao->causal = 1;
    ao->has_causal_offset = 1;
    ao->causal_offset = o->layout == EFF_RING_STRIPED && q > r ? -1 : 0;   /* striped: b < a when q > r */
    return 1;
}

/* A contiguous f32 (or dtype) tensor with t's shape, from the context; copy: t's values, else zeros. */
static eff_status eff__ring_like(eff_ctx *ctx, eff_tensor *out, const eff_tensor *t, int dtype, int copy) {
    EFF__TRY(eff_tensor_alloc(ctx, out, dtype, t->ndim, t->ne));
    if (copy) return eff_tensor_copy(ctx, out, t);
    memset(out->data, 0, (size_t)eff_tensor_nbytes(out));
    return EFF_OK;
}
/* The ring shift of one block: t[cur] to rank+1, t[1-cur] from rank-1 (one NCCL group). */
static eff_status eff__ring_shift(eff_comm *c, eff_tensor *t, int cur, int tag) {
    int n = c->size, r = c->rank;
    return eff_comm_sendrecv(c, t[cur].data, eff_tensor_nelements(&t[cur]), (r + 1) % n, t[1 - cur].data,
                             eff_tensor_nelements(&t[1 - cur]), (r + n - 1) % n, t[cur].dtype, tag);
}
static void eff__ring_add(eff_tensor *acc, const eff_tensor *x) {
    float *a = (float *)acc->data;
    const float *b = (const float *)x->data;
    int64_t i, n = eff_tensor_nelements(acc);
    for (i = 0; i < n; i++) a[i] += b[i];
}
static void eff__ring_free(eff_ctx *ctx, eff_tensor *t, int n) {
    int i;
    for (i = 0; i < n; i++) eff_tensor_free(ctx, &t[i]);
}

/* Each step first shifts the block in hand one rank along the ring (into the other
   buffer: on NCCL the transfer can overlap the compute), then attends to it. */
EFFDEF eff_status eff_ring_attn_forward(eff_comm *c, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q, const eff_tensor *K,
                                        const eff_tensor *V, const eff_ring_attn_opts *opts) {
    const char *fn = "eff_ring_attn_forward";
    eff_ring_attn_opts o;
    eff_tensor t[6];   /* K[2], V[2] (the block in hand and the next), O2, L2 (a visiting block's partial) */
    eff_ctx *ctx;
    eff_status s;
    int n, r, step, cur = 0;
    if (!c) return EFF_ERR_INVALID_ARG;
    ctx = c->ctx;
    EFF__TRY(eff__ring_check(c, fn, opts, &o, O, lse, Q, K, V));
    n = c->size; r = c->rank;
    memset(t, 0, sizeof t);
    s = eff__ring_like(ctx, &t[0], K, K->dtype, 1);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[2], V, V->dtype, 1);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[1], K, K->dtype, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[3], V, V->dtype, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[4], O, EFF_F32, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[5], lse, EFF_F32, 0);
    for (step = 0; step < n && s == EFF_OK; step++) {
        int q = (r - step + n) % n;   /* the owner of the block in hand */
        eff_attn_opts ao;
        if (step < n - 1) {
            s = eff__ring_shift(c, &t[0], cur, EFF__RING_TAG_K);
            if (s == EFF_OK) s = eff__ring_shift(c, &t[2], cur, EFF__RING_TAG_V);
        }
        if (s == EFF_OK && eff__ring_opts(&o, r, q, &ao)) {
            if (step == 0) s = eff_attn_flash_forward(ctx, O, lse, Q, &t[cur], &t[2 + cur], &ao);   /* own block: always visible */
            else {
                s = eff_attn_flash_forward(ctx, &t[4], &t[5], Q, &t[cur], &t[2 + cur], &ao);
                if (s == EFF_OK) s = eff_attn_merge(ctx, O, lse, &t[4], &t[5]);
            }
        }
        cur = 1 - cur;
    }
    eff__ring_free(ctx, t, 6);
    return s;
}

EFFDEF eff_status eff_ring_attn_backward(eff_comm *c, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV, const eff_tensor *dO,
                                         const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V, const eff_tensor *O,
                                         const eff_tensor *lse, const eff_ring_attn_opts *opts) {
    const char *fn = "eff_ring_attn_backward";
    eff_ring_attn_opts o;
    eff_tensor t[12];   /* K[2], V[2], dK[2], dV[2] (f32 accumulators travelling with their block), dQ acc, tq, tk, tv */
    eff_ctx *ctx;
    eff_status s;
    int n, r, step, cur = 0;
    if (!c) return EFF_ERR_INVALID_ARG;
    ctx = c->ctx;
    EFF__TRY(eff__ring_check(c, fn, opts, &o, O, lse, Q, K, V));
    EFF__CHECK(ctx, dQ && dK && dV && dO, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn,
               !dQ ? "dQ" : !dK ? "dK" : !dV ? "dV" : "dO");
    EFF__CHECK(ctx, eff_tensor_same_shape(dQ, Q) && eff_tensor_same_shape(dK, K) && eff_tensor_same_shape(dV, V), EFF_ERR_SHAPE,
               "%s: 'dQ', 'dK', 'dV' must have the shapes of 'Q', 'K', 'V'", fn);
    n = c->size; r = c->rank;
    memset(t, 0, sizeof t);
    s = eff__ring_like(ctx, &t[0], K, K->dtype, 1);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[2], V, V->dtype, 1);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[4], K, EFF_F32, 0);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[6], V, EFF_F32, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[1], K, K->dtype, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[3], V, V->dtype, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[5], K, EFF_F32, 0);
    if (s == EFF_OK && n > 1) s = eff__ring_like(ctx, &t[7], V, EFF_F32, 0);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[8], Q, EFF_F32, 0);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[9], Q, EFF_F32, 0);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[10], K, EFF_F32, 0);
    if (s == EFF_OK) s = eff__ring_like(ctx, &t[11], V, EFF_F32, 0);
    for (step = 0; step < n && s == EFF_OK; step++) {
        int q = (r - step + n) % n;
        eff_attn_opts ao;
        if (step < n - 1) {   /* the next block's K/V can travel while this one is worked on */
            s = eff__ring_shift(c, &t[0], cur, EFF__RING_TAG_K);
            if (s == EFF_OK) s = eff__ring_shift(c, &t[2], cur, EFF__RING_TAG_V);
        }
        /* P = exp(S - lse) with the global lse is this block's share of the softmax, and
           D = rowsum(dO * O) uses the global O: the FA2 backward of each block is exact */
        if (s == EFF_OK && eff__ring_opts(&o, r, q, &ao)) {
            s = eff_attn_flash_backward(ctx, &t[9], &t[10], &t[11], dO, Q, &t[cur], &t[2 + cur], O, lse, &ao);
            if (s == EFF_OK) { eff__ring_add(&t[8], &t[9]); eff__ring_add(&t[4 + cur], &t[10]); eff__ring_add(&t[6 + cur], &t[11]); }
        }
        if (s == EFF_OK && n > 1) {   /* the accumulators follow their block; after the last step they arrive home */
            s = eff__ring_shift(c, &t[4], cur, EFF__RING_TAG_DK);
            if (s == EFF_OK) s = eff__ring_shift(c, &t[6], cur, EFF__RING_TAG_DV);
        }
        if (n > 1) cur = 1 - cur;
    }
    if (s == EFF_OK) s = eff_tensor_copy(ctx, dQ, &t[8]);
    if (s == EFF_OK) s = eff_tensor_copy(ctx, dK, &t[4 + cur]);
    if (s == EFF_OK) s = eff_tensor_copy(ctx, dV, &t[6 + cur]);
    eff__ring_free(ctx, t, 12);
    return s;
}

/* Rank j's tokens of full as a strided view (the sequence is dim 2). */
static eff_status eff__ring_view(eff_comm *c, const char *fn, const eff_tensor *full, int layout, int j, eff_tensor *v) {
    int64_t Tl;
    EFF__CHECK(c->ctx, full != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'full' is NULL", fn);
    EFF__TRY(eff_tensor_validate(c->ctx, full, "full"));
    EFF__CHECK(c->ctx, full->ndim == 4 && full->ne[2] % c->size == 0, EFF_ERR_SHAPE,
               "%s: 'full' must be [B, H, T, d] with T divisible by %d ranks", fn, c->size);
    EFF__CHECK(c->ctx, layout == EFF_RING_CONTIGUOUS || layout == EFF_RING_STRIPED, EFF_ERR_INVALID_ARG,
               "%s: argument 'layout' = %d is not EFF_RING_CONTIGUOUS or EFF_RING_STRIPED", fn, layout);
    Tl = full->ne[2] / c->size;
    *v = *full;
    v->ne[2] = Tl;
    if (layout == EFF_RING_CONTIGUOUS) v->data = (char *)full->data + (size_t)((int64_t)j * Tl * full->nb[2]);
    else { v->data = (char *)full->data + (size_t)((int64_t)j * full->nb[2]); v->nb[2] = full->nb[2] * c->size; }
    return EFF_OK;
}

EFFDEF eff_status eff_ring_attn_shard(eff_comm *c, eff_tensor *local, const eff_tensor *full, int layout) {
    eff_tensor v;
    if (!c) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(c->ctx, local);
    EFF__TRY(eff__ring_view(c, "eff_ring_attn_shard", full, layout, c->rank, &v));
    return eff_tensor_copy(c->ctx, local, &v);
}

EFFDEF eff_status eff_ring_attn_unshard(eff_comm *c, eff_tensor *full, const eff_tensor *local, int layout) {
    const char *fn = "eff_ring_attn_unshard";
    eff_tensor mine, all, v;
    int64_t n_el;
    eff_status s;
    int j;
    if (!c) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(c->ctx, local);
    EFF__TRY(eff__ring_view(c, fn, full, layout, 0, &v));
    EFF__TRY(eff_tensor_validate(c->ctx, local, "local"));
    EFF__CHECK(c->ctx, eff_tensor_same_shape(local, &v), EFF_ERR_SHAPE, "%s: 'local' must be 'full' with T / %d tokens", fn, c->size);
    EFF__CHECK(c->ctx, eff__comm_esize(local->dtype) != 0, EFF_ERR_DTYPE, "%s: 'local' must be f32, bf16, f16 or i32", fn);
    n_el = eff_tensor_nelements(local);
    memset(&mine, 0, sizeof mine); memset(&all, 0, sizeof all);
    s = eff__ring_like(c->ctx, &mine, local, local->dtype, 1);
    if (s == EFF_OK) {
        int64_t ne[2];
        ne[0] = c->size; ne[1] = n_el;
        s = eff_tensor_alloc(c->ctx, &all, local->dtype, 2, ne);
    }
    if (s == EFF_OK) s = eff_comm_all_gather(c, mine.data, all.data, n_el, local->dtype);
    for (j = 0; j < c->size && s == EFF_OK; j++) {
        eff_tensor blk = mine;   /* rank j's block: the shape of local, contiguous */
        blk.data = (char *)all.data + (size_t)j * (size_t)n_el * eff__comm_esize(local->dtype);
        s = eff__ring_view(c, fn, full, layout, j, &v);
        if (s == EFF_OK) s = eff_tensor_copy(c->ctx, &v, &blk);
    }
    eff_tensor_free(c->ctx, &mine);
    eff_tensor_free(c->ctx, &all);
    return s;
}

/* ---------------------------------------------------------------------------
   Estimator
   --------------------------------------------------------------------------- */
EFFDEF double eff_est_activation_bytes(double s, double b, double h, double a, int t, int sp, int recompute) {
    double sbh = s * b * h, att;
    if (!(s >= 0.0 && b >= 0.0 && h > 0.0 && a > 0.0) || t < 1 || recompute < EFF_RECOMPUTE_NONE || recompute > EFF_RECOMPUTE_FULL)
        return -1.0;
    if (recompute == EFF_RECOMPUTE_FULL) return 2.0 * sbh;
    /* attention scores: softmax 2as^2b, its dropout mask as^2b, dropout output 2as^2b, split over t */
    att = recompute == EFF_RECOMPUTE_SELECTIVE ? 0.0 : 5.0 * a * s / (h * t);
    if (t == 1) return sbh * (34.0 + att);
    /* 10 sbh stay replicated without SP: the two LayerNorm inputs (4), the two dropout
       masks (2) and their outputs feeding the next layer (4); SP shards them too */
    return sbh * ((sp ? 34.0 / t : 10.0 + 24.0 / t) + att);
}

EFFDEF eff_status eff_est_run(const eff_est_config *cfg, eff_est_result *out) {
    eff_est_config c;
    eff_zero_mem zm;
    double L, h, a, s, b, V, m, dp, tp, pp, cp, psi, psi_local, inflight, sbh_t, x;
    if (!cfg || !out) return EFF_ERR_INVALID_ARG;
    c = *cfg;
    memset(out, 0, sizeof *out);
    if (c.dp == 0) c.dp = 1;
    if (c.tp == 0) c.tp = 1;
    if (c.pp == 0) c.pp = 1;
    if (c.cp == 0) c.cp = 1;
    if (c.n_micro == 0) c.n_micro = 1;
    if (c.micro_batch == 0) c.micro_batch = 1;
    if (c.param_bytes == 0.0) c.param_bytes = 2.0;
    if (c.grad_bytes == 0.0) c.grad_bytes = 2.0;
    if (c.optim_bytes == 0.0) c.optim_bytes = 12.0;
    if (c.dp < 1 || c.tp < 1 || c.pp < 1 || c.cp < 1 || c.n_micro < 1 || c.micro_batch < 1 || c.zero_stage < 0 || c.zero_stage > 3 ||
        c.n_layers < 1 || c.hidden < 1 || c.heads < 1 || c.seq < 1 || c.vocab < 0 || c.n_params < 0.0 ||
        c.recompute < EFF_RECOMPUTE_NONE || c.recompute > EFF_RECOMPUTE_FULL || c.n_layers % c.pp != 0 || c.seq % c.cp != 0 ||
        c.heads % c.tp != 0)
        return EFF_ERR_INVALID_ARG;
    L = (double)c.n_layers; h = (double)c.hidden; a = (double)c.heads; s = (double)c.seq; b = (double)c.micro_batch;
    V = (double)c.vocab; m = (double)c.n_micro; dp = c.dp; tp = c.tp; pp = c.pp; cp = c.cp;
    psi = c.n_params > 0.0 ? c.n_params : 12.0 * L * h * h * (1.0 + 13.0 / (12.0 * h) + (V + s) / (12.0 * L * h));
    out->n_params = psi;
    /* model states: tensor and pipeline parallelism split the parameters, ZeRO shards them over dp */
    psi_local = psi / (tp * pp);
    eff_zero_memory_estimate(c.zero_stage, psi_local, c.dp, c.param_bytes, c.grad_bytes, c.optim_bytes, &zm);
    out->params = zm.params; out->grads = zm.grads; out->optim = zm.optim;
    /* activations: this rank's s / cp tokens; 1F1B keeps min(pp, m) micro-batches on stage 0 */
    out->act_layer = eff_est_activation_bytes(s / cp, b, h, a, c.tp, c.sp, c.recompute);
    inflight = c.gpipe ? m : (m < pp ? m : pp);
    out->act = out->act_layer * (L / pp) * inflight;
    out->total = out->params + out->grads + out->optim + out->act;
    /* bytes sent per rank per step */
    if (c.dp > 1) {
        double f = (dp - 1.0) / dp;
        if (c.zero_stage == 0) out->comm_dp = 2.0 * f * psi_local * c.grad_bytes;                   /* all-reduce */
        else if (c.zero_stage <= 2) out->comm_dp = f * psi_local * (c.grad_bytes + c.param_bytes);  /* RS + AG */
        else out->comm_dp = f * psi_local * (c.grad_bytes + 2.0 * m * c.param_bytes);              /* RS + 2 AG per micro-batch */
    }
    sbh_t = (s / cp) * b * h * 2.0;   /* one 16-bit activation tensor of this rank's tokens */
    if (c.tp > 1) {   /* 2 all-reduces forward + 2 backward (+2 when full recompute repeats the forward) */
        double n_ar = c.recompute == EFF_RECOMPUTE_FULL ? 6.0 : 4.0;
        out->comm_tp = n_ar * 2.0 * (tp - 1.0) / tp * sbh_t * (L / pp) * m;
    }
    if (c.pp > 1) out->comm_pp = 2.0 * sbh_t / (c.sp ? tp : 1.0) * m;   /* middle stages: one send each way */
    if (c.cp > 1) {   /* K and V (heads split by tp): cp-1 hops forward; backward cp-1 hops of K, V and cp of dK, dV */
        double fwd = c.recompute == EFF_RECOMPUTE_FULL ? 2.0 : 1.0;
        x = 2.0 * sbh_t / tp;
        out->comm_cp = (fwd * (cp - 1.0) * x + (cp - 1.0) * x + cp * x) * (L / pp) * m;
    }
    out->comm_total = out->comm_dp + out->comm_tp + out->comm_pp + out->comm_cp;
    return EFF_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* EFF_PARALLEL_IMPLEMENTATION */
