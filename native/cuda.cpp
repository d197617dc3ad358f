// CUDA caching-allocator statistics; compiled against c10_cuda only when the torch found is a CUDA build.
#include "common.h"
#ifdef LL_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

extern "C" {

int ll_cuda_memory_stats(int device, double* out4) {
  LL_I("cuda_memory_stats", {
#ifdef LL_CUDA
    auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const size_t agg = 0;  // StatType::AGGREGATE
    out4[0] = static_cast<double>(s.allocated_bytes[agg].current);
    out4[1] = static_cast<double>(s.allocated_bytes[agg].peak);
    out4[2] = static_cast<double>(s.reserved_bytes[agg].current);
    out4[3] = static_cast<double>(s.reserved_bytes[agg].peak);
    return 1;
#else
    (void)device;
    for (int i = 0; i < 4; i++) out4[i] = 0;
    return 0;
#endif
  })
}

int ll_cuda_empty_cache(void) {
  LL_I("cuda_empty_cache", {
#ifdef LL_CUDA
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 1;
#else
    return 0;
#endif
  })
}

int ll_cuda_reset_peak(int device) {
  LL_I("cuda_reset_peak", {
#ifdef LL_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 1;
#else
    (void)device;
    return 0;
#endif
  })
}

}  // extern "C"
