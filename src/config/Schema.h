#pragma once
// The schema: every configurable key once, with its type, its range, its help and its
// default (a default-constructed Config). Reading (YamlReading.h), the cross-key checks
// (Validation.h), the dump, --help and the reference page (docs/configuration.md) all come
// from this one list. Internal to src/config: the rest of the code sees Config.h.
#include <functional>
#include <string>
#include <vector>

#include "config/Config.h"

namespace YAML {
class Node;
}

namespace ddp::config {

// What a key's value may be: how --help and the reference describe it.
enum class Kind { Integer, Number, Boolean, Text, Choice, StepOrAuto, IntegerList };

// One configurable key: how to read it from a YAML scalar and how to print it.
struct Field {
  std::string key;     // "section.key", or a top-level key ("device")
  std::string help;    // what it means, one line
  Kind kind;
  std::string values;  // the values it takes, in words: "integer in [1, 100000]", "none | linear | sqrt"
  std::function<void(Config&, const YAML::Node&)> parse;  // throws std::string on a bad value
  // (a scalar; for Kind::IntegerList a sequence, or its flow text "[1024, 1024]" as the dump writes it)
  std::function<std::string(const Config&)> show;
};

// Every key, in the order the dump, --help and the reference list them.
const std::vector<Field>& schema();

// The field of `key`, or nullptr.
const Field* field_named(const std::string& key);

// A key's value as the dump shows it; `key` is one of the schema's.
std::string shown(const Config& config, const std::string& key);

// "train" of "train.epochs"; empty for a top-level key such as "device".
std::string section_of(const std::string& key);

// Whether some key of the schema lives in section `name`.
bool is_section(const std::string& name);

// The keys of `section` without its prefix, in schema order: "epochs, local_batch, ...".
std::string keys_of_section(const std::string& section);

// What to add to "unknown key 'K'": the nearest key when K looks like its typo, else the
// valid names of K's section or of the top level.
std::string unknown_key_hint(const std::string& key);

// Sets `key` of `config` from a YAML value; `where` (a file and line, or an override) starts
// every error. Throws InputError for an unknown key, a non-scalar value (but a list's) or a bad value.
void set_key(Config& config, const std::string& key, const YAML::Node& value, const std::string& where);

}  // namespace ddp::config
