// Runs the real `pqtool quantize` on every case of the malformed-input corpus (corpus.cpp) and
// checks what is asked of each: the documented exit code, no signal, within 5 s and 1 GiB;
// a failure prints exactly one line naming the input file and the culprit tensor or node, and
// leaves the output folder as it found it (no output, no temporary file); a success writes an
// output pqtool can load back and a report whose entry for the culprit says what happened.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "corpus.hpp"
#include "pqtool/model.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace pqtool::malformed {

// gtest prints a case (in test names and failures) by its name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

namespace {

/// The budget per case.
constexpr double kMaxSeconds = 5.0;
constexpr long kMaxRssKib = 1024L * 1024L;  // 1 GiB
/// Past this a hung case is killed, so the failure is reported rather than waited for.
constexpr double kKillAfterSeconds = 60.0;

std::size_t line_count(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

// Every file under `dir` with its contents, to compare before and after a run.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    files[fs::relative(it->path(), dir).string()] = it->is_regular_file() ? test::read_file(it->path()) : "";
  }
  return files;
}

std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (it->path().filename().string().find(".pqtool-tmp-") != std::string::npos) found.push_back(it->path().string());
  }
  return found;
}

// A tmpfs mounted over `dir` for the lifetime of the object (nothing when `options` is empty).
class Mount {
 public:
  Mount(const std::string& options, const fs::path& dir) : dir_(dir) {
    if (options.empty()) return;
    mounted_ = test::run_command("mount -t tmpfs -o " + options + " pqtool-test " + test::quote(dir.string())) == 0;
  }
  ~Mount() {
    if (mounted_) test::run_command("umount " + test::quote(dir_.string()));
  }
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  bool mounted() const { return mounted_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
};

class MalformedCorpusTest : public testing::TestWithParam<Case> {};

TEST_P(MalformedCorpusTest, BehavesAsDocumented) {
  const Case& c = GetParam();
  if (c.needs_non_root && ::geteuid() == 0) {
    GTEST_SKIP() << "running as root, whom permissions do not stop (output_parent_is_a_file covers root)";
  }
  test::TempDir root;
  test::TempDir scratch;
  const Prepared p = prepare(root.path(), c);
  const CaseDirs dirs = case_dirs(root.path(), c);
  const Mount mount(c.mount_options, dirs.out);
  if (!c.mount_options.empty() && !mount.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN); output_parent_is_a_file covers the message";
  }
  const auto before = snapshot(dirs.out);

  std::vector<std::string> argv{PQTOOL_BINARY,     "quantize", p.input.string(), "-o",
                                p.output.string(), "-q",       "--report",       dirs.report.string()};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  const ProcessResult r = run_process(argv, scratch.path(), kKillAfterSeconds);
  // Read-only folders are made writable again so TempDir can remove them.
  if (c.mount_options.empty()) fs::permissions(dirs.out, fs::perms::owner_all, fs::perm_options::add);

  SCOPED_TRACE(c.name + ": " + c.summary + "\nstderr: " + r.err);
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.signal, 0) << "killed by signal " << r.signal;
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, c.exit_code);
  EXPECT_LT(r.seconds, kMaxSeconds);
  EXPECT_LT(r.max_rss_kib, kMaxRssKib);
  EXPECT_TRUE(temp_files(root.path()).empty()) << testing::PrintToString(temp_files(root.path()));

  if (c.exit_code != kExitOk) {
    // One line, naming the file and every culprit, and nothing written.
    EXPECT_EQ(line_count(r.err), 1u);
    EXPECT_NE(r.err.find("error"), std::string::npos);
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << "fragment: " << c.fragment;
    const std::string named = c.names_output ? p.output.string() : p.input.string();
    EXPECT_NE(r.err.find(named), std::string::npos) << "file: " << named;
    for (const std::string& culprit : c.culprits) {
      EXPECT_NE(r.err.find(culprit), std::string::npos) << "culprit: " << culprit;
    }
    EXPECT_EQ(snapshot(dirs.out), before) << "the output folder changed";
    EXPECT_FALSE(fs::exists(dirs.report)) << "a report was written for a failed run";
    return;
  }
  // Success: a loadable output, and the report says what happened to the culprit.
  EXPECT_TRUE(r.err.empty());
  ASSERT_TRUE(fs::exists(p.output));
  EXPECT_NO_THROW(load_model(p.output));
  ASSERT_TRUE(fs::exists(dirs.report));
  const nlohmann::json report = nlohmann::json::parse(test::read_file(dirs.report));
  ASSERT_FALSE(c.culprits.empty());
  const nlohmann::json* entry = nullptr;
  for (const auto& t : report["tensors"]) {
    if (t["name"] == c.culprits.front()) entry = &t;
  }
  ASSERT_NE(entry, nullptr) << "no report entry for " << c.culprits.front() << " in " << report.dump();
  EXPECT_NE(entry->dump().find(c.fragment), std::string::npos)
      << "fragment: " << c.fragment << "\nentry: " << entry->dump();
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedCorpusTest, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& param) { return param.param.name; });

}  // namespace
}  // namespace pqtool::malformed
