// AtomicFile and the pending-temp-file table the CLI's signal handler empties: a file appears
// only on commit(), an abandoned one leaves nothing, and remove_pending_temp_files() removes
// exactly the temporary files still being written.
#include "pqtool/atomic_file.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pqtool/error.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST(AtomicFileTest, AppearsOnlyOnCommit) {
  TempDir dir;
  const fs::path out = dir / "out.bin";
  AtomicFile f(out, false);
  f.write("hello");
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(names_in(dir.path()).size(), 1u);  // the temporary file
  f.commit();
  EXPECT_EQ(read_file(out), "hello");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileTest, AbandonedFileLeavesNothing) {
  TempDir dir;
  {
    AtomicFile f(dir / "out.bin", false);
    f.write("partial");
  }
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(AtomicFileTest, SignalCleanupRemovesOnlyPendingTempFiles) {
  TempDir dir;
  {
    AtomicFile done(dir / "done.bin", false);
    done.write("complete");
    done.commit();
  }
  AtomicFile a(dir / "a.bin", false);
  AtomicFile b(dir / "b.bin", false);
  a.write("a");
  ASSERT_EQ(names_in(dir.path()).size(), 3u);
  remove_pending_temp_files();  // what the SIGINT/SIGTERM handler calls
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"done.bin"});
  EXPECT_EQ(read_file(dir / "done.bin"), "complete");
}

TEST(AtomicFileTest, UnwritableFolderIsAnIoErrorNamingTheOutput) {
  TempDir dir;
  const fs::path out = dir / "missing" / "out.bin";
  const auto e = error_of([&] { AtomicFile f(out, false); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kIo);
  EXPECT_NE(std::string(e->what()).find(out.string()), std::string::npos) << e->what();
}

}  // namespace
}  // namespace pqtool::test
