#include <gtest/gtest.h>
#include <random>

#include "common/mt19937.hpp"
#include "hashmem/common.hpp"
#include "test_util.hpp"

namespace hashmem {
namespace {

using testing::ScratchDir;

TEST(Mt19937, SeedMatchesStdMt19937) {
  for (std::uint32_t seed : {0u, 1u, 5489u, 4294967295u}) {
    Mt19937 ours(seed);
    std::mt19937 std_mt(seed);
    for (int i = 0; i < 5000; ++i) ASSERT_EQ(ours.next(), std_mt()) << "seed " << seed << " draw " << i;
  }
}

TEST(Mt19937, SeedByArrayMatchesCPythonRandomSeed) {
  // Values of `random.seed(s); random.getrandbits(32)` x3 from CPython 3.11.
  struct Case {
    std::uint32_t seed;
    std::uint32_t expected[3];
  } cases[] = {{0, {3626764237u, 1654615998u, 3255389356u}},
               {1, {577090037u, 2444712010u, 3639700191u}},
               {12345, {1789368711u, 3146859322u, 43676229u}},
               {4294967295u, {2728839433u, 2661025012u, 872737089u}}};
  for (const Case& c : cases) {
    Mt19937 mt;
    mt.seed_by_array(&c.seed, 1);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(mt.next(), c.expected[i]) << "seed " << c.seed;
  }
}

TEST(OutputFile, CommitMakesTheFileAppear) {
  ScratchDir dir;
  const std::string path = dir.file("a.txt");
  {
    OutputFile out(path);
    out.write(std::string(3 << 20, 'x'));  // larger than the buffer
    out.write(std::string_view("tail"));
    EXPECT_FALSE(std::filesystem::exists(path));
    out.commit();
  }
  EXPECT_EQ(testing::read_file(path).size(), (3u << 20) + 4);
  EXPECT_EQ(testing::count_files(dir.path()), 1);
}

TEST(OutputFile, AbandonedWriteLeavesOldContentsAndNoTemporary) {
  ScratchDir dir;
  const std::string path = dir.file("a.txt");
  testing::write_file(path, "old");
  {
    OutputFile out(path);
    out.write(std::string_view("new contents that are never committed"));
  }
  EXPECT_EQ(testing::read_file(path), "old");
  EXPECT_EQ(testing::count_files(dir.path()), 1);
}

TEST(OutputFile, UnwritablePathsAreClearErrors) {
  ScratchDir dir;
  try {
    OutputFile out(dir.file("no/such/dir/x"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/x"), std::string::npos) << e.what();
  }
  EXPECT_THROW(OutputFile(dir.path().string()), Error);  // a directory
  EXPECT_THROW(OutputFile(""), Error);
}

TEST(MappedFile, ReadsAndReportsMissingFiles) {
  ScratchDir dir;
  testing::write_file(dir.file("f"), "hello");
  EXPECT_EQ(MappedFile(dir.file("f")).view(), "hello");
  testing::write_file(dir.file("empty"), "");
  EXPECT_EQ(MappedFile(dir.file("empty")).view(), "");
  EXPECT_THROW(MappedFile(dir.file("missing")), Error);
  EXPECT_THROW(MappedFile(dir.path().string()), Error);
}

}  // namespace
}  // namespace hashmem
