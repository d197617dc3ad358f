// Elementwise arithmetic, comparisons and logic (with broadcasting), unary functions, in-place updates, initialisers.
#include <cmath>

#include "common.h"

using namespace ll;

namespace {
at::Tensor binary(int op, const at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case LL_BINARY_ADD: return at::add(a, b);
    case LL_BINARY_SUB: return at::sub(a, b);
    case LL_BINARY_MUL: return at::mul(a, b);
    case LL_BINARY_DIV: return at::div(a, b);
    case LL_BINARY_POW: return at::pow(a, b);
    case LL_BINARY_EQ: return at::eq(a, b);
    case LL_BINARY_NE: return at::ne(a, b);
    case LL_BINARY_LT: return at::lt(a, b);
    case LL_BINARY_LE: return at::le(a, b);
    case LL_BINARY_GT: return at::gt(a, b);
    case LL_BINARY_GE: return at::ge(a, b);
    case LL_BINARY_LOGICAL_AND: return at::logical_and(a, b);
    case LL_BINARY_LOGICAL_OR: return at::logical_or(a, b);
    case LL_BINARY_LOGICAL_XOR: return at::logical_xor(a, b);
    case LL_BINARY_MAXIMUM: return at::maximum(a, b);
    case LL_BINARY_MINIMUM: return at::minimum(a, b);
  }
  throw std::invalid_argument("unknown binary op code " + std::to_string(op));
}

at::Tensor binary_scalar(int op, const at::Tensor& a, const at::Scalar& s) {
  switch (op) {
    case LL_BINARY_ADD: return at::add(a, s);
    case LL_BINARY_SUB: return at::sub(a, s);
    case LL_BINARY_MUL: return at::mul(a, s);
    case LL_BINARY_DIV: return at::div(a, s);
    case LL_BINARY_POW: return at::pow(a, s);
    case LL_BINARY_EQ: return at::eq(a, s);
    case LL_BINARY_NE: return at::ne(a, s);
    case LL_BINARY_LT: return at::lt(a, s);
    case LL_BINARY_LE: return at::le(a, s);
    case LL_BINARY_GT: return at::gt(a, s);
    case LL_BINARY_GE: return at::ge(a, s);
    case LL_BINARY_MAXIMUM: return at::clamp_min(a, s);
    case LL_BINARY_MINIMUM: return at::clamp_max(a, s);
  }
  throw std::invalid_argument("binary op code " + std::to_string(op) + " has no scalar form");
}

const char* binary_name(int op) {
  switch (op) {
    case LL_BINARY_ADD: return "add";
    case LL_BINARY_SUB: return "sub";
    case LL_BINARY_MUL: return "mul";
    case LL_BINARY_DIV: return "div";
    case LL_BINARY_POW: return "pow";
    case LL_BINARY_EQ: return "eq";
    case LL_BINARY_NE: return "ne";
    case LL_BINARY_LT: return "lt";
    case LL_BINARY_LE: return "le";
    case LL_BINARY_GT: return "gt";
    case LL_BINARY_GE: return "ge";
    case LL_BINARY_LOGICAL_AND: return "logical_and";
    case LL_BINARY_LOGICAL_OR: return "logical_or";
    case LL_BINARY_LOGICAL_XOR: return "logical_xor";
    case LL_BINARY_MAXIMUM: return "maximum";
    case LL_BINARY_MINIMUM: return "minimum";
  }
  return "binary";
}

const char* unary_name(int op) {
  switch (op) {
    case LL_UNARY_NEG: return "neg";
    case LL_UNARY_ABS: return "abs";
    case LL_UNARY_SQRT: return "sqrt";
    case LL_UNARY_RSQRT: return "rsqrt";
    case LL_UNARY_EXP: return "exp";
    case LL_UNARY_LOG: return "log";
    case LL_UNARY_TANH: return "tanh";
    case LL_UNARY_SIGMOID: return "sigmoid";
    case LL_UNARY_RELU: return "relu";
    case LL_UNARY_GELU: return "gelu";
    case LL_UNARY_GELU_TANH: return "gelu";
    case LL_UNARY_LOGICAL_NOT: return "logical_not";
    case LL_UNARY_SIN: return "sin";
    case LL_UNARY_COS: return "cos";
    case LL_UNARY_ERF: return "erf";
    case LL_UNARY_SQUARE: return "square";
    case LL_UNARY_RECIPROCAL: return "reciprocal";
    case LL_UNARY_SIGN: return "sign";
    case LL_UNARY_FLOOR: return "floor";
  }
  return "unary";
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
      case LL_UNARY_NEG: return wrap(at::neg(t));
      case LL_UNARY_ABS: return wrap(at::abs(t));
      case LL_UNARY_SQRT: return wrap(at::sqrt(t));
      case LL_UNARY_RSQRT: return wrap(at::rsqrt(t));
      case LL_UNARY_EXP: return wrap(at::exp(t));
      case LL_UNARY_LOG: return wrap(at::log(t));
      case LL_UNARY_TANH: return wrap(at::tanh(t));
      case LL_UNARY_SIGMOID: return wrap(at::sigmoid(t));
      case LL_UNARY_RELU: return wrap(at::relu(t));
      case LL_UNARY_GELU: return wrap(at::gelu(t, "none"));
      case LL_UNARY_GELU_TANH: return wrap(at::gelu(t, "tanh"));
      case LL_UNARY_LOGICAL_NOT: return wrap(at::logical_not(t));
      case LL_UNARY_SIN: return wrap(at::sin(t));
      case LL_UNARY_COS: return wrap(at::cos(t));
      case LL_UNARY_ERF: return wrap(at::erf(t));
      case LL_UNARY_SQUARE: return wrap(at::square(t));
      case LL_UNARY_RECIPROCAL: return wrap(at::reciprocal(t));
      case LL_UNARY_SIGN: return wrap(at::sign(t));
      case LL_UNARY_FLOOR: return wrap(at::floor(t));
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
