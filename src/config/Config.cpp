#include "config/Config.h"

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion, not in yaml.h
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include "common/Errors.h"

namespace ddp {
namespace {

// One configurable key: how to read it from a YAML scalar and how to print it.
struct Field {
  std::string key;
  std::string help;
  std::function<void(Config&, const YAML::Node&)> parse;  // throws std::string on a bad value
  std::function<std::string(const Config&)> show;
};

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
  return {std::move(key), std::move(help), parse, show};
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
  return {std::move(key), std::move(help), parse, show};
}

Field text(std::string key, std::string help, Ref<std::string> ref) {
  auto parse = [ref](Config& c, const YAML::Node& node) {
    if (!node.IsScalar()) throw std::string("expected a string");
    ref(c) = node.Scalar();
  };
  auto show = [ref](const Config& c) { return ref(const_cast<Config&>(c)); };
  return {std::move(key), std::move(help), parse, show};
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
  return {std::move(key), std::move(help) + " (auto: the end of the lr warmup)", parse, show};
}

template <class E>
std::string name_of(const std::vector<std::pair<std::string, E>>& options, E value) {
  for (const auto& [name, e] : options)
    if (e == value) return name;
  return "?";
}

template <class E>
Field choice(std::string key, std::string help, Ref<E> ref, std::vector<std::pair<std::string, E>> options) {
  auto parse = [ref, options](Config& c, const YAML::Node& node) {
    const std::string value = scalar_text(node);
    for (const auto& [name, e] : options) {
      if (name == value) {
        ref(c) = e;
        return;
      }
    }
    std::string names;
    for (const auto& option : options) names += (names.empty() ? "" : " | ") + option.first;
    throw std::string("expected one of " + names + ", got '" + value + "'");
  };
  auto show = [ref, options](const Config& c) { return name_of(options, ref(const_cast<Config&>(c))); };
  help += " (";
  for (size_t i = 0; i < options.size(); ++i) help += (i ? " | " : "") + options[i].first;
  help += ")";
  return {std::move(key), std::move(help), parse, show};
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
const std::vector<std::pair<std::string, BatchNorm>> kBatchNorms = {
    {"none", BatchNorm::None}, {"local", BatchNorm::Local}, {"sync", BatchNorm::Sync}};
const std::vector<std::pair<std::string, Compression>> kCompressions = {
    {"none", Compression::None}, {"fp16", Compression::Fp16}, {"bf16", Compression::Bf16},
    {"powersgd", Compression::PowerSgd}};

constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = {
      choice<std::string>("data.name", "dataset", [](Config& c) -> std::string& { return c.data.name; },
                          {{"mnist", "mnist"}, {"fashion-mnist", "fashion-mnist"}}),
      text("data.dir", "directory with the four IDX files (plain or .gz); empty: data/<name>",
           [](Config& c) -> std::string& { return c.data.dir; }),
      boolean("data.normalize", "standardise pixels with the dataset's mean and std",
              [](Config& c) -> bool& { return c.data.normalize; }),
      choice<BatchNorm>("model.batch_norm",
                        "BatchNorm1d after the first layer, normalising by each rank's batch or the global batch",
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

// "train" of "train.epochs"; empty for a top-level key such as "device".
std::string section_of(const std::string& key) {
  const auto dot = key.find('.');
  return dot == std::string::npos ? std::string() : key.substr(0, dot);
}

bool is_section(const std::string& name) {
  return !name.empty() && std::any_of(schema().begin(), schema().end(),
                                      [&](const Field& field) { return section_of(field.key) == name; });
}

// The keys of `section` without its prefix, in schema order: "epochs, local_batch, ...".
std::string keys_of_section(const std::string& section) {
  std::string keys;
  for (const auto& field : schema())
    if (section_of(field.key) == section) keys += (keys.empty() ? "" : ", ") + field.key.substr(section.size() + 1);
  return keys;
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

const Field* field_named(const std::string& key) {
  for (const auto& field : schema())
    if (field.key == key) return &field;
  return nullptr;
}

// A key's value as the dump shows it; `key` is one of the schema's.
std::string shown(const Config& config, const std::string& key) { return field_named(key)->show(config); }

const Field& find_field(const std::string& key, const std::string& where) {
  if (const Field* field = field_named(key)) return *field;
  throw InputError(where + ": unknown key '" + key + "'" + unknown_key_hint(key));
}

std::string location(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

std::string location(const std::string& source, const YAML::Node& node) { return location(source, node.Mark()); }

void apply(Config& config, const std::string& key, const YAML::Node& value, const std::string& where) {
  const Field& field = find_field(key, where);
  if (!value.IsScalar())
    throw InputError(where + ": key '" + key + "' expects a single value, not a " +
                     (value.IsMap() ? "mapping" : value.IsSequence() ? "list" : "null"));
  try {
    field.parse(config, value);
  } catch (const std::string& problem) {
    throw InputError(where + ": key '" + key + "': " + problem);
  }
}

// Where each key's value was set: "file.yaml:3" or "override 'key=value'"; absent: the default.
using Origins = std::map<std::string, std::string>;

// One config file being applied. Keys are two levels deep (section.key, or a top-level key), so
// the walk has exactly two levels: no YAML input, however nested or self-referencing, recurses it.
struct FileWalk {
  Config& config;
  Origins& origins;
  const std::string& source;
  const YAML::Node& root;
};

// YAML requires the keys of a mapping to be unique; yaml-cpp keeps every pair of a duplicate, so
// unchecked the last one would silently win. A key is a plain name: YAML also allows a list or
// mapping as a key ("? [a, b]: 1").
void check_keys(const YAML::Node& mapping, const std::string& prefix, const std::string& source) {
  std::map<std::string, int> first_line;
  for (const auto& entry : mapping) {
    if (!entry.first.IsScalar())
      throw InputError(location(source, entry.first) + ": a key must be a plain name" +
                       (prefix.empty() ? std::string() : " (under '" + prefix + "')"));
    const std::string key = prefix.empty() ? entry.first.Scalar() : prefix + "." + entry.first.Scalar();
    const auto [first, fresh] = first_line.emplace(key, entry.first.Mark().line + 1);
    if (!fresh)
      throw InputError(location(source, entry.first) + ": key '" + key + "' is given twice (first on line " +
                       std::to_string(first->second) + "); YAML keys must be unique");
  }
}

// An alias may name a mapping that contains it (`train: &a {x: *a}`), making the tree infinite.
void refuse_recursive_alias(const YAML::Node& value, const std::vector<YAML::Node>& ancestors,
                            const std::string& where, const std::string& key) {
  for (const auto& ancestor : ancestors)
    if (value.is(ancestor))
      throw InputError(where + ": key '" + key +
                       "' is an alias of a mapping that contains it; a YAML alias must not refer to itself");
}

// Keys are located by the key's line: an alias's value carries the line of its anchor.
void apply_entry(FileWalk& walk, const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
  const std::string where = location(walk.source, key_node);
  // Also catches one key written both ways: `optim.base_lr: 1` and `optim: {base_lr: 2}`.
  if (const auto seen = walk.origins.find(key); seen != walk.origins.end())
    throw InputError(where + ": key '" + key + "' is given twice (first at " + seen->second + ")");
  apply(walk.config, key, value, where);
  walk.origins[key] = where;
}

void apply_section(FileWalk& walk, const std::string& section, const YAML::Node& key_node, const YAML::Node& body) {
  const std::string where = location(walk.source, key_node);
  if (!body.IsMap()) {
    const std::string keys = keys_of_section(section);
    const std::string example = keys.substr(0, keys.find(','));
    throw InputError(where + ": '" + section + "' is a section and must be a mapping of its keys (e.g. '" + section +
                     ": {" + example + ": " + shown(Config{}, section + "." + example) + "}'), not " +
                     (body.IsSequence() ? "a list" : body.IsNull() ? "empty" : "a single value") + "; its keys are " +
                     keys);
  }
  check_keys(body, section, walk.source);
  for (const auto& entry : body) {
    const std::string key = section + "." + entry.first.Scalar();
    refuse_recursive_alias(entry.second, {walk.root, body}, location(walk.source, entry.first), key);
    apply_entry(walk, key, entry.first, entry.second);
  }
}

// Names the first key of an unknown section, so that `optimizer: {base_lr: 1}` suggests optim.base_lr.
[[noreturn]] void refuse_unknown_section(const FileWalk& walk, const std::string& name, const YAML::Node& body) {
  check_keys(body, name, walk.source);
  const YAML::Node first = body.begin()->first;
  const std::string key = name + "." + first.Scalar();
  throw InputError(location(walk.source, first) + ": unknown key '" + key + "'" + unknown_key_hint(key));
}

void apply_document(FileWalk& walk) {
  if (!walk.root.IsMap()) throw InputError(walk.source + ": expected a mapping of sections at the top level");
  check_keys(walk.root, "", walk.source);
  for (const auto& entry : walk.root) {
    const std::string name = entry.first.Scalar();
    refuse_recursive_alias(entry.second, {walk.root}, location(walk.source, entry.first), name);
    if (is_section(name)) {
      apply_section(walk, name, entry.first, entry.second);
    } else if (entry.second.IsMap() && entry.second.size() > 0 && !field_named(name)) {
      refuse_unknown_section(walk, name, entry.second);
    } else {
      apply_entry(walk, name, entry.first, entry.second);
    }
  }
}

// Where the values of `keys` came from, for an error that involves several keys: "test.yaml:3",
// "override 'lr.decay=step'", both joined by "and"; keys left at their defaults are not named.
std::string origin_of(const Origins& origins, std::initializer_list<const char*> keys) {
  std::vector<std::string> named;
  for (const char* key : keys) {
    const auto origin = origins.find(key);
    if (origin != origins.end() && std::find(named.begin(), named.end(), origin->second) == named.end())
      named.push_back(origin->second);
  }
  std::string where;
  for (const auto& origin : named) where += (where.empty() ? "" : " and ") + origin;
  return where.empty() ? "defaults" : where;  // not reached: the defaults pass every check
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
  if (config.comm.compression == Compression::PowerSgd && config.lr.rule == ScalingRule::AdaScale)
    throw InputError(origin_of(origins, {"comm.compression", "lr.rule"}) +
                     ": lr.rule=adascale measures its gain from the exact averaged gradient, which "
                     "comm.compression=powersgd replaces by a low-rank approximation; use comm.compression=none, "
                     "fp16 or bf16");
}

void validate(Config& config, const Origins& origins) {
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
  if (config.optim.nesterov && config.optim.momentum <= 0.0)
    throw InputError(origin_of(origins, {"optim.nesterov", "optim.momentum"}) +
                     ": key 'optim.nesterov' needs optim.momentum > 0");
  if (config.optim.name == OptimizerName::Lars && config.optim.lars_eta <= 0.0)
    throw InputError(origin_of(origins, {"optim.name", "optim.lars_eta"}) +
                     ": key 'optim.lars_eta' must be > 0 when optim.name is lars (0 would freeze every weight matrix)");
  if (config.device == Device::Cpu && config.comm.backend == Backend::Nccl)
    throw InputError(origin_of(origins, {"device", "comm.backend"}) +
                     ": key 'comm.backend' is nccl but device is cpu; NCCL needs CUDA tensors");
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
  validate_sync(config, origins);
  if (config.train.stop_at_target && config.metrics.target_accuracy <= 0)
    throw InputError(origin_of(origins, {"train.stop_at_target", "metrics.target_accuracy"}) +
                     ": key 'train.stop_at_target' is true but metrics.target_accuracy is 0 (no target): set "
                     "metrics.target_accuracy=A");
  if (config.train.on_nonfinite == NonFinitePolicy::Skip && config.train.check_every > 1)
    throw InputError(origin_of(origins, {"train.on_nonfinite", "train.check_every"}) + ": key 'train.check_every' is " +
                     std::to_string(config.train.check_every) +
                     " but train.on_nonfinite=skip decides on every step's update; use train.check_every=1 (or 0)");
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
  if (config.data.dir.empty()) config.data.dir = "data/" + config.data.name;
}

// Records where each document of a YAML stream starts, and nothing else.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Where the first documents of `text` start (at most three: one more than a config may have).
// yaml-cpp 0.7 (Debian 12's) does not consume a stray token where a value should be (`,` in
// "- a\n,"): Load silently ends the document before it, and LoadAll returns an empty document at
// the same place forever (fixed upstream in jbeder/yaml-cpp#1319). A document that starts where
// the previous one did is that stray token: a syntax error.
std::vector<YAML::Mark> document_starts(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  while (starts.marks.size() < 3 && parser.HandleNextDocument(starts)) {
    const auto& marks = starts.marks;
    if (marks.size() >= 2 && marks.back().pos == marks[marks.size() - 2].pos) {
      const size_t pos = size_t(marks.back().pos);
      throw YAML::ParserException(marks.back(), pos < text.size() ? "unexpected '" + text.substr(pos, 1) + "'"
                                                                  : "unexpected end of input");
    }
  }
  return starts.marks;
}

// The one document in `text` (a null node when there is none); a YAML error becomes an InputError
// at `where` (and the line, for a file). A second document ("---") is refused: reading only the
// first would silently ignore the rest.
YAML::Node load_document(const std::string& text, const std::string& where, bool with_line) {
  const auto at = [&](const YAML::Mark& mark) { return with_line ? location(where, mark) : where; };
  try {
    const std::vector<YAML::Mark> starts = document_starts(text);
    if (starts.size() > 1)
      throw InputError(at(starts[1]) + ": a second YAML document starts here ('---'); a config is a single document");
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion&) {
    // yaml-cpp's own message is "bad file", at line 1 wherever the nesting is.
    throw InputError(where + ": YAML nesting is too deep; a config has two levels, sections and their keys");
  } catch (const YAML::Exception& e) {
    throw InputError(at(e.mark) + ": YAML syntax error: " + e.msg);
  }
}

void apply_override(Config& config, Origins& origins, const std::string& override) {
  const auto eq = override.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("override '" + override + "': expected section.key=value");
  const std::string key = override.substr(0, eq);
  const std::string where = "override '" + override + "'";
  YAML::Node value = load_document(override.substr(eq + 1), where, false);
  if (value.IsNull()) value = YAML::Node(std::string());  // `output.dir=` means empty
  apply(config, key, value, where);
  origins[key] = where;
}

// `document` null: the defaults, then the overrides.
Config build(const YAML::Node& document, const std::string& source, const std::vector<std::string>& overrides) {
  Config config;
  Origins origins;
  if (!document.IsNull()) {
    FileWalk walk{config, origins, source, document};
    apply_document(walk);
  }
  for (const auto& override : overrides) apply_override(config, origins, override);
  validate(config, origins);
  return config;
}

std::string read_config_file(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw InputError(path + ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  const YAML::Node document = load_document(yaml_text, source, true);
  // Most likely a mistake (a wrong or truncated file) rather than a request for the defaults.
  if (document.IsNull())
    throw InputError(source + ": the config file is empty (no keys); omit --config to train on the defaults");
  return build(document, source, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return build(YAML::Node(), "defaults", overrides);
  return parse_config(read_config_file(path), path, overrides);
}

std::string dump_config(const Config& config) {
  YAML::Node root;
  for (const auto& field : schema()) {
    const auto dot = field.key.find('.');
    if (dot == std::string::npos) {
      root[field.key] = field.show(config);
    } else {
      root[field.key.substr(0, dot)][field.key.substr(dot + 1)] = field.show(config);
    }
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::pair<std::string, std::string>> config_entries(const Config& config) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& field : schema()) entries.emplace_back(field.key, field.show(config));
  return entries;
}

std::string describe_config_keys() {
  std::string text;
  for (const auto& field : schema()) {
    std::string key = "  " + field.key;
    key.resize(std::max<size_t>(key.size() + 1, 26), ' ');
    text += key + field.help + " [default: " + field.show(Config{}) + "]\n";
  }
  return text;
}

std::string to_string(ScalingRule rule) { return name_of(kRules, rule); }
std::string to_string(OptimizerName name) { return name_of(kOptimizers, name); }
std::string to_string(LrDecay decay) { return name_of(kDecays, decay); }
std::string to_string(BatchNorm batch_norm) { return name_of(kBatchNorms, batch_norm); }
std::string to_string(Compression compression) { return name_of(kCompressions, compression); }

bool uses_min_lr(LrDecay decay) { return decay == LrDecay::Cosine || decay == LrDecay::Cyclic; }

bool depends_on_run_length(LrDecay decay) { return decay == LrDecay::Cosine; }

std::vector<LrDecay> all_decays() {
  std::vector<LrDecay> decays;
  for (const auto& option : kDecays) decays.push_back(option.second);
  return decays;
}

}  // namespace ddp
