#pragma once
// The whole run configuration: one YAML file plus `section.key=value` overrides.
// Every key is declared once in the schema (Schema.h: type, range, help, default) that
// drives reading (YamlReading.h), the unknown-key suggestions, the checks across keys
// (Validation.h), the dump of the effective config, --help and the reference page.
#include <cstdint>
#include <string>
#include <vector>

namespace ddp {

enum class ScalingRule { None, Linear, Sqrt, AdaScale };
enum class OptimizerName { Sgd, Lars };
enum class LrDecay { Constant, Step, Cosine, Exponential, Cyclic };
enum class Device { Auto, Cpu, Cuda };
enum class Backend { Auto, Mpi, Nccl };
enum class Remainder { Drop, Pad };
enum class NonFinitePolicy { Stop, Skip };
enum class ResumePolicy { Never, Auto };
enum class BatchNorm { None, Local, Sync };
enum class ModelName { SimpleNN, Mlp, LeNet5 };
enum class Compression { None, Fp16, Bf16, PowerSgd };

struct DataConfig {
  std::string name = "mnist";  // mnist | fashion-mnist
  std::string dir;             // empty: data/<name>, relative to the working directory
  // Off by default: the article (and the reference runs) feed pixels in [0, 1] as
  // torchvision ToTensor() does; on, (x - mean) / std with published statistics.
  bool normalize = false;
};

struct ModelConfig {
  // simple_nn: the article's model; mlp: Linear layers of `hidden` widths with ReLUs; lenet5:
  // LeCun et al. 1998's convolutional net (see src/model/).
  ModelName name = ModelName::SimpleNN;
  std::vector<int64_t> hidden = {128};  // mlp only: the hidden layers' widths
  // A batch norm after each hidden layer (before its ReLU). local: each (virtual) rank
  // normalises by its own batch, as Goyal et al. (the per-worker BN batch is part of the
  // loss); sync: by the statistics of the whole global batch, as PyTorch's SyncBatchNorm.
  BatchNorm batch_norm = BatchNorm::None;
};

struct TrainConfig {
  int64_t epochs = 10;
  int64_t local_batch = 64;
  int64_t seed = 42;
  bool shuffle = true;
  Remainder remainder = Remainder::Drop;  // what the sampler does with samples that don't fill a global batch
  // Each process stands for this many ranks, accumulating their micro-batches before
  // the all-reduce: N processes x v simulate N*v ranks exactly, beyond the cores.
  int64_t virtual_ranks = 1;
  // A NaN/Inf loss or gradient on any rank: stop with a checkpoint of the last good
  // state, or skip that step's update and go on.
  NonFinitePolicy on_nonfinite = NonFinitePolicy::Stop;
  // Stop (resumably, as on a preemption signal) once this many steps are done in total; 0: no limit.
  int64_t stop_after_steps = 0;
  // How often the ranks read their agreed NaN/stop flags (one device-to-host copy, a
  // synchronisation on a GPU). 0: auto, every step on CPU where it is free, every 50 on
  // CUDA. Between reads a NaN is remembered on the device and the run returns to the
  // last checked state; on_nonfinite=skip needs every step.
  int64_t check_every = 0;
  // End the run, completed, at the first evaluation that reaches metrics.target_accuracy: a sweep
  // that measures steps to a target (Shallue et al.) need not train past it.
  bool stop_at_target = false;
};

struct CheckpointConfig {
  int64_t every_steps = 0;   // 0: not by steps
  int64_t every_epochs = 1;  // 0: not by epochs; a checkpoint is also written at the end
  int64_t keep = 3;
  std::string dir;  // empty: <run directory>/checkpoints
  ResumePolicy resume = ResumePolicy::Never;  // auto: continue from the newest valid checkpoint
};

struct OptimConfig {
  // lars: SGD whose step for each weight matrix is scaled by its trust ratio
  // eta |w| / (|grad w| + weight_decay |w|) (You et al. 2017); biases take the plain SGD step
  // without weight decay (MLPerf's LARS).
  OptimizerName name = OptimizerName::Sgd;
  double base_lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  double lars_eta = 0.001;  // LARS trust coefficient
};

struct LrConfig {
  ScalingRule rule = ScalingRule::None;
  int64_t base_batch = 64;     // the global batch at which base_lr is right
  double warmup_epochs = 0.0;  // gradual warmup from base_lr to the scaled lr
  int64_t warmup_steps = 0;    // when > 0, replaces warmup_epochs
  LrDecay decay = LrDecay::Constant;
  double step_every_epochs = 0.0;  // decay=step: multiply by step_gamma every this many epochs
  double step_gamma = 0.1;
  double min_lr = 0.0;  // decay=cosine: the floor; decay=cyclic: the bottom of each cycle
  double exp_gamma = 0.9;  // decay=exponential: factor per epoch, applied smoothly at every step
  double cycle_epochs = 2.0;  // decay=cyclic: one whole cycle (peak -> min_lr -> peak), in epochs
};

// A step (counted from 0) given as "auto" in a config: the end of the lr warmup.
constexpr int64_t kAutoStep = -1;

struct CommConfig {
  Backend backend = Backend::Auto;  // auto: NCCL when the model is on CUDA, else MPI
  double bucket_mb = 25.0;          // gradient bucket size, as PyTorch DDP's bucket_cap_mb
  double timeout_s = 300.0;         // a collective still running after this ends the job
  // How gradients travel (sync/): the plain float32 mean, or a compressed estimate of it.
  Compression compression = Compression::None;
  int64_t powersgd_rank = 2;          // rank of PowerSGD's low-rank approximation of each matrix
  double powersgd_min_ratio = 2.0;    // a matrix travels compressed only if it shrinks at least this much
  int64_t compression_start_step = kAutoStep;  // plain all-reduce before this step
  // Local SGD: after local_sgd_start_step, each rank steps on its own gradients and the
  // ranks average their parameters every local_sgd_period steps (0: off).
  int64_t local_sgd_period = 0;
  int64_t local_sgd_start_step = kAutoStep;
};

struct RuntimeConfig {
  int64_t threads = 1;  // intra-op/BLAS threads per rank: N ranks on N cores must not fight
};

struct MetricsConfig {
  // Measure the gradient noise scale every this many steps (0: never). A measurement
  // costs two reductions over the gradients, about 6% of a batch-64 CPU step; every
  // 4th step keeps the overhead under 2% and still gives hundreds of samples an epoch.
  // lr.rule=adascale measures every step whatever this says: its gain needs every step's norms.
  int64_t noise_scale_every = 4;
  // The moving averages' decay per lr.base_batch samples (AdaptDL's smoothing): a measurement
  // every N steps of global batch B decays them by noise_scale_decay^(N B / lr.base_batch), so
  // they remember about lr.base_batch / (1 - decay) samples at any batch (AdaScale: part of its gain).
  double noise_scale_decay = 0.999;
  // Rank 0 writes a steps.jsonl line (step, lr, loss over all ranks) every this many steps; 0: off.
  int64_t every_steps = 0;
  // Evaluate the test set every this many steps as well as at each epoch's end (0: epoch ends
  // only): a large batch has few steps an epoch, and a time to accuracy needs finer readings.
  // Each evaluation is a line of evals.jsonl; its time is not training time.
  int64_t eval_every_steps = 0;
  // The first evaluation whose test accuracy reaches this (0: none) gives summary.json's
  // steps_to_target, samples_to_target and seconds_to_target. It ends nothing.
  double target_accuracy = 0;
};

struct OutputConfig {
  std::string dir;  // empty: a new runs/<timestamp>/
  bool progress = true;
};

struct Config {
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  OptimConfig optim;
  LrConfig lr;
  CommConfig comm;
  RuntimeConfig runtime;
  MetricsConfig metrics;
  CheckpointConfig checkpoint;
  OutputConfig output;
  Device device = Device::Auto;
};

// Loads `path` (may be empty: defaults only), then applies `overrides` ("a.b=value").
// Throws InputError naming the file or override and the key on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// Parses the text of a config file, as load_config does; `source` names it in errors. The text
// must be one YAML document holding at least one key: an empty file is refused, not read as
// the defaults.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

// The effective configuration as YAML, every key present, in schema order.
std::string dump_config(const Config& config);

// Every key with its value as dump_config prints it, in schema order.
std::vector<std::pair<std::string, std::string>> config_entries(const Config& config);

// Every valid key with a one-line description, for --help.
std::string describe_config_keys();

// Every valid key as a Markdown table (key, values, default, meaning), for
// ddp-train --help-config-markdown: the key reference of docs/configuration.md.
std::string describe_config_keys_markdown();

std::string to_string(ScalingRule rule);
std::string to_string(OptimizerName name);
std::string to_string(LrDecay decay);
std::string to_string(BatchNorm batch_norm);
std::string to_string(ModelName name);
// The model in words, as summary.json and checkpoints name it: "simple_nn", "mlp [1024, 1024]", "lenet5".
std::string describe(const ModelConfig& model);
std::string to_string(Compression compression);

// The decays whose lr goes down to lr.min_lr (cosine, cyclic): it must not exceed the scaled peak.
bool uses_min_lr(LrDecay decay);

// The decays whose lr at a step depends on the run's length, train.epochs (cosine spans the whole
// run): a resume must not change train.epochs under them. The others depend on the step alone.
bool depends_on_run_length(LrDecay decay);
// Every lr.decay, in the schema's order.
std::vector<LrDecay> all_decays();

}  // namespace ddp
