#include "train/Setup.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "comm/Backend.h"
#include "common/Errors.h"
#include "common/Version.h"
#include "data/DistributedSampler.h"
#include "model/Model.h"
#include "runtime/Device.h"
#include "schedule/LrSchedule.h"
#include "schedule/TrainingSchedule.h"
#include "sync/GradientExchange.h"
#include "train/Consistency.h"
#include "train/Replica.h"
#include "train/TrainingState.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

// "rank 3: ", "ranks 0-3: ", "ranks 0,2: ", or nothing for a single process.
std::string ranks_prefix(const std::vector<int>& ranks, int world_size) {
  if (world_size == 1) return "";
  if (ranks.size() == 1) return fmt::format("rank {}: ", ranks[0]);
  if (ranks.back() - ranks.front() + 1 == int(ranks.size()))
    return fmt::format("ranks {}-{}: ", ranks.front(), ranks.back());
  return fmt::format("ranks {}: ", fmt::join(ranks, ","));
}

// Every rank reports its outcome; rank 0 prints each failure once with the ranks that
// had it; all return the same exit code (the worst).
int agree_on_failure(Communicator& control, const std::exception_ptr& error) {
  const std::string mine = error ? std::to_string(exit_code_of(error)) + " " + message_of(error) : "";
  const std::vector<std::string> all = control.allgather(mine);
  int code = kExitOk;
  std::vector<std::pair<std::string, std::vector<int>>> failures;  // message -> ranks
  for (int r = 0; r < int(all.size()); ++r) {
    if (all[r].empty()) continue;
    const auto space = all[r].find(' ');
    code = std::max(code, std::atoi(all[r].substr(0, space).c_str()));
    const std::string message = all[r].substr(space + 1);
    auto same = std::find_if(failures.begin(), failures.end(), [&](const auto& f) { return f.first == message; });
    if (same == failures.end()) failures.push_back({message, {r}});
    else same->second.push_back(r);
  }
  if (control.rank() == 0)
    for (const auto& [message, ranks] : failures)
      fmt::print(stderr, "ddp-train: error: {}{}\n", ranks_prefix(ranks, control.size()), message);
  return code;
}

// One set-up stage: tried on every rank, then agreed on.
template <class Stage>
void together(Communicator& control, Stage&& stage) {
  std::exception_ptr error;
  try {
    stage();
  } catch (...) {
    error = std::current_exception();
  }
  if (const int code = agree_on_failure(control, error); code != kExitOk) throw SetupFailed{code};
}

fs::path checkpoint_dir(const Config& config, const fs::path& run) {
  return config.checkpoint.dir.empty() ? run / "checkpoints" : fs::path(config.checkpoint.dir);
}

// Shape checks that need the data and the world size: cheap, and before anything is written.
void check_run_shape(const Config& config, int world_size, int64_t train_samples) {
  const DistributedSampler sampler(train_samples, world_size, 0, config.train.local_batch, config.train.shuffle,
                                   uint64_t(config.train.seed), config.train.remainder,
                                   int(config.train.virtual_ranks));  // throws when the batch exceeds the data
  const LrSchedule schedule(config, sampler.global_batch(), sampler.steps_per_epoch());
  // The rule's own check: AdaScale needs two batch sizes to measure its gain between.
  const TrainingSchedule rule_check(config, train_samples, sampler.global_batch(), sampler.steps_per_epoch());
  const int64_t total = config.train.epochs * sampler.steps_per_epoch();
  if (schedule.warmup_steps() > total)
    throw InputError(fmt::format("lr.warmup_steps: a warmup of {} steps is longer than the whole run ({} epochs x {} "
                                 "steps = {} steps), so the scaled lr {:.5g} would never be reached",
                                 schedule.warmup_steps(), config.train.epochs, sampler.steps_per_epoch(), total,
                                 schedule.peak()));
  // Step decay counts its periods from step 0, as Goyal et al.'s milestones (epochs 30, 60, 80 of a
  // run with 5 warmup epochs) and MultiStepLR do: a period no longer than the warmup has already
  // decayed the lr where the warmup ends, and the scaled peak would never be trained at.
  const int64_t warmup = schedule.warmup_steps();
  if (config.lr.decay == LrDecay::Step && warmup > 0 && schedule.at(warmup) < schedule.peak())
    throw InputError(fmt::format(
        "lr.step_every_epochs: a decay every {} epochs ({} steps) comes no later than the end of the warmup ({} = {} "
        "steps): step decay counts its periods from step 0, so the lr would go from {:.5g} straight to {:.5g} and "
        "the scaled peak {:.5g} would never be used; make lr.step_every_epochs longer than the warmup",
        config.lr.step_every_epochs, std::llround(config.lr.step_every_epochs * double(sampler.steps_per_epoch())),
        config.lr.warmup_steps > 0 ? fmt::format("lr.warmup_steps {}", config.lr.warmup_steps)
                                   : fmt::format("lr.warmup_epochs {}", config.lr.warmup_epochs),
        warmup, schedule.at(warmup - 1), schedule.at(warmup), schedule.peak()));
  // The config could only check this without a scaling rule; the scaled peak needs the world size.
  if (uses_min_lr(config.lr.decay) && config.lr.min_lr > schedule.peak())
    throw InputError(fmt::format("lr.min_lr: {} is above the peak lr {:.5g} (optim.base_lr {} under lr.rule={} at a "
                                 "global batch of {}), so lr.decay={} would never go down to it; make it at most "
                                 "the peak",
                                 config.lr.min_lr, schedule.peak(), config.optim.base_lr, to_string(config.lr.rule),
                                 sampler.global_batch(), to_string(config.lr.decay)));
  // Sync batch norm normalises the global batch: one sample normalises to 0. (Local BN's batch,
  // local_batch, is checked with the config.)
  if (config.model.batch_norm == BatchNorm::Sync && sampler.global_batch() < 2)
    throw InputError("model.batch_norm: sync normalises each step's global batch by its statistics, which needs at "
                     "least 2 samples; the global batch is 1 (train.local_batch=1 on 1 rank): use a larger batch");
}

// What rank 0 found to resume from, read but not yet acted on.
struct ResumeSource {
  std::string bytes;  // the encoded checkpoint; empty: start from step 0
  std::string path;
  bool start_over = false;  // --resume without a valid checkpoint: start anew in the directory
};

// Rank 0: reads only. A fresh run into a directory with results needs --overwrite.
ResumeSource find_resume_source(const Config& config, bool overwrite) {
  ResumeSource source;
  const bool resume = config.checkpoint.resume == ResumePolicy::Auto;
  if (resume && config.output.dir.empty())
    throw InputError("--resume (checkpoint.resume=auto) needs output.dir: the run directory to continue");
  if (config.output.dir.empty() && config.checkpoint.dir.empty()) return source;
  const CheckpointStore store(checkpoint_dir(config, config.output.dir), int(config.checkpoint.keep));
  if (resume) {
    // A checkpoint whose metadata cannot be read (written by a build with a bug, say) blocks
    // nothing: the next older one is tried.
    const auto metadata_reads = [](const TrainingCheckpoint& checkpoint, const std::string& path) {
      identity_of(checkpoint, path);
      position_of(checkpoint, path);
    };
    auto found = store.newest_valid([](const std::string& w) { fmt::print(stderr, "ddp-train: warning: {}\n", w); },
                                    metadata_reads);
    if (found) return {encode_checkpoint(found->second), found->first.string(), false};
    // --resume asks to continue this directory: with nothing to continue from, it starts over in it.
    const bool checkpoints_off = config.checkpoint.every_steps == 0 && config.checkpoint.every_epochs == 0;
    const std::string why =
        !store.list().empty() ? "each one there was skipped, see above"
        : checkpoints_off     ? "there is none, and checkpoint.every_steps=0 with checkpoint.every_epochs=0 writes none"
                              : "there is none";
    fmt::print(stderr, "ddp-train: warning: --resume: no checkpoint to continue from in {} ({}); starting from step 0\n",
               store.dir().string(), why);
    source.start_over = true;
  }
  if (!overwrite && !source.start_over &&
      ((!config.output.dir.empty() && RunDirectory::holds_results(config.output.dir)) || !store.list().empty()))
    throw InputError((config.output.dir.empty() ? "checkpoint.dir: " + config.checkpoint.dir
                                                : "output.dir: " + config.output.dir) +
                     " already holds a run's results; pass --overwrite or choose another output.dir");
  return source;
}

// Every rank: rank 0's checkpoint, checked against this run.
std::optional<TrainingCheckpoint> share_resume_checkpoint(Communicator& control, const ResumeSource& source,
                                                          const PreparedRun& run, int world_size) {
  const bool root = control.rank() == 0;
  const std::vector<std::string> bytes = control.allgather(root ? source.bytes : std::string());
  const std::string path = control.allgather(root ? source.path : std::string())[0];
  if (bytes[0].empty()) return std::nullopt;
  TrainingCheckpoint checkpoint = decode_checkpoint(bytes[0], path);
  check_resume_compatible(checkpoint, run.config, world_size, run.dataset.train.size(), path);
  return checkpoint;
}

// What every rank must agree on before the first step.
Fingerprint fingerprint_of(const PreparedRun& run) {
  Fingerprint fingerprint;
  for (const auto& [key, value] : config_entries(run.config))
    if (key != "output.dir" && key != "checkpoint.dir") fingerprint.emplace_back("config key '" + key + "'", value);
  fingerprint.emplace_back("binary version", std::string(kVersion) + " built " + __DATE__ " " __TIME__);
  fingerprint.emplace_back("training device type", run.device.is_cuda() ? "cuda" : "cpu");
  fingerprint.emplace_back("training set size", std::to_string(run.dataset.train.size()));
  fingerprint.emplace_back("test set size", std::to_string(run.dataset.test.size()));
  const Model model = make_model_shapes(run.config.model);
  fingerprint.emplace_back("model parameter count", std::to_string(parameter_count(*model)));
  fingerprint.emplace_back("model buffer count", std::to_string(model->buffers().size()));
  return fingerprint;
}

// A crash mid-write leaves <file>.tmp beside the file it was to replace. It is never a
// checkpoint, and on a full disk it holds the very space this run needs: removed, and named,
// before the run writes anything.
void remove_stale_temporaries(const Config& config) {
  std::vector<fs::path> removed;
  if (!config.output.dir.empty()) removed = RunDirectory::remove_temporaries(config.output.dir);
  if (!config.output.dir.empty() || !config.checkpoint.dir.empty())
    for (const auto& path : CheckpointStore(checkpoint_dir(config, config.output.dir), 1).remove_temporaries())
      removed.push_back(path);
  for (const auto& path : removed)
    fmt::print(stderr, "ddp-train: removed {}, left by an interrupted write\n", path.string());
}

// Rank 0, the last stage: the directory, its config.yaml, and the checkpoint store. A
// directory this call created is removed again if it fails.
void open_run_directory(PreparedRun& run, const ResumeSource& source) {
  const Config& config = run.config;
  const bool existed = !config.output.dir.empty() && fs::exists(config.output.dir);
  try {
    remove_stale_temporaries(config);
    if (run.resume_from) {
      const TrainingPosition at = position_of(*run.resume_from, source.path);
      run.run_dir.emplace(RunDirectory::reopen(config.output.dir, at.epoch, at.step));
      // Checkpoints past the one resumed from (corrupt, or from a later stop) belong to a
      // future this run will rewrite; left in place they would shadow its own.
      CheckpointStore(checkpoint_dir(config, config.output.dir), 1).remove_after(at.step);
      fmt::print(stderr, "ddp-train: resuming from {}\n", source.path);
    } else {
      run.run_dir.emplace(RunDirectory::create(config.output.dir));
      // A fresh run: checkpoints of an earlier run here must not be mistaken for its own.
      CheckpointStore(checkpoint_dir(config, run.run_dir->path()), 1).remove_after(-1);
    }
    run.run_dir->write_text("config.yaml", dump_config(saved_form(config)));
  } catch (...) {
    if (!existed && !config.output.dir.empty()) fs::remove_all(config.output.dir);
    throw;
  }
  if (config.checkpoint.every_steps > 0 || config.checkpoint.every_epochs > 0)
    run.checkpoints.emplace(checkpoint_dir(config, run.run_dir->path()), int(config.checkpoint.keep));
}

// The stages every start and every dry run share: the config, the device, the data, the shape of
// the run for `world_size` ranks, the resume source; then every rank checks the checkpoint to
// resume from and that all run the same experiment on the same kind of device.
void check_everything(const CommandLine& command_line, Communicator& control, int world_size, PreparedRun& run,
                      ResumeSource& source) {
  together(control, [&] {
    run.config = load_config(config_path_of(command_line), command_line.overrides);
    control.set_timeout(run.config.comm.timeout_s);  // set-up's own waits get the run's deadline
    set_compute_threads(int(run.config.runtime.threads));
    run.device = resolve_device(run.config.device);
    run.dataset = load_dataset(run.config.data.name, run.config.data.dir, run.config.data.normalize);
    check_run_shape(run.config, world_size, run.dataset.train.size());
    if (control.rank() == 0) source = find_resume_source(run.config, command_line.overwrite);
  });
  together(control, [&] {
    run.resume_from = share_resume_checkpoint(control, source, run, world_size);
    check_consistency(control, fingerprint_of(run));
  });
}

// What one step hands to collectives, as summary.json's comm_bytes_per_step counts it (sync batch
// norm's statistics aside): "407096 a step", "52768 a step from step 10 (407096 before)", or under
// local SGD "16 a step (the flags) and the parameters' 407080 every 4 steps".
std::string describe_step_bytes(const SyncOptions& sync, const torch::nn::Module& model) {
  const int64_t first = exchange_bytes(sync, model.parameters(), Replica::kExtraSlots, 0);
  const int64_t later = exchange_bytes(sync, model.parameters(), Replica::kExtraSlots, sync.compression_start_step);
  std::string text = later == first ? fmt::format("{} a step", first)
                                    : fmt::format("{} a step from step {} ({} before)", later,
                                                  sync.compression_start_step, first);
  if (sync.local_sgd_period == 0) return text;
  // A local step sends only the flags; the parameters travel every period.
  const int64_t parameter_bytes = parameter_count(model) * int64_t(sizeof(float));
  const std::string local = fmt::format("{} a step (the flags) and the parameters' {} every {} steps",
                                        Replica::kExtraSlots * int64_t(sizeof(float)), parameter_bytes,
                                        sync.local_sgd_period);
  if (sync.local_sgd_start_step == 0) return local;
  return fmt::format("{} until step {}, then {}", text, sync.local_sgd_start_step, local);
}

// What the run would be, as --dry-run prints it.
std::string describe_run(const PreparedRun& run, const ResumeSource& source, const CommandLine& command_line,
                         int world_size) {
  const Config& c = run.config;
  const DistributedSampler sampler(run.dataset.train.size(), world_size, 0, c.train.local_batch, c.train.shuffle,
                                   uint64_t(c.train.seed), c.train.remainder, int(c.train.virtual_ranks));
  const TrainingSchedule schedule(c, run.dataset.train.size(), sampler.global_batch(), sampler.steps_per_epoch());
  const int64_t steps = sampler.steps_per_epoch(), total = c.train.epochs * steps;
  const std::string config_path = config_path_of(command_line);
  std::string text = "ddp-train --dry-run: the run is valid; nothing was trained or written\n";
  text += fmt::format("  config      {}{}\n", config_path.empty() ? "the defaults" : config_path,
                      command_line.overrides.empty() ? "" : fmt::format(" + {} override(s)", command_line.overrides.size()));
  text += fmt::format("  ranks       {} x {} virtual = {} simulated, on {}; local batch {}, global batch {}\n",
                      world_size, c.train.virtual_ranks, world_size * c.train.virtual_ranks, run.device.str(),
                      c.train.local_batch, sampler.global_batch());
  text += fmt::format("  data        {}: {} train / {} test samples ({})\n", c.data.name, run.dataset.train.size(),
                      run.dataset.test.size(), c.data.dir);
  text += schedule.adaptive()
              ? fmt::format("  steps       {} per epoch, until AdaScale's progress reaches {:g} base-batch steps\n",
                            steps, schedule.progress_target())
              : fmt::format("  steps       {} per epoch x {} epochs = {}\n", steps, c.train.epochs, total);
  text += fmt::format("  lr          rule {}: base {:g} at batch {} -> peak {:.5g}, warmup {} steps, decay {}\n",
                      to_string(c.lr.rule), c.optim.base_lr, c.lr.base_batch, schedule.peak(), schedule.warmup_steps(),
                      to_string(c.lr.decay));
  const Model model = make_model_shapes(c.model);
  text += fmt::format("  model       {}: {} parameters, batch norm {}\n", describe(c.model), parameter_count(*model),
                      to_string(c.model.batch_norm));
  text += fmt::format("  parameters  {}\n", parameter_shapes(*model, /*with_buffers=*/false));
  const SyncOptions sync = sync_options(c, schedule.warmup_steps());
  text += fmt::format("  gradients   {}\n", describe(sync));
  text += "  bytes       " + describe_step_bytes(sync, *model) + "\n";
  const bool checkpoints = c.checkpoint.every_steps > 0 || c.checkpoint.every_epochs > 0;
  const fs::path run_dir = c.output.dir.empty() ? fs::path("runs/<timestamp>") : fs::path(c.output.dir);
  const std::string cadence = c.checkpoint.every_steps > 0 ? fmt::format("{} steps", c.checkpoint.every_steps)
                                                           : fmt::format("{} epoch(s)", c.checkpoint.every_epochs);
  text += checkpoints ? fmt::format("  checkpoints every {} and at the end, keep {}, in {}\n", cadence,
                                    c.checkpoint.keep, checkpoint_dir(c, run_dir).string())
                      : std::string("  checkpoints off (a stop saves nothing to resume from)\n");
  if (run.resume_from) {
    const TrainingPosition at = position_of(*run.resume_from, source.path);
    text += fmt::format("  resume      from {} (step {} of {}, epoch {})\n", source.path, at.step, total, at.epoch + 1);
  } else {
    text += source.start_over ? "  resume      no valid checkpoint there: starts at step 0\n"
                              : "  resume      no: starts at step 0\n";
  }
  text += "  output      " + run_dir.string() +
          (c.output.dir.empty() ? " (a new directory)\n" : fs::exists(run_dir) ? " (exists)\n" : " (will be created)\n");
  return text;
}

}  // namespace

std::string config_path_of(const CommandLine& command_line) {
  if (!command_line.resume || !command_line.config_path.empty()) return command_line.config_path;
  std::string dir;
  for (const auto& override : command_line.overrides)
    if (override.rfind("output.dir=", 0) == 0) dir = override.substr(std::strlen("output.dir="));
  if (dir.empty())
    throw InputError("--resume needs the run directory to continue: ddp-train --resume output.dir=DIR (its "
                     "config.yaml is the run's config; --config FILE instead of it is also accepted)");
  const fs::path saved = fs::path(dir) / "config.yaml";
  if (!fs::exists(saved))
    throw InputError("--resume output.dir=" + dir + ": no " + saved.string() +
                     " there, so no run to continue (give --config FILE to start one there)");
  return saved.string();
}

Config saved_form(Config config) {
  config.train.stop_after_steps = Config{}.train.stop_after_steps;
  config.checkpoint.resume = Config{}.checkpoint.resume;
  return config;
}

int dry_run(const CommandLine& command_line, Communicator& control) {
  PreparedRun run;
  ResumeSource source;
  const int world_size = command_line.dry_run_ranks > 0 ? command_line.dry_run_ranks : control.size();
  try {
    check_everything(command_line, control, world_size, run, source);
  } catch (const SetupFailed& failed) {
    return failed.exit_code;
  }
  if (control.rank() == 0) fmt::print("{}", describe_run(run, source, command_line, world_size));
  return kExitOk;
}

PreparedRun prepare_run(const CommandLine& command_line, Communicator& control) {
  PreparedRun run;
  ResumeSource source;
  check_everything(command_line, control, control.size(), run, source);
  // Only now, with every rank agreed on the device, may a backend with collective set-up
  // of its own (NCCL) start.
  together(control, [&] { run.comm = make_communicator(run.config.comm.backend, run.device, run.config.comm.timeout_s); });
  together(control, [&] {
    if (control.rank() == 0) open_run_directory(run, source);
  });
  return run;
}

}  // namespace ddp
