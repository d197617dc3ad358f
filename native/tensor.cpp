// Tensor metadata, creation from host data, copying data out, dtype/device conversion.
#include <cstring>

#include "common.h"

using namespace ll;

extern "C" {

int ll_dim(ll_tensor t) { LL_I("dim", return static_cast<int>(Borrow(t)->dim());) }

int ll_sizes(ll_tensor t, double* out) {
  LL_I("sizes", {
    Borrow b(t);
    auto s = b->sizes();
    for (size_t i = 0; i < s.size(); i++) out[i] = static_cast<double>(s[i]);
    return static_cast<int>(s.size());
  })
}

int ll_strides(ll_tensor t, double* out) {
  LL_I("strides", {
    Borrow b(t);
    auto s = b->strides();
    for (size_t i = 0; i < s.size(); i++) out[i] = static_cast<double>(s[i]);
    return static_cast<int>(s.size());
  })
}

int ll_dtype(ll_tensor t) { LL_I("dtype", return static_cast<int>(Borrow(t)->scalar_type());) }

int ll_device(ll_tensor t, int* out2) {
  LL_I("device", {
    Borrow b(t);
    auto d = b->device();
    out2[0] = d.is_cpu() ? 0 : d.is_cuda() ? 1 : 99;
    out2[1] = d.has_index() ? d.index() : -1;
    return 0;
  })
}

int ll_numel(ll_tensor t, double* out) { LL_I("numel", *out = static_cast<double>(Borrow(t)->numel()); return 0;) }

int ll_requires_grad(ll_tensor t) { LL_I("requires_grad", return Borrow(t)->requires_grad() ? 1 : 0;) }
int ll_set_requires_grad(ll_tensor t, int flag) {
  LL_I("requires_grad_", {
    Borrow b(t);
    // As PyTorch's requires_grad_: only a leaf can stop requiring grad (libtorch alone would ignore it).
    if (flag == 0 && !b->is_leaf())
      throw std::invalid_argument(
          "you can only change requires_grad flags of leaf variables; use detach() to get a tensor without "
          "grad history");
    b->set_requires_grad(flag != 0);
    return 0;
  })
}
int ll_is_contiguous(ll_tensor t) { LL_I("is_contiguous", return Borrow(t)->is_contiguous() ? 1 : 0;) }
int ll_is_leaf(ll_tensor t) { LL_I("is_leaf", return Borrow(t)->is_leaf() ? 1 : 0;) }

// Copies host data (element type given by dtype; bf16/f16 as raw 16-bit words) into a new tensor.
ll_tensor ll_from_data(const void* data, const double* shape, int ndim, int dtype, int dev_type, int dev_index) {
  LL_T("from_data", {
    host_writes++;
    auto dims = dims_of(shape, ndim);
    auto st = dtype_of(dtype);
    auto t = at::empty(dims, at::TensorOptions().dtype(st));
    size_t nbytes = static_cast<size_t>(t.numel()) * c10::elementSize(st);
    if (nbytes > 0) {
      if (data == nullptr) throw std::invalid_argument("null data pointer");
      std::memcpy(t.data_ptr(), data, nbytes);
    }
    auto dev = device_of(dev_type, dev_index);
    if (!dev.is_cpu()) t = t.to(dev);
    return wrap(std::move(t));
  })
}

// Copies the tensor's elements, in row-major order, into a host buffer of exactly nbytes.
int ll_copy_to_buffer(ll_tensor t, void* out, double nbytes) {
  LL_I("copy_to_buffer", {
    Borrow b(t);
    host_reads++;
    auto c = b->detach().to(c10::kCPU).contiguous();
    size_t need = static_cast<size_t>(c.numel()) * c.element_size();
    if (static_cast<double>(need) != nbytes)
      throw std::invalid_argument("buffer holds " + std::to_string(static_cast<int64_t>(nbytes)) +
                                  " bytes but the tensor needs " + std::to_string(need));
    if (need > 0) std::memcpy(out, c.data_ptr(), need);
    return 0;
  })
}

int ll_item(ll_tensor t, double* out) {
  LL_I("item", {
    Borrow b(t);
    host_reads++;
    if (b->numel() != 1)
      throw std::invalid_argument("a tensor with " + std::to_string(b->numel()) +
                                  " elements cannot be converted to a scalar");
    *out = b->item().toDouble();
    return 0;
  })
}

ll_tensor ll_shallow_clone(ll_tensor t) { LL_T("shallow_clone", return wrap(at::Tensor(*Borrow(t)));) }

// dtype -1 keeps the dtype; dev_type -1 keeps the device.
ll_tensor ll_to(ll_tensor t, int dtype, int dev_type, int dev_index, int copy) {
  LL_T("to", {
    Borrow b(t);
    auto st = dtype < 0 ? b->scalar_type() : dtype_of(dtype);
    auto dev = dev_type < 0 ? b->device() : device_of(dev_type, dev_index);
    if (b->is_cpu() && !dev.is_cpu()) host_writes++;
    return wrap(b->to(dev, st, /*non_blocking=*/false, /*copy=*/copy != 0));
  })
}

ll_tensor ll_clone(ll_tensor t) { LL_T("clone", return wrap(Borrow(t)->clone());) }

}  // extern "C"
