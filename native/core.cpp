// Errors, the live-handle counter, versions, CUDA runtime queries, seeding, threads, grad mode, autocast, RNG state.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "common.h"

namespace ll {
std::atomic<int64_t> live{0};
static thread_local std::string last_error;
void set_error(const char* op, const char* msg) {
  last_error = std::string(op) + ": " + msg;
}
}  // namespace ll

using namespace ll;

extern "C" {

const char* ll_last_error(void) { return last_error.c_str(); }
int64_t ll_live_tensors(void) { return live.load(std::memory_order_relaxed); }

void ll_free(ll_tensor t) {
  if (t == nullptr) return;
  live.fetch_sub(1, std::memory_order_relaxed);
  ImplPtr::reclaim(static_cast<Impl*>(t));  // drops the handle's reference
}

const char* ll_torch_version(void) { return TORCH_VERSION; }
// Bumped whenever ll.h changes incompatibly; the TypeScript loader checks it.
int ll_shim_abi(void) { return 1; }

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
// Enables (entering a region) or disables (leaving one) autocast; leaving the outermost region clears the cast cache.
int ll_autocast_set(int device_type, int enabled, int dtype) {
  LL_I("autocast", {
    auto dt = device_of(device_type, -1).type();
    if (enabled) {
      auto st = dtype_of(dtype);
      if (st != at::kBFloat16 && st != at::kHalf) throw std::invalid_argument("autocast dtype must be bf16 or f16");
      at::autocast::set_autocast_dtype(dt, st);
      at::autocast::set_autocast_enabled(dt, true);
      at::autocast::increment_nesting();
    } else {
      at::autocast::set_autocast_enabled(dt, false);
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    }
    return 0;
  })
}

int ll_get_rng_state(ll_tensor* out) {
  LL_I("get_rng_state", {
    auto gen = at::globalContext().defaultGenerator(c10::kCPU);
    std::lock_guard<std::mutex> lock(gen.mutex());
    out[0] = wrap(gen.get_state());
    return 0;
  })
}
int ll_set_rng_state(ll_tensor state) {
  LL_I("set_rng_state", {
    Borrow s(state);
    auto gen = at::globalContext().defaultGenerator(c10::kCPU);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*s);
    return 0;
  })
}

}  // extern "C"
