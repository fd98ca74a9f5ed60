// `pqtool inspect`: per-weight statistics, fits and predicted SQNR (library and --json), and the
// plots — every SVG well-formed XML (checked by a small tag-balancing parser) even for tensor
// names full of markup characters, with the expected elements, plus index.html.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pqtool/inspect.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr const char* kAwkwardName = "enc/conv<1>&\"w\"'";


// A minimal XML well-formedness check: tags balance and nest, attribute values are quoted, and
// no raw '<' or stray '&' appears in text. Returns an empty string when fine, else the problem.
std::string xml_problem(const std::string& doc) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  auto bad_entity = [&](std::size_t at) {
    static const char* kEntities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (const char* e : kEntities) {
      if (doc.compare(at, std::strlen(e), e) == 0) return false;
    }
    return true;
  };
  bool root_seen = false;
  while (i < doc.size()) {
    if (doc[i] == '&' && bad_entity(i)) return "bad entity at " + std::to_string(i);
    if (doc[i] != '<') {
      if (doc[i] == '>') return "raw '>' in text at " + std::to_string(i);
      ++i;
      continue;
    }
    if (doc.compare(i, 5, "<?xml") == 0) {
      i = doc.find("?>", i);
      if (i == std::string::npos) return "unterminated declaration";
      i += 2;
      continue;
    }
    const bool closing = doc[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    std::string name;
    while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) || doc[j] == '-' || doc[j] == ':')) {
      name += doc[j++];
    }
    if (name.empty()) return "empty tag name at " + std::to_string(i);
    // Attributes: name="value" with no '<' inside values.
    bool self_closing = false;
    while (j < doc.size() && doc[j] != '>') {
      if (doc[j] == '"') {
        const std::size_t end = doc.find('"', j + 1);
        if (end == std::string::npos) return "unterminated attribute";
        for (std::size_t k = j + 1; k < end; ++k) {
          if (doc[k] == '<') return "'<' in attribute at " + std::to_string(k);
          if (doc[k] == '&' && bad_entity(k)) return "bad entity in attribute at " + std::to_string(k);
        }
        j = end + 1;
        continue;
      }
      if (doc[j] == '\'') return "single-quoted attribute at " + std::to_string(j);
      if (doc[j] == '/' && j + 1 < doc.size() && doc[j + 1] == '>') self_closing = true;
      ++j;
    }
    if (j >= doc.size()) return "unterminated tag " + name;
    if (closing) {
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
    } else if (!self_closing) {
      if (stack.empty() && root_seen) return "second root element " + name;
      root_seen = true;
      stack.push_back(name);
    }
    i = j + 1;
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return root_seen ? "" : "no root element";
}

std::size_t count_of(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

class InspectTest : public testing::Test {
 protected:
  void SetUp() override {
    ModelBuilder b(13);
    b.add_input("x", {1, 8, 10, 10});
    b.add_input("m", {3, 37});
    b.add_initializer(kAwkwardName, {16, 8, 3, 3}, random_weights(1152, 21));
    b.add_initializer("mm_w", {37, 13}, random_weights(481, 22));
    b.add_initializer("const_w", {13, 4}, std::vector<float>(52, 0.25f));  // degenerate: one value
    b.add_initializer("mm_b", {13}, random_weights(13, 23));              // a bias: not a weight
    b.add_node("Conv", {"x", kAwkwardName}, {"y"});
    b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
    b.add_node("Add", {"mm", "mm_b"}, {"z0"});
    b.add_node("MatMul", {"z0", "const_w"}, {"z"});
    b.add_output("y");
    b.add_output("z");
    b.save(model());
  }
  fs::path model() const { return dir_ / "model.onnx"; }
  TempDir dir_;
};

TEST(InspectBitsRange, Parses) {
  EXPECT_EQ(parse_bits_range("2-8").min, 2);
  EXPECT_EQ(parse_bits_range("2-8").max, 8);
  EXPECT_EQ(parse_bits_range("4").min, 4);
  EXPECT_EQ(parse_bits_range("4").max, 4);
  for (const char* bad : {"0-3", "3-9", "5-2", "", "a-b", "2-", "-3"}) {
    const auto e = error_of([&] { parse_bits_range(bad); });
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->code(), ErrorCode::kBadUsage) << bad;
  }
}

TEST_F(InspectTest, EveryWeightWithStatsFitsAndPredictions) {
  const InspectReport r = inspect_model(model());
  ASSERT_EQ(r.tensors.size(), 3u);  // the bias is not a weight
  for (const TensorInspection& t : r.tensors) {
    ASSERT_EQ(t.predictions.size(), 7u) << t.name;
    for (std::size_t k = 0; k < t.predictions.size(); ++k) EXPECT_EQ(t.predictions[k].bits, static_cast<int>(k) + 2);
    EXPECT_EQ(t.plot_levels.size(), 16u) << t.name;
    EXPECT_EQ(t.clip_min, t.plot_levels.front());
    EXPECT_EQ(t.clip_max, t.plot_levels.back());
    std::uint64_t counted = 0;
    for (auto c : t.histogram.counts) counted += c;
    EXPECT_EQ(counted, t.elements) << t.name;
    if (t.name == "const_w") {
      EXPECT_FALSE(std::isfinite(t.predictions[0].sqnr_db));  // one value: exact at any width
      continue;
    }
    // More bits, less error.
    for (std::size_t k = 1; k < t.predictions.size(); ++k) {
      EXPECT_GT(t.predictions[k].sqnr_db, t.predictions[k - 1].sqnr_db) << t.name << " at " << k + 2;
    }
    EXPECT_GT(t.predictions[2].sqnr_db, 15.0) << t.name;  // 4 bits
    EXPECT_GT(t.stats.std, 0.0);
    EXPECT_GT(t.stats.excess_kurtosis, 0.0);  // heavy-tailed test weights
  }
  EXPECT_EQ(r.tensors[0].name, kAwkwardName);
  EXPECT_EQ(r.tensors[0].shape, (std::vector<std::int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(r.tensors[0].op, "Conv");
  // The result does not depend on the thread count.
  InspectOptions threaded;
  threaded.threads = 3;
  EXPECT_EQ(to_json(inspect_model(model(), threaded)).dump(), to_json(r).dump());
}

TEST_F(InspectTest, JsonFromTheCommandLine) {
  std::string out;
  const int rc = run_command(quote(PQTOOL_BINARY) + " inspect --json --bits-range 3-5 " + quote(model().string()) +
                                 " 2>/dev/null",
                             &out);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["input"], model().string());
  ASSERT_EQ(j["tensors"].size(), 3u);
  for (const auto& t : j["tensors"]) {
    for (const char* key : {"name", "shape", "elements", "stats", "fit", "predicted"}) {
      EXPECT_TRUE(t.contains(key)) << key;
    }
    for (const char* key : {"mean", "std", "min", "max", "excess_kurtosis"}) EXPECT_TRUE(t["stats"].contains(key)) << key;
    for (const char* key : {"distribution", "ks_gaussian", "ks_laplace"}) EXPECT_TRUE(t["fit"].contains(key)) << key;
    ASSERT_EQ(t["predicted"].size(), 3u);
    EXPECT_EQ(t["predicted"][0]["bits"], 3);
    EXPECT_EQ(t["predicted"][2]["bits"], 5);
  }
  std::string table;
  ASSERT_EQ(run_command(quote(PQTOOL_BINARY) + " inspect " + quote(model().string()), &table), 0) << table;
  EXPECT_NE(table.find("mm_w"), std::string::npos) << table;
  EXPECT_NE(table.find("8b dB"), std::string::npos) << table;
  EXPECT_NE(run_command(quote(PQTOOL_BINARY) + " inspect --bits-range 1-9 " + quote(model().string())), 0);
}

TEST_F(InspectTest, PlotsAreWellFormedSvgWithEveryElementAndAnIndex) {
  const fs::path plots = dir_ / "plots" / "nested";
  std::string out;
  ASSERT_EQ(run_command(quote(PQTOOL_BINARY) + " inspect -q --plot " + quote(plots.string()) + " " +
                            quote(model().string()),
                        &out),
            0)
      << out;
  const InspectReport r = inspect_model(model());
  for (std::size_t i = 0; i < r.tensors.size(); ++i) {
    const fs::path file = plots / plot_file_name(i, r.tensors[i].name);
    ASSERT_TRUE(fs::exists(file)) << file;
    const std::string svg = read_file(file);
    EXPECT_EQ(xml_problem(svg), "") << file;
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    EXPECT_NE(svg.find("count (log scale)"), std::string::npos);
    EXPECT_NE(svg.find("weight value"), std::string::npos);
    EXPECT_EQ(count_of(svg, "<polyline"), r.tensors[i].name == "const_w" ? 0u : 2u);  // Gaussian and Laplace
    EXPECT_GE(count_of(svg, "stroke-dasharray"), 2u);                                 // clipping range
    EXPECT_GE(count_of(svg, "<rect"), 3u);                                            // bars
  }
  // The awkward name is escaped in the SVG and never used raw as a file name.
  const std::string first = read_file(plots / plot_file_name(0, kAwkwardName));
  EXPECT_NE(first.find("enc/conv&lt;1&gt;&amp;&quot;w&quot;&apos;"), std::string::npos);
  EXPECT_EQ(plot_file_name(0, kAwkwardName).find_first_of("/<>&\"'"), std::string::npos);
  const std::string html = read_file(plots / "index.html");
  EXPECT_NE(html.find("<table>"), std::string::npos);
  EXPECT_EQ(count_of(html, "<img src="), 3u);
  EXPECT_NE(html.find("enc/conv&lt;1&gt;"), std::string::npos);
  EXPECT_EQ(html.find("conv<1>"), std::string::npos);
}

TEST(InspectXmlChecker, CatchesBrokenDocuments) {
  EXPECT_EQ(xml_problem("<svg><g><rect a=\"1\"/></g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a<b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"<\"></svg>"), "");
}

}  // namespace
}  // namespace pqtool::test
