#include "runtime/Device.h"

#include <dlfcn.h>
#include <unistd.h>

#include "common/Errors.h"

namespace ddp {

torch::Device resolve_device(Device requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested == Device::Cuda && !cuda)
    throw InputError("device: cuda requested, but no GPU is visible or this LibTorch was built without CUDA");
  return (requested == Device::Cuda || (requested == Device::Auto && cuda)) ? torch::Device(torch::kCUDA)
                                                                            : torch::Device(torch::kCPU);
}

void set_compute_threads(int threads) {
  torch::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    openblas(threads);
}

int64_t resolve_check_every(const Config& config, torch::Device device) {
  if (config.train.check_every > 0) return config.train.check_every;
  // Both need every step's values on the host: skip to decide the update, AdaScale to set the next lr.
  if (config.train.on_nonfinite == NonFinitePolicy::Skip || config.lr.rule == ScalingRule::AdaScale) return 1;
  return device.is_cuda() ? 50 : 1;
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace ddp
