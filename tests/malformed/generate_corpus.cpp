// Writes the malformed-input corpus to a folder: one sub-folder per case (in/, out/) and a
// manifest, cases.tsv, with each case's expected exit code, message fragment, culprits and
// options. Usage: pqtool_malformed_corpus DIR
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "corpus.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  fs::create_directories(root);
  std::ofstream manifest(root / "cases.tsv");
  manifest << "case\texit_code\tfragment\tculprits\targs\tinput\toutput\tsummary\n";
  for (const auto& c : pqtool::malformed::cases()) {
    const auto p = pqtool::malformed::prepare(root, c);
    manifest << fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", c.name, c.exit_code, c.fragment,
                            fmt::join(c.culprits, ","), fmt::join(c.args, " "), fs::relative(p.input, root).string(),
                            fs::relative(p.output, root).string(), c.summary);
  }
  return manifest ? 0 : 1;
}
