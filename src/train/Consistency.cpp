#include "train/Consistency.h"

#include <fmt/core.h>

#include <sstream>

#include "common/Errors.h"

namespace ddp {
namespace {

std::string encode(const Fingerprint& fields) {
  std::string text;
  for (const auto& [name, value] : fields) text += name + '\x1f' + value + '\x1e';
  return text;
}

Fingerprint decode(const std::string& text) {
  Fingerprint fields;
  std::istringstream in(text);
  std::string record;
  while (std::getline(in, record, '\x1e')) {
    const auto split = record.find('\x1f');
    fields.emplace_back(record.substr(0, split), split == std::string::npos ? "" : record.substr(split + 1));
  }
  return fields;
}

}  // namespace

void check_consistency(Communicator& comm, const Fingerprint& mine) {
  const std::vector<std::string> all = comm.allgather(encode(mine));
  const Fingerprint reference = decode(all[0]);
  for (int r = 1; r < int(all.size()); ++r) {
    const Fingerprint theirs = decode(all[r]);
    for (size_t i = 0; i < std::max(reference.size(), theirs.size()); ++i) {
      const std::string name = i < reference.size() ? reference[i].first : theirs[i].first;
      const std::string ref_value = i < reference.size() ? reference[i].second : "<missing>";
      const std::string value = i < theirs.size() && theirs[i].first == name ? theirs[i].second : "<missing>";
      if (value != ref_value)
        throw InputError(fmt::format("rank {} differs from rank 0 in {}: '{}' vs '{}' on rank 0; every rank must "
                                     "run the same config, binary and data",
                                     r, name, value, ref_value));
    }
  }
}

}  // namespace ddp
