// Internal helpers shared by the shim's translation units: handles, borrowing, errors, argument conversion.
#pragma once
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <atomic>
#include <string>
#include <vector>

#include "ll.h"

namespace ll {

void set_error(const char* op, const char* msg);

// Device-to-host reads (ll_host_reads): incremented by every entry point that copies tensor data to the host.
extern std::atomic<int64_t> host_reads;
// Host-to-device uploads (ll_host_writes): tensors made from host memory (ll_from_data), and CPU tensors moved to
// another device (ll_to); a CUDA-graph capture allows neither (pageable copies).
extern std::atomic<int64_t> host_writes;

using Impl = c10::TensorImpl;
using ImplPtr = c10::intrusive_ptr<Impl, c10::UndefinedTensorImpl>;

// The handle table: slot i holds an owned TensorImpl* and a generation that changes on every free, so a
// stale handle is recognised. Slots live in fixed chunks that never move, so look-ups take no lock;
// allocation and release take a spin lock (uncontended on the JavaScript thread).
namespace handles {
constexpr int kIndexBits = 22;                       // 4M live tensors
constexpr int32_t kIndexMask = (1 << kIndexBits) - 1;
constexpr int kGenBits = 31 - kIndexBits;            // 9 bits of generation
constexpr int kChunkBits = 12;
constexpr int kChunk = 1 << kChunkBits;
struct Slot {
  Impl* impl;
  uint32_t gen;
};
extern Slot* chunks[1 << (kIndexBits - kChunkBits)];
ll_tensor alloc(Impl* impl);   // takes ownership of one reference
Impl* release(ll_tensor h);    // returns the owned reference, or nullptr for an invalid handle
int64_t count();               // live handles
inline Impl* lookup(ll_tensor h) {
  if (h <= 0) return nullptr;
  int32_t idx = h & kIndexMask;
  Slot* c = chunks[idx >> kChunkBits];
  if (c == nullptr) return nullptr;
  Slot& s = c[idx & (kChunk - 1)];
  uint32_t gen = static_cast<uint32_t>(h) >> kIndexBits;
  return (s.gen & ((1u << kGenBits) - 1)) == gen ? s.impl : nullptr;
}
}  // namespace handles

// Transfers ownership of t's reference into a new handle.
inline ll_tensor wrap(at::Tensor&& t) {
  if (!t.defined()) throw std::runtime_error("operation returned an undefined tensor");
  return handles::alloc(t.unsafeReleaseTensorImpl());
}
inline ll_tensor wrap(const at::Tensor& t) { return wrap(at::Tensor(t)); }

[[noreturn]] void bad_handle(ll_tensor h, const char* what);

inline Impl* resolve(ll_tensor h, const char* what) {
  Impl* p = handles::lookup(h);
  if (p == nullptr) bad_handle(h, what);
  return p;
}

// A non-owning at::Tensor view of a handle: no refcount traffic; releases without decrementing.
struct Borrow {
  at::Tensor t;
  explicit Borrow(ll_tensor h, const char* what = "tensor") : t(ImplPtr::reclaim(resolve(h, what))) {}
  ~Borrow() { t.unsafeReleaseTensorImpl(); }
  Borrow(const Borrow&) = delete;
  Borrow& operator=(const Borrow&) = delete;
  const at::Tensor& operator*() const { return t; }
  const at::Tensor* operator->() const { return &t; }
};

// Optional borrow: NULL means "no tensor".
struct OptBorrow {
  std::optional<at::Tensor> t;
  explicit OptBorrow(ll_tensor h, const char* what = "optional tensor") {
    if (h != 0) t = at::Tensor(ImplPtr::reclaim(resolve(h, what)));
  }
  ~OptBorrow() {
    if (t) t->unsafeReleaseTensorImpl();
  }
  OptBorrow(const OptBorrow&) = delete;
  OptBorrow& operator=(const OptBorrow&) = delete;
};

// A list of borrowed tensors (for cat, stack, optimizers).
struct BorrowList {
  std::vector<at::Tensor> v;
  BorrowList(const ll_tensor* hs, int n, const char* what = "tensor") {
    if (n < 0) throw std::invalid_argument("negative list length");
    if (n > 0 && hs == nullptr) throw std::invalid_argument(std::string("null ") + what + " list");
    v.reserve(n);
    for (int i = 0; i < n; i++) {
      Impl* p = handles::lookup(hs[i]);
      if (p == nullptr) {
        release();
        throw std::invalid_argument(std::string("invalid ") + what + " handle " + std::to_string(hs[i]) +
                                    " at position " + std::to_string(i) + " (freed, or never created)");
      }
      v.emplace_back(ImplPtr::reclaim(p));
    }
  }
  void release() {
    for (auto& t : v) t.unsafeReleaseTensorImpl();
    v.clear();
  }
  ~BorrowList() { release(); }
  BorrowList(const BorrowList&) = delete;
  BorrowList& operator=(const BorrowList&) = delete;
};

inline int64_t to_i64(double d, const char* what) {
  if (!(d == d) || d > 9.007199254740992e15 || d < -9.007199254740992e15 || d != static_cast<double>(static_cast<int64_t>(d)))
    throw std::invalid_argument(std::string(what) + " must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

inline std::vector<int64_t> dims_of(const double* d, int n, const char* what = "shape") {
  if (n < 0) throw std::invalid_argument(std::string("negative ") + what + " length");
  if (n > 0 && d == nullptr) throw std::invalid_argument(std::string("null ") + what);
  std::vector<int64_t> v(n);
  for (int i = 0; i < n; i++) v[i] = to_i64(d[i], what);
  return v;
}

inline c10::ScalarType dtype_of(int code) {
  switch (code) {
    case LL_DTYPE_U8: case LL_DTYPE_I32: case LL_DTYPE_I64: case LL_DTYPE_F16: case LL_DTYPE_F32: case LL_DTYPE_F64:
    case LL_DTYPE_BOOL: case LL_DTYPE_BF16:
      return static_cast<c10::ScalarType>(code);
    default:
      throw std::invalid_argument("unsupported dtype code " + std::to_string(code));
  }
}

inline c10::Device device_of(int type, int index) {
  if (type == LL_DEVICE_CPU) return c10::Device(c10::kCPU);
  if (type == LL_DEVICE_CUDA) return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  throw std::invalid_argument("unsupported device type " + std::to_string(type));
}

inline at::TensorOptions options_of(int dtype, int dev_type, int dev_index) {
  return at::TensorOptions().dtype(dtype_of(dtype)).device(device_of(dev_type, dev_index));
}

}  // namespace ll

// Every entry point is wrapped so that no exception crosses the C boundary.
#define LL_GUARD(op, fail, ...)                                   \
  try {                                                            \
    __VA_ARGS__                                                    \
  } catch (const c10::Error& e) {                                  \
    ll::set_error(op, e.what_without_backtrace());                 \
    return fail;                                                   \
  } catch (const std::exception& e) {                              \
    ll::set_error(op, e.what());                                   \
    return fail;                                                   \
  } catch (...) {                                                  \
    ll::set_error(op, "unknown C++ exception");                    \
    return fail;                                                   \
  }

#define LL_T(op, ...) LL_GUARD(op, 0, __VA_ARGS__)
#define LL_I(op, ...) LL_GUARD(op, -1, __VA_ARGS__)
