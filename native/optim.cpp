// Optimizer kernels: AdamW over lists of tensors (fused where supported, foreach otherwise) and grad-norm clipping.
#include "common.h"

using namespace ll;

namespace {
void check_lists(const std::vector<at::Tensor>& p, const std::vector<at::Tensor>& g, const std::vector<at::Tensor>& m,
                 const std::vector<at::Tensor>& v) {
  for (size_t i = 0; i < p.size(); i++) {
    if (!g[i].defined()) throw std::invalid_argument("parameter " + std::to_string(i) + " has no gradient");
    if (p[i].sizes() != g[i].sizes() || p[i].sizes() != m[i].sizes() || p[i].sizes() != v[i].sizes())
      throw std::invalid_argument("parameter " + std::to_string(i) + " has shape " + c10::str(p[i].sizes()) +
                                  " but its gradient/state has shape " + c10::str(g[i].sizes()) + "/" +
                                  c10::str(m[i].sizes()) + "/" + c10::str(v[i].sizes()));
  }
}
}  // namespace

extern "C" {

int ll_adamw_step(const ll_tensor* params, const ll_tensor* grads, const ll_tensor* exp_avg,
                  const ll_tensor* exp_avg_sq, const ll_tensor* steps, int n, double lr, double beta1,
                  double beta2, double weight_decay, double eps, int use_fused, ll_tensor lr_tensor) {
  LL_I("adamw_step", {
    if (n == 0) return use_fused == 0 ? 0 : 1;
    BorrowList p(params, n, "param"), g(grads, n, "grad"), m(exp_avg, n, "exp_avg"), v(exp_avg_sq, n, "exp_avg_sq"),
        s(steps, n, "step");
    check_lists(p.v, g.v, m.v, v.v);
    std::optional<at::Tensor> lr_t;
    if (lr_tensor != 0) {
      Borrow l(lr_tensor);
      if (l->numel() != 1 || !l->is_floating_point())
        throw std::invalid_argument("the learning-rate tensor must hold one floating-point value");
      if (l->device() != p.v[0].device())
        throw std::invalid_argument("the learning-rate tensor is on " + l->device().str() +
                                    " but the parameters are on " + p.v[0].device().str());
      lr_t = *l;
    }
    c10::NoGradGuard ng;
    bool fused = use_fused == 1 || (use_fused < 0 && (p.v[0].is_cuda() || p.v[0].is_cpu()));
    if (fused) {
      // _fused_adamw_ reads the step counters but does not advance them (torch.optim does that first).
      at::_foreach_add_(s.v, 1);
      if (lr_t)
        at::_fused_adamw_(p.v, g.v, m.v, v.v, {}, s.v, *lr_t, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                          /*maximize=*/false);
      else
        at::_fused_adamw_(p.v, g.v, m.v, v.v, {}, s.v, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                          /*maximize=*/false);
      return 1;
    }
    // foreach fallback, the same arithmetic as torch.optim.AdamW(foreach=True).
    at::_foreach_add_(s.v, 1);
    host_reads++;
    double step = s.v[0].item().toDouble();
    if (lr_t) {
      host_reads++;
      lr = lr_t->item().toDouble();  // the foreach formulation takes a host number: not capturable
    }
    double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
    if (weight_decay != 0) at::_foreach_mul_(p.v, 1 - lr * weight_decay);
    at::_foreach_lerp_(m.v, g.v, 1 - beta1);
    at::_foreach_mul_(v.v, beta2);
    at::_foreach_addcmul_(v.v, g.v, g.v, 1 - beta2);
    auto denom = at::_foreach_sqrt(v.v);
    at::_foreach_div_(denom, std::sqrt(bc2));
    at::_foreach_add_(denom, eps);
    at::_foreach_addcdiv_(p.v, m.v, denom, -lr / bc1);
    return 0;
  })
}

ll_tensor ll_clip_grad_norm(const ll_tensor* params, int n, double max_norm) {
  LL_T("clip_grad_norm", {
    BorrowList p(params, n, "param");
    std::vector<at::Tensor> gs;
    for (auto& t : p.v)
      if (t.grad().defined()) gs.push_back(t.grad());
    c10::NoGradGuard ng;
    if (gs.empty()) return wrap(at::zeros({}, at::kFloat));
    auto norms = at::_foreach_norm(gs, 2);
    auto total = at::linalg_vector_norm(at::stack(norms).to(at::kFloat), 2);
    if (max_norm > 0) {
      auto coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
      at::_foreach_mul_(gs, coef);
    }
    return wrap(std::move(total));
  })
}

}  // extern "C"
