#pragma once
// Which Communicator a run trains with: the one place that knows both backends.
#include <torch/torch.h>

#include <memory>

#include "comm/Communicator.h"
#include "config/Config.h"

namespace ddp {

// The backend `backend` asks for on `device` (auto: NCCL for CUDA, MPI for CPU), over all
// ranks of the job. Throws InputError for a backend that cannot serve the device, or
// that this build lacks. NCCL's set-up is itself collective: call it on every rank.
std::unique_ptr<Communicator> make_communicator(Backend backend, torch::Device device, double timeout_s);

}  // namespace ddp
