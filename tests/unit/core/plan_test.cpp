// The quantization plan on hand-made ConstTensor lists: the reason for every skipped tensor (and
// which reason wins when several apply), --exclude full matching, --min-elements bounds, the
// would-not-shrink rule, --bits-override precedence, unmatched patterns, and option errors.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/plan.hpp"
#include "test_support.hpp"

namespace pqtool {
namespace {

using test::error_of;

constexpr std::uint64_t kLarge = 4096;  // elements: big enough to shrink at every bit width

ConstTensor tensor(const std::string& name, std::uint64_t elements = kLarge, bool is_weight = true,
                   TensorType type = TensorType::kFloat32) {
  ConstTensor t;
  t.name = name;
  t.graph_label = "main";
  t.dims = {static_cast<std::int64_t>(elements)};
  t.type = type;
  t.elements = elements;
  t.bytes = elements * element_size(type);
  t.is_weight = is_weight;
  t.consumers.push_back({is_weight ? "MatMul" : "Add", 1, name + "_consumer"});
  return t;
}


const TensorPlan& entry(const Plan& plan, const std::vector<ConstTensor>& ts, const std::string& name) {
  for (const auto& e : plan.entries) {
    if (ts.at(e.tensor).name == name) return e;
  }
  throw std::runtime_error("no plan entry for " + name);
}

TEST(PlanTest, OneEntryPerTensorInOrder) {
  const std::vector<ConstTensor> ts = {tensor("a"), tensor("b", kLarge, false), tensor("c")};
  PlanOptions o;
  o.bits = 3;
  o.method = Method::kParametric;
  const Plan plan = make_plan(ts, o);
  ASSERT_EQ(plan.entries.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plan.entries[i].tensor, i);
    EXPECT_EQ(plan.entries[i].bits, 3);
    EXPECT_EQ(plan.entries[i].method, Method::kParametric);
  }
  EXPECT_TRUE(plan.entries[0].quantize);
  EXPECT_TRUE(plan.entries[0].reason.empty());
  EXPECT_FALSE(plan.entries[1].quantize);
  EXPECT_TRUE(plan.unmatched_patterns.empty());
}

TEST(PlanTest, NonWeightIsSkippedNamingItsConsumers) {
  const std::vector<ConstTensor> ts = {tensor("bias", kLarge, false)};
  const Plan plan = make_plan(ts, PlanOptions{});
  EXPECT_FALSE(plan.entries[0].quantize);
  EXPECT_NE(plan.entries[0].reason.find("not a weight"), std::string::npos) << plan.entries[0].reason;
  EXPECT_NE(plan.entries[0].reason.find("Add input 1"), std::string::npos) << plan.entries[0].reason;
}

TEST(PlanTest, ExcludeIsAFullMatch) {
  const std::vector<ConstTensor> ts = {tensor("conv_w"), tensor("my_conv_w"), tensor("fc_w")};
  PlanOptions o;
  o.exclude = {"conv_w", "fc"};  // "fc" matches no name in full
  const Plan plan = make_plan(ts, o);
  EXPECT_FALSE(entry(plan, ts, "conv_w").quantize);
  EXPECT_EQ(entry(plan, ts, "conv_w").reason, "excluded by --exclude");
  EXPECT_TRUE(entry(plan, ts, "my_conv_w").quantize);  // a substring match is not enough
  EXPECT_TRUE(entry(plan, ts, "fc_w").quantize);
  EXPECT_EQ(plan.unmatched_patterns, std::vector<std::string>{"--exclude fc"});

  o.exclude = {".*conv.*"};
  const Plan all = make_plan(ts, o);
  EXPECT_FALSE(entry(all, ts, "conv_w").quantize);
  EXPECT_FALSE(entry(all, ts, "my_conv_w").quantize);
  EXPECT_TRUE(entry(all, ts, "fc_w").quantize);
  EXPECT_TRUE(all.unmatched_patterns.empty());
}

TEST(PlanTest, MinElementsIsAnInclusiveLowerBound) {
  const std::vector<ConstTensor> ts = {tensor("below", kDefaultMinElements - 1), tensor("at", kDefaultMinElements)};
  const Plan plan = make_plan(ts, PlanOptions{});
  EXPECT_FALSE(entry(plan, ts, "below").quantize);
  EXPECT_NE(entry(plan, ts, "below").reason.find("--min-elements"), std::string::npos);
  EXPECT_TRUE(entry(plan, ts, "at").quantize) << entry(plan, ts, "at").reason;

  PlanOptions o;
  o.min_elements = kDefaultMinElements + 1;
  EXPECT_FALSE(entry(make_plan(ts, o), ts, "at").quantize);
}

TEST(PlanTest, WouldNotShrinkAtTheBreakEvenSize) {
  // 8-bit float32: n code bytes + 256 × 4 codebook bytes against 4n bytes; break-even at n = 341⅓.
  constexpr std::uint64_t kLastNotSmaller = 341;
  const std::vector<ConstTensor> ts = {tensor("small", kLastNotSmaller), tensor("big", kLastNotSmaller + 1)};
  PlanOptions o;
  o.bits = 8;
  o.min_elements = 0;
  const Plan plan = make_plan(ts, o);
  EXPECT_FALSE(entry(plan, ts, "small").quantize);
  EXPECT_EQ(entry(plan, ts, "small").reason, "8 bits would not make it smaller");
  EXPECT_TRUE(entry(plan, ts, "big").quantize) << entry(plan, ts, "big").reason;
  // At 4 bits the same small tensor shrinks.
  o.bits = 4;
  EXPECT_TRUE(make_plan(ts, o).entries[0].quantize);
}

TEST(PlanTest, WouldNotShrinkDependsOnTheStoredType) {
  // Same element count: float32 shrinks at 8 bits, float16 (half the bytes, half-size codebook) does not.
  constexpr std::uint64_t kElements = 400;
  const std::vector<ConstTensor> ts = {tensor("w32", kElements), tensor("w16", kElements, true, TensorType::kFloat16)};
  PlanOptions o;
  o.bits = 8;
  o.min_elements = 0;
  const Plan plan = make_plan(ts, o);
  EXPECT_TRUE(entry(plan, ts, "w32").quantize);
  EXPECT_FALSE(entry(plan, ts, "w16").quantize);
}

TEST(PlanTest, FirstApplicableReasonWins) {
  // not a weight > excluded > min-elements > graph input > would not shrink.
  ConstTensor input_w = tensor("input_w");
  input_w.listed_as_graph_input = true;
  ConstTensor small_input = tensor("small_input", 10);
  small_input.listed_as_graph_input = true;
  const std::vector<ConstTensor> ts = {tensor("nw_excluded", kLarge, false), tensor("excluded_small", 10),
                                       small_input, input_w};
  PlanOptions o;
  o.exclude = {".*excluded.*"};
  const Plan plan = make_plan(ts, o);
  EXPECT_NE(entry(plan, ts, "nw_excluded").reason.find("not a weight"), std::string::npos);
  EXPECT_EQ(entry(plan, ts, "excluded_small").reason, "excluded by --exclude");
  EXPECT_NE(entry(plan, ts, "small_input").reason.find("--min-elements"), std::string::npos);
  EXPECT_NE(entry(plan, ts, "input_w").reason.find("graph input"), std::string::npos);
  for (const auto& e : plan.entries) EXPECT_FALSE(e.quantize) << ts[e.tensor].name;
}

TEST(PlanTest, BitsOverrideLastMatchWins) {
  const std::vector<ConstTensor> ts = {tensor("conv1_w"), tensor("conv2_w"), tensor("fc_w")};
  PlanOptions o;
  o.bits = 4;
  o.overrides = {{".*", 2}, {"conv.*", 3}, {"conv2_w", 5}};
  Plan plan = make_plan(ts, o);
  EXPECT_EQ(entry(plan, ts, "conv1_w").bits, 3);
  EXPECT_EQ(entry(plan, ts, "conv2_w").bits, 5);
  EXPECT_EQ(entry(plan, ts, "fc_w").bits, 2);

  // Reversed: the broad pattern now comes last and wins everywhere.
  o.overrides = {{"conv2_w", 5}, {"conv.*", 3}, {".*", 2}};
  plan = make_plan(ts, o);
  for (const auto& e : plan.entries) EXPECT_EQ(e.bits, 2) << ts[e.tensor].name;
}

TEST(PlanTest, OverrideBitsFeedTheShrinkDecision) {
  const std::vector<ConstTensor> ts = {tensor("w", 300), tensor("v", 300)};
  PlanOptions o;
  o.min_elements = 0;
  o.overrides = {{"w", 8}};
  const Plan plan = make_plan(ts, o);
  EXPECT_FALSE(entry(plan, ts, "w").quantize);
  EXPECT_EQ(entry(plan, ts, "w").reason, "8 bits would not make it smaller");
  EXPECT_TRUE(entry(plan, ts, "v").quantize);
}

TEST(PlanTest, UnmatchedPatternsAreListedInOptionOrder) {
  const std::vector<ConstTensor> ts = {tensor("a_w"), tensor("b_w")};
  PlanOptions o;
  o.exclude = {"a_w", "nothing", "a"};
  o.overrides = {{"b_w", 3}, {"ghost.*", 2}};
  const Plan plan = make_plan(ts, o);
  EXPECT_EQ(plan.unmatched_patterns,
            (std::vector<std::string>{"--exclude nothing", "--exclude a", "--bits-override ghost.*"}));
}

TEST(PlanTest, InvalidRegexIsBadUsageNamingThePattern) {
  const std::vector<ConstTensor> ts = {tensor("w")};
  PlanOptions o;
  o.exclude = {"conv(["};
  auto e = error_of([&] { make_plan(ts, o); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("conv(["), std::string::npos) << e->what();
  EXPECT_NE(std::string(e->what()).find("--exclude"), std::string::npos) << e->what();

  o.exclude.clear();
  o.overrides = {{"*bad", 3}};
  e = error_of([&] { make_plan(ts, o); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("--bits-override"), std::string::npos) << e->what();
}

TEST(PlanTest, DefaultBitsOutOfRangeIsBadUsage) {
  const std::vector<ConstTensor> ts = {tensor("w")};
  for (int bits : {0, 9, -1}) {
    PlanOptions o;
    o.bits = bits;
    const auto e = error_of([&] { make_plan(ts, o); });
    ASSERT_TRUE(e) << bits;
    EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  }
}

TEST(PlanTest, ParseBitsOverrideAccepts) {
  BitsOverride o = parse_bits_override("conv.*=3");
  EXPECT_EQ(o.pattern, "conv.*");
  EXPECT_EQ(o.bits, 3);
  o = parse_bits_override("w=1");
  EXPECT_EQ(o.bits, 1);
  o = parse_bits_override("w=8");
  EXPECT_EQ(o.bits, 8);
  // The last '=' splits, so a pattern may itself hold '='.
  o = parse_bits_override("a=b=2");
  EXPECT_EQ(o.pattern, "a=b");
  EXPECT_EQ(o.bits, 2);
  // A leading zero is still the number 4.
  o = parse_bits_override("x=04");
  EXPECT_EQ(o.pattern, "x");
  EXPECT_EQ(o.bits, 4);
}

TEST(PlanTest, ParseBitsOverrideRejects) {
  for (const std::string text : {"a=9", "a=0", "=4", "a=", "a", "", "a=-1", "a=+4", "a= 4", "a=4 ", "a=100",
                                 "a=004", "a=4.0", "a=four", "([=4"}) {
    const auto e = error_of([&] { parse_bits_override(text); });
    ASSERT_TRUE(e) << "accepted '" << text << "'";
    EXPECT_EQ(e->code(), ErrorCode::kBadUsage) << text;
    EXPECT_NE(std::string(e->what()).find("--bits-override"), std::string::npos) << e->what();
  }
}

}  // namespace
}  // namespace pqtool
