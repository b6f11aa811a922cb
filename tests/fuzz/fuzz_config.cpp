// libFuzzer target: arbitrary text as a config file, and its first line as an override, on
// top of the file and alone (no file: the override parser and the defaults' checks).
// Every input must end in a Config or an InputError; an accepted config must dump to
// YAML that parses back (without an error) to the same dump.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/Errors.h"
#include "config/Config.h"

namespace {

// A dump that is refused on reading, or reads back to another config, is a bug (it traps).
void check_round_trip(const ddp::Config& config) {
  const std::string dumped = ddp::dump_config(config);
  try {
    if (ddp::dump_config(ddp::parse_config(dumped, "dumped")) == dumped) return;
  } catch (const ddp::InputError&) {
  }
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string first_line = text.substr(0, text.find('\n'));
  for (const auto& overrides : {std::vector<std::string>{}, std::vector<std::string>{first_line}}) {
    std::optional<ddp::Config> config;
    try {
      config = ddp::parse_config(text, "fuzz.yaml", overrides);
    } catch (const ddp::InputError&) {
    }
    if (config) check_round_trip(*config);
  }
  std::optional<ddp::Config> from_override;
  try {
    from_override = ddp::load_config("", {first_line});
  } catch (const ddp::InputError&) {
  }
  if (from_override) check_round_trip(*from_override);
  return 0;
}
