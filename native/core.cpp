// Errors, the live-handle counter, versions, CUDA runtime queries, seeding, threads, grad mode, autocast, RNG state.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <memory>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstring>

#include "common.h"

namespace ll {
std::atomic<int64_t> host_reads{0};
std::atomic<int64_t> host_writes{0};
static thread_local std::string last_error;
void set_error(const char* op, const char* msg) {
  last_error = std::string(op) + ": " + msg;
}

void bad_handle(ll_tensor h, const char* what) {
  if (h == 0) throw std::invalid_argument(std::string("null ") + what + " handle");
  throw std::invalid_argument(std::string("invalid ") + what + " handle " + std::to_string(h) +
                              " (freed, or never created)");
}

namespace handles {
Slot* chunks[1 << (kIndexBits - kChunkBits)];
static std::atomic_flag lock = ATOMIC_FLAG_INIT;
static std::vector<int32_t> free_slots;
static int32_t next_index = 1;  // index 0 is never used, so no valid handle is 0
static int64_t live = 0;

struct SpinGuard {
  SpinGuard() {
    while (lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~SpinGuard() { lock.clear(std::memory_order_release); }
};

ll_tensor alloc(Impl* impl) {
  SpinGuard g;
  int32_t idx;
  if (!free_slots.empty()) {
    idx = free_slots.back();
    free_slots.pop_back();
  } else {
    if (next_index > kIndexMask) {
      ImplPtr::reclaim(impl);
      throw std::runtime_error("too many live tensors (4M handles); free some with dispose()");
    }
    idx = next_index++;
    auto& c = chunks[idx >> kChunkBits];
    if (c == nullptr) c = new Slot[kChunk]();
  }
  Slot& s = chunks[idx >> kChunkBits][idx & (kChunk - 1)];
  s.impl = impl;
  live++;
  return static_cast<ll_tensor>(((s.gen & ((1u << kGenBits) - 1)) << kIndexBits) | static_cast<uint32_t>(idx));
}

Impl* release(ll_tensor h) {
  SpinGuard g;
  Impl* p = lookup(h);
  if (p == nullptr) return nullptr;
  int32_t idx = h & kIndexMask;
  Slot& s = chunks[idx >> kChunkBits][idx & (kChunk - 1)];
  s.impl = nullptr;
  s.gen++;
  free_slots.push_back(idx);
  live--;
  return p;
}

int64_t count() {
  SpinGuard g;
  return live;
}
}  // namespace handles
}  // namespace ll

using namespace ll;

extern "C" {

namespace {
int copy_string(const std::string& s, char* buf, int cap) {
  if (buf != nullptr && cap > 0) {
    size_t n = std::min(s.size(), static_cast<size_t>(cap - 1));
    std::memcpy(buf, s.data(), n);
    buf[n] = 0;
  }
  return static_cast<int>(s.size());
}
}  // namespace

int ll_last_error(char* buf, int cap) { return copy_string(last_error, buf, cap); }
int ll_live_tensors(double* out) { LL_I("live_tensors", *out = static_cast<double>(handles::count()); return 0;) }
int ll_host_reads(double* out) { LL_I("host_reads", *out = static_cast<double>(host_reads.load()); return 0;) }
int ll_host_writes(double* out) { LL_I("host_writes", *out = static_cast<double>(host_writes.load()); return 0;) }

// Releases a handle; freeing 0 is a no-op, freeing an invalid handle is an error (-1), never a crash.
int ll_free(ll_tensor t) {
  if (t == 0) return 0;
  Impl* p = handles::release(t);
  if (p == nullptr) {
    set_error("free", ("invalid tensor handle " + std::to_string(t) + " (already freed, or never created)").c_str());
    return -1;
  }
  ImplPtr::reclaim(p);  // drops the handle's reference
  return 0;
}

int ll_torch_version(char* buf, int cap) { return copy_string(TORCH_VERSION, buf, cap); }
// Bumped whenever ll.h changes incompatibly; the TypeScript loader checks it.
int ll_shim_abi(void) { return LL_SHIM_ABI; }

int ll_cuda_is_available(void) { LL_I("cuda_is_available", return torch::cuda::is_available() ? 1 : 0;) }
int ll_cuda_device_count(void) { LL_I("cuda_device_count", return static_cast<int>(torch::cuda::device_count());) }
int ll_cuda_synchronize(int device) {
  LL_I("cuda_synchronize", {
    if (!torch::cuda::is_available()) throw std::runtime_error("CUDA is not available");
    torch::cuda::synchronize(device);
    return 0;
  })
}

int ll_manual_seed(double seed) {
  LL_I("manual_seed", {
    if (seed < 0) throw std::invalid_argument("seed must be non-negative");
    at::manual_seed(static_cast<uint64_t>(to_i64(seed, "seed")));
    return 0;
  })
}

int ll_get_num_threads(void) { return at::get_num_threads(); }
int ll_set_num_threads(int n) {
  LL_I("set_num_threads", {
    if (n < 1) throw std::invalid_argument("thread count must be >= 1, got " + std::to_string(n));
    at::set_num_threads(n);
    return 0;
  })
}

int ll_grad_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }
void ll_set_grad_enabled(int enabled) { c10::GradMode::set_enabled(enabled != 0); }

int ll_autocast_enabled(int device_type) {
  LL_I("autocast_enabled", return at::autocast::is_autocast_enabled(device_of(device_type, -1).type()) ? 1 : 0;)
}
int ll_autocast_dtype(int device_type) {
  LL_I("autocast_dtype", return static_cast<int>(at::autocast::get_autocast_dtype(device_of(device_type, -1).type()));)
}
// The previous state is packed as enabled | (dtype << 1).
int ll_autocast_enter(int device_type, int dtype) {
  LL_I("autocast", {
    auto dt = device_of(device_type, -1).type();
    auto st = dtype_of(dtype);
    if (st != at::kBFloat16 && st != at::kHalf) throw std::invalid_argument("autocast dtype must be bf16 or f16");
    int prev = (at::autocast::is_autocast_enabled(dt) ? 1 : 0) |
               (static_cast<int>(at::autocast::get_autocast_dtype(dt)) << 1);
    at::autocast::set_autocast_dtype(dt, st);
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::increment_nesting();
    return prev;
  })
}
int ll_autocast_exit(int device_type, int prev_state) {
  LL_I("autocast", {
    auto dt = device_of(device_type, -1).type();
    at::autocast::set_autocast_enabled(dt, (prev_state & 1) != 0);
    at::autocast::set_autocast_dtype(dt, static_cast<c10::ScalarType>(prev_state >> 1));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return 0;
  })
}

// Inference mode (c10::InferenceMode) across FFI calls: a per-thread stack of guards, entered and left in order.
namespace {
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> inference_guards;
}
int ll_inference_mode_enter(void) {
  LL_I("inference_mode", {
    inference_guards.push_back(std::make_unique<c10::InferenceMode>());
    return static_cast<int>(inference_guards.size());
  })
}
int ll_inference_mode_exit(void) {
  LL_I("inference_mode", {
    if (inference_guards.empty()) throw std::logic_error("not in inference mode");
    inference_guards.pop_back();
    return static_cast<int>(inference_guards.size());
  })
}
int ll_is_inference(ll_tensor t) { LL_I("is_inference", return Borrow(t)->is_inference() ? 1 : 0;) }

namespace {
at::Generator default_generator(int dev_type, int dev_index) {
  auto dev = device_of(dev_type, dev_index);
  if (dev.is_cuda()) {
    if (!torch::cuda::is_available()) throw std::runtime_error("CUDA is not available");
    if (!dev.has_index()) dev = c10::Device(c10::kCUDA, 0);
  }
  return at::globalContext().defaultGenerator(dev);
}
}  // namespace

int ll_get_rng_state(int dev_type, int dev_index, ll_tensor* out) {
  LL_I("get_rng_state", {
    auto gen = default_generator(dev_type, dev_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    out[0] = wrap(gen.get_state());
    return 0;
  })
}
int ll_set_rng_state(int dev_type, int dev_index, ll_tensor state) {
  LL_I("set_rng_state", {
    Borrow s(state);
    auto gen = default_generator(dev_type, dev_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*s);
    return 0;
  })
}

}  // extern "C"
