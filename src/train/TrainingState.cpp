#include "train/TrainingState.h"

#include <fmt/core.h>

#include <cmath>
#include <limits>

#include "common/Errors.h"
#include "model/Model.h"

namespace ddp {
namespace {

// Keys a resumed run may change without changing the experiment it continues.
bool may_change_on_resume(const std::string& key, const Config& config) {
  // AdaScale's gain, and so its lr and length, is the smoothed noise estimate.
  if (key == "metrics.noise_scale_decay" && config.lr.rule == ScalingRule::AdaScale) return false;
  // How gradients travel changes the updates (and PowerSGD's saved state means nothing to another
  // mode); the step that reached the target was recorded for the target the run began with.
  for (const char* fixed : {"comm.compression", "comm.powersgd_rank", "comm.powersgd_min_ratio",
                            "comm.compression_start_step", "comm.local_sgd_period", "comm.local_sgd_start_step",
                            "metrics.target_accuracy"})
    if (key == fixed) return false;
  for (const char* prefix : {"output.", "checkpoint.", "comm.", "runtime.", "metrics."})
    if (key.rfind(prefix, 0) == 0) return true;
  return key == "train.epochs" || key == "train.virtual_ranks" || key == "train.stop_after_steps" ||
         key == "train.check_every" || key == "device" || key == "data.dir";
}

// nlohmann/json writes NaN and +-Inf as null, which reads back as no number at all: a position
// holding one (the test loss of an epoch that diverged) is written with these names instead.
const std::pair<const char*, double> kNonFiniteNames[] = {{"NaN", std::numeric_limits<double>::quiet_NaN()},
                                                          {"Infinity", std::numeric_limits<double>::infinity()},
                                                          {"-Infinity", -std::numeric_limits<double>::infinity()}};

nlohmann::json name_non_finite(const nlohmann::json& value) {
  if (value.is_object()) {
    nlohmann::json named = nlohmann::json::object();
    for (const auto& [key, item] : value.items()) named[key] = name_non_finite(item);
    return named;
  }
  if (!value.is_number_float() || std::isfinite(value.get<double>())) return value;
  const double x = value.get<double>();
  return std::isnan(x) ? kNonFiniteNames[0].first : x > 0 ? kNonFiniteNames[1].first : kNonFiniteNames[2].first;
}

// Back to numbers, where `shape` (a default TrainingPosition, as JSON) has a floating-point field.
// A null there was written by an older build for a NaN or an Inf: read as NaN, not a number.
void read_non_finite(nlohmann::json& meta, const nlohmann::json& shape) {
  for (const auto& [key, field] : shape.items()) {
    if (!meta.contains(key)) continue;
    nlohmann::json& value = meta[key];
    if (field.is_object() && value.is_object()) read_non_finite(value, field);
    if (!field.is_number_float()) continue;
    if (value.is_null()) value = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [name, number] : kNonFiniteNames)
      if (value.is_string() && value.get<std::string>() == name) value = number;
  }
}

// train.epochs may change on resume (more epochs for a run that ended too soon) only where no
// step's lr depends on it: under cosine every step after the resumed one would take another lr,
// and the run would follow neither schedule.
void check_run_length_kept(const Config& saved, const Config& config, const std::string& source) {
  if (saved.train.epochs == config.train.epochs || !depends_on_run_length(config.lr.decay)) return;
  std::string free;
  for (const LrDecay decay : all_decays())
    if (!depends_on_run_length(decay)) free += (free.empty() ? "" : ", ") + to_string(decay);
  throw InputError(fmt::format(
      "{}: key 'train.epochs' was {} when the checkpoint was written and is {} now, but lr.decay={} spans the "
      "whole run: the lr of every step after the resumed one would change, and the run would follow neither "
      "schedule. Resume with train.epochs={}, or start a new output.dir (lr.decay {} may take other train.epochs on "
      "resume: their lr depends on the step alone)",
      source, saved.train.epochs, config.train.epochs, to_string(config.lr.decay), saved.train.epochs, free));
}

// A checkpoint's tensors fit only the model that wrote them: another model.* key is refused by name
// with the other keys; this refuses, before any tensor is read, the same keys building other shapes
// (a checkpoint of another build). One written before model.name existed recorded no shapes.
void check_same_model(const RunIdentity& was, const ModelConfig& model, const std::string& source) {
  const std::string now = describe(model);
  const std::string shapes = parameter_shapes(*make_model_shapes(model));
  if (was.model == now && (was.model_shapes.empty() || was.model_shapes == shapes)) return;
  throw InputError(fmt::format(
      "{}: written by model {} ({}); this run builds model {} ({}). A checkpoint resumes only the model that "
      "wrote it: resume with the run's own model keys (ddp-train --resume output.dir=DIR reads them from its "
      "config.yaml), or start a new output.dir",
      source, was.model, was.model_shapes.empty() ? "shapes not recorded" : was.model_shapes, now, shapes));
}

template <class T>
T read_meta(const nlohmann::json& meta, const std::string& source) {
  try {
    return meta.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(source + ": checkpoint metadata incomplete: " + e.what());
  }
}

}  // namespace

nlohmann::json checkpoint_meta(const RunIdentity& identity, const TrainingPosition& position) {
  nlohmann::json meta = identity;
  meta.update(name_non_finite(nlohmann::json(position)));
  return meta;
}

RunIdentity identity_of(const TrainingCheckpoint& checkpoint, const std::string& source) {
  // Written before model.name: SimpleNN was the only model; its shapes unrecorded (not compared).
  if (!checkpoint.meta.is_object() || checkpoint.meta.contains("model"))
    return read_meta<RunIdentity>(checkpoint.meta, source);
  nlohmann::json meta = checkpoint.meta;
  meta["model"] = "simple_nn";
  meta["model_shapes"] = "";
  return read_meta<RunIdentity>(meta, source);
}

TrainingPosition position_of(const TrainingCheckpoint& checkpoint, const std::string& source) {
  // Keys that older builds did not write, with the value their runs had: no rule before AdaScale
  // had progress to carry; bytes were not counted before compression.
  static const nlohmann::json kAddedSince = {
      {"progress", 0.0}, {"comm_bytes", 0}, {"target_step", -1}, {"target_seconds", 0.0}};
  if (!checkpoint.meta.is_object()) return read_meta<TrainingPosition>(checkpoint.meta, source);
  nlohmann::json meta = checkpoint.meta;
  for (const auto& [key, value] : kAddedSince.items())
    if (!meta.contains(key)) meta[key] = value;
  read_non_finite(meta, nlohmann::json(TrainingPosition{}));
  return read_meta<TrainingPosition>(meta, source);
}

void check_resume_compatible(const TrainingCheckpoint& checkpoint, const Config& config, int world_size,
                             int64_t train_samples, const std::string& source) {
  RunIdentity was;
  try {
    was = identity_of(checkpoint, source);
    position_of(checkpoint, source);  // complete, or refused here rather than mid-resume
  } catch (const CheckpointError& e) {
    throw InputError(e.what());
  }
  const int64_t simulated = int64_t(world_size) * config.train.virtual_ranks;
  const int64_t was_simulated = was.world_size * was.virtual_ranks;
  if (was.local_batch != config.train.local_batch)
    throw InputError(fmt::format(
        "{}: key 'train.local_batch' was {} when the checkpoint was written and is {} now; resuming would change the "
        "experiment: resume with train.local_batch={} (or with the run's own config: ddp-train --resume "
        "output.dir={})",
        source, was.local_batch, config.train.local_batch, was.local_batch, config.output.dir));
  if (was_simulated != simulated) {
    const bool divides = was_simulated % world_size == 0;
    throw InputError(fmt::format(
        "{}: written by {} ranks x {} virtual (global batch {}); this run is {} ranks x {} virtual (global batch {}). "
        "Resuming would silently change the experiment: {}",
        source, was.world_size, was.virtual_ranks, was_simulated * was.local_batch, world_size,
        config.train.virtual_ranks, simulated * config.train.local_batch,
        divides ? fmt::format("with {} ranks resume with train.virtual_ranks={}", world_size, was_simulated / world_size)
                : fmt::format("resume with {} ranks and train.virtual_ranks={}", was.world_size, was.virtual_ranks)));
  }
  // Each rank's own state (PowerSGD's error feedback, local SGD's model) belongs to one rank of one layout.
  const bool per_rank = config.comm.compression == Compression::PowerSgd || config.comm.local_sgd_period > 0;
  if (per_rank && (was.world_size != world_size || was.virtual_ranks != config.train.virtual_ranks))
    throw InputError(fmt::format(
        "{}: written by {} ranks x {} virtual; this run is {} ranks x {} virtual. With {} every rank keeps state of "
        "its own (comm.compression=powersgd: its error feedback; local SGD: its model and momentum), which only "
        "the same layout can continue: resume with {} ranks and train.virtual_ranks={}",
        source, was.world_size, was.virtual_ranks, world_size, config.train.virtual_ranks,
        config.comm.local_sgd_period > 0 ? "comm.local_sgd_period > 0" : "comm.compression=powersgd", was.world_size,
        was.virtual_ranks));
  // The sample order and the position in the epoch only mean the same thing on the same data.
  if (was.train_samples != train_samples)
    throw InputError(fmt::format("{}: written for a training set of {} samples; data.dir now holds {}", source,
                                 was.train_samples, train_samples));
  const Config saved = parse_config(was.config, source + " (saved config)");
  const auto before = config_entries(saved), now = config_entries(config);
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i].second != now[i].second && !may_change_on_resume(before[i].first, config))
      throw InputError(fmt::format("{}: key '{}' was {} when the checkpoint was written and is {} now; resuming "
                                   "would change the experiment: resume with {}={} (or start a new output.dir)",
                                   source, before[i].first, before[i].second, now[i].second, before[i].first,
                                   before[i].second));
  }
  // The same model keys, then: the same shapes (a build whose model differs behind the same keys)?
  check_same_model(was, config.model, source);
  check_run_length_kept(saved, config, source);  // the same decay, then: does it depend on train.epochs?
}

}  // namespace ddp
