// The public face of src/config: a config is read (YamlReading), checked across keys
// (Validation), and printed, all through the one schema (Schema).
#include "config/Config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/Errors.h"
#include "config/Origins.h"
#include "config/Schema.h"
#include "config/Validation.h"
#include "config/YamlReading.h"

namespace ddp {
namespace {

// The defaults, then the file's keys (`text` null: no file), then the overrides, then the checks
// across keys.
Config build(const std::string* text, const std::string& source, const std::vector<std::string>& overrides) {
  Config config;
  config::Origins origins;
  if (text) config::read_file_text(config, origins, *text, source);
  for (const auto& override : overrides) config::read_override(config, origins, override);
  config::validate(config, origins);
  // The default directory follows the dataset, whichever way data.name was set.
  if (config.data.dir.empty()) config.data.dir = "data/" + config.data.name;
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

// A cell of a Markdown table: a '|' would end the cell, and <name> would vanish as an HTML tag.
std::string markdown_cell(const std::string& text) {
  std::string cell;
  for (const char ch : text) {
    if (ch == '|') cell += "\\|";
    else if (ch == '<') cell += "&lt;";
    else if (ch == '>') cell += "&gt;";
    else cell += ch;
  }
  return cell;
}

// The words a value may be as code ("`none` \| `linear`", "`auto` \| step ≥ 0"); ranges as the
// schema words them.
std::string markdown_values(const config::Field& field) {
  switch (field.kind) {
    case config::Kind::Choice:
    case config::Kind::Boolean: {
      std::string values, name;
      std::istringstream names(field.values);
      while (names >> name)
        if (name != "|") values += (values.empty() ? "`" : " \\| `") + name + "`";
      return values;
    }
    case config::Kind::StepOrAuto:
      return "`auto` \\| step ≥ 0";
    default:
      return markdown_cell(field.values);
  }
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return build(&yaml_text, source, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return build(nullptr, "defaults", overrides);
  const std::string text = read_config_file(path);
  return build(&text, path, overrides);
}

std::string dump_config(const Config& config) {
  YAML::Node root;
  for (const auto& field : config::schema()) {
    const std::string section = config::section_of(field.key);
    // A list as a YAML list ([1024, 1024]), not as the text of one.
    YAML::Node value = field.kind == config::Kind::IntegerList ? YAML::Load(field.show(config))
                                                               : YAML::Node(field.show(config));
    if (section.empty()) {
      root[field.key] = value;
    } else {
      root[section][field.key.substr(section.size() + 1)] = value;
    }
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::pair<std::string, std::string>> config_entries(const Config& config) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& field : config::schema()) entries.emplace_back(field.key, field.show(config));
  return entries;
}

std::string describe_config_keys() {
  std::string text;
  for (const auto& field : config::schema()) {
    std::string key = "  " + field.key;
    key.resize(std::max<size_t>(key.size() + 1, 26), ' ');
    const std::string choices = field.kind == config::Kind::Choice ? " (" + field.values + ")" : "";
    text += key + field.help + choices + " [default: " + field.show(Config{}) + "]\n";
  }
  return text;
}

std::string describe_config_keys_markdown() {
  std::string table = "| key | values | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& field : config::schema()) {
    const std::string value = field.show(Config{});
    table += "| `" + field.key + "` | " + markdown_values(field) + " | " +
             (value.empty() ? std::string("empty") : "`" + value + "`") + " | " + markdown_cell(field.help) + " |\n";
  }
  return table;
}

bool uses_min_lr(LrDecay decay) { return decay == LrDecay::Cosine || decay == LrDecay::Cyclic; }

bool depends_on_run_length(LrDecay decay) { return decay == LrDecay::Cosine; }

}  // namespace ddp
