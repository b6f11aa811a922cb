#pragma once
// ddp-bench-comm --compression: the whole gradient exchange of a model (model.name of --config
// and its overrides; SimpleNN by default: what a training step sends, its gradients and the extra slots), in each mode side by side in one run,
// in alternating blocks of back-to-back calls so that every mode sees the same machine. Per mode: the bytes each
// rank hands to collectives per step, the bytes a ring all-reduce puts on each rank's link for
// them (2(n-1)/n of that), the median time of the whole exchange (casts, PowerSGD's products and
// orthonormalisation included), the ratio to the first mode, and how far the result is from the
// exact mean (a check, as nccl-tests' #wrong: 0 for none, the approximation's error otherwise).
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "config/Config.h"

namespace ddp::tools {

struct ExchangeMode {
  std::string name;  // none | fp16 | bf16 | powersgd (with its rank)
  std::string label;
};

// "none,fp16,powersgd:2" -> the modes; throws InputError naming a bad item.
std::vector<ExchangeMode> parse_exchange_modes(const std::string& list);

// Collective: prints the table on rank 0.
void run_exchange_benchmark(Communicator& comm, const std::vector<ExchangeMode>& modes, int iters, int warmup,
                            const ModelConfig& model);

}  // namespace ddp::tools
