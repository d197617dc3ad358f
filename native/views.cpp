// Views, joins, splits and indexing.
#include "common.h"

using namespace ll;

namespace {
int write_list(const std::vector<at::Tensor>& parts, ll_tensor* out, int max_out, const char* op) {
  if (static_cast<int>(parts.size()) > max_out)
    throw std::invalid_argument(std::string(op) + " produced " + std::to_string(parts.size()) +
                                " tensors but the output array holds " + std::to_string(max_out));
  for (size_t i = 0; i < parts.size(); i++) out[i] = wrap(at::Tensor(parts[i]));
  return static_cast<int>(parts.size());
}
}  // namespace

extern "C" {

ll_tensor ll_reshape(ll_tensor t, const double* shape, int ndim) {
  LL_T("reshape", return wrap(Borrow(t)->reshape(dims_of(shape, ndim)));)
}
ll_tensor ll_view(ll_tensor t, const double* shape, int ndim) {
  LL_T("view", return wrap(Borrow(t)->view(dims_of(shape, ndim)));)
}
ll_tensor ll_permute(ll_tensor t, const double* dims, int ndim) {
  LL_T("permute", return wrap(Borrow(t)->permute(dims_of(dims, ndim, "dims")));)
}
ll_tensor ll_transpose(ll_tensor t, double d0, double d1) {
  LL_T("transpose", return wrap(Borrow(t)->transpose(to_i64(d0, "dim0"), to_i64(d1, "dim1")));)
}
ll_tensor ll_contiguous(ll_tensor t) { LL_T("contiguous", return wrap(Borrow(t)->contiguous());) }
ll_tensor ll_flatten(ll_tensor t, double start, double end) {
  LL_T("flatten", return wrap(Borrow(t)->flatten(to_i64(start, "start_dim"), to_i64(end, "end_dim")));)
}
ll_tensor ll_unsqueeze(ll_tensor t, double dim) { LL_T("unsqueeze", return wrap(Borrow(t)->unsqueeze(to_i64(dim, "dim")));) }
ll_tensor ll_squeeze(ll_tensor t, double dim, int all) {
  LL_T("squeeze", {
    Borrow b(t);
    return wrap(all ? b->squeeze() : b->squeeze(to_i64(dim, "dim")));
  })
}
ll_tensor ll_expand(ll_tensor t, const double* shape, int ndim) {
  LL_T("expand", return wrap(Borrow(t)->expand(dims_of(shape, ndim)));)
}
ll_tensor ll_narrow(ll_tensor t, double dim, double start, double length) {
  LL_T("narrow", return wrap(Borrow(t)->narrow(to_i64(dim, "dim"), to_i64(start, "start"), to_i64(length, "length")));)
}
ll_tensor ll_select(ll_tensor t, double dim, double index) {
  LL_T("select", return wrap(Borrow(t)->select(to_i64(dim, "dim"), to_i64(index, "index")));)
}
ll_tensor ll_cat(const ll_tensor* ts, int n, double dim) {
  LL_T("cat", {
    BorrowList l(ts, n);
    return wrap(at::cat(l.v, to_i64(dim, "dim")));
  })
}
ll_tensor ll_stack(const ll_tensor* ts, int n, double dim) {
  LL_T("stack", {
    BorrowList l(ts, n);
    return wrap(at::stack(l.v, to_i64(dim, "dim")));
  })
}
int ll_split(ll_tensor t, double size, double dim, ll_tensor* out, int max_out) {
  LL_I("split", return write_list(Borrow(t)->split(to_i64(size, "split_size"), to_i64(dim, "dim")), out, max_out, "split");)
}
int ll_chunk(ll_tensor t, double chunks, double dim, ll_tensor* out, int max_out) {
  LL_I("chunk", return write_list(Borrow(t)->chunk(to_i64(chunks, "chunks"), to_i64(dim, "dim")), out, max_out, "chunk");)
}
ll_tensor ll_index_select(ll_tensor t, double dim, ll_tensor index) {
  LL_T("index_select", return wrap(Borrow(t)->index_select(to_i64(dim, "dim"), *Borrow(index, "index")));)
}
ll_tensor ll_gather(ll_tensor t, double dim, ll_tensor index) {
  LL_T("gather", return wrap(Borrow(t)->gather(to_i64(dim, "dim"), *Borrow(index, "index")));)
}
ll_tensor ll_scatter(ll_tensor t, double dim, ll_tensor index, ll_tensor src) {
  LL_T("scatter", return wrap(Borrow(t)->scatter(to_i64(dim, "dim"), *Borrow(index, "index"), *Borrow(src, "src")));)
}
ll_tensor ll_masked_fill(ll_tensor t, ll_tensor mask, double value) {
  LL_T("masked_fill", return wrap(Borrow(t)->masked_fill(*Borrow(mask, "mask"), value));)
}
ll_tensor ll_where(ll_tensor cond, ll_tensor a, ll_tensor b) {
  LL_T("where", return wrap(at::where(*Borrow(cond, "condition"), *Borrow(a), *Borrow(b)));)
}
ll_tensor ll_argsort(ll_tensor t, double dim, int descending) {
  LL_T("argsort", return wrap(Borrow(t)->argsort(to_i64(dim, "dim"), descending != 0));)
}
int ll_topk(ll_tensor t, double k, double dim, int largest, int sorted, ll_tensor* out2) {
  LL_I("topk", {
    auto r = Borrow(t)->topk(to_i64(k, "k"), to_i64(dim, "dim"), largest != 0, sorted != 0);
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

}  // extern "C"
