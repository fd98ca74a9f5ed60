// The name tables (kMethods, kFormats, kGranularities, kObjectives, kBaselines, kClipMethods):
// every entry's name leads back to its value and its value to its name, names are unique, and
// an unknown name is refused.
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>

#include "pqtool/baselines.hpp"
#include "pqtool/name_table.hpp"
#include "pqtool/pipeline.hpp"
#include "pqtool/plan.hpp"
#include "pqtool/quantize.hpp"
#include "pqtool/rewrite.hpp"
#include "pqtool/uniform.hpp"

namespace pqtool {
namespace {

// For a table with both lookups: name → value → name for every entry.
template <typename Table, typename Field, typename Parse>
void expect_round_trip(const Table& table, Field field, Parse parse) {
  std::set<std::string> names;
  for (const auto& info : table) {
    EXPECT_TRUE(names.insert(std::string(info.name)).second) << "duplicate name " << info.name;
    const auto parsed = parse(info.name);
    ASSERT_TRUE(parsed.has_value()) << info.name;
    EXPECT_TRUE(*parsed == info.*field) << info.name;
    EXPECT_EQ(to_string(*parsed), info.name);
  }
  EXPECT_FALSE(parse("no-such-name").has_value());
  EXPECT_FALSE(parse("").has_value());
}

TEST(NameTable, EveryTableRoundTrips) {
  expect_round_trip(kMethods, &MethodInfo::method, parse_method);
  expect_round_trip(kFormats, &FormatInfo::format, parse_format);
  expect_round_trip(kGranularities, &GranularityInfo::granularity, parse_granularity);
  expect_round_trip(kObjectives, &ObjectiveInfo::objective, parse_objective);
  expect_round_trip(kBaselines, &BaselineInfo::format, parse_baseline);
}

TEST(NameTable, ClipMethodsNameTheirOwnEntry) {
  for (const ClipMethodInfo& info : kClipMethods) EXPECT_EQ(to_string(info.method), info.name);
}

TEST(NameTable, AValueMissingFromItsTableIsAnInternalError) {
  struct Entry {
    int value;
    std::string_view name;
  };
  constexpr std::array<Entry, 2> table{{{1, "one"}, {2, "two"}}};
  EXPECT_EQ(name_in(table, &Entry::value, 2), "two");
  EXPECT_EQ(value_named(table, &Entry::value, "one"), std::optional<int>(1));
  try {
    name_in(table, &Entry::value, 3);
    FAIL() << "no error for a value outside the table";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
  }
}

}  // namespace
}  // namespace pqtool
