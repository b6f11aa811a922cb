#pragma once
// Where each key's value was set, so that an error about several keys can name the file
// lines and overrides to change. Filled by YamlReading, read by Validation.
#include <algorithm>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace ddp::config {

// key -> "file.yaml:3" or "override 'key=value'"; a key absent was left at its default.
using Origins = std::map<std::string, std::string>;

// Where the values of `keys` came from, for an error that involves several keys: "test.yaml:3",
// "override 'lr.decay=step'", both joined by "and"; keys left at their defaults are not named.
inline std::string origin_of(const Origins& origins, std::initializer_list<const char*> keys) {
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

}  // namespace ddp::config
