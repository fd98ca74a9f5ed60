// Names of enum values kept in tables of {value, name} entries (kMethods, kFormats, …): the
// lookups both ways, written once.
#pragma once

#include <optional>
#include <string_view>
#include <type_traits>

#include "pqtool/error.hpp"

namespace pqtool {

/// The name of the entry whose `field` is `value` (an internal error when none is).
template <typename Table, typename Field, typename Value>
std::string_view name_in(const Table& table, Field field, Value value) {
  for (const auto& info : table) {
    if (info.*field == value) return info.name;
  }
  PQ_ASSERT(false);
  return {};
}

/// The `field` of the entry named `name`; empty when no entry has that name.
template <typename Table, typename Field>
auto value_named(const Table& table, Field field, std::string_view name)
    -> std::optional<std::remove_cvref_t<decltype((*table.begin()).*field)>> {
  for (const auto& info : table) {
    if (info.name == name) return info.*field;
  }
  return std::nullopt;
}

}  // namespace pqtool
