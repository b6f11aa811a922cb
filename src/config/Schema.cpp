#include "config/Schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <string_view>
#include <utility>

#include "common/Errors.h"

namespace ddp::config {
namespace {

template <class T>
using Ref = std::function<T&(Config&)>;

std::string scalar_text(const YAML::Node& node) {
  return node.IsScalar() ? node.Scalar() : std::string("<non-scalar>");
}

// Integers are decimal digits with an optional sign, as YAML 1.2's core schema reads them. A
// leading zero is just a digit ("0100" is 100): yaml-cpp's as<int64_t>() would read it as octal
// (64) and refuse "08"; 0x and 0o forms are refused, so a number means the same in every file
// and override.
template <class T>
T parse_integer(const std::string& text, T lo, T hi) {
  std::string_view digits = text;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    throw "expected an integer, got '" + text + "'";
  const char* first = text.data() + (text[0] == '+' ? 1 : 0);  // from_chars reads a '-' but not a '+'
  T value{};
  if (std::from_chars(first, text.data() + text.size(), value).ec != std::errc())
    throw "value " + text + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return value;
}

template <class T>
T parse_number(const YAML::Node& node) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw "expected a number, got '" + scalar_text(node) + "'";
  }
}

// "[lo, hi]" as the out-of-range errors print it, so the reference and the errors agree.
template <class T>
std::string range_text(T lo, T hi) {
  std::ostringstream text;
  text << "[" << lo << ", " << hi << "]";
  return text.str();
}

template <class T>
Field number(std::string key, std::string help, Ref<T> ref, T lo, T hi) {
  auto parse = [ref, lo, hi](Config& c, const YAML::Node& node) {
    T value{};
    if constexpr (std::is_integral<T>::value) {
      value = parse_integer<T>(scalar_text(node), lo, hi);
    } else {
      value = parse_number<T>(node);
      if (!std::isfinite(value)) throw std::string("expected a finite number, got '" + scalar_text(node) + "'");
    }
    if (value < lo || value > hi) {
      std::ostringstream msg;
      msg << "value " << value << " is out of range [" << lo << ", " << hi << "]";
      throw msg.str();
    }
    ref(c) = value;
  };
  auto show = [ref](const Config& c) {
    // Shortest text that reads back to the same value, so a saved config reproduces the run.
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), ref(const_cast<Config&>(c)));
    return std::string(buffer, result.ptr);
  };
  std::string values;
  if constexpr (std::is_integral<T>::value)
    values = hi == std::numeric_limits<T>::max() ? "integer ≥ " + std::to_string(lo) : "integer in " + range_text(lo, hi);
  else
    values = "number in " + range_text(lo, hi);
  return {std::move(key), std::move(help), std::is_integral<T>::value ? Kind::Integer : Kind::Number,
          std::move(values), parse, show};
}

Field boolean(std::string key, std::string help, Ref<bool> ref) {
  auto parse = [ref](Config& c, const YAML::Node& node) {
    try {
      ref(c) = node.as<bool>();
    } catch (const YAML::Exception&) {
      throw std::string("expected true or false, got '" + scalar_text(node) + "'");
    }
  };
  auto show = [ref](const Config& c) { return std::string(ref(const_cast<Config&>(c)) ? "true" : "false"); };
  return {std::move(key), std::move(help), Kind::Boolean, "true | false", parse, show};
}

Field text(std::string key, std::string help, Ref<std::string> ref) {
  auto parse = [ref](Config& c, const YAML::Node& node) {
    if (!node.IsScalar()) throw std::string("expected a string");
    ref(c) = node.Scalar();
  };
  auto show = [ref](const Config& c) { return ref(const_cast<Config&>(c)); };
  return {std::move(key), std::move(help), Kind::Text, "text", parse, show};
}

// "[1024, 1024]": how a list is shown, in the dump and in describe(ModelConfig).
std::string list_text(const std::vector<int64_t>& values) {
  std::string text;
  for (const int64_t value : values) text += (text.empty() ? "" : ", ") + std::to_string(value);
  return "[" + text + "]";
}

// A list of integers in [lo, hi], 1 to max_length of them: `[1024, 1024]`, in a file or an override.
Field integer_list(std::string key, std::string help, Ref<std::vector<int64_t>> ref, int64_t lo, int64_t hi,
                   size_t max_length) {
  auto parse = [ref, lo, hi, max_length](Config& c, const YAML::Node& node) {
    YAML::Node list = node;
    if (node.IsScalar()) {  // the dump's quoted "[1024, 1024]", or a single width
      try {
        list = YAML::Load(node.Scalar());
      } catch (const YAML::Exception&) {
        throw "expected a list of integers such as [1024, 1024], got '" + node.Scalar() + "'";
      }
      if (list.IsScalar()) list = YAML::Load("[" + node.Scalar() + "]");
    }
    if (!list.IsSequence() || list.size() == 0 || list.size() > max_length)
      throw "expected a list of 1 to " + std::to_string(max_length) + " integers such as [1024, 1024]";
    std::vector<int64_t> values;
    for (const auto& item : list) {
      if (!item.IsScalar()) throw std::string("expected a list of integers, not a nested list or mapping");
      const int64_t value = parse_integer<int64_t>(item.Scalar(), lo, hi);
      if (value < lo || value > hi)
        throw "value " + std::to_string(value) + " is out of range " + range_text(lo, hi);
      values.push_back(value);
    }
    ref(c) = values;
  };
  auto show = [ref](const Config& c) { return list_text(ref(const_cast<Config&>(c))); };
  return {std::move(key), std::move(help), Kind::IntegerList,
          "list of 1 to " + std::to_string(max_length) + " integers in " + range_text(lo, hi), parse, show};
}

// A step number, or "auto" (stored as kAutoStep): the end of the lr warmup.
Field step_or_auto(std::string key, std::string help, Ref<int64_t> ref) {
  auto parse = [ref](Config& c, const YAML::Node& node) {
    const std::string value = scalar_text(node);
    if (value == "auto") {
      ref(c) = kAutoStep;
      return;
    }
    try {
      ref(c) = parse_integer<int64_t>(value, 0, std::numeric_limits<int64_t>::max());
    } catch (const std::string&) {
      throw "expected auto or a step number >= 0, got '" + value + "'";
    }
    if (ref(c) < 0) throw "expected auto or a step number >= 0, got '" + value + "'";
  };
  auto show = [ref](const Config& c) {
    const int64_t step = ref(const_cast<Config&>(c));
    return step == kAutoStep ? std::string("auto") : std::to_string(step);
  };
  return {std::move(key), std::move(help) + " (auto: the end of the lr warmup)", Kind::StepOrAuto, "auto | step ≥ 0",
          parse, show};
}

template <class E>
std::string name_of(const std::vector<std::pair<std::string, E>>& options, E value) {
  for (const auto& [name, e] : options)
    if (e == value) return name;
  return "?";
}

template <class E>
Field choice(std::string key, std::string help, Ref<E> ref, std::vector<std::pair<std::string, E>> options) {
  std::string names;
  for (const auto& option : options) names += (names.empty() ? "" : " | ") + option.first;
  auto parse = [ref, options, names](Config& c, const YAML::Node& node) {
    const std::string value = scalar_text(node);
    for (const auto& [name, e] : options) {
      if (name == value) {
        ref(c) = e;
        return;
      }
    }
    throw std::string("expected one of " + names + ", got '" + value + "'");
  };
  auto show = [ref, options](const Config& c) { return name_of(options, ref(const_cast<Config&>(c))); };
  return {std::move(key), std::move(help), Kind::Choice, names, parse, show};
}

const std::vector<std::pair<std::string, ScalingRule>> kRules = {
    {"none", ScalingRule::None},
    {"linear", ScalingRule::Linear},
    {"sqrt", ScalingRule::Sqrt},
    {"adascale", ScalingRule::AdaScale}};
const std::vector<std::pair<std::string, OptimizerName>> kOptimizers = {{"sgd", OptimizerName::Sgd},
                                                                    {"lars", OptimizerName::Lars}};
const std::vector<std::pair<std::string, LrDecay>> kDecays = {
    {"constant", LrDecay::Constant}, {"step", LrDecay::Step}, {"cosine", LrDecay::Cosine},
    {"exponential", LrDecay::Exponential}, {"cyclic", LrDecay::Cyclic}};
const std::vector<std::pair<std::string, Device>> kDevices = {
    {"auto", Device::Auto}, {"cpu", Device::Cpu}, {"cuda", Device::Cuda}};
const std::vector<std::pair<std::string, Backend>> kBackends = {
    {"auto", Backend::Auto}, {"mpi", Backend::Mpi}, {"nccl", Backend::Nccl}};
const std::vector<std::pair<std::string, ModelName>> kModelNames = {
    {"simple_nn", ModelName::SimpleNN}, {"mlp", ModelName::Mlp}, {"lenet5", ModelName::LeNet5}};
const std::vector<std::pair<std::string, BatchNorm>> kBatchNorms = {
    {"none", BatchNorm::None}, {"local", BatchNorm::Local}, {"sync", BatchNorm::Sync}};
const std::vector<std::pair<std::string, Compression>> kCompressions = {
    {"none", Compression::None}, {"fp16", Compression::Fp16}, {"bf16", Compression::Bf16},
    {"powersgd", Compression::PowerSgd}};

constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// What may stand at the top level, from the schema: "the sections data, train, ... and the key device".
std::string top_level_names() {
  std::vector<std::string> sections;
  std::string keys;
  for (const auto& field : schema()) {
    const std::string section = section_of(field.key);
    if (section.empty()) keys += (keys.empty() ? "" : ", ") + field.key;
    else if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
  }
  std::string names;
  for (const auto& section : sections) names += (names.empty() ? "" : ", ") + section;
  return "the sections " + names + " and the key " + keys;
}

}  // namespace

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = {
      choice<std::string>("data.name", "dataset", [](Config& c) -> std::string& { return c.data.name; },
                          {{"mnist", "mnist"}, {"fashion-mnist", "fashion-mnist"}}),
      text("data.dir", "directory with the four IDX files (plain or .gz); empty: data/<name>",
           [](Config& c) -> std::string& { return c.data.dir; }),
      boolean("data.normalize", "standardise pixels with the dataset's mean and std",
              [](Config& c) -> bool& { return c.data.normalize; }),
      choice<ModelName>("model.name",
                        "simple_nn: Linear 784-128, ReLU, Linear 128-10 (the article's); mlp: Linear layers of "
                        "model.hidden widths with ReLUs; lenet5: LeCun et al. 1998 (ReLU, max pooling)",
                        [](Config& c) -> ModelName& { return c.model.name; }, kModelNames),
      integer_list("model.hidden", "model.name=mlp: the widths of its hidden layers",
                   [](Config& c) -> std::vector<int64_t>& { return c.model.hidden; }, 1, 65536, 16),
      choice<BatchNorm>("model.batch_norm",
                        "a batch norm after each hidden layer (simple_nn: the first Linear; lenet5: BatchNorm2d "
                        "after each conv), normalising by each rank's batch or the global batch",
                        [](Config& c) -> BatchNorm& { return c.model.batch_norm; }, kBatchNorms),
      number<int64_t>("train.epochs", "epochs to train", [](Config& c) -> int64_t& { return c.train.epochs; }, 1,
                      100000),
      number<int64_t>("train.local_batch", "samples per rank per step",
                      [](Config& c) -> int64_t& { return c.train.local_batch; }, 1, 1 << 20),
      number<int64_t>("train.seed", "seed for initialisation and shuffling",
                      [](Config& c) -> int64_t& { return c.train.seed; }, 0, std::numeric_limits<int64_t>::max()),
      boolean("train.shuffle", "reshuffle the training set every epoch",
              [](Config& c) -> bool& { return c.train.shuffle; }),
      choice<Remainder>("train.remainder", "samples that do not fill a whole global batch",
                        [](Config& c) -> Remainder& { return c.train.remainder; },
                        {{"drop", Remainder::Drop}, {"pad", Remainder::Pad}}),
      number<int64_t>("train.virtual_ranks", "ranks each process simulates by gradient accumulation",
                      [](Config& c) -> int64_t& { return c.train.virtual_ranks; }, 1, 1 << 16),
      choice<NonFinitePolicy>("train.on_nonfinite", "a NaN/Inf loss or gradient on any rank",
                              [](Config& c) -> NonFinitePolicy& { return c.train.on_nonfinite; },
                              {{"stop", NonFinitePolicy::Stop}, {"skip", NonFinitePolicy::Skip}}),
      number<int64_t>("train.stop_after_steps", "stop resumably after this many steps in total (0: no limit)",
                      [](Config& c) -> int64_t& { return c.train.stop_after_steps; }, 0,
                      std::numeric_limits<int64_t>::max()),
      number<int64_t>("train.check_every",
                      "read the ranks' agreed NaN/stop flags every N steps (0: auto, 1 on CPU, 50 on CUDA)",
                      [](Config& c) -> int64_t& { return c.train.check_every; }, 0, kMaxInt),
      boolean("train.stop_at_target",
              "end the run, completed, at the first evaluation reaching metrics.target_accuracy",
              [](Config& c) -> bool& { return c.train.stop_at_target; }),
      choice<OptimizerName>("optim.name", "optimizer; lars scales each weight tensor's step by its trust ratio",
                            [](Config& c) -> OptimizerName& { return c.optim.name; }, kOptimizers),
      number<double>("optim.base_lr", "learning rate at lr.base_batch",
                     [](Config& c) -> double& { return c.optim.base_lr; }, 0.0, 1e6),
      number<double>("optim.momentum", "SGD momentum (PyTorch form)",
                     [](Config& c) -> double& { return c.optim.momentum; }, 0.0, 0.999999),
      number<double>("optim.weight_decay", "L2 weight decay", [](Config& c) -> double& { return c.optim.weight_decay; },
                     0.0, 1.0),
      boolean("optim.nesterov", "Nesterov momentum", [](Config& c) -> bool& { return c.optim.nesterov; }),
      number<double>("optim.lars_eta", "LARS trust coefficient eta (optim.name=lars)",
                     [](Config& c) -> double& { return c.optim.lars_eta; }, 0.0, 1.0),
      choice<ScalingRule>("lr.rule", "learning-rate scaling with the global batch; adascale: by the measured gain",
                          [](Config& c) -> ScalingRule& { return c.lr.rule; }, kRules),
      number<int64_t>("lr.base_batch", "global batch at which optim.base_lr applies",
                      [](Config& c) -> int64_t& { return c.lr.base_batch; }, 1, kMaxInt),
      number<double>("lr.warmup_epochs", "gradual warmup from base_lr to the scaled lr",
                     [](Config& c) -> double& { return c.lr.warmup_epochs; }, 0.0, 100000.0),
      number<int64_t>("lr.warmup_steps", "warmup length in steps; > 0 replaces lr.warmup_epochs",
                      [](Config& c) -> int64_t& { return c.lr.warmup_steps; }, 0, kMaxInt),
      choice<LrDecay>("lr.decay", "schedule after warmup", [](Config& c) -> LrDecay& { return c.lr.decay; }, kDecays),
      number<double>("lr.step_every_epochs", "decay=step: epochs between decays",
                     [](Config& c) -> double& { return c.lr.step_every_epochs; }, 0.0, 100000.0),
      number<double>("lr.step_gamma", "decay=step: factor per decay",
                     [](Config& c) -> double& { return c.lr.step_gamma; }, 0.0, 1.0),
      number<double>("lr.min_lr", "decay=cosine: final learning rate; decay=cyclic: the lower bound of each cycle",
                     [](Config& c) -> double& { return c.lr.min_lr; }, 0.0, 1e6),
      number<double>("lr.exp_gamma", "decay=exponential: factor per epoch, in (0, 1], applied smoothly per step",
                     [](Config& c) -> double& { return c.lr.exp_gamma; }, 0.0, 1.0),
      number<double>("lr.cycle_epochs", "decay=cyclic: length of a whole cycle in epochs (peak, min_lr, peak)",
                     [](Config& c) -> double& { return c.lr.cycle_epochs; }, 0.0, 100000.0),
      choice<Backend>("comm.backend", "gradient all-reduce backend",
                      [](Config& c) -> Backend& { return c.comm.backend; }, kBackends),
      number<double>("comm.bucket_mb", "gradient bucket size in MiB",
                     [](Config& c) -> double& { return c.comm.bucket_mb; }, 0.001, 4096.0),
      number<double>("comm.timeout_s", "a collective unfinished after this many seconds ends the job",
                     [](Config& c) -> double& { return c.comm.timeout_s; }, 1.0, 86400.0),
      choice<Compression>("comm.compression",
                          "how gradients travel: float32, cast to 16 bits, or PowerSGD's low-rank approximation",
                          [](Config& c) -> Compression& { return c.comm.compression; }, kCompressions),
      number<int64_t>("comm.powersgd_rank", "compression=powersgd: rank of each matrix's approximation",
                      [](Config& c) -> int64_t& { return c.comm.powersgd_rank; }, 1, 1024),
      number<double>("comm.powersgd_min_ratio",
                     "compression=powersgd: a matrix shrinking less than this travels uncompressed",
                     [](Config& c) -> double& { return c.comm.powersgd_min_ratio; }, 0.0, 1e6),
      step_or_auto("comm.compression_start_step", "first step whose gradients travel compressed",
                   [](Config& c) -> int64_t& { return c.comm.compression_start_step; }),
      number<int64_t>("comm.local_sgd_period",
                      "local SGD: ranks step on their own gradients and average parameters every N steps (0: off)",
                      [](Config& c) -> int64_t& { return c.comm.local_sgd_period; }, 0, kMaxInt),
      step_or_auto("comm.local_sgd_start_step", "local SGD: first step without a gradient all-reduce",
                   [](Config& c) -> int64_t& { return c.comm.local_sgd_start_step; }),
      number<int64_t>("runtime.threads", "intra-op and BLAS threads per rank",
                      [](Config& c) -> int64_t& { return c.runtime.threads; }, 1, 1024),
      number<int64_t>("metrics.noise_scale_every",
                      "measure the gradient noise scale every N steps (0: off; lr.rule=adascale: every step)",
                      [](Config& c) -> int64_t& { return c.metrics.noise_scale_every; }, 0, kMaxInt),
      number<double>("metrics.noise_scale_decay",
                     "decay of the noise-scale moving averages per lr.base_batch samples (AdaptDL's smoothing): "
                     "x decay^(N x global batch / lr.base_batch) per measurement every N steps, a window of "
                     "lr.base_batch / (1 - decay) samples at any batch (and so of AdaScale's gain)",
                     [](Config& c) -> double& { return c.metrics.noise_scale_decay; }, 0.0, 0.999999),
      number<int64_t>("metrics.every_steps", "rank 0 writes steps.jsonl (lr, loss over all ranks) every N steps (0: off)",
                      [](Config& c) -> int64_t& { return c.metrics.every_steps; }, 0, kMaxInt),
      number<int64_t>("metrics.eval_every_steps",
                      "also evaluate the test set every N steps, a line of evals.jsonl each (0: epoch ends only)",
                      [](Config& c) -> int64_t& { return c.metrics.eval_every_steps; }, 0, kMaxInt),
      number<double>("metrics.target_accuracy",
                     "record the steps, samples and seconds to the first evaluation reaching this test accuracy "
                     "(0: none)",
                     [](Config& c) -> double& { return c.metrics.target_accuracy; }, 0.0, 1.0),
      number<int64_t>("checkpoint.every_steps", "write a checkpoint every N steps (0: off)",
                      [](Config& c) -> int64_t& { return c.checkpoint.every_steps; }, 0, kMaxInt),
      number<int64_t>("checkpoint.every_epochs", "write a checkpoint every N epochs (0: off); always at the end",
                      [](Config& c) -> int64_t& { return c.checkpoint.every_epochs; }, 0, kMaxInt),
      number<int64_t>("checkpoint.keep", "checkpoints kept (the newest)",
                      [](Config& c) -> int64_t& { return c.checkpoint.keep; }, 1, 1000),
      text("checkpoint.dir", "checkpoint directory; empty: <run directory>/checkpoints",
           [](Config& c) -> std::string& { return c.checkpoint.dir; }),
      choice<ResumePolicy>("checkpoint.resume", "auto: continue from the newest valid checkpoint (as --resume)",
                           [](Config& c) -> ResumePolicy& { return c.checkpoint.resume; },
                           {{"never", ResumePolicy::Never}, {"auto", ResumePolicy::Auto}}),
      text("output.dir", "run directory; empty: a new runs/<timestamp>/",
           [](Config& c) -> std::string& { return c.output.dir; }),
      boolean("output.progress", "show per-epoch progress on rank 0",
              [](Config& c) -> bool& { return c.output.progress; }),
      choice<Device>("device", "where the model trains", [](Config& c) -> Device& { return c.device; }, kDevices),
  };
  return fields;
}
const Field* field_named(const std::string& key) {
  for (const auto& field : schema())
    if (field.key == key) return &field;
  return nullptr;
}

std::string shown(const Config& config, const std::string& key) { return field_named(key)->show(config); }

std::string section_of(const std::string& key) {
  const auto dot = key.find('.');
  return dot == std::string::npos ? std::string() : key.substr(0, dot);
}

bool is_section(const std::string& name) {
  return !name.empty() && std::any_of(schema().begin(), schema().end(),
                                      [&](const Field& field) { return section_of(field.key) == name; });
}

std::string keys_of_section(const std::string& section) {
  std::string keys;
  for (const auto& field : schema())
    if (section_of(field.key) == section) keys += (keys.empty() ? "" : ", ") + field.key.substr(section.size() + 1);
  return keys;
}

// A suggestion only for a plausible typo (at most a third of the letters, or 2, differ): for a
// far-off name the nearest key is a misleading guess, so the valid names are listed instead.
std::string unknown_key_hint(const std::string& key) {
  const Field* nearest = nullptr;
  size_t best = std::numeric_limits<size_t>::max();
  for (const auto& field : schema()) {
    const size_t d = edit_distance(key, field.key);
    if (d < best) best = d, nearest = &field;
  }
  if (best <= std::max<size_t>(2, key.size() / 3)) return "; did you mean '" + nearest->key + "'?";
  if (is_section(key)) return "; '" + key + "' is a section, its keys are " + keys_of_section(key);
  if (is_section(section_of(key)))
    return "; the keys of '" + section_of(key) + "' are " + keys_of_section(section_of(key));
  return "; the top level has " + top_level_names();
}

void set_key(Config& config, const std::string& key, const YAML::Node& value, const std::string& where) {
  const Field* field = field_named(key);
  if (!field) throw InputError(where + ": unknown key '" + key + "'" + unknown_key_hint(key));
  if (!value.IsScalar() && !(field->kind == Kind::IntegerList && value.IsSequence()))
    throw InputError(where + ": key '" + key + "' expects a single value, not a " +
                     (value.IsMap() ? "mapping" : value.IsSequence() ? "list" : "null"));
  try {
    field->parse(config, value);
  } catch (const std::string& problem) {
    throw InputError(where + ": key '" + key + "': " + problem);
  }
}

}  // namespace ddp::config

namespace ddp {

std::string to_string(ScalingRule rule) { return config::name_of(config::kRules, rule); }
std::string to_string(OptimizerName name) { return config::name_of(config::kOptimizers, name); }
std::string to_string(LrDecay decay) { return config::name_of(config::kDecays, decay); }
std::string to_string(BatchNorm batch_norm) { return config::name_of(config::kBatchNorms, batch_norm); }
std::string to_string(ModelName name) { return config::name_of(config::kModelNames, name); }

std::string describe(const ModelConfig& model) {
  if (model.name != ModelName::Mlp) return to_string(model.name);
  return to_string(model.name) + " " + config::list_text(model.hidden);
}
std::string to_string(Compression compression) { return config::name_of(config::kCompressions, compression); }

std::vector<LrDecay> all_decays() {
  std::vector<LrDecay> decays;
  for (const auto& option : config::kDecays) decays.push_back(option.second);
  return decays;
}

}  // namespace ddp
