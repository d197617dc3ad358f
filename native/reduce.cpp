// Reductions over all elements or a list of dimensions, with keepdim.
#include "common.h"

using namespace ll;

namespace {
const char* reduce_name(int op) {
  switch (op) {
    case LL_REDUCE_SUM: return "sum";
    case LL_REDUCE_MEAN: return "mean";
    case LL_REDUCE_AMAX: return "amax";
    case LL_REDUCE_AMIN: return "amin";
  }
  return "reduce";
}
}  // namespace

extern "C" {

ll_tensor ll_reduce(int op, ll_tensor t, const double* dims, int ndims, int keepdim) {
  LL_T(reduce_name(op), {
    Borrow x(t);
    auto d = dims_of(dims, ndims, "dims");
    bool all = d.empty();
    switch (op) {
      case LL_REDUCE_SUM: return wrap(all ? x->sum() : x->sum(d, keepdim != 0));
      case LL_REDUCE_MEAN: return wrap(all ? x->mean() : x->mean(d, keepdim != 0));
      case LL_REDUCE_AMAX: return wrap(x->amax(d, keepdim != 0));
      case LL_REDUCE_AMIN: return wrap(x->amin(d, keepdim != 0));
    }
    throw std::invalid_argument("unknown reduction op code " + std::to_string(op));
  })
}

ll_tensor ll_var(ll_tensor t, const double* dims, int ndims, double correction, int keepdim) {
  LL_T("var", {
    Borrow x(t);
    auto d = dims_of(dims, ndims, "dims");
    std::optional<at::IntArrayRef> dd;
    if (!d.empty()) dd = at::IntArrayRef(d);
    return wrap(at::var(*x, dd, at::Scalar(correction), keepdim != 0));
  })
}

ll_tensor ll_std(ll_tensor t, const double* dims, int ndims, double correction, int keepdim) {
  LL_T("std", {
    Borrow x(t);
    auto d = dims_of(dims, ndims, "dims");
    std::optional<at::IntArrayRef> dd;
    if (!d.empty()) dd = at::IntArrayRef(d);
    return wrap(at::std(*x, dd, at::Scalar(correction), keepdim != 0));
  })
}

int ll_max_dim(ll_tensor t, double dim, int keepdim, int is_min, ll_tensor* out2) {
  LL_I(is_min ? "min" : "max", {
    Borrow x(t);
    auto r = is_min ? x->min(to_i64(dim, "dim"), keepdim != 0) : x->max(to_i64(dim, "dim"), keepdim != 0);
    out2[0] = wrap(std::move(std::get<0>(r)));
    try {
      out2[1] = wrap(std::move(std::get<1>(r)));
    } catch (...) {
      ll_free(out2[0]);
      throw;
    }
    return 2;
  })
}

ll_tensor ll_argmax(ll_tensor t, double dim, int has_dim, int keepdim) {
  LL_T("argmax", {
    Borrow x(t);
    std::optional<int64_t> d;
    if (has_dim) d = to_i64(dim, "dim");
    return wrap(x->argmax(d, keepdim != 0));
  })
}

ll_tensor ll_norm(ll_tensor t, double p, const double* dims, int ndims, int keepdim) {
  LL_T("norm", {
    Borrow x(t);
    auto d = dims_of(dims, ndims, "dims");
    if (d.empty()) return wrap(at::linalg_vector_norm(*x, p, std::nullopt, keepdim != 0));
    return wrap(at::linalg_vector_norm(*x, p, at::IntArrayRef(d), keepdim != 0));
  })
}

ll_tensor ll_svdvals(ll_tensor t) {
  LL_T("svdvals", {
    Borrow x(t);
    return wrap(at::linalg_svdvals(*x));
  })
}

}  // extern "C"
