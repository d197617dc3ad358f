/*
 * layerlock shim: a small C API over libtorch, loaded from Deno with Deno.dlopen.
 *
 * Conventions (one for the whole API, in the manner of tch-rs / TorchSharp):
 *  - A tensor is an opaque handle (ll_tensor, a small integer) that owns one reference to a libtorch
 *    TensorImpl. Every handle returned by a function must be released exactly once with ll_free. A stale,
 *    freed or forged handle is detected (slot generation check) and reported as an error, not a crash.
 *  - No C++ exception crosses this boundary. Every function returns either a handle, 0 on failure, or an
 *    int status (a count or flag where it has one), negative on failure; scalar results come back through
 *    out-parameters (ll_item, ll_numel, ll_live_tensors), never as a special value. The message of the last
 *    failure on the calling thread is copied out with ll_last_error() — only after a failure, so the happy
 *    path stays cheap. Strings are copied into caller buffers, so the binding never dereferences a native
 *    pointer. (ll_set_grad_enabled cannot fail and returns nothing.)
 *  - Shapes and dimension lists are passed as (const double* values, int n): JavaScript numbers hold every
 *    integer up to 2^53 exactly, which avoids BigInt on the hot path.
 *  - dtype is the c10::ScalarType code (enum ll_dtype); device is (device_type, index) (enum ll_device_type),
 *    index -1 meaning the current device. Every code is an enum below, defined here only:
 *    native/gen_symbols.ts copies the enums and LL_SHIM_ABI into ffi/symbols.ts.
 *  - Optional tensors are 0; optional scalars are a value plus a has_* flag.
 */
#ifndef LL_H
#define LL_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor handle: a slot index and a generation packed in 31 bits; 0 is "no tensor". Handles are plain
   numbers on the JavaScript side, which keeps every call on V8's fast path. */
typedef int32_t ll_tensor;

/* The ABI version, bumped on every incompatible change; the binding refuses a shim of another version. */
#define LL_SHIM_ABI 7

/* ---- codes (generated into ffi/symbols.ts; the values are part of the ABI) ---- */
enum ll_dtype {
  LL_DTYPE_U8 = 0,
  LL_DTYPE_I32 = 3,
  LL_DTYPE_I64 = 4,
  LL_DTYPE_F16 = 5,
  LL_DTYPE_F32 = 6,
  LL_DTYPE_F64 = 7,
  LL_DTYPE_BOOL = 11,
  LL_DTYPE_BF16 = 15
};
enum ll_device_type { LL_DEVICE_CPU = 0, LL_DEVICE_CUDA = 1 };
enum ll_binary_op {
  LL_BINARY_ADD = 0,
  LL_BINARY_SUB = 1,
  LL_BINARY_MUL = 2,
  LL_BINARY_DIV = 3,
  LL_BINARY_POW = 4,
  LL_BINARY_EQ = 5,
  LL_BINARY_NE = 6,
  LL_BINARY_LT = 7,
  LL_BINARY_LE = 8,
  LL_BINARY_GT = 9,
  LL_BINARY_GE = 10,
  LL_BINARY_LOGICAL_AND = 11,
  LL_BINARY_LOGICAL_OR = 12,
  LL_BINARY_LOGICAL_XOR = 13,
  LL_BINARY_MAXIMUM = 14,
  LL_BINARY_MINIMUM = 15
};
enum ll_unary_op {
  LL_UNARY_NEG = 0,
  LL_UNARY_ABS = 1,
  LL_UNARY_SQRT = 2,
  LL_UNARY_RSQRT = 3,
  LL_UNARY_EXP = 4,
  LL_UNARY_LOG = 5,
  LL_UNARY_TANH = 6,
  LL_UNARY_SIGMOID = 7,
  LL_UNARY_RELU = 8,
  LL_UNARY_GELU = 9,
  LL_UNARY_GELU_TANH = 10,
  LL_UNARY_LOGICAL_NOT = 11,
  LL_UNARY_SIN = 12,
  LL_UNARY_COS = 13,
  LL_UNARY_ERF = 14,
  LL_UNARY_SQUARE = 15,
  LL_UNARY_RECIPROCAL = 16,
  LL_UNARY_SIGN = 17,
  LL_UNARY_FLOOR = 18
};
enum ll_reduce_op { LL_REDUCE_SUM = 0, LL_REDUCE_MEAN = 1, LL_REDUCE_AMAX = 2, LL_REDUCE_AMIN = 3 };
enum ll_reduction { LL_REDUCTION_NONE = 0, LL_REDUCTION_MEAN = 1, LL_REDUCTION_SUM = 2 };
enum ll_dist_backend { LL_DIST_BACKEND_GLOO = 0, LL_DIST_BACKEND_NCCL = 1 };
enum ll_dist_op { LL_DIST_SUM = 0, LL_DIST_AVG = 1, LL_DIST_MAX = 2, LL_DIST_MIN = 3 };

/* ---- errors, handles, runtime (core.cpp) ---- */
/* Copies the last error message (NUL-terminated, truncated to cap) into buf; returns its full length. */
int ll_last_error(char* buf, int cap);
int ll_live_tensors(double* out);
/* Device-to-host reads so far: every call of ll_item and ll_copy_to_buffer (on CUDA each is a synchronisation),
   and the foreach AdamW's read of its step count. A step that should not synchronise can be checked with it. */
int ll_host_reads(double* out);
/* Host-to-device uploads so far: tensors made from host memory (ll_from_data) and CPU tensors moved to another
   device (ll_to). A step meant for a CUDA-graph capture makes none. */
int ll_host_writes(double* out);
int ll_free(ll_tensor t);
int ll_torch_version(char* buf, int cap);
int ll_shim_abi(void);
int ll_cuda_is_available(void);
int ll_cuda_device_count(void);
int ll_cuda_synchronize(int device);
int ll_manual_seed(double seed);
int ll_get_num_threads(void);
int ll_set_num_threads(int n);
int ll_grad_enabled(void);
void ll_set_grad_enabled(int enabled);
int ll_autocast_enabled(int device_type);
/* Enters an autocast region in dtype (bf16/f16); returns the previous state for ll_autocast_exit. */
int ll_autocast_enter(int device_type, int dtype);
/* Leaves a region, restoring the state ll_autocast_enter returned; the outermost exit clears the cast cache. */
int ll_autocast_exit(int device_type, int prev_state);
int ll_autocast_dtype(int device_type);
/* Inference mode (c10::InferenceMode) on this thread: enter/exit nest, returning the depth after the call.
   Tensors made inside are inference tensors (no version counter, never saved for backward). */
int ll_inference_mode_enter(void);
int ll_inference_mode_exit(void);
int ll_is_inference(ll_tensor t);
/* The default generator's state of a device (CPU, or a CUDA device), as a u8 tensor, for exact resumption. */
int ll_get_rng_state(int dev_type, int dev_index, ll_tensor* out);
int ll_set_rng_state(int dev_type, int dev_index, ll_tensor state);

/* ---- CUDA caching allocator (cuda.cpp; zeros / -1 without CUDA) ---- */
int ll_cuda_memory_stats(int device, double* out4); /* allocated, peak allocated, reserved, peak reserved */
int ll_cuda_empty_cache(void);
int ll_cuda_reset_peak(int device);
/* CUDA graphs (cuda.cpp; every call fails in a build without CUDA). A graph is an id. capture_begin/warmup_begin
   switch to the graph's side stream (which waits for the current one) and *_end switch back (the current stream
   then waits for the side one); capture uses a private memory pool and registers the default CUDA generator, so
   random ops draw new numbers on every replay. ll_graph_free ends an open capture or warm-up and frees the pool. */
int ll_graph_new(int device, int* out);
int ll_graph_warmup_begin(int id);
int ll_graph_warmup_end(int id);
int ll_graph_capture_begin(int id);
int ll_graph_capture_end(int id);
int ll_graph_replay(int id);
int ll_graph_free(int id);
int ll_graph_live(double* out); /* graphs not yet freed */
/* CUDA streams (cuda.cpp; fail without CUDA), ids. enter: the stream waits for the current one and becomes
   current; leave: the previous one is current again, and an event marks the work queued on the stream; wait: the
   current stream waits for that event. In a graph capture these record a fork and a join. */
int ll_stream_new(int device, int* out);
int ll_stream_enter(int id);
int ll_stream_leave(int id);
int ll_stream_wait(int id);
int ll_stream_free(int id);

/* ---- metadata and data transfer (tensor.cpp) ---- */
int ll_dim(ll_tensor t);
int ll_sizes(ll_tensor t, double* out);
int ll_strides(ll_tensor t, double* out);
int ll_dtype(ll_tensor t);
int ll_device(ll_tensor t, int* out2);
int ll_numel(ll_tensor t, double* out);
int ll_requires_grad(ll_tensor t);
int ll_set_requires_grad(ll_tensor t, int flag);
int ll_is_contiguous(ll_tensor t);
int ll_is_leaf(ll_tensor t);
ll_tensor ll_from_data(const void* data, const double* shape, int ndim, int dtype, int dev_type, int dev_index);
int ll_copy_to_buffer(ll_tensor t, void* out, double nbytes);
/* Copies exactly nbytes of host memory into the contiguous tensor t (row-major). On CUDA through pinned staging
   buffers and an asynchronous copy on the current stream: the host does not wait for queued device work. */
int ll_copy_from_buffer(ll_tensor t, const void* data, double nbytes);
int ll_item(ll_tensor t, double* out);
ll_tensor ll_shallow_clone(ll_tensor t);
ll_tensor ll_to(ll_tensor t, int dtype, int dev_type, int dev_index, int copy);
ll_tensor ll_clone(ll_tensor t);

/* ---- creation (create.cpp) ---- */
ll_tensor ll_zeros(const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_ones(const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_empty(const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_full(const double* shape, int ndim, double value, int dtype, int dev_type, int dev_index);
ll_tensor ll_arange(double start, double end, double step, int dtype, int dev_type, int dev_index);
ll_tensor ll_eye(double n, double m, int dtype, int dev_type, int dev_index);
ll_tensor ll_rand(const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_randn(const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_randint(double low, double high, const double* shape, int ndim, int dtype, int dev_type, int dev_index);
ll_tensor ll_randperm(double n, int dtype, int dev_type, int dev_index);
ll_tensor ll_zeros_like(ll_tensor t);
ll_tensor ll_ones_like(ll_tensor t);

/* ---- views and indexing (views.cpp) ---- */
ll_tensor ll_reshape(ll_tensor t, const double* shape, int ndim);
ll_tensor ll_view(ll_tensor t, const double* shape, int ndim);
ll_tensor ll_permute(ll_tensor t, const double* dims, int ndim);
ll_tensor ll_transpose(ll_tensor t, double d0, double d1);
ll_tensor ll_contiguous(ll_tensor t);
ll_tensor ll_flatten(ll_tensor t, double start, double end);
ll_tensor ll_unsqueeze(ll_tensor t, double dim);
ll_tensor ll_squeeze(ll_tensor t, double dim, int all);
ll_tensor ll_expand(ll_tensor t, const double* shape, int ndim);
ll_tensor ll_narrow(ll_tensor t, double dim, double start, double length);
ll_tensor ll_select(ll_tensor t, double dim, double index);
ll_tensor ll_cat(const ll_tensor* ts, int n, double dim);
ll_tensor ll_stack(const ll_tensor* ts, int n, double dim);
int ll_split(ll_tensor t, double size, double dim, ll_tensor* out, int max_out);
int ll_chunk(ll_tensor t, double chunks, double dim, ll_tensor* out, int max_out);
ll_tensor ll_index_select(ll_tensor t, double dim, ll_tensor index);
ll_tensor ll_gather(ll_tensor t, double dim, ll_tensor index);
ll_tensor ll_scatter(ll_tensor t, double dim, ll_tensor index, ll_tensor src);
ll_tensor ll_masked_fill(ll_tensor t, ll_tensor mask, double value);
ll_tensor ll_where(ll_tensor cond, ll_tensor a, ll_tensor b);
ll_tensor ll_argsort(ll_tensor t, double dim, int descending);
int ll_topk(ll_tensor t, double k, double dim, int largest, int sorted, ll_tensor* out2);

/* ---- elementwise (elementwise.cpp) ---- */
/* op: enum ll_binary_op (maximum/minimum with a scalar are clamp_min/clamp_max; logical ops have no scalar form) */
ll_tensor ll_binary(int op, ll_tensor a, ll_tensor b);
ll_tensor ll_binary_scalar(int op, ll_tensor a, double s);
ll_tensor ll_add(ll_tensor a, ll_tensor b);
ll_tensor ll_add_scaled(ll_tensor a, ll_tensor b, double alpha);
ll_tensor ll_mul(ll_tensor a, ll_tensor b);
ll_tensor ll_rsub_scalar(ll_tensor a, double s); /* s - a */
ll_tensor ll_rdiv_scalar(ll_tensor a, double s); /* s / a */
/* op: enum ll_unary_op */
ll_tensor ll_unary(int op, ll_tensor a);
ll_tensor ll_clamp(ll_tensor t, double min, int has_min, double max, int has_max);
/* in place; return 0 or -1 */
int ll_add_(ll_tensor t, ll_tensor other, double alpha);
int ll_add_scalar_(ll_tensor t, double s);
int ll_mul_(ll_tensor t, ll_tensor other);
int ll_mul_scalar_(ll_tensor t, double s);
int ll_copy_(ll_tensor t, ll_tensor src);
int ll_zero_(ll_tensor t);
int ll_fill_(ll_tensor t, double value);
int ll_normal_(ll_tensor t, double mean, double std);
int ll_uniform_(ll_tensor t, double low, double high);
int ll_trunc_normal_(ll_tensor t, double mean, double std, double a, double b);
int ll_xavier_uniform_(ll_tensor t, double gain);

/* ---- reductions (reduce.cpp) ---- */
/* op: enum ll_reduce_op; ndims = 0 reduces everything */
ll_tensor ll_reduce(int op, ll_tensor t, const double* dims, int ndims, int keepdim);
ll_tensor ll_var(ll_tensor t, const double* dims, int ndims, double correction, int keepdim);
ll_tensor ll_std(ll_tensor t, const double* dims, int ndims, double correction, int keepdim);
int ll_max_dim(ll_tensor t, double dim, int keepdim, int is_min, ll_tensor* out2);
ll_tensor ll_argmax(ll_tensor t, double dim, int has_dim, int keepdim);
ll_tensor ll_norm(ll_tensor t, double p, const double* dims, int ndims, int keepdim);
/* Singular values of a matrix (or a batch of matrices [..., M, N]), in descending order: [..., min(M, N)]. */
ll_tensor ll_svdvals(ll_tensor t);

/* ---- neural-network ops (nn.cpp) ---- */
ll_tensor ll_matmul(ll_tensor a, ll_tensor b);
ll_tensor ll_bmm(ll_tensor a, ll_tensor b);
ll_tensor ll_linear(ll_tensor x, ll_tensor w, ll_tensor bias);
ll_tensor ll_conv3d(ll_tensor x, ll_tensor w, ll_tensor bias, const double* stride3, const double* padding3,
                    const double* dilation3, double groups);
ll_tensor ll_layer_norm(ll_tensor x, const double* shape, int ndim, ll_tensor w, ll_tensor b, double eps);
ll_tensor ll_softmax(ll_tensor x, double dim, int log);
ll_tensor ll_dropout(ll_tensor x, double p, int train);
ll_tensor ll_sdpa(ll_tensor q, ll_tensor k, ll_tensor v, ll_tensor mask, double dropout_p, int is_causal,
                  double scale, int has_scale);
/* The kernel scaled_dot_product_attention would run for these inputs (at::_fused_sdp_choice, PyTorch's
   SDPBackend): 0 math, 1 flash, 2 memory-efficient, 3 cuDNN, 4 overrideable. */
int ll_sdpa_backend(ll_tensor q, ll_tensor k, ll_tensor v, ll_tensor mask, double dropout_p, int is_causal);
/* reduction: enum ll_reduction */
ll_tensor ll_mse_loss(ll_tensor x, ll_tensor y, int reduction);
ll_tensor ll_cross_entropy(ll_tensor logits, ll_tensor target, ll_tensor weight, int reduction, double ignore_index,
                           double label_smoothing);

/* ---- autograd (autograd.cpp) ---- */
int ll_backward(ll_tensor t, ll_tensor grad, int retain_graph);
int ll_grad_defined(ll_tensor t);
ll_tensor ll_grad(ll_tensor t);
int ll_set_grad(ll_tensor t, ll_tensor grad);
int ll_zero_grad(ll_tensor t, int set_to_none);
ll_tensor ll_detach(ll_tensor t);
int ll_grad_fn_defined(ll_tensor t);

/* ---- optimizer kernels (optim.cpp) ---- */
/* AdamW over n parameters. steps are float32 scalar tensors (one per parameter), incremented here.
   use_fused: 1 fused kernel, 0 foreach fallback, -1 choose (fused where the device supports it).
   lr_tensor: 0, or a 0-dim float tensor on the parameters' device that gives the learning rate instead of lr
   (read on the device by the fused kernel: no host read, so the step can be captured in a CUDA graph).
   Returns 1 if the fused kernel ran, 0 for foreach, -1 on error. */
int ll_adamw_step(const ll_tensor* params, const ll_tensor* grads, const ll_tensor* exp_avg,
                  const ll_tensor* exp_avg_sq, const ll_tensor* steps, int n, double lr, double beta1,
                  double beta2, double weight_decay, double eps, int use_fused, ll_tensor lr_tensor);
/* Total L2 norm of the gradients of n tensors (undefined gradients skipped); scaled to max_norm
   in place when max_norm > 0 and the norm exceeds it. Returns the norm as a 0-dim f32 tensor. */
ll_tensor ll_clip_grad_norm(const ll_tensor* params, int n, double max_norm);

/* ---- distributed (dist.cpp): c10d stores, process groups, collectives, a bucketed gradient reducer ----
   Stores, groups and reducers are integer ids (never reused), released with ll_dist_free. Strings are
   NUL-terminated. Collectives block, bounded by the group's timeout (ms); a dead or hung peer is an error.
   A group's bytes count the payload this rank put into collectives. op: enum ll_dist_op (avg = sum / size). */
int ll_dist_backends(int* out2); /* [gloo, nccl]: 1 where compiled in */
int ll_dist_live(double* out);   /* live stores + groups + reducers */
int ll_dist_free(int id);
int ll_store_tcp(const char* host, int port, int is_server, int world_size, double timeout_ms, int* out);
int ll_store_file(const char* path, int world_size, int* out);
int ll_store_prefix(int store, const char* prefix, int* out);
int ll_store_set(int store, const char* key, const uint8_t* value, int n);
/* Copies up to cap bytes of the value into buf (waiting for the key within the store's timeout); returns its length. */
int ll_store_get(int store, const char* key, uint8_t* buf, int cap);
int ll_store_add(int store, const char* key, double delta, double* out);
/* backend: enum ll_dist_backend */
int ll_pg_new(int backend, int store, int rank, int size, double timeout_ms, int* out);
int ll_pg_info(int pg, double* out3); /* rank, size, bytes */
int ll_pg_allreduce(int pg, const ll_tensor* ts, int n, int op);
int ll_pg_broadcast(int pg, const ll_tensor* ts, int n, int root);
int ll_pg_all_gather(int pg, ll_tensor out, ll_tensor in);            /* out: size × in, rank order */
int ll_pg_reduce_scatter(int pg, ll_tensor out, ll_tensor in, int op); /* in: size × out */
int ll_pg_barrier(int pg);
/* A reducer averages the gradients of n parameters (leaves of one dtype and device) over the group, in buckets
   of about bucket_bytes, filled in reverse order; with overlap a bucket's all-reduce starts as soon as backward
   has accumulated its last gradient. ll_reducer_finish completes the step; out3: buckets, bytes, ms waited. */
int ll_reducer_new(int pg, const ll_tensor* params, int n, double bucket_bytes, int overlap, int* out);
int ll_reducer_finish(int reducer, double* out3);

/* ---- torch.save checkpoints (pickle.cpp): the zip format of torch >= 1.6, read and written with libtorch's
   PyTorchStreamReader/Writer, Unpickler and Pickler ----
   ll_torch_load reads path (a NUL-terminated string) and flattens what data.pkl holds to named tensors: dicts
   (OrderedDicts too) and lists/tuples are walked, keys and indices joined with '.' (`model.blocks.0.attn.qkv.weight`,
   `optimizer.state.0.exp_avg`), tensors kept; ints, floats, strings, None and objects of Python classes libtorch
   does not know (argparse.Namespace, numpy scalars; loaded as empty placeholders) are skipped. Tensors that
   share a storage in the file (views) share it here. need2 gets [count, bytes of the names]; the function
   returns the count, and when it fits max_out and the names fit names_cap it also fills out with that many new
   handles on (dev_type, dev_index) and names with the names, each NUL-terminated, in the same order. Otherwise
   nothing is made: the caller calls again with need2's sizes (the file is read again). Every error names the
   file: not a zip (and the legacy non-zip format, to re-save), truncated or corrupt, no data.pkl, a tensor
   with an unsupported storage (dtype, layout, device, or a record shorter than its storage). */
int ll_torch_load(const char* path, int dev_type, int dev_index, ll_tensor* out, int max_out, char* names,
                  int names_cap, double* need2);
/* Writes {key: {name: tensor}} (plain dicts, in the given order) as torch.save would, loadable with
   torch.load(path, weights_only=True): keys holds nkeys NUL-terminated keys in keys_len bytes, counts[i] how
   many of the n tensors (ts, with their NUL-terminated names in names_len bytes) go under keys[i], in order.
   Tensors are stored detached, as CPU data (views of one tensor share one storage record). Written to
   path.tmp, flushed and renamed over path, so a failed save leaves an existing file intact. */
int ll_torch_save(const char* path, const char* keys, int keys_len, const double* counts, int nkeys,
                  const char* names, int names_len, const ll_tensor* ts, int n);

#ifdef __cplusplus
}
#endif
#endif
