// Autograd: backward, gradients, detach.
#include "common.h"

using namespace ll;

extern "C" {

int ll_backward(ll_tensor t, ll_tensor grad, int retain_graph) {
  LL_I("backward", {
    Borrow x(t);
    OptBorrow g(grad);
    if (!x->requires_grad())
      throw std::invalid_argument("tensor does not require grad and has no grad_fn (was it computed under noGrad, "
                                  "or from tensors that do not require grad?)");
    if (!g.t && x->numel() != 1)
      throw std::invalid_argument("backward without a gradient needs a scalar output, got shape " +
                                  c10::str(x->sizes()));
    x->backward(g.t.value_or(at::Tensor()), retain_graph != 0 ? std::optional<bool>(true) : std::nullopt);
    return 0;
  })
}

int ll_grad_defined(ll_tensor t) { LL_I("grad", return Borrow(t)->grad().defined() ? 1 : 0;) }

ll_tensor ll_grad(ll_tensor t) {
  LL_T("grad", {
    Borrow x(t);
    const auto& g = x->grad();
    if (!g.defined()) throw std::invalid_argument("the tensor has no gradient");
    return wrap(at::Tensor(g));
  })
}

int ll_set_grad(ll_tensor t, ll_tensor grad) {
  LL_I("set_grad", {
    Borrow x(t);
    OptBorrow g(grad);
    // The checks of PyTorch's `.grad` setter: a mismatched gradient would be accumulated into silently.
    if (g.t) {
      if (g.t->scalar_type() != x->scalar_type() || g.t->device() != x->device())
        throw std::invalid_argument("assigned grad has dtype " + std::string(c10::toString(g.t->scalar_type())) +
                                    " on " + g.t->device().str() + " but the tensor has dtype " +
                                    c10::toString(x->scalar_type()) + " on " + x->device().str());
      if (g.t->sizes() != x->sizes())
        throw std::invalid_argument("assigned grad has shape " + c10::str(g.t->sizes()) +
                                    " but the tensor has shape " + c10::str(x->sizes()));
    }
    x->mutable_grad() = g.t.value_or(at::Tensor());
    return 0;
  })
}

int ll_zero_grad(ll_tensor t, int set_to_none) {
  LL_I("zero_grad", {
    Borrow x(t);
    auto& g = x->mutable_grad();
    if (g.defined()) {
      if (set_to_none) {
        g = at::Tensor();
      } else {
        g.detach_();
        g.zero_();
      }
    }
    return 0;
  })
}

ll_tensor ll_detach(ll_tensor t) { LL_T("detach", return wrap(Borrow(t)->detach());) }

int ll_grad_fn_defined(ll_tensor t) { LL_I("grad_fn", return Borrow(t)->grad_fn() ? 1 : 0;) }

}  // extern "C"
