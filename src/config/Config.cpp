#include "config/Config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
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

template <class T>
Field number(std::string key, std::string help, Ref<T> ref, T lo, T hi) {
  auto parse = [ref, lo, hi](Config& c, const YAML::Node& node) {
    T value{};
    try {
      value = node.as<T>();
    } catch (const YAML::Exception&) {
      throw std::string(std::is_integral<T>::value ? "expected an integer" : "expected a number") +
          ", got '" + scalar_text(node) + "'";
    }
    if constexpr (std::is_floating_point<T>::value) {
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
    {"none", ScalingRule::None}, {"linear", ScalingRule::Linear}, {"sqrt", ScalingRule::Sqrt}};
const std::vector<std::pair<std::string, LrDecay>> kDecays = {
    {"constant", LrDecay::Constant}, {"step", LrDecay::Step}, {"cosine", LrDecay::Cosine}};
const std::vector<std::pair<std::string, Device>> kDevices = {
    {"auto", Device::Auto}, {"cpu", Device::Cpu}, {"cuda", Device::Cuda}};
const std::vector<std::pair<std::string, Backend>> kBackends = {
    {"auto", Backend::Auto}, {"mpi", Backend::Mpi}, {"nccl", Backend::Nccl}};

constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = {
      choice<std::string>("data.name", "dataset", [](Config& c) -> std::string& { return c.data.name; },
                          {{"mnist", "mnist"}, {"fashion-mnist", "fashion-mnist"}}),
      text("data.dir", "directory with the four IDX files (plain or .gz); empty: data/<name>",
           [](Config& c) -> std::string& { return c.data.dir; }),
      boolean("data.normalize", "standardise pixels with the dataset's mean and std",
              [](Config& c) -> bool& { return c.data.normalize; }),
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
      number<double>("optim.base_lr", "learning rate at lr.base_batch",
                     [](Config& c) -> double& { return c.optim.base_lr; }, 0.0, 1e6),
      number<double>("optim.momentum", "SGD momentum (PyTorch form)",
                     [](Config& c) -> double& { return c.optim.momentum; }, 0.0, 0.999999),
      number<double>("optim.weight_decay", "L2 weight decay", [](Config& c) -> double& { return c.optim.weight_decay; },
                     0.0, 1.0),
      boolean("optim.nesterov", "Nesterov momentum", [](Config& c) -> bool& { return c.optim.nesterov; }),
      choice<ScalingRule>("lr.rule", "learning-rate scaling with the global batch",
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
      number<double>("lr.min_lr", "decay=cosine: final learning rate",
                     [](Config& c) -> double& { return c.lr.min_lr; }, 0.0, 1e6),
      choice<Backend>("comm.backend", "gradient all-reduce backend",
                      [](Config& c) -> Backend& { return c.comm.backend; }, kBackends),
      number<double>("comm.bucket_mb", "gradient bucket size in MiB",
                     [](Config& c) -> double& { return c.comm.bucket_mb; }, 0.001, 4096.0),
      number<double>("comm.timeout_s", "a collective unfinished after this many seconds ends the job",
                     [](Config& c) -> double& { return c.comm.timeout_s; }, 1.0, 86400.0),
      number<int64_t>("runtime.threads", "intra-op and BLAS threads per rank",
                      [](Config& c) -> int64_t& { return c.runtime.threads; }, 1, 1024),
      number<int64_t>("metrics.noise_scale_every", "measure the gradient noise scale every N steps (0: off)",
                      [](Config& c) -> int64_t& { return c.metrics.noise_scale_every; }, 0, kMaxInt),
      number<double>("metrics.noise_scale_decay", "moving-average decay of the noise-scale estimates",
                     [](Config& c) -> double& { return c.metrics.noise_scale_decay; }, 0.0, 0.999999),
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

const Field& find_field(const std::string& key, const std::string& where) {
  const Field* nearest = nullptr;
  size_t best = std::numeric_limits<size_t>::max();
  for (const auto& field : schema()) {
    if (field.key == key) return field;
    const size_t d = edit_distance(key, field.key);
    if (d < best) best = d, nearest = &field;
  }
  throw InputError(where + ": unknown key '" + key + "'; did you mean '" + nearest->key + "'?");
}

std::string location(const std::string& source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

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

// Walks nested mappings, applying each leaf as its dotted key.
void apply_tree(Config& config, const YAML::Node& node, const std::string& prefix, const std::string& source) {
  for (const auto& entry : node) {
    // YAML allows a list or mapping as a key ("? [a, b]: 1"); a config key is a plain name.
    if (!entry.first.IsScalar())
      throw InputError(location(source, entry.first) + ": a key must be a plain name" +
                       (prefix.empty() ? std::string() : " (under '" + prefix + "')"));
    const std::string name = entry.first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    if (entry.second.IsMap()) {
      apply_tree(config, entry.second, key, source);
    } else {
      apply(config, key, entry.second, location(source, entry.second));
    }
  }
}

void validate(Config& config, const std::string& source) {
  if (config.lr.decay == LrDecay::Step && config.lr.step_every_epochs <= 0.0)
    throw InputError(source + ": key 'lr.step_every_epochs' must be > 0 when lr.decay is step");
  if (config.lr.decay == LrDecay::Cosine && config.lr.min_lr > config.optim.base_lr &&
      config.lr.rule == ScalingRule::None)
    throw InputError(source + ": key 'lr.min_lr' exceeds optim.base_lr");
  if (config.optim.nesterov && config.optim.momentum <= 0.0)
    throw InputError(source + ": key 'optim.nesterov' needs optim.momentum > 0");
  if (config.device == Device::Cpu && config.comm.backend == Backend::Nccl)
    throw InputError(source + ": key 'comm.backend' is nccl but device is cpu; NCCL needs CUDA tensors");
  if (config.train.on_nonfinite == NonFinitePolicy::Skip && config.train.check_every > 1)
    throw InputError(source + ": key 'train.check_every' is " + std::to_string(config.train.check_every) +
                     " but train.on_nonfinite=skip decides on every step's update; use train.check_every=1 (or 0)");
  if (config.data.dir.empty()) config.data.dir = "data/" + config.data.name;
}

Config build(const YAML::Node& root, const std::string& source, const std::vector<std::string>& overrides) {
  Config config;
  if (root && !root.IsNull()) {
    if (!root.IsMap()) throw InputError(source + ": expected a mapping of sections at the top level");
    apply_tree(config, root, "", source);
  }
  for (const auto& override : overrides) {
    const auto eq = override.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError("override '" + override + "': expected section.key=value");
    const std::string key = override.substr(0, eq);
    const std::string where = "override '" + override + "'";
    YAML::Node value;
    try {
      value = YAML::Load(override.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw InputError(where + ": " + e.msg);
    }
    if (value.IsNull()) value = YAML::Node(std::string());  // `output.dir=` means empty
    apply(config, key, value, where);
  }
  validate(config, source);
  return config;
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw InputError(source + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  return build(root, source, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return build(YAML::Node(), "defaults", overrides);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw InputError(path + ": cannot open config file");
  } catch (const YAML::Exception& e) {
    throw InputError(path + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  return build(root, path, overrides);
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

}  // namespace ddp
