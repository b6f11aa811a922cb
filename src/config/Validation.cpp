#include "config/Validation.h"

#include <string>

#include "common/Errors.h"
#include "config/Schema.h"

namespace ddp::config {
namespace {

// The lr decay's own parameters, and its floor where the peak is known without the world size.
void validate_decay(const Config& config, const Origins& origins) {
  if (config.lr.decay == LrDecay::Step && config.lr.step_every_epochs <= 0.0)
    throw InputError(origin_of(origins, {"lr.decay", "lr.step_every_epochs"}) +
                     ": key 'lr.step_every_epochs' must be > 0 when lr.decay is step");
  if (config.lr.decay == LrDecay::Exponential && config.lr.exp_gamma <= 0.0)
    throw InputError(origin_of(origins, {"lr.decay", "lr.exp_gamma"}) +
                     ": key 'lr.exp_gamma' must be > 0 when lr.decay is exponential (a factor per epoch in (0, 1])");
  if (config.lr.decay == LrDecay::Cyclic && config.lr.cycle_epochs <= 0.0)
    throw InputError(origin_of(origins, {"lr.decay", "lr.cycle_epochs"}) +
                     ": key 'lr.cycle_epochs' must be > 0 when lr.decay is cyclic");
  // Without a scaling rule the peak is base_lr, known here; with one it depends on the world
  // size, and set-up checks it against the scaled peak (check_run_shape).
  if (uses_min_lr(config.lr.decay) && config.lr.min_lr > config.optim.base_lr && config.lr.rule == ScalingRule::None)
    throw InputError(origin_of(origins, {"lr.decay", "lr.min_lr", "optim.base_lr", "lr.rule"}) +
                     ": key 'lr.min_lr' exceeds optim.base_lr");
}

void validate_optimizer(const Config& config, const Origins& origins) {
  if (config.optim.nesterov && config.optim.momentum <= 0.0)
    throw InputError(origin_of(origins, {"optim.nesterov", "optim.momentum"}) +
                     ": key 'optim.nesterov' needs optim.momentum > 0");
  if (config.optim.name == OptimizerName::Lars && config.optim.lars_eta <= 0.0)
    throw InputError(origin_of(origins, {"optim.name", "optim.lars_eta"}) +
                     ": key 'optim.lars_eta' must be > 0 when optim.name is lars (0 would freeze every weight matrix)");
}

// AdaScale measures its lr every step from each rank's own gradient.
void validate_adascale(const Config& config, const Origins& origins) {
  // AdaScale's gain reads every step's gradient norms on the host to set the next step's lr,
  // so the flags come with them: nothing is saved by reading them less often.
  if (config.lr.rule == ScalingRule::AdaScale && config.train.check_every > 1)
    throw InputError(origin_of(origins, {"lr.rule", "train.check_every"}) + ": key 'train.check_every' is " +
                     std::to_string(config.train.check_every) +
                     " but lr.rule=adascale reads every step's gradient norms to set the next lr; use "
                     "train.check_every=1 (or 0)");
  // With sync BN a rank's gradient is its share of the global batch's, not a small batch's own:
  // the noise, and so the gain, cannot be measured (see Trainer).
  if (config.lr.rule == ScalingRule::AdaScale && config.model.batch_norm == BatchNorm::Sync)
    throw InputError(origin_of(origins, {"lr.rule", "model.batch_norm"}) +
                     ": lr.rule=adascale measures its gain from each rank's own gradient, which "
                     "model.batch_norm=sync does not have (a rank's gradient is its share of the global batch's); "
                     "use model.batch_norm=local or none");
  // r itself is a warmup: near 1 while the gradient dominates the noise, as early in training.
  if (config.lr.rule == ScalingRule::AdaScale && (config.lr.warmup_epochs > 0 || config.lr.warmup_steps > 0))
    throw InputError(origin_of(origins, {"lr.rule", "lr.warmup_epochs", "lr.warmup_steps"}) +
                     ": lr.rule=adascale takes no warmup (its gain stays near 1 while the gradient dominates the "
                     "noise, as early in training, and grows as the noise takes over); set lr.warmup_epochs=0 and "
                     "lr.warmup_steps=0");
}

// The ways gradients travel (comm.*) against the rest of the run.
void validate_sync(const Config& config, const Origins& origins) {
  if (config.comm.local_sgd_period > 0) {
    // The v virtual ranks of a process are micro-batches of one model: they cannot each step alone.
    if (config.train.virtual_ranks > 1)
      throw InputError(origin_of(origins, {"comm.local_sgd_period", "train.virtual_ranks"}) +
                       ": key 'comm.local_sgd_period' is " + shown(config, "comm.local_sgd_period") +
                       " but train.virtual_ranks is " + shown(config, "train.virtual_ranks") +
                       ": local SGD steps every rank on its own gradients, and the virtual ranks of a process "
                       "share one model; use real ranks (train.virtual_ranks=1)");
    if (config.model.batch_norm == BatchNorm::Sync)
      throw InputError(origin_of(origins, {"comm.local_sgd_period", "model.batch_norm"}) +
                       ": local SGD (comm.local_sgd_period > 0) keeps each rank's steps to itself, but "
                       "model.batch_norm=sync all-reduces the batch statistics in every forward pass; use "
                       "model.batch_norm=local or none");
    if (config.lr.rule == ScalingRule::AdaScale)
      throw InputError(origin_of(origins, {"comm.local_sgd_period", "lr.rule"}) +
                       ": lr.rule=adascale sets its lr from the averaged gradient of every step, which local SGD "
                       "(comm.local_sgd_period > 0) does not form; use lr.rule=linear or sqrt");
  }
  // AdaScale measures its gain where the exact float32 mean is formed. It has no warmup, so a
  // compression starts at step 0 and the gain would never be measured (it stays 1, and the run
  // takes S times the steps meant); with a later comm.compression_start_step it would freeze at
  // that step's estimate. No compression forms that mean, so none goes with AdaScale.
  if (config.comm.compression != Compression::None && config.lr.rule == ScalingRule::AdaScale)
    throw InputError(origin_of(origins, {"comm.compression", "lr.rule"}) +
                     ": lr.rule=adascale measures its gain from the exact float32 mean of the gradients, which "
                     "comm.compression=" + shown(config, "comm.compression") +
                     " does not form (the gain would stay at its first value); use comm.compression=none with "
                     "adascale, or lr.rule=linear or sqrt with compression");
}

// How the run reads its flags and ends.
void validate_step_checks(const Config& config, const Origins& origins) {
  if (config.train.stop_at_target && config.metrics.target_accuracy <= 0)
    throw InputError(origin_of(origins, {"train.stop_at_target", "metrics.target_accuracy"}) +
                     ": key 'train.stop_at_target' is true but metrics.target_accuracy is 0 (no target): set "
                     "metrics.target_accuracy=A");
  if (config.train.on_nonfinite == NonFinitePolicy::Skip && config.train.check_every > 1)
    throw InputError(origin_of(origins, {"train.on_nonfinite", "train.check_every"}) + ": key 'train.check_every' is " +
                     std::to_string(config.train.check_every) +
                     " but train.on_nonfinite=skip decides on every step's update; use train.check_every=1 (or 0)");
}

}  // namespace

void validate(const Config& config, const Origins& origins) {
  validate_decay(config, origins);
  validate_optimizer(config, origins);
  if (config.device == Device::Cpu && config.comm.backend == Backend::Nccl)
    throw InputError(origin_of(origins, {"device", "comm.backend"}) +
                     ": key 'comm.backend' is nccl but device is cpu; NCCL needs CUDA tensors");
  validate_adascale(config, origins);
  validate_sync(config, origins);
  validate_step_checks(config, origins);
  // Widths given to a model that has none of its own would be silently ignored. (The default, [128],
  // is simple_nn's own hidden layer: every dumped config holds it.)
  if (config.model.name != ModelName::Mlp && config.model.hidden != ModelConfig{}.hidden)
    throw InputError(origin_of(origins, {"model.hidden", "model.name"}) + ": key 'model.hidden' gives the widths of "
                     "model.name=mlp's hidden layers, but model.name is " + to_string(config.model.name) +
                     "; set model.name=mlp, or leave model.hidden out");
  // A batch of one normalises to exactly 0 (PyTorch refuses it in training); a sync batch is
  // the global one, which set-up checks once it knows the world size (check_run_shape).
  if (config.model.batch_norm == BatchNorm::Local && config.train.local_batch < 2)
    throw InputError(origin_of(origins, {"model.batch_norm", "train.local_batch"}) +
                     ": key 'train.local_batch' is 1 but model.batch_norm=local normalises each rank's batch by its "
                     "own statistics, which needs at least 2 samples; use train.local_batch >= 2 or "
                     "model.batch_norm=sync");
  // Warmup ramps up to the scaled lr over lr.warmup_epochs: longer than the run, the scaled lr is
  // never reached. (lr.warmup_steps > 0 replaces this key, which is then unused.)
  if (config.lr.warmup_steps == 0 && config.lr.warmup_epochs > double(config.train.epochs))
    throw InputError(origin_of(origins, {"lr.warmup_epochs", "train.epochs"}) + ": key 'lr.warmup_epochs' is " +
                     shown(config, "lr.warmup_epochs") + " but train.epochs is " + shown(config, "train.epochs") +
                     ": the warmup would outlast the run and never reach the scaled lr; make it at most train.epochs");
}

}  // namespace ddp::config
