#include "config/YamlReading.h"

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion, not in yaml.h
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <sstream>
#include <vector>

#include "common/Errors.h"
#include "config/Schema.h"

namespace ddp::config {
namespace {

std::string location(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

std::string location(const std::string& source, const YAML::Node& node) { return location(source, node.Mark()); }

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
  set_key(walk.config, key, value, where);
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

}  // namespace

void read_file_text(Config& config, Origins& origins, const std::string& text, const std::string& source) {
  const YAML::Node document = load_document(text, source, true);
  // Most likely a mistake (a wrong or truncated file) rather than a request for the defaults.
  if (document.IsNull())
    throw InputError(source + ": the config file is empty (no keys); omit --config to train on the defaults");
  FileWalk walk{config, origins, source, document};
  apply_document(walk);
}

void read_override(Config& config, Origins& origins, const std::string& override) {
  const auto eq = override.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("override '" + override + "': expected section.key=value");
  const std::string key = override.substr(0, eq);
  const std::string where = "override '" + override + "'";
  YAML::Node value = load_document(override.substr(eq + 1), where, false);
  if (value.IsNull()) value = YAML::Node(std::string());  // `output.dir=` means empty
  set_key(config, key, value, where);
  origins[key] = where;
}

}  // namespace ddp::config
