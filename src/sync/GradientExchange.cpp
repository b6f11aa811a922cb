#include "sync/GradientExchange.h"

#include <sstream>

#include "sync/HalfPrecisionAllreduce.h"
#include "sync/PlainAllreduce.h"
#include "sync/PowerSgd.h"

namespace ddp {

SyncOptions sync_options(const Config& config, int64_t warmup_steps) {
  const auto resolved = [&](int64_t step) { return step == kAutoStep ? warmup_steps : step; };
  SyncOptions options;
  options.compression = config.comm.compression;
  options.powersgd_rank = config.comm.powersgd_rank;
  options.powersgd_min_ratio = config.comm.powersgd_min_ratio;
  options.compression_start_step = resolved(config.comm.compression_start_step);
  options.local_sgd_period = config.comm.local_sgd_period;
  options.local_sgd_start_step = resolved(config.comm.local_sgd_start_step);
  options.seed = uint64_t(config.train.seed);
  return options;
}

std::string describe(const SyncOptions& options) {
  std::string text;
  switch (options.compression) {
    case Compression::None: text = "float32 all-reduce every step"; break;
    case Compression::Fp16:
    case Compression::Bf16:
      text = to_string(options.compression) + " from step " + std::to_string(options.compression_start_step) +
             " (float32 before)";
      break;
    case Compression::PowerSgd: {
      std::ostringstream ratio;
      ratio << options.powersgd_min_ratio;
      text = "powersgd rank " + std::to_string(options.powersgd_rank) + " (min ratio " + ratio.str() +
             ") from step " + std::to_string(options.compression_start_step) + " (float32 before)";
      break;
    }
  }
  if (options.local_sgd_period > 0)
    text += "; local SGD from step " + std::to_string(options.local_sgd_start_step) + ", parameters averaged every " +
            std::to_string(options.local_sgd_period) + " steps";
  return text;
}

int64_t exchange_bytes(const SyncOptions& options, const std::vector<torch::Tensor>& parameters, int64_t extra_slots,
                       int64_t step) {
  int64_t gradients = 0;
  for (const auto& p : parameters) gradients += p.numel();
  const int64_t extras = extra_slots * int64_t(sizeof(float));  // float32 in every mode
  if (options.compression == Compression::None || step < options.compression_start_step)
    return gradients * int64_t(sizeof(float)) + extras;
  if (options.compression == Compression::PowerSgd)
    return PowerSgd::message_elements(options, parameters) * int64_t(sizeof(float)) + extras;
  return gradients * 2 + extras;  // fp16, bf16
}

std::unique_ptr<GradientExchange> make_gradient_exchange(Communicator& comm, const SyncOptions& options,
                                                         const std::vector<torch::Tensor>& parameters) {
  switch (options.compression) {
    case Compression::None: return std::make_unique<PlainAllreduce>(comm);
    case Compression::Fp16:
      return std::make_unique<HalfPrecisionAllreduce>(comm, torch::kFloat16, options.compression_start_step);
    case Compression::Bf16:
      return std::make_unique<HalfPrecisionAllreduce>(comm, torch::kBFloat16, options.compression_start_step);
    case Compression::PowerSgd: return std::make_unique<PowerSgd>(comm, options, parameters);
  }
  return std::make_unique<PlainAllreduce>(comm);
}

}  // namespace ddp
