#pragma once
// Where and how a process computes: the device, the CPU threads, and how often the host
// may wait for that device. Shared by the trainer and the benchmarks, so they depend on
// this and on comm only, never on the trainer.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "config/Config.h"

namespace ddp {

// device=auto resolves to CUDA when this LibTorch has it and a GPU is visible.
torch::Device resolve_device(Device requested);

// One intra-op and BLAS thread per rank unless configured: N ranks on N cores must not
// oversubscribe them. Sets OpenBLAS's own pool too, which LibTorch does not control.
void set_compute_threads(int threads);

// train.check_every=0 (auto): every step on CPU, where reading the flags is free; every
// 50th on CUDA, where each read makes the host wait for the GPU; every step with
// train.on_nonfinite=skip or lr.rule=adascale, which need each step's values anyway.
int64_t resolve_check_every(const Config& config, torch::Device device);

// This machine's host name: summaries and error messages name the host of each rank.
std::string host_name();

}  // namespace ddp
