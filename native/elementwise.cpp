// Elementwise arithmetic, comparisons and logic (with broadcasting), unary functions, in-place updates, initialisers.
#include <cmath>

#include "common.h"

using namespace ll;

namespace {
at::Tensor binary(int op, const at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case 0: return at::add(a, b);
    case 1: return at::sub(a, b);
    case 2: return at::mul(a, b);
    case 3: return at::div(a, b);
    case 4: return at::pow(a, b);
    case 5: return at::eq(a, b);
    case 6: return at::ne(a, b);
    case 7: return at::lt(a, b);
    case 8: return at::le(a, b);
    case 9: return at::gt(a, b);
    case 10: return at::ge(a, b);
    case 11: return at::logical_and(a, b);
    case 12: return at::logical_or(a, b);
    case 13: return at::logical_xor(a, b);
    case 14: return at::maximum(a, b);
    case 15: return at::minimum(a, b);
  }
  throw std::invalid_argument("unknown binary op code " + std::to_string(op));
}

at::Tensor binary_scalar(int op, const at::Tensor& a, const at::Scalar& s) {
  switch (op) {
    case 0: return at::add(a, s);
    case 1: return at::sub(a, s);
    case 2: return at::mul(a, s);
    case 3: return at::div(a, s);
    case 4: return at::pow(a, s);
    case 5: return at::eq(a, s);
    case 6: return at::ne(a, s);
    case 7: return at::lt(a, s);
    case 8: return at::le(a, s);
    case 9: return at::gt(a, s);
    case 10: return at::ge(a, s);
    case 14: return at::clamp_min(a, s);
    case 15: return at::clamp_max(a, s);
  }
  throw std::invalid_argument("binary op code " + std::to_string(op) + " has no scalar form");
}

const char* binary_name(int op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge",
                                "logical_and", "logical_or", "logical_xor", "maximum", "minimum"};
  return op >= 0 && op < 16 ? names[op] : "binary";
}

const char* unary_name(int op) {
  static const char* names[] = {"neg", "abs", "sqrt", "rsqrt", "exp", "log", "tanh", "sigmoid", "relu", "gelu",
                                "gelu", "logical_not", "sin", "cos", "erf", "square", "reciprocal", "sign", "floor"};
  return op >= 0 && op < 19 ? names[op] : "unary";
}

// A JS number becomes an integral Scalar when it is one and the tensor is integral, so that
// integer tensors stay integer (as in PyTorch, where 2 and 2.0 differ).
inline at::Scalar scalar_for(const at::Tensor& t, double s) {
  if (!at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) && std::floor(s) == s &&
      std::abs(s) < 9.007199254740992e15)
    return at::Scalar(static_cast<int64_t>(s));
  return at::Scalar(s);
}
}  // namespace

extern "C" {

ll_tensor ll_binary(int op, ll_tensor a, ll_tensor b) { LL_T(binary_name(op), return wrap(binary(op, *Borrow(a), *Borrow(b)));) }
ll_tensor ll_binary_scalar(int op, ll_tensor a, double s) {
  LL_T(binary_name(op), {
    Borrow x(a);
    return wrap(binary_scalar(op, *x, scalar_for(*x, s)));
  })
}
ll_tensor ll_add(ll_tensor a, ll_tensor b) { LL_T("add", return wrap(at::add(*Borrow(a), *Borrow(b)));) }
ll_tensor ll_add_scaled(ll_tensor a, ll_tensor b, double alpha) {
  LL_T("add", {
    Borrow x(a);
    return wrap(at::add(*x, *Borrow(b), scalar_for(*x, alpha)));
  })
}
ll_tensor ll_mul(ll_tensor a, ll_tensor b) { LL_T("mul", return wrap(at::mul(*Borrow(a), *Borrow(b)));) }
ll_tensor ll_rsub_scalar(ll_tensor a, double s) {
  LL_T("rsub", {
    Borrow x(a);
    return wrap(at::rsub(*x, scalar_for(*x, s)));
  })
}
ll_tensor ll_rdiv_scalar(ll_tensor a, double s) {
  LL_T("rdiv", return wrap(at::mul(at::reciprocal(*Borrow(a)), s));)
}

ll_tensor ll_unary(int op, ll_tensor a) {
  LL_T(unary_name(op), {
    Borrow x(a);
    const at::Tensor& t = *x;
    switch (op) {
      case 0: return wrap(at::neg(t));
      case 1: return wrap(at::abs(t));
      case 2: return wrap(at::sqrt(t));
      case 3: return wrap(at::rsqrt(t));
      case 4: return wrap(at::exp(t));
      case 5: return wrap(at::log(t));
      case 6: return wrap(at::tanh(t));
      case 7: return wrap(at::sigmoid(t));
      case 8: return wrap(at::relu(t));
      case 9: return wrap(at::gelu(t, "none"));
      case 10: return wrap(at::gelu(t, "tanh"));
      case 11: return wrap(at::logical_not(t));
      case 12: return wrap(at::sin(t));
      case 13: return wrap(at::cos(t));
      case 14: return wrap(at::erf(t));
      case 15: return wrap(at::square(t));
      case 16: return wrap(at::reciprocal(t));
      case 17: return wrap(at::sign(t));
      case 18: return wrap(at::floor(t));
    }
    throw std::invalid_argument("unknown unary op code " + std::to_string(op));
  })
}

ll_tensor ll_clamp(ll_tensor t, double min, int has_min, double max, int has_max) {
  LL_T("clamp", {
    if (!has_min && !has_max) throw std::invalid_argument("at least one of min or max must be given");
    Borrow x(t);
    std::optional<at::Scalar> lo, hi;
    if (has_min) lo = scalar_for(*x, min);
    if (has_max) hi = scalar_for(*x, max);
    return wrap(at::clamp(*x, lo, hi));
  })
}

int ll_add_(ll_tensor t, ll_tensor other, double alpha) {
  LL_I("add_", {
    Borrow x(t);
    x->add_(*Borrow(other, "other"), scalar_for(*x, alpha));
    return 0;
  })
}
int ll_add_scalar_(ll_tensor t, double s) {
  LL_I("add_", {
    Borrow x(t);
    x->add_(scalar_for(*x, s));
    return 0;
  })
}
int ll_mul_(ll_tensor t, ll_tensor other) {
  LL_I("mul_", {
    Borrow x(t);
    x->mul_(*Borrow(other, "other"));
    return 0;
  })
}
int ll_mul_scalar_(ll_tensor t, double s) {
  LL_I("mul_", {
    Borrow x(t);
    x->mul_(scalar_for(*x, s));
    return 0;
  })
}
int ll_copy_(ll_tensor t, ll_tensor src) {
  LL_I("copy_", {
    Borrow x(t);
    x->copy_(*Borrow(src, "src"));
    return 0;
  })
}
int ll_zero_(ll_tensor t) {
  LL_I("zero_", {
    Borrow x(t);
    x->zero_();
    return 0;
  })
}
int ll_fill_(ll_tensor t, double value) {
  LL_I("fill_", {
    Borrow x(t);
    x->fill_(scalar_for(*x, value));
    return 0;
  })
}

// Initialisers run without recording autograd history, as torch.nn.init does.
int ll_normal_(ll_tensor t, double mean, double std) {
  LL_I("normal_", {
    c10::NoGradGuard g;
    Borrow x(t);
    x->normal_(mean, std);
    return 0;
  })
}
int ll_uniform_(ll_tensor t, double low, double high) {
  LL_I("uniform_", {
    c10::NoGradGuard g;
    Borrow x(t);
    x->uniform_(low, high);
    return 0;
  })
}
// Truncated normal by inverse-CDF sampling, the method torch.nn.init.trunc_normal_ uses.
int ll_trunc_normal_(ll_tensor t, double mean, double std, double a, double b) {
  LL_I("trunc_normal_", {
    if (!(std > 0)) throw std::invalid_argument("std must be positive");
    if (!(a < b)) throw std::invalid_argument("the lower bound a must be below the upper bound b");
    c10::NoGradGuard g;
    Borrow x(t);
    auto cdf = [](double v) { return (1.0 + std::erf(v / std::sqrt(2.0))) / 2.0; };
    double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
    x->uniform_(2 * l - 1, 2 * u - 1);
    x->erfinv_();
    x->mul_(std * std::sqrt(2.0));
    x->add_(mean);
    x->clamp_(a, b);
    return 0;
  })
}
// Xavier/Glorot uniform for a weight of shape [fan_out, fan_in, *receptive field].
int ll_xavier_uniform_(ll_tensor t, double gain) {
  LL_I("xavier_uniform_", {
    c10::NoGradGuard g;
    Borrow x(t);
    if (x->dim() < 2)
      throw std::invalid_argument("xavier_uniform_ needs at least 2 dimensions, got " + std::to_string(x->dim()));
    int64_t receptive = 1;
    for (int64_t i = 2; i < x->dim(); i++) receptive *= x->size(i);
    double fan_in = static_cast<double>(x->size(1) * receptive);
    double fan_out = static_cast<double>(x->size(0) * receptive);
    double bound = gain * std::sqrt(6.0 / (fan_in + fan_out));
    x->uniform_(-bound, bound);
    return 0;
  })
}

}  // extern "C"
