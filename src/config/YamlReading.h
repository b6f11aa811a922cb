#pragma once
// Reading a config's YAML into a Config: the one document of a file (a second one, a stray
// token, nesting past two levels refused), its sections and keys (duplicates, keys that are
// not plain names, aliases that contain themselves refused), and `section.key=value`
// overrides. Every error names the file and line, or the override, and the key.
#include <string>

#include "config/Config.h"
#include "config/Origins.h"

namespace ddp::config {

// Applies the config file `text` (named `source` in errors) to `config`, recording in `origins`
// where each key was set. A text without any key (empty, only comments) is refused.
void read_file_text(Config& config, Origins& origins, const std::string& text, const std::string& source);

// Applies one "section.key=value" override; its value is read as a YAML scalar, and an empty
// one ("output.dir=") means the empty string.
void read_override(Config& config, Origins& origins, const std::string& override);

}  // namespace ddp::config
