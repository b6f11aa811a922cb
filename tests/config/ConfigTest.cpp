#include "config/Config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common/Errors.h"

namespace ddp {
namespace {

// The error message for a config that must be refused.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "test.yaml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "config was accepted:\n" << yaml;
  return "";
}

// The error message for overrides that must be refused with no config file.
std::string override_error_of(const std::vector<std::string>& overrides) {
  try {
    load_config("", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "overrides were accepted";
  return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A file under the test's temporary directory holding `text`.
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsAreTheArticleSetup) {
  const Config c = load_config("", {});
  EXPECT_EQ(c.data.name, "mnist");
  EXPECT_EQ(c.data.dir, "data/mnist");
  EXPECT_EQ(c.train.local_batch, 64);
  EXPECT_DOUBLE_EQ(c.optim.base_lr, 0.01);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.0);
  EXPECT_EQ(c.lr.rule, ScalingRule::None);
}

TEST(Config, ReadsNestedKeys) {
  const Config c = parse_config(
      "data: {name: fashion-mnist, dir: /d}\ntrain: {epochs: 3, local_batch: 32, seed: 7}\n"
      "optim: {base_lr: 0.1, momentum: 0.9}\nlr: {rule: sqrt, base_batch: 256, warmup_epochs: 2.5}\n",
      "t");
  EXPECT_EQ(c.data.name, "fashion-mnist");
  EXPECT_EQ(c.data.dir, "/d");
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.local_batch, 32);
  EXPECT_EQ(c.train.seed, 7);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
  EXPECT_EQ(c.lr.rule, ScalingRule::Sqrt);
  EXPECT_EQ(c.lr.base_batch, 256);
  EXPECT_DOUBLE_EQ(c.lr.warmup_epochs, 2.5);
}

TEST(Config, OverridesWinOverTheFile) {
  const Config c = parse_config("train: {epochs: 3}\n", "t", {"train.epochs=7", "lr.rule=linear", "output.dir="});
  EXPECT_EQ(c.train.epochs, 7);
  EXPECT_EQ(c.lr.rule, ScalingRule::Linear);
  EXPECT_EQ(c.output.dir, "");
}

TEST(Config, UnknownKeyIsNamedWithTheNearestValidKey) {
  const std::string e = error_of("train:\n  local_bach: 64\n");
  EXPECT_NE(e.find("test.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'train.local_bach'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'train.local_batch'"), std::string::npos) << e;
  EXPECT_NE(override_error_of({"lr.rul=linear"}).find("did you mean 'lr.rule'"), std::string::npos);
  EXPECT_NE(error_of("optimizer: {base_lr: 1}\n").find("did you mean 'optim.base_lr'"), std::string::npos);
}

TEST(Config, WrongTypesAreRefusedWithTheKey) {
  EXPECT_NE(error_of("train: {epochs: ten}\n").find("'train.epochs': expected an integer, got 'ten'"),
            std::string::npos);
  EXPECT_NE(error_of("train: {epochs: 2.5}\n").find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of("optim: {base_lr: fast}\n").find("'optim.base_lr': expected a number"), std::string::npos);
  EXPECT_NE(error_of("train: {shuffle: maybe}\n").find("'train.shuffle': expected true or false"),
            std::string::npos);
  EXPECT_NE(error_of("optim: {base_lr: .nan}\n").find("finite"), std::string::npos);
  EXPECT_NE(error_of("train: {epochs: [1, 2]}\n").find("'train.epochs' expects a single value, not a list"),
            std::string::npos);
}

TEST(Config, OutOfRangeAndBadChoicesAreRefused) {
  EXPECT_NE(error_of("train: {local_batch: 0}\n").find("'train.local_batch': value 0 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("optim: {momentum: 1.5}\n").find("'optim.momentum'"), std::string::npos);
  EXPECT_NE(error_of("optim: {base_lr: -0.1}\n").find("out of range"), std::string::npos);
  const std::string e = error_of("lr: {rule: cubic}\n");
  EXPECT_NE(e.find("'lr.rule': expected one of none | linear | sqrt | adascale, got 'cubic'"), std::string::npos) << e;
  EXPECT_NE(error_of("data: {name: cifar}\n").find("'data.name'"), std::string::npos);
  EXPECT_NE(error_of("lr: {decay: step}\n").find("lr.step_every_epochs"), std::string::npos);
  EXPECT_NE(error_of("device: cpu\ncomm: {backend: nccl}\n").find("comm.backend"), std::string::npos);
  EXPECT_NE(error_of("optim: {nesterov: true}\n").find("'optim.nesterov' needs optim.momentum > 0"), std::string::npos);
}

TEST(Config, ReadsTheOptimizer) {
  EXPECT_EQ(load_config("", {}).optim.name, OptimizerName::Sgd);
  const Config c = load_config("", {"optim.name=lars", "optim.lars_eta=0.02"});
  EXPECT_EQ(c.optim.name, OptimizerName::Lars);
  EXPECT_DOUBLE_EQ(c.optim.lars_eta, 0.02);
  EXPECT_DOUBLE_EQ(load_config("", {"optim.name=lars"}).optim.lars_eta, 0.001);
  const std::string e = error_of("optim: {name: adam}\n");
  EXPECT_NE(e.find("'optim.name': expected one of sgd | lars, got 'adam'"), std::string::npos) << e;
  const std::string zero = error_of("optim: {name: lars, lars_eta: 0}\n");
  EXPECT_NE(zero.find("test.yaml:1: key 'optim.lars_eta' must be > 0 when optim.name is lars"), std::string::npos)
      << zero;
}

TEST(Config, AdaScaleTakesNoWarmupAndReadsEveryStep) {
  EXPECT_EQ(load_config("", {"lr.rule=adascale"}).lr.rule, ScalingRule::AdaScale);
  const std::string warmup = override_error_of({"lr.rule=adascale", "lr.warmup_epochs=1"});
  EXPECT_TRUE(has(warmup, "override 'lr.rule=adascale' and override 'lr.warmup_epochs=1': lr.rule=adascale takes "
                          "no warmup"))
      << warmup;
  EXPECT_TRUE(has(override_error_of({"lr.rule=adascale", "lr.warmup_steps=5"}), "takes no warmup"));
  const std::string checks = override_error_of({"lr.rule=adascale", "train.check_every=10"});
  EXPECT_TRUE(has(checks, "key 'train.check_every' is 10 but lr.rule=adascale reads every step")) << checks;
  EXPECT_TRUE(has(override_error_of({"lr.rule=adascale", "model.batch_norm=sync"}),
                  "lr.rule=adascale measures its gain from each rank's own gradient"));
  EXPECT_EQ(load_config("", {"lr.rule=adascale", "model.batch_norm=local"}).model.batch_norm, BatchNorm::Local);
}

TEST(Config, BatchNormIsAModelKeyWithThreeModes) {
  EXPECT_EQ(load_config("", {}).model.batch_norm, BatchNorm::None);
  EXPECT_EQ(parse_config("model: {batch_norm: local}\n", "t").model.batch_norm, BatchNorm::Local);
  EXPECT_EQ(load_config("", {"model.batch_norm=sync"}).model.batch_norm, BatchNorm::Sync);
  const std::string e = error_of("model: {batch_norm: global}\n");
  EXPECT_TRUE(has(e, "test.yaml:1: key 'model.batch_norm': expected one of none | local | sync, got 'global'")) << e;
  EXPECT_TRUE(has(override_error_of({"model.batchnorm=sync"}), "did you mean 'model.batch_norm'"));
  EXPECT_TRUE(has(error_of("model: sync\n"), "'model' is a section and must be a mapping of its keys"));
}

TEST(Config, ModelNameAndAnMlpsWidths) {
  EXPECT_EQ(load_config("", {}).model.name, ModelName::SimpleNN);
  EXPECT_EQ(load_config("", {"model.name=lenet5"}).model.name, ModelName::LeNet5);
  const Config mlp = parse_config("model: {name: mlp, hidden: [1024, 1024]}\n", "t");
  EXPECT_EQ(mlp.model.hidden, (std::vector<int64_t>{1024, 1024}));
  EXPECT_EQ(load_config("", {"model.name=mlp", "model.hidden=[300, 100]"}).model.hidden,
            (std::vector<int64_t>{300, 100}));
  EXPECT_EQ(load_config("", {"model.name=mlp", "model.hidden=512"}).model.hidden, (std::vector<int64_t>{512}));
  // The dump writes the list as a list, and reads back to it.
  const std::string dumped = dump_config(mlp);
  EXPECT_TRUE(has(dumped, "hidden: [1024, 1024]")) << dumped;
  EXPECT_EQ(parse_config(dumped, "dumped").model.hidden, mlp.model.hidden);
  std::string e = error_of("model: {name: mlp, hidden: [1024, 0]}\n");
  EXPECT_TRUE(has(e, "test.yaml:1: key 'model.hidden': value 0 is out of range [1, 65536]")) << e;
  e = error_of("model: {name: mlp, hidden: [[1], 2]}\n");
  EXPECT_TRUE(has(e, "key 'model.hidden': expected a list of integers, not a nested list")) << e;
  e = override_error_of({"model.name=mlp", "model.hidden=[]"});
  EXPECT_TRUE(has(e, "key 'model.hidden': expected a list of 1 to 16 integers")) << e;
  e = error_of("model: {name: lenet, hidden: [1]}\n");
  EXPECT_TRUE(has(e, "key 'model.name': expected one of simple_nn | mlp | lenet5, got 'lenet'")) << e;
  // Widths for a model without any would be silently ignored.
  e = error_of("model: {hidden: [256]}\n");
  EXPECT_TRUE(has(e, "test.yaml:1: key 'model.hidden' gives the widths of model.name=mlp's hidden layers, but "
                     "model.name is simple_nn"))
      << e;
  EXPECT_TRUE(has(error_of("model: {name: mlp, batch_norm: {x: 1}}\n"), "expects a single value, not a mapping"));
}

TEST(Config, LocalBatchNormNeedsTwoSamplesPerRank) {
  const std::string e = error_of("model: {batch_norm: local}\n", {"train.local_batch=1"});
  EXPECT_TRUE(has(e, "test.yaml:1 and override 'train.local_batch=1': key 'train.local_batch' is 1 but "
                     "model.batch_norm=local"))
      << e;
  // Sync normalises the global batch, which set-up checks once it knows the world size.
  EXPECT_EQ(load_config("", {"model.batch_norm=sync", "train.local_batch=1"}).train.local_batch, 1);
  EXPECT_EQ(load_config("", {"model.batch_norm=local", "train.local_batch=2"}).train.local_batch, 2);
}

TEST(Config, SyntaxErrorsAndBadOverridesNameTheirSource) {
  EXPECT_NE(error_of("train: {epochs: 3\n").find("test.yaml:"), std::string::npos);
  EXPECT_NE(error_of("train: {epochs: 3\n").find("YAML syntax error"), std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("expected a mapping"), std::string::npos);
  EXPECT_NE(override_error_of({"train.epochs"}).find("override 'train.epochs': expected section.key=value"),
            std::string::npos);
  EXPECT_NE(override_error_of({"train.epochs=x"}).find("override 'train.epochs=x'"), std::string::npos);
}

TEST(Config, NonScalarKeysAreRefused) {
  // Found by fuzz_config: a YAML mapping or list used as a key.
  EXPECT_NE(error_of("? [a, b]\n: 1\n").find("a key must be a plain name"), std::string::npos);
  EXPECT_NE(error_of("train:\n  ? {x: 1}\n  : 2\n").find("under 'train'"), std::string::npos);
}

TEST(Config, MissingFileIsAnInputError) {
  try {
    load_config("/nonexistent/cfg.yaml", {});
    FAIL() << "accepted a missing file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cfg.yaml"), std::string::npos);
  }
}

TEST(Config, DumpReadsBackToTheSameConfig) {
  const Config c = load_config("", {"data.name=fashion-mnist", "optim.base_lr=0.0123456789", "lr.rule=sqrt",
                                    "lr.warmup_epochs=1.5", "train.seed=123456789012", "output.dir=runs/x y"});
  const std::string dumped = dump_config(c);
  const Config again = parse_config(dumped, "dumped");
  EXPECT_EQ(dump_config(again), dumped);
  EXPECT_DOUBLE_EQ(again.optim.base_lr, 0.0123456789);
  EXPECT_EQ(again.train.seed, 123456789012);
  EXPECT_EQ(again.output.dir, "runs/x y");
  EXPECT_EQ(again.data.dir, "data/fashion-mnist");
}

TEST(Config, RecursiveAliasesAreRefusedNotFollowed) {
  // Each of these used to recurse in the loader until the stack overflowed.
  EXPECT_TRUE(
      has(error_of("train: &a {x: *a}\n"), "test.yaml:1: key 'train.x' is an alias of a mapping that contains it"));
  EXPECT_TRUE(
      has(error_of("&doc\ntrain: *doc\n"), "test.yaml:2: key 'train' is an alias of a mapping that contains it"));
  EXPECT_TRUE(has(error_of("&doc\ndevice: *doc\n"), "key 'device' is an alias of a mapping that contains it"));
  // Deeper cycles end at the walk's fixed depth: a key's value must be a single value.
  EXPECT_TRUE(
      has(error_of("train: &a {epochs: {x: *a}}\n"), "key 'train.epochs' expects a single value, not a mapping"));
  EXPECT_TRUE(has(error_of("x: &a {y: *a}\n"), "unknown key 'x.y'"));
}

TEST(Config, AliasesThatDoNotRecurseStillWork) {
  const Config c = parse_config("train: {epochs: &n 3, local_batch: 16}\nlr: {base_batch: *n}\n", "t");
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.lr.base_batch, 3);
}

TEST(Config, DeepNestingSaysItIsTooDeep) {
  const std::string e = error_of(std::string(5000, '['));
  EXPECT_TRUE(has(e, "test.yaml: YAML nesting is too deep")) << e;
  EXPECT_FALSE(has(e, "bad file")) << e;
  EXPECT_TRUE(has(override_error_of({"train.epochs=" + std::string(5000, '{')}), "nesting is too deep"));
  // Nesting the parser accepts still stops at the second level.
  std::string nested = "train: {epochs: ";
  for (int i = 0; i < 200; ++i) nested += "{a: ";
  nested += "1" + std::string(201, '}') + "\n";
  EXPECT_TRUE(has(error_of(nested), "key 'train.epochs' expects a single value, not a mapping"));
}

TEST(Config, DuplicateKeysAreRefused) {
  EXPECT_TRUE(has(error_of("train:\n  epochs: 1\n  epochs: 2\n"),
                  "test.yaml:3: key 'train.epochs' is given twice (first on line 2)"));
  // A repeated section would otherwise merge (or, in other YAML readers, replace) the first.
  EXPECT_TRUE(has(error_of("train: {epochs: 1}\nlr: {rule: sqrt}\ntrain: {seed: 2}\n"),
                  "test.yaml:3: key 'train' is given twice (first on line 1)"));
  EXPECT_TRUE(has(error_of("device: cpu\ndevice: cuda\n"), "key 'device' is given twice"));
  // The same key written as a dotted name and inside its section.
  EXPECT_TRUE(has(error_of("optim.base_lr: 0.1\noptim: {base_lr: 0.2}\n"),
                  "test.yaml:2: key 'optim.base_lr' is given twice (first at test.yaml:1)"));
  // Overrides are applied in order, so a later one still replaces an earlier one (and the file).
  EXPECT_EQ(parse_config("train: {epochs: 1}\n", "t", {"train.epochs=2", "train.epochs=3"}).train.epochs, 3);
}

TEST(Config, SeveralDocumentsAreRefused) {
  const std::string e = error_of("train: {epochs: 1}\n---\ntrain: {epochs: 500}\n");
  EXPECT_TRUE(has(e, "test.yaml:2: a second YAML document starts here ('---'); a config is a single document")) << e;
  EXPECT_TRUE(has(error_of("train: {epochs: 1}\n---\n"), "test.yaml:2: a second YAML document"));
  EXPECT_TRUE(has(override_error_of({"train.epochs=1\n---\n2"}), "override 'train.epochs=1\n---\n2': a second YAML"));
  // One document with its optional start and end markers is fine.
  EXPECT_EQ(parse_config("---\ntrain: {epochs: 4}\n...\n", "t").train.epochs, 4);
}

TEST(Config, StrayTokensAreSyntaxErrors) {
  // Found by fuzz_config: yaml-cpp 0.7 ends the document before a stray ',' and LoadAll loops on it
  // forever; Load alone read the second file as empty, so it trained on the defaults.
  EXPECT_TRUE(has(error_of("- train\n,\n"), "test.yaml:2: YAML syntax error: unexpected ','"));
  EXPECT_TRUE(has(error_of("&doc\n,train: {epochs: 3}\n"), "test.yaml:2: YAML syntax error: unexpected ','"));
  EXPECT_TRUE(has(override_error_of({"train.epochs=,"}), "override 'train.epochs=,': YAML syntax error"));
}

TEST(Config, IntegersAreDecimalInFilesAndOverrides) {
  // YAML 1.2 reads a leading zero as a decimal digit; yaml-cpp alone would read 0100 as octal 64.
  EXPECT_EQ(parse_config("train: {local_batch: 0100}\n", "t").train.local_batch, 100);
  EXPECT_EQ(load_config("", {"train.local_batch=0100"}).train.local_batch, 100);
  EXPECT_EQ(parse_config("train: {epochs: 08}\n", "t").train.epochs, 8);
  EXPECT_EQ(load_config("", {"train.epochs=+5", "train.seed=-0"}).train.epochs, 5);
  EXPECT_TRUE(has(override_error_of({"train.epochs=0300000"}),
                  "'train.epochs': value 300000 is out of range [1, 100000]"));
  for (const std::string bad : {"0x10", "0o17", "1_000", "1e3", "--1", "+", "0b11"}) {
    EXPECT_TRUE(has(override_error_of({"train.epochs=" + bad}), "expected an integer")) << bad;
    EXPECT_TRUE(has(error_of("train: {epochs: '" + bad + "'}\n"), "expected an integer")) << bad;
  }
  EXPECT_TRUE(has(override_error_of({"train.seed=99999999999999999999"}),
                  "'train.seed': value 99999999999999999999 is out of range"));
}

TEST(Config, EmptyFileIsRefusedNotReadAsDefaults) {
  for (const std::string empty : {"", "\n", "# all commented out\n#train: {epochs: 3}\n", "---\n", "~\n"})
    EXPECT_TRUE(has(error_of(empty), "test.yaml: the config file is empty (no keys); omit --config to train on the "
                                     "defaults"))
        << empty;
  const std::string path = write_file("empty.yaml", "");
  try {
    load_config(path, {"train.epochs=1"});
    FAIL() << "accepted an empty file";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), path + ": the config file is empty")) << e.what();
  }
  EXPECT_EQ(load_config("", {}).train.epochs, 10);        // no file at all: the defaults
  EXPECT_EQ(parse_config("{}\n", "t").train.epochs, 10);  // an explicitly empty mapping
}

TEST(Config, FilesAreReadThroughTheSameParser) {
  EXPECT_EQ(load_config(write_file("ok.yaml", "train: {epochs: 7}\n"), {}).train.epochs, 7);
  try {
    load_config(write_file("two.yaml", "train: {epochs: 7}\n---\n"), {});
    FAIL() << "accepted two documents";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "two.yaml:2: a second YAML document")) << e.what();
  }
  try {
    load_config(testing::TempDir(), {});
    FAIL() << "accepted a directory";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "is a directory, not a config file")) << e.what();
  }
}

TEST(Config, WarmupLongerThanTheRunIsRefused) {
  const std::string e = error_of("train: {epochs: 3}\nlr: {rule: linear, warmup_epochs: 4.5}\n");
  EXPECT_TRUE(has(e, "test.yaml:2 and test.yaml:1: key 'lr.warmup_epochs' is 4.5 but train.epochs is 3")) << e;
  EXPECT_TRUE(has(override_error_of({"lr.warmup_epochs=11"}), "is 11 but train.epochs is 10"));
  EXPECT_DOUBLE_EQ(parse_config("train: {epochs: 3}\nlr: {warmup_epochs: 3}\n", "t").lr.warmup_epochs, 3.0);
  // lr.warmup_steps > 0 replaces lr.warmup_epochs, which then does not matter.
  EXPECT_EQ(load_config("", {"lr.warmup_epochs=11", "lr.warmup_steps=5"}).lr.warmup_steps, 5);
}

TEST(Config, CrossKeyErrorsNameWhereTheValuesCameFrom) {
  const std::string only_overrides = override_error_of({"train.on_nonfinite=skip", "train.check_every=3"});
  EXPECT_TRUE(has(only_overrides, "override 'train.on_nonfinite=skip' and override 'train.check_every=3': key "
                                  "'train.check_every' is 3"))
      << only_overrides;
  EXPECT_FALSE(has(only_overrides, "defaults")) << only_overrides;
  const std::string mixed = error_of("lr:\n  decay: step\n", {"train.epochs=2"});
  EXPECT_TRUE(has(mixed, "test.yaml:2: key 'lr.step_every_epochs' must be > 0")) << mixed;
  const std::string both = error_of("device: cpu\n", {"comm.backend=nccl"});
  EXPECT_TRUE(has(both, "test.yaml:1 and override 'comm.backend=nccl': key 'comm.backend' is nccl")) << both;
}

TEST(Config, ExponentialAndCyclicDecays) {
  const Config c = parse_config("lr: {decay: exponential, exp_gamma: 0.5}\n", "t");
  EXPECT_EQ(c.lr.decay, LrDecay::Exponential);
  EXPECT_DOUBLE_EQ(c.lr.exp_gamma, 0.5);
  const Config cyclic = load_config("", {"lr.decay=cyclic", "lr.cycle_epochs=0.5", "lr.min_lr=0.001"});
  EXPECT_EQ(cyclic.lr.decay, LrDecay::Cyclic);
  EXPECT_DOUBLE_EQ(cyclic.lr.cycle_epochs, 0.5);
  const Config defaults = load_config("", {});
  EXPECT_DOUBLE_EQ(defaults.lr.exp_gamma, 0.9);
  EXPECT_DOUBLE_EQ(defaults.lr.cycle_epochs, 2.0);
}

TEST(Config, ExponentialAndCyclicDecaysAreChecked) {
  const std::string zero_gamma = error_of("lr: {decay: exponential, exp_gamma: 0}\n");
  EXPECT_TRUE(has(zero_gamma, "test.yaml:1: key 'lr.exp_gamma' must be > 0 when lr.decay is exponential"))
      << zero_gamma;
  EXPECT_TRUE(has(override_error_of({"lr.exp_gamma=1.5"}), "'lr.exp_gamma': value 1.5 is out of range [0, 1]"));
  // Only the decay that uses a key checks it: a zero cycle means nothing to an exponential decay.
  EXPECT_DOUBLE_EQ(load_config("", {"lr.decay=exponential", "lr.cycle_epochs=0"}).lr.cycle_epochs, 0.0);
  const std::string zero_cycle = override_error_of({"lr.decay=cyclic", "lr.cycle_epochs=0"});
  EXPECT_TRUE(has(zero_cycle, "override 'lr.decay=cyclic' and override 'lr.cycle_epochs=0': key 'lr.cycle_epochs' "
                              "must be > 0 when lr.decay is cyclic"))
      << zero_cycle;
  // Without a scaling rule the peak is optim.base_lr; with one, set-up checks the scaled peak.
  const std::string floor = error_of("lr: {decay: cyclic, min_lr: 0.05}\n");
  EXPECT_TRUE(has(floor, "key 'lr.min_lr' exceeds optim.base_lr")) << floor;
  EXPECT_DOUBLE_EQ(load_config("", {"lr.decay=cyclic", "lr.min_lr=0.05", "lr.rule=linear"}).lr.min_lr, 0.05);
}

TEST(Config, StepMetricsAreOffByDefault) {
  EXPECT_EQ(load_config("", {}).metrics.every_steps, 0);
  EXPECT_EQ(parse_config("metrics: {every_steps: 10}\n", "t").metrics.every_steps, 10);
  EXPECT_TRUE(has(override_error_of({"metrics.every_steps=-1"}), "'metrics.every_steps': value -1 is out of range"));
}

TEST(Config, SectionGivenASingleValueIsExplained) {
  const std::string e = error_of("train: 5\n");
  EXPECT_TRUE(has(e, "test.yaml:1: 'train' is a section and must be a mapping of its keys (e.g. 'train: {epochs: "
                     "10}'), not a single value; its keys are epochs, local_batch, seed"))
      << e;
  EXPECT_FALSE(has(e, "did you mean")) << e;
  EXPECT_TRUE(has(error_of("lr: [linear]\n"), "'lr' is a section and must be a mapping of its keys (e.g. 'lr: "
                                              "{rule: none}'), not a list"));
  EXPECT_TRUE(has(error_of("optim:\n"), "'optim' is a section and must be a mapping of its keys"));
  EXPECT_TRUE(has(override_error_of({"train=5"}), "unknown key 'train'; 'train' is a section, its keys are epochs"));
}

TEST(Config, SuggestionsOnlyForCloseNames) {
  EXPECT_TRUE(has(override_error_of({"train.epoch=3"}), "did you mean 'train.epochs'?"));
  const std::string far = error_of("a:\n  b:\n    c: 1\n");
  EXPECT_FALSE(has(far, "did you mean")) << far;
  EXPECT_TRUE(has(far, "unknown key 'a.b'; the top level has the sections data, model, train, optim")) << far;
  EXPECT_TRUE(has(far, "and the key device")) << far;
  const std::string far_override = override_error_of({"a.b.c=1"});
  EXPECT_FALSE(has(far_override, "did you mean")) << far_override;
  const std::string in_section = override_error_of({"optim.lr=1"});
  EXPECT_TRUE(has(in_section, "unknown key 'optim.lr'; the keys of 'optim' are name, base_lr, momentum, "
                              "weight_decay, nesterov, lars_eta"))
      << in_section;
}


TEST(Config, CompressionAndLocalSgdKeys) {
  const Config d = load_config("", {});
  EXPECT_EQ(d.comm.compression, Compression::None);
  EXPECT_EQ(d.comm.powersgd_rank, 2);
  EXPECT_DOUBLE_EQ(d.comm.powersgd_min_ratio, 2.0);
  EXPECT_EQ(d.comm.compression_start_step, kAutoStep);
  EXPECT_EQ(d.comm.local_sgd_period, 0);
  const Config c = parse_config(
      "comm: {compression: powersgd, powersgd_rank: 4, compression_start_step: 100, local_sgd_start_step: auto}\n",
      "t", {"comm.local_sgd_period=16"});
  EXPECT_EQ(c.comm.compression, Compression::PowerSgd);
  EXPECT_EQ(c.comm.powersgd_rank, 4);
  EXPECT_EQ(c.comm.compression_start_step, 100);
  EXPECT_EQ(c.comm.local_sgd_period, 16);
  EXPECT_EQ(c.comm.local_sgd_start_step, kAutoStep);
  const std::string dump = dump_config(c);
  EXPECT_TRUE(has(dump, "local_sgd_start_step: auto")) << dump;
  EXPECT_EQ(dump_config(parse_config(dump, "dump")), dump);
  EXPECT_TRUE(has(override_error_of({"comm.compression=gzip"}), "expected one of none | fp16 | bf16 | powersgd"));
  EXPECT_TRUE(has(override_error_of({"comm.compression_start_step=-3"}), "expected auto or a step number >= 0"));
  EXPECT_TRUE(has(override_error_of({"comm.compression_start_step=soon"}), "comm.compression_start_step"));
  EXPECT_TRUE(has(override_error_of({"comm.powersgd_rank=0"}), "out of range"));
}

TEST(Config, StopAtTargetNeedsATarget) {
  EXPECT_TRUE(has(override_error_of({"train.stop_at_target=true"}), "metrics.target_accuracy is 0"));
  EXPECT_TRUE(load_config("", {"train.stop_at_target=true", "metrics.target_accuracy=0.8"}).train.stop_at_target);
}

TEST(Config, LocalSgdRefusesWhatCannotMeanAnything) {
  const std::string virtual_ranks = override_error_of({"comm.local_sgd_period=4", "train.virtual_ranks=2"});
  EXPECT_TRUE(has(virtual_ranks, "comm.local_sgd_period")) << virtual_ranks;
  EXPECT_TRUE(has(virtual_ranks, "train.virtual_ranks")) << virtual_ranks;
  const std::string sync_bn = override_error_of({"comm.local_sgd_period=4", "model.batch_norm=sync"});
  EXPECT_TRUE(has(sync_bn, "model.batch_norm=sync")) << sync_bn;
  EXPECT_TRUE(has(override_error_of({"comm.local_sgd_period=4", "lr.rule=adascale"}), "lr.rule=adascale"));
  // What does mean something is accepted.
  load_config("", {"comm.local_sgd_period=4", "model.batch_norm=local", "comm.compression=powersgd"});
  load_config("", {"comm.compression=fp16", "lr.rule=sqrt"});
}

// AdaScale's gain is measured only where the exact float32 mean is formed: no compression
// forms it, and a start step would freeze the gain there; every mode is refused, naming both keys.
TEST(Config, AdaScaleRefusesEveryCompression) {
  for (const std::string mode : {"powersgd", "fp16", "bf16"}) {
    const std::string e = override_error_of({"comm.compression=" + mode, "lr.rule=adascale"});
    EXPECT_TRUE(has(e, "override 'comm.compression=" + mode + "' and override 'lr.rule=adascale'")) << e;
    EXPECT_TRUE(has(e, "comm.compression=" + mode + " does not form")) << e;
    EXPECT_FALSE(has(e, "fp16 or bf16")) << e;  // the old advice, which led to an unmeasured gain
  }
  const std::string later = override_error_of({"comm.compression=fp16", "comm.compression_start_step=100",
                                               "lr.rule=adascale"});
  EXPECT_TRUE(has(later, "lr.rule=adascale")) << later;
  EXPECT_EQ(load_config("", {"comm.compression=none", "lr.rule=adascale"}).lr.rule, ScalingRule::AdaScale);
}

// --help and docs/configuration.md both come from the schema: one line, and one table row, per key.
TEST(Config, HelpAndTheReferenceListEveryKeyWithItsValuesAndDefault) {
  const size_t keys = config_entries(Config{}).size();
  const std::string help = describe_config_keys();
  EXPECT_EQ(size_t(std::count(help.begin(), help.end(), '\n')), keys);
  EXPECT_TRUE(has(help, "  lr.rule                 learning-rate scaling with the global batch; adascale: by the "
                        "measured gain (none | linear | sqrt | adascale) [default: none]\n"))
      << help;

  const std::string table = describe_config_keys_markdown();
  EXPECT_EQ(size_t(std::count(table.begin(), table.end(), '\n')), keys + 2);  // a header, a rule, a row per key
  EXPECT_TRUE(has(table, "| `lr.rule` | `none` \\| `linear` \\| `sqrt` \\| `adascale` | `none` | learning-rate "
                         "scaling with the global batch; adascale: by the measured gain |\n"))
      << table;
  EXPECT_TRUE(has(table, "| `train.epochs` | integer in [1, 100000] | `10` | epochs to train |\n")) << table;
  EXPECT_TRUE(has(table, "| `train.seed` | integer ≥ 0 | `42` |")) << table;
  EXPECT_TRUE(has(table, "| `optim.base_lr` | number in [0, 1e+06] | `0.01` |")) << table;
  EXPECT_TRUE(has(table, "| `comm.compression_start_step` | `auto` \\| step ≥ 0 | `auto` |")) << table;
  // An empty default says so; <name> would vanish as an HTML tag, a bare | would end the cell.
  EXPECT_TRUE(has(table, "| `data.dir` | text | empty | directory with the four IDX files (plain or .gz); empty: "
                         "data/&lt;name&gt; |\n"))
      << table;
  EXPECT_FALSE(has(table, "<")) << table;
}

}  // namespace
}  // namespace ddp
