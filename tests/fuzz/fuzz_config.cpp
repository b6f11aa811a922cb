// libFuzzer target: arbitrary text as a config file, and its first line as an override.
// Every input must end in a Config or an InputError; an accepted config must dump to
// YAML that parses back to the same dump.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/Errors.h"
#include "config/Config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string first_line = text.substr(0, text.find('\n'));
  for (const auto& overrides : {std::vector<std::string>{}, std::vector<std::string>{first_line}}) {
    try {
      const ddp::Config config = ddp::parse_config(text, "fuzz.yaml", overrides);
      const std::string dumped = ddp::dump_config(config);
      if (ddp::dump_config(ddp::parse_config(dumped, "dumped")) != dumped) __builtin_trap();
    } catch (const ddp::InputError&) {
    }
  }
  return 0;
}
