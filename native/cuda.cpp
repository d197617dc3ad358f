// CUDA: caching-allocator statistics, graphs, streams and uploads through pinned memory; the CUDA parts are compiled
// only when the torch found is a CUDA build.
#include "common.h"
#include <torch/cuda.h>

#include <cstring>

using namespace ll;
#ifdef LL_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

extern "C" {

int ll_cuda_memory_stats(int device, double* out4) {
  LL_I("cuda_memory_stats", {
#ifdef LL_CUDA
    auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const size_t agg = 0;  // StatType::AGGREGATE
    out4[0] = static_cast<double>(s.allocated_bytes[agg].current);
    out4[1] = static_cast<double>(s.allocated_bytes[agg].peak);
    out4[2] = static_cast<double>(s.reserved_bytes[agg].current);
    out4[3] = static_cast<double>(s.reserved_bytes[agg].peak);
    return 1;
#else
    (void)device;
    for (int i = 0; i < 4; i++) out4[i] = 0;
    return 0;
#endif
  })
}

int ll_cuda_empty_cache(void) {
  LL_I("cuda_empty_cache", {
#ifdef LL_CUDA
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 1;
#else
    return 0;
#endif
  })
}

int ll_cuda_reset_peak(int device) {
  LL_I("cuda_reset_peak", {
#ifdef LL_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 1;
#else
    (void)device;
    return 0;
#endif
  })
}

}  // extern "C"

// ---- CUDA graphs (ll_graph_*): capture of a whole training step, replayed with one launch ----
//
// A graph is an integer id (never reused). Capture and warm-up run on a side stream of the graph's device that
// first waits for the ambient stream; at their end the ambient stream waits for the side stream, so work queued
// before and after stays ordered. Each graph captures into its own private memory pool, released with the graph.
// Autocast's cast cache is off during capture (a cached cast made in a capture would outlive its pool).
#ifdef LL_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/autocast_mode.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <memory>
#include <optional>

namespace {
// A stream of the device's pool that work can be moved onto and back. enter: it waits for the current stream,
// then becomes current; leave: the previous stream is current again and `done` marks what was queued on it;
// wait: the current stream waits for `done`. In a capture these record a fork and a join.
struct SideStream {
  c10::DeviceIndex device;
  c10::cuda::CUDAStream s;
  std::optional<c10::cuda::CUDAStreamGuard> on;  // set between enter and leave
  at::cuda::CUDAEvent done;
  bool left = false;
  explicit SideStream(c10::DeviceIndex d) : device(d), s(c10::cuda::getStreamFromPool(false, d)) {}
  void enter(const std::string& what) {
    if (on) throw std::logic_error(what + " is already current");
    c10::cuda::CUDAGuard dev(device);
    at::cuda::CUDAEvent ev;
    ev.record(c10::cuda::getCurrentCUDAStream(device));
    ev.block(s);
    on.emplace(s);
  }
  void leave(const std::string& what) {
    if (!on) throw std::logic_error(what + " is not current");
    on.reset();
    done.record(s);
    left = true;
  }
  void wait(const std::string& what) {
    if (!left) throw std::logic_error(what + " has queued nothing to wait for");
    done.block(c10::cuda::getCurrentCUDAStream(device));
  }
};

c10::DeviceIndex cuda_device(int device) {
  if (!torch::cuda::is_available()) throw std::runtime_error("CUDA is not available");
  if (device < 0 || device >= static_cast<int>(torch::cuda::device_count()))
    throw std::invalid_argument("no CUDA device " + std::to_string(device));
  return static_cast<c10::DeviceIndex>(device);
}

// The object of an id in one of the id tables (graphs, streams).
template <typename T>
T& find_id(std::map<int, std::unique_ptr<T>>& table, int id, const char* what) {
  auto it = table.find(id);
  if (it == table.end())
    throw std::invalid_argument(std::string("invalid ") + what + " id " + std::to_string(id) + " (freed, or never made)");
  return *it->second;
}

struct Graph {
  SideStream side;  // where warm-ups and the capture run; the ambient stream waits for it at their end
  at::cuda::CUDAGraph graph;
  bool captured = false;
  bool cache_was_enabled = true;
  explicit Graph(c10::DeviceIndex d) : side(d) {}
};
std::map<int, std::unique_ptr<Graph>> graphs;
int next_graph = 1;

Graph& graph_of(int id) { return find_id(graphs, id, "graph"); }
void enter_side(Graph& g) { g.side.enter("the graph's stream"); }
void leave_side(Graph& g) {
  g.side.leave("the graph's stream");
  g.side.wait("the graph's stream");
}
}  // namespace
#endif

extern "C" {

#ifdef LL_CUDA
#define LL_GRAPH_BODY(...) __VA_ARGS__
#else
#define LL_GRAPH_BODY(...) \
  throw std::runtime_error("CUDA graphs need a CUDA build of libtorch (this shim was built without CUDA)");
#endif

int ll_graph_new(int device, int* out) {
  LL_I("graph_new", {
    LL_GRAPH_BODY({
      auto d = cuda_device(device);
      int id = next_graph++;
      graphs.emplace(id, std::make_unique<Graph>(d));
      out[0] = id;
      return 0;
    })
  })
}

int ll_graph_warmup_begin(int id) {
  LL_I("graph_warmup", { LL_GRAPH_BODY({
    enter_side(graph_of(id));
    return 0;
  }) })
}

int ll_graph_warmup_end(int id) {
  LL_I("graph_warmup", { LL_GRAPH_BODY({
    leave_side(graph_of(id));
    return 0;
  }) })
}

int ll_graph_capture_begin(int id) {
  LL_I("graph_capture", { LL_GRAPH_BODY({
    auto& g = graph_of(id);
    if (g.captured) throw std::logic_error("graph " + std::to_string(id) + " has already been captured");
    enter_side(g);
    try {
      g.cache_was_enabled = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);
      g.graph.capture_begin();  // a private pool; the default CUDA generator is registered with the graph
    } catch (...) {
      at::autocast::set_autocast_cache_enabled(g.cache_was_enabled);
      leave_side(g);
      throw;
    }
    return 0;
  }) })
}

int ll_graph_capture_end(int id) {
  LL_I("graph_capture", { LL_GRAPH_BODY({
    auto& g = graph_of(id);
    if (!g.side.on) throw std::logic_error("graph " + std::to_string(id) + " is not capturing");
    struct Restore {
      Graph& g;
      ~Restore() {
        at::autocast::set_autocast_cache_enabled(g.cache_was_enabled);
        if (g.side.on) leave_side(g);
      }
    } restore{g};
    g.graph.capture_end();  // throws when the capture was invalidated (e.g. a synchronising call inside it)
    g.captured = true;
    return 0;
  }) })
}

int ll_graph_replay(int id) {
  LL_I("graph_replay", { LL_GRAPH_BODY({
    auto& g = graph_of(id);
    if (!g.captured) throw std::logic_error("graph " + std::to_string(id) + " was not captured");
    c10::cuda::CUDAGuard dev(g.side.device);
    g.graph.replay();
    return 0;
  }) })
}

// Frees a graph and its memory pool (ending a capture or warm-up left open by an error first).
int ll_graph_free(int id) {
  LL_I("graph_free", { LL_GRAPH_BODY({
    auto& g = graph_of(id);
    if (g.side.on) {
      at::autocast::set_autocast_cache_enabled(g.cache_was_enabled);
      leave_side(g);
    }
    graphs.erase(id);
    return 0;
  }) })
}

int ll_graph_live(double* out) {
  LL_I("graph_live", {
#ifdef LL_CUDA
    out[0] = static_cast<double>(graphs.size());
#else
    out[0] = 0;
#endif
    return 0;
  })
}

}  // extern "C"

// ---- CUDA streams (ll_stream_*): a second stream for work independent of the main one (the target pass) ----
//
// Each is a SideStream (above). Tensors made on the stream and freed later are reused only by work on that
// stream, which each enter orders after the current stream's work.
#ifdef LL_CUDA
namespace {
std::map<int, std::unique_ptr<SideStream>> streams;
int next_stream = 1;
SideStream& stream_of(int id) { return find_id(streams, id, "stream"); }
}  // namespace
#endif

extern "C" {

int ll_stream_new(int device, int* out) {
  LL_I("stream_new", { LL_GRAPH_BODY({
    auto d = cuda_device(device);
    int id = next_stream++;
    streams.emplace(id, std::make_unique<SideStream>(d));
    out[0] = id;
    return 0;
  }) })
}

int ll_stream_enter(int id) {
  LL_I("stream_enter", { LL_GRAPH_BODY({
    stream_of(id).enter("stream " + std::to_string(id));
    return 0;
  }) })
}

int ll_stream_leave(int id) {
  LL_I("stream_leave", { LL_GRAPH_BODY({
    stream_of(id).leave("stream " + std::to_string(id));
    return 0;
  }) })
}

int ll_stream_wait(int id) {
  LL_I("stream_wait", { LL_GRAPH_BODY({
    stream_of(id).wait("stream " + std::to_string(id));
    return 0;
  }) })
}

int ll_stream_free(int id) {
  LL_I("stream_free", { LL_GRAPH_BODY({
    stream_of(id).on.reset();
    streams.erase(id);
    return 0;
  }) })
}

}  // extern "C"

// ---- uploads (ll_copy_from_buffer): host bytes into a tensor without waiting for the device ----
//
// A CUDA destination is filled from a pinned staging buffer with an asynchronous copy on the current stream, so
// the host does not wait for the work already queued (a copy from pageable memory would). Two staging buffers per
// (device, size) alternate; before one is rewritten the host waits for the copy that last read it, which was
// queued two uploads ago. A CPU destination is a memcpy.
#ifdef LL_CUDA
namespace {
struct Staging {
  at::Tensor pinned;
  at::cuda::CUDAEvent done;
  bool used = false;
};
struct StagingPair {
  Staging slot[2];
  int next = 0;
};
std::map<std::pair<int, size_t>, StagingPair> staging;
}  // namespace
#endif

extern "C" {

int ll_copy_from_buffer(ll_tensor t, const void* data, double nbytes) {
  LL_I("copy_from_buffer", {
    Borrow b(t);
    if (!b->is_contiguous()) throw std::invalid_argument("the destination tensor must be contiguous");
    size_t need = static_cast<size_t>(b->numel()) * b->element_size();
    if (static_cast<double>(need) != nbytes)
      throw std::invalid_argument("buffer holds " + std::to_string(static_cast<int64_t>(nbytes)) +
                                  " bytes but the tensor needs " + std::to_string(need));
    if (need == 0) return 0;
    if (data == nullptr) throw std::invalid_argument("null data pointer");
    host_writes++;
    if (b->is_cpu()) {
      std::memcpy(b->data_ptr(), data, need);
      return 0;
    }
#ifdef LL_CUDA
    if (b->is_cuda()) {
      c10::cuda::CUDAGuard dev(b->device());
      auto& pair = staging[{static_cast<int>(b->device().index()), need}];
      auto& s = pair.slot[pair.next];
      pair.next ^= 1;
      if (!s.pinned.defined())
        s.pinned = at::empty({static_cast<int64_t>(need)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
      if (s.used) s.done.synchronize();  // the copy queued two uploads ago has read this buffer
      std::memcpy(s.pinned.data_ptr(), data, need);
      auto flat = b->view({-1}).view(at::kByte);
      flat.copy_(s.pinned, /*non_blocking=*/true);
      s.done.record(c10::cuda::getCurrentCUDAStream(b->device().index()));
      s.used = true;
      return 0;
    }
#endif
    // without the CUDA part (or another device): a plain copy from host memory, which waits for the device
    auto src = at::from_blob(const_cast<void*>(data), {static_cast<int64_t>(need)}, at::TensorOptions().dtype(at::kByte));
    b->view({-1}).view(at::kByte).copy_(src);
    return 0;
  })
}

}  // extern "C"
