// Neural-network ops: matrix products, convolution, normalisation, softmax, dropout, attention, losses.
#include "common.h"

using namespace ll;

namespace {
int64_t reduction_of(int r) {
  switch (r) {
    case LL_REDUCTION_NONE: return at::Reduction::None;
    case LL_REDUCTION_MEAN: return at::Reduction::Mean;
    case LL_REDUCTION_SUM: return at::Reduction::Sum;
  }
  throw std::invalid_argument("reduction must be 'none', 'mean' or 'sum'");
}
}  // namespace

extern "C" {

ll_tensor ll_matmul(ll_tensor a, ll_tensor b) { LL_T("matmul", return wrap(at::matmul(*Borrow(a), *Borrow(b)));) }
ll_tensor ll_bmm(ll_tensor a, ll_tensor b) { LL_T("bmm", return wrap(at::bmm(*Borrow(a), *Borrow(b)));) }

ll_tensor ll_linear(ll_tensor x, ll_tensor w, ll_tensor bias) {
  LL_T("linear", {
    OptBorrow b(bias);
    return wrap(at::linear(*Borrow(x, "input"), *Borrow(w, "weight"), b.t));
  })
}

ll_tensor ll_conv3d(ll_tensor x, ll_tensor w, ll_tensor bias, const double* stride3, const double* padding3,
                    const double* dilation3, double groups) {
  LL_T("conv3d", {
    OptBorrow b(bias);
    return wrap(at::conv3d(*Borrow(x, "input"), *Borrow(w, "weight"), b.t, dims_of(stride3, 3, "stride"),
                           dims_of(padding3, 3, "padding"), dims_of(dilation3, 3, "dilation"),
                           to_i64(groups, "groups")));
  })
}

ll_tensor ll_layer_norm(ll_tensor x, const double* shape, int ndim, ll_tensor w, ll_tensor b, double eps) {
  LL_T("layer_norm", {
    OptBorrow wb(w), bb(b);
    return wrap(at::layer_norm(*Borrow(x, "input"), dims_of(shape, ndim, "normalized_shape"), wb.t, bb.t, eps));
  })
}

ll_tensor ll_softmax(ll_tensor x, double dim, int log) {
  LL_T(log ? "log_softmax" : "softmax", {
    Borrow t(x);
    auto d = to_i64(dim, "dim");
    return wrap(log ? at::log_softmax(*t, d) : at::softmax(*t, d));
  })
}

ll_tensor ll_dropout(ll_tensor x, double p, int train) {
  LL_T("dropout", {
    if (p < 0 || p > 1) throw std::invalid_argument("dropout probability must be in [0, 1], got " + std::to_string(p));
    return wrap(at::dropout(*Borrow(x), p, train != 0));
  })
}

ll_tensor ll_sdpa(ll_tensor q, ll_tensor k, ll_tensor v, ll_tensor mask, double dropout_p, int is_causal,
                  double scale, int has_scale) {
  LL_T("scaled_dot_product_attention", {
    OptBorrow m(mask);
    std::optional<double> s;
    if (has_scale) s = scale;
    return wrap(at::scaled_dot_product_attention(*Borrow(q, "query"), *Borrow(k, "key"), *Borrow(v, "value"), m.t,
                                                 dropout_p, is_causal != 0, s));
  })
}

int ll_sdpa_backend(ll_tensor q, ll_tensor k, ll_tensor v, ll_tensor mask, double dropout_p, int is_causal) {
  LL_I("sdpa_backend", {
    OptBorrow m(mask);
    return static_cast<int>(at::_fused_sdp_choice(*Borrow(q, "query"), *Borrow(k, "key"), *Borrow(v, "value"), m.t,
                                                  dropout_p, is_causal != 0));
  })
}

ll_tensor ll_mse_loss(ll_tensor x, ll_tensor y, int reduction) {
  LL_T("mse_loss", {
    Borrow a(x, "input"), b(y, "target");
    if (a->sizes() != b->sizes())
      throw std::invalid_argument("input shape " + c10::str(a->sizes()) + " differs from target shape " +
                                  c10::str(b->sizes()) + " (no broadcasting in mse_loss)");
    return wrap(at::mse_loss(*a, *b, reduction_of(reduction)));
  })
}

ll_tensor ll_cross_entropy(ll_tensor logits, ll_tensor target, ll_tensor weight, int reduction, double ignore_index,
                           double label_smoothing) {
  LL_T("cross_entropy", {
    OptBorrow w(weight);
    return wrap(at::cross_entropy_loss(*Borrow(logits, "input"), *Borrow(target, "target"), w.t,
                                       reduction_of(reduction), to_i64(ignore_index, "ignore_index"),
                                       label_smoothing));
  })
}

}  // extern "C"
