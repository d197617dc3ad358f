// Distributed training on PyTorch's c10d: key-value stores (TCP, file, prefix), process groups (Gloo; NCCL in
// CUDA builds that found nccl.h), the collectives the trainer needs, and a gradient reducer that averages the
// gradients of a fixed list of parameters in buckets, each all-reduced as soon as backward has produced it.
//
// Stores, process groups and reducers are opaque integer ids (never reused) in one registry, released with
// ll_dist_free. Collectives are blocking and bounded by the group's timeout: a peer that dies or hangs
// surfaces as an error here, through the shim's one error convention.
#include "common.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LL_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef LL_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <utility>
#include <mutex>
#include <unordered_map>
#include <variant>

using namespace ll;

namespace {

using Ms = std::chrono::milliseconds;

Ms ms_of(double v, const char* what) {
  if (!(v > 0) || v > 1e12) throw std::invalid_argument(std::string(what) + " must be a positive number of ms");
  return Ms(static_cast<int64_t>(v));
}

// A process group: the c10d backend, its size and rank, its timeout, and the bytes this rank has put into
// collectives (the payload, whatever the algorithm sends on the wire).
struct Group {
  c10::intrusive_ptr<c10d::Backend> pg;
  int rank, size;
  Ms timeout;
  std::atomic<double> bytes{0};
  const char* backend;
};

// A gradient reducer (our own, much smaller than c10d's Reducer, whose constructor changes between releases):
// parameters in buckets of about `cap` bytes, filled in reverse order (the order backward produces the
// gradients); a bucket is flattened and its all-reduce started as soon as its last gradient is accumulated
// (overlap), or all at finish() (no overlap).
struct Reducer {
  std::shared_ptr<Group> group;
  std::vector<at::Tensor> params;
  // The pointer type grad_accumulator returns (std::shared_ptr up to torch 2.11, c10::intrusive_ptr after).
  using NodePtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));
  std::vector<NodePtr> accumulators;
  std::vector<uintptr_t> hook_keys;
  struct Bucket {
    std::vector<int> members;
    int64_t numel = 0;
    int pending = 0;
    at::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::vector<int> bucket_of;
  bool overlap;
  std::mutex mu;
  double last_bytes = 0;
  double wait_ms = 0;  // time finish() spent waiting for communication, last step

  ~Reducer() {
    for (size_t i = 0; i < accumulators.size(); i++) accumulators[i]->del_post_hook(hook_keys[i]);
  }
  // Flattens a bucket's gradients (zeros where a parameter got none) and starts its all-reduce.
  void launch(Bucket& b) {
    std::vector<at::Tensor> parts;
    parts.reserve(b.members.size());
    for (int i : b.members) {
      const at::Tensor& g = params[i].grad();
      parts.push_back(g.defined() ? g.reshape({-1}) : at::zeros({params[i].numel()}, params[i].options()));
    }
    b.flat = at::cat(parts);
    std::vector<at::Tensor> ts{b.flat};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = group->timeout;
    b.work = group->pg->allreduce(ts, o);
    double n = static_cast<double>(b.flat.numel() * b.flat.element_size());
    last_bytes += n;
    group->bytes = group->bytes + n;
  }
  void ready(int i) {
    std::lock_guard<std::mutex> lock(mu);
    Bucket& b = buckets[bucket_of[i]];
    if (--b.pending == 0 && overlap && !b.work) launch(b);
  }
};

using Object = std::variant<c10::intrusive_ptr<c10d::Store>, std::shared_ptr<Group>, std::shared_ptr<Reducer>>;
std::mutex registry_mu;
std::unordered_map<int, Object> registry;
int next_id = 1;

int add(Object o) {
  std::lock_guard<std::mutex> lock(registry_mu);
  int id = next_id++;
  registry.emplace(id, std::move(o));
  return id;
}

template <class T>
T get(int id, const char* what) {
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = registry.find(id);
  if (it == registry.end() || !std::holds_alternative<T>(it->second))
    throw std::invalid_argument(std::string("invalid ") + what + " id " + std::to_string(id) +
                                " (freed, or never created)");
  return std::get<T>(it->second);
}

c10::intrusive_ptr<c10d::Store> store_of(int id) { return get<c10::intrusive_ptr<c10d::Store>>(id, "store"); }
std::shared_ptr<Group> group_of(int id) { return get<std::shared_ptr<Group>>(id, "process group"); }

std::string str_of(const char* s, const char* what) {
  if (s == nullptr) throw std::invalid_argument(std::string("null ") + what);
  return std::string(s);
}

c10d::ReduceOp op_of(int op) {
  switch (op) {
    case LL_DIST_SUM: case LL_DIST_AVG: return c10d::ReduceOp::SUM;  // AVG: SUM, then divided (Gloo has no AVG)
    case LL_DIST_MAX: return c10d::ReduceOp::MAX;
    case LL_DIST_MIN: return c10d::ReduceOp::MIN;
    default: throw std::invalid_argument("unsupported reduce op " + std::to_string(op));
  }
}

// Waits for a collective within the group's timeout; a failed or timed-out peer becomes an error naming the group.
void finish(Group& g, const c10::intrusive_ptr<c10d::Work>& w, const char* what) {
  auto fail = [&](const std::string& why) {
    throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(g.rank) + " of " +
                             std::to_string(g.size) + " (" + g.backend + ", timeout " +
                             std::to_string(g.timeout.count()) + " ms): " + why);
  };
  bool done = false;
  try {
    done = w->wait(g.timeout);
  } catch (const c10::Error& e) {
    fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (!done) fail("timed out");
}

double nbytes(const at::Tensor& t) { return static_cast<double>(t.numel() * t.element_size()); }

void check_dense(const at::Tensor& t, const char* what) {
  if (!t.is_contiguous()) throw std::invalid_argument(std::string(what) + " must be contiguous");
}

}  // namespace

extern "C" {

int ll_dist_backends(int* out2) {
  LL_I("dist_backends", {
    if (out2 == nullptr) throw std::invalid_argument("null output");
#ifdef LL_GLOO
    out2[0] = 1;
#else
    out2[0] = 0;
#endif
#ifdef LL_NCCL
    out2[1] = 1;
#else
    out2[1] = 0;
#endif
    return 0;
  })
}

int ll_dist_live(double* out) {
  LL_I("dist_live", {
    if (out == nullptr) throw std::invalid_argument("null output");
    std::lock_guard<std::mutex> lock(registry_mu);
    *out = static_cast<double>(registry.size());
    return 0;
  })
}

int ll_dist_free(int id) {
  LL_I("dist_free", {
    Object o;
    {
      std::lock_guard<std::mutex> lock(registry_mu);
      auto it = registry.find(id);
      if (it == registry.end()) throw std::invalid_argument("invalid distributed object id " + std::to_string(id));
      o = std::move(it->second);
      registry.erase(it);
    }
    // o is destroyed here, outside the lock: a process group's shutdown can take a while.
    return 0;
  })
}

int ll_store_tcp(const char* host, int port, int is_server, int world_size, double timeout_ms, int* out) {
  LL_I("store_tcp", {
    if (out == nullptr) throw std::invalid_argument("null output");
    if (port < 0 || port > 65535) throw std::invalid_argument("port must be in 0..65535, got " + std::to_string(port));
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(port);
    o.isServer = is_server != 0;
    if (world_size > 0) o.numWorkers = world_size;
    o.waitWorkers = false;
    o.timeout = ms_of(timeout_ms, "timeout");
    // The libuv server backend crashes inside a Deno process (Deno exports uv_* symbols of its own, which
    // libtorch's bundled libuv then binds to); the classic backend has no such dependency.
    o.useLibUV = false;
    *out = add(c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::TCPStore>(str_of(host, "host"), o)));
    return 0;
  })
}

int ll_store_file(const char* path, int world_size, int* out) {
  LL_I("store_file", {
    if (out == nullptr) throw std::invalid_argument("null output");
    if (world_size < 1) throw std::invalid_argument("world size must be positive");
    *out = add(c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::FileStore>(str_of(path, "path"), world_size)));
    return 0;
  })
}

int ll_store_prefix(int store, const char* prefix, int* out) {
  LL_I("store_prefix", {
    if (out == nullptr) throw std::invalid_argument("null output");
    auto s = store_of(store);
    *out = add(c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(str_of(prefix, "prefix"), s)));
    return 0;
  })
}

int ll_store_set(int store, const char* key, const uint8_t* value, int n) {
  LL_I("store_set", {
    if (n < 0 || (n > 0 && value == nullptr)) throw std::invalid_argument("bad value buffer");
    store_of(store)->set(str_of(key, "key"), std::vector<uint8_t>(value, value + n));
    return 0;
  })
}

int ll_store_get(int store, const char* key, uint8_t* buf, int cap) {
  LL_I("store_get", {
    auto v = store_of(store)->get(str_of(key, "key"));
    if (buf != nullptr && cap > 0) std::memcpy(buf, v.data(), std::min<size_t>(v.size(), cap));
    return static_cast<int>(v.size());
  })
}

int ll_store_add(int store, const char* key, double delta, double* out) {
  LL_I("store_add", {
    if (out == nullptr) throw std::invalid_argument("null output");
    *out = static_cast<double>(store_of(store)->add(str_of(key, "key"), to_i64(delta, "delta")));
    return 0;
  })
}

int ll_pg_new(int backend, int store, int rank, int size, double timeout_ms, int* out) {
  LL_I("pg_new", {
    if (out == nullptr) throw std::invalid_argument("null output");
    if (size < 1 || rank < 0 || rank >= size)
      throw std::invalid_argument("rank " + std::to_string(rank) + " is not in a world of size " + std::to_string(size));
    auto s = store_of(store);
    auto g = std::make_shared<Group>();
    g->rank = rank;
    g->size = size;
    g->timeout = ms_of(timeout_ms, "timeout");
    if (backend == LL_DIST_BACKEND_GLOO) {
#ifdef LL_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create_default(g->timeout);
      if (o->devices.empty()) o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s, rank, size, o);
      g->backend = "gloo";
#else
      throw std::runtime_error("this shim was built without Gloo (its headers were not found at build time)");
#endif
    } else if (backend == LL_DIST_BACKEND_NCCL) {
#ifdef LL_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = g->timeout;
      g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(s, rank, size, o);
      g->backend = "nccl";
#else
      throw std::runtime_error("this shim was built without NCCL (a CUDA torch and nccl.h are needed at build time)");
#endif
    } else {
      throw std::invalid_argument("unknown backend " + std::to_string(backend));
    }
    *out = add(g);
    return 0;
  })
}

int ll_pg_info(int pg, double* out3) {
  LL_I("pg_info", {
    if (out3 == nullptr) throw std::invalid_argument("null output");
    auto g = group_of(pg);
    out3[0] = g->rank;
    out3[1] = g->size;
    out3[2] = g->bytes;
    return 0;
  })
}

int ll_pg_allreduce(int pg, const ll_tensor* ts, int n, int op) {
  LL_I("pg_allreduce", {
    auto g = group_of(pg);
    BorrowList b(ts, n, "tensor");
    if (n == 0) return 0;
    std::vector<at::Tensor> v(b.v.begin(), b.v.end());
    for (auto& t : v) check_dense(t, "an all-reduced tensor");
    // one tensor per call (Gloo's list form means one tensor per device); coalesce by flattening
    at::Tensor flat = n == 1 ? v[0] : at::cat([&] {
      std::vector<at::Tensor> parts;
      for (auto& t : v) parts.push_back(t.reshape({-1}));
      return parts;
    }());
    std::vector<at::Tensor> one{flat};
    c10d::AllreduceOptions o;
    o.reduceOp = op_of(op);
    o.timeout = g->timeout;
    finish(*g, g->pg->allreduce(one, o), "all-reduce");
    g->bytes = g->bytes + nbytes(flat);
    c10::NoGradGuard ng;
    if (op == LL_DIST_AVG) flat.div_(g->size);
    if (n > 1) {
      int64_t off = 0;
      for (auto& t : v) {
        t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
        off += t.numel();
      }
    }
    return 0;
  })
}

int ll_pg_broadcast(int pg, const ll_tensor* ts, int n, int root) {
  LL_I("pg_broadcast", {
    auto g = group_of(pg);
    if (root < 0 || root >= g->size) throw std::invalid_argument("root " + std::to_string(root) + " is not a rank");
    BorrowList b(ts, n, "tensor");
    if (n == 0) return 0;
    std::vector<at::Tensor> parts;
    for (auto& t : b.v) parts.push_back(t.reshape({-1}));
    at::Tensor flat = n == 1 && b.v[0].is_contiguous() ? b.v[0] : at::cat(parts);
    std::vector<at::Tensor> one{flat};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g->timeout;
    finish(*g, g->pg->broadcast(one, o), "broadcast");
    g->bytes = g->bytes + nbytes(flat);
    c10::NoGradGuard ng;
    if (!(n == 1 && b.v[0].is_contiguous())) {
      int64_t off = 0;
      for (auto& t : b.v) {
        t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
        off += t.numel();
      }
    }
    return 0;
  })
}

int ll_pg_all_gather(int pg, ll_tensor out, ll_tensor in) {
  LL_I("pg_all_gather", {
    auto g = group_of(pg);
    Borrow o(out, "output"), i(in, "input");
    check_dense(*o, "the all-gather output");
    check_dense(*i, "the all-gather input");
    if (o->numel() != i->numel() * g->size || o->scalar_type() != i->scalar_type())
      throw std::invalid_argument("the all-gather output must hold world size (" + std::to_string(g->size) +
                                  ") times the input's elements, of the same dtype");
    at::Tensor ot = *o, it = *i;
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    finish(*g, g->pg->_allgather_base(ot, it, opts), "all-gather");
    g->bytes = g->bytes + nbytes(it);
    return 0;
  })
}

int ll_pg_reduce_scatter(int pg, ll_tensor out, ll_tensor in, int op) {
  LL_I("pg_reduce_scatter", {
    auto g = group_of(pg);
    Borrow o(out, "output"), i(in, "input");
    check_dense(*o, "the reduce-scatter output");
    check_dense(*i, "the reduce-scatter input");
    if (i->numel() != o->numel() * g->size || o->scalar_type() != i->scalar_type())
      throw std::invalid_argument("the reduce-scatter input must hold world size (" + std::to_string(g->size) +
                                  ") times the output's elements, of the same dtype");
    at::Tensor ot = *o, it = *i;
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = op_of(op);
    opts.timeout = g->timeout;
    finish(*g, g->pg->_reduce_scatter_base(ot, it, opts), "reduce-scatter");
    g->bytes = g->bytes + nbytes(it);
    c10::NoGradGuard ng;
    if (op == LL_DIST_AVG) ot.div_(g->size);
    return 0;
  })
}

int ll_pg_barrier(int pg) {
  LL_I("pg_barrier", {
    auto g = group_of(pg);
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    finish(*g, g->pg->barrier(o), "barrier");
    return 0;
  })
}

int ll_reducer_new(int pg, const ll_tensor* params, int n, double bucket_bytes, int overlap, int* out) {
  LL_I("reducer_new", {
    if (out == nullptr) throw std::invalid_argument("null output");
    if (!(bucket_bytes > 0)) throw std::invalid_argument("bucket size must be positive");
    auto r = std::make_shared<Reducer>();
    r->group = group_of(pg);
    r->overlap = overlap != 0;
    BorrowList b(params, n, "parameter");
    for (int i = 0; i < n; i++) {
      const at::Tensor& p = b.v[i];
      if (!p.requires_grad() || !p.is_leaf())
        throw std::invalid_argument("parameter " + std::to_string(i) + " is not a leaf that requires grad");
      for (int j = 0; j < i; j++)
        if (b.v[j].is_same(p)) throw std::invalid_argument("parameter " + std::to_string(i) + " is listed twice");
      if (i > 0 && (p.scalar_type() != b.v[0].scalar_type() || p.device() != b.v[0].device()))
        throw std::invalid_argument("parameters of one reducer must share a dtype and device");
      r->params.push_back(p);
    }
    // buckets in reverse order, the order in which backward produces the gradients
    r->bucket_of.assign(n, -1);
    for (int i = n - 1; i >= 0; i--) {
      double sz = nbytes(r->params[i]);
      if (r->buckets.empty() ||
          (r->buckets.back().numel > 0 &&
           (r->buckets.back().numel * r->params[i].element_size() + sz) > bucket_bytes))
        r->buckets.emplace_back();
      auto& bk = r->buckets.back();
      bk.members.push_back(i);
      bk.numel += r->params[i].numel();
      bk.pending++;
      r->bucket_of[i] = static_cast<int>(r->buckets.size()) - 1;
    }
    std::weak_ptr<Reducer> weak = r;
    for (int i = 0; i < n; i++) {
      auto acc = torch::autograd::impl::grad_accumulator(r->params[i]);
      auto key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [weak, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            if (auto rr = weak.lock()) rr->ready(i);
            return outputs;
          }));
      r->accumulators.push_back(acc);
      r->hook_keys.push_back(key);
    }
    *out = add(r);
    return 0;
  })
}

// Completes a step: starts the buckets that backward did not complete (every bucket without overlap; with it,
// those holding parameters that got no gradient), waits for all, averages, and writes the result into each
// parameter's gradient (left undefined where it was). out3: buckets, bytes this step, ms spent waiting.
int ll_reducer_finish(int reducer, double* out3) {
  LL_I("reducer_finish", {
    auto r = get<std::shared_ptr<Reducer>>(reducer, "reducer");
    std::lock_guard<std::mutex> lock(r->mu);
    for (auto& b : r->buckets)
      if (!b.work) r->launch(b);
    auto t0 = std::chrono::steady_clock::now();
    c10::NoGradGuard ng;
    for (auto& b : r->buckets) {
      finish(*r->group, b.work, "gradient all-reduce");
      b.flat.div_(r->group->size);
    }
    r->wait_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (auto& b : r->buckets) {
      int64_t off = 0;
      for (int i : b.members) {
        at::Tensor g = r->params[i].grad();
        int64_t k = r->params[i].numel();
        if (g.defined()) g.copy_(b.flat.narrow(0, off, k).view(g.sizes()));
        off += k;
      }
      b.work.reset();
      b.flat = at::Tensor();
      b.pending = static_cast<int>(b.members.size());
    }
    if (out3 != nullptr) {
      out3[0] = static_cast<double>(r->buckets.size());
      out3[1] = r->last_bytes;
      out3[2] = r->wait_ms;
    }
    r->last_bytes = 0;
    return 0;
  })
}

}  // extern "C"
