// Tensor factories: constant fills, ranges, identity, random tensors.
#include "common.h"

using namespace ll;

extern "C" {

ll_tensor ll_zeros(const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("zeros", return wrap(at::zeros(dims_of(shape, ndim), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_ones(const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("ones", return wrap(at::ones(dims_of(shape, ndim), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_empty(const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("empty", return wrap(at::empty(dims_of(shape, ndim), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_full(const double* shape, int ndim, double value, int dtype, int dev_type, int dev_index) {
  LL_T("full", return wrap(at::full(dims_of(shape, ndim), value, options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_arange(double start, double end, double step, int dtype, int dev_type, int dev_index) {
  LL_T("arange", return wrap(at::arange(start, end, step, options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_eye(double n, double m, int dtype, int dev_type, int dev_index) {
  LL_T("eye", return wrap(at::eye(to_i64(n, "n"), to_i64(m, "m"), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_rand(const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("rand", return wrap(at::rand(dims_of(shape, ndim), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_randn(const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("randn", return wrap(at::randn(dims_of(shape, ndim), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_randint(double low, double high, const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("randint", {
    return wrap(at::randint(to_i64(low, "low"), to_i64(high, "high"), dims_of(shape, ndim),
                            options_of(dtype, dev_type, dev_index)));
  })
}
ll_tensor ll_randperm(double n, int dtype, int dev_type, int dev_index) {
  LL_T("randperm", return wrap(at::randperm(to_i64(n, "n"), options_of(dtype, dev_type, dev_index)));)
}
ll_tensor ll_zeros_like(ll_tensor t) { LL_T("zeros_like", return wrap(at::zeros_like(*Borrow(t)));) }
ll_tensor ll_ones_like(ll_tensor t) { LL_T("ones_like", return wrap(at::ones_like(*Borrow(t)));) }

}  // extern "C"
