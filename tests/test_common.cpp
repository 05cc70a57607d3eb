#include <gtest/gtest.h>
#include <filesystem>
#include <csignal>
#include <random>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "common/mt19937.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/safetensors.hpp"
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

// Names in `dir` that look like temporaries of `base` ("<base>.tmp-XXXXXX").
std::vector<std::string> temporaries_of(const std::filesystem::path& dir, const std::string& base) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(base + ".tmp-", 0) == 0) names.push_back(name);
  }
  return names;
}

TEST(StaleTemporaries, ALiveWritersTemporaryIsKept) {
  ScratchDir dir;
  const std::string path = dir.file("a.bin");
  OutputFile out(path);
  out.write(std::string(5 << 20, 'x'));
  ASSERT_EQ(temporaries_of(dir.path(), "a.bin").size(), 1u);
  EXPECT_EQ(remove_stale_temporaries(path), 0u);
  OutputFile second(path);  // another writer of the same target leaves the first one's file alone
  EXPECT_EQ(temporaries_of(dir.path(), "a.bin").size(), 2u);
  out.commit();
  EXPECT_EQ(testing::read_file(path).size(), 5u << 20);
}

TEST(StaleTemporaries, LeftoversOfTheTargetGoOnTheNextWriteOthersStay) {
  ScratchDir dir;
  const std::string path = dir.file("a.bin");
  testing::write_file(dir.file("a.bin.tmp-Ab12Z9"), std::string(1 << 20, 'x'));  // nobody holds it: stale
  testing::write_file(dir.file("a.bin.work"), "stale working copy");
  testing::write_file(dir.file("a.bin.tmp-toolong1"), "not ours: other name");
  testing::write_file(dir.file("b.bin.tmp-Ab12Z9"), "another target's");
  write_file_atomically(path, "new");
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.bin.tmp-Ab12Z9")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("a.bin.work")));  // only named extras are removed
  EXPECT_TRUE(std::filesystem::exists(dir.file("a.bin.tmp-toolong1")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("b.bin.tmp-Ab12Z9")));
  EXPECT_GT(remove_stale_temporaries(path, {".work"}), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.bin.work")));
  EXPECT_EQ(testing::read_file(path), "new");
}

TEST(StaleTemporaries, AWriterKilledWithSigkillIsCleanedUpAfter) {
  ScratchDir dir;
  const std::string path = dir.file("a.bin");
  testing::write_file(path, "old");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    OutputFile out(path);
    out.write(std::string(3 << 20, 'x'));
    const char one = 1;
    if (::write(ready[1], &one, 1) != 1) ::_exit(2);
    ::pause();  // killed here, mid-write
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(temporaries_of(dir.path(), "a.bin").size(), 1u);
  EXPECT_EQ(remove_stale_temporaries(path), 0u);  // still alive: held
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_EQ(temporaries_of(dir.path(), "a.bin").size(), 1u);  // kill -9 cannot be caught: the leftover is there
  write_file_atomically(path, "next");                       // the next writer of the target removes it
  EXPECT_TRUE(temporaries_of(dir.path(), "a.bin").empty());
  EXPECT_EQ(testing::read_file(path), "next");
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

TEST(Safetensors, RoundTripWithChecksums) {
  testing::ScratchDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const std::vector<std::int64_t> b = {-1, 2, 1LL << 40};
  write_safetensors(dir.file("t.safetensors"), {{"a", "F32", {2, 3}, a.data()}, {"b", "I64", {3}, b.data()},
                                               {"empty", "U8", {0}, nullptr}},
                    {{"format", "test"}});
  const SafetensorsFile f(dir.file("t.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "test");
  EXPECT_TRUE(f.metadata().count("xxh3:a"));
  const auto& ea = f.get("a", "F32", {2, 3});
  EXPECT_EQ(std::vector<float>(static_cast<const float*>(ea.data), static_cast<const float*>(ea.data) + 6), a);
  const auto& eb = f.get("b", "I64");
  EXPECT_EQ(static_cast<const std::int64_t*>(eb.data)[2], 1LL << 40);
  EXPECT_EQ(f.get("empty", "U8").numel(), 0);
  auto message = [&](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([&] { f.get("a", "I64"); }).find("tensor 'a' is F32, expected I64"), std::string::npos);
  EXPECT_NE(message([&] { f.get("a", "F32", {3, 2}); }).find("has shape [2, 3], expected [3, 2]"), std::string::npos);
  EXPECT_NE(message([&] { f.get("c", "F32"); }).find("has no tensor 'c'"), std::string::npos);
  EXPECT_NE(message([&] { write_safetensors(dir.file("d"), {{"a", "F32", {1}, a.data()}, {"a", "F32", {1}, a.data()}}); })
                .find("tensor 'a' is given twice"),
            std::string::npos);
  EXPECT_NE(message([&] { write_safetensors(dir.file("d"), {{"a", "F16", {1}, a.data()}}); }).find("unknown safetensors dtype 'F16'"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("d")));
}

TEST(Safetensors, DamageAndTruncationAreNamed) {
  testing::ScratchDir dir;
  const std::vector<float> a(1000, 0.25f);
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, {{"weights", "F32", {1000}, a.data()}});
  const std::string good = testing::read_file(path);
  auto error_for = [&](const std::string& bytes) {
    testing::write_file(path, bytes);
    try {
      SafetensorsFile f(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string flipped = good;
  flipped[good.size() - 100] ^= 1;
  EXPECT_NE(error_for(flipped).find("tensor 'weights' fails its checksum: the file is damaged"), std::string::npos);
  EXPECT_NE(error_for(good.substr(0, good.size() - 4)).find("lies past the end of the file (truncated?)"), std::string::npos);
  EXPECT_NE(error_for(good.substr(0, 5)).find("truncated (no header length)"), std::string::npos);
  EXPECT_NE(error_for(good.substr(0, 40)).find("truncated (the header runs past the end)"), std::string::npos);
  std::string not_json = good;
  not_json[8] = '[';
  EXPECT_NE(error_for(not_json).find("not a JSON object"), std::string::npos);
  EXPECT_EQ(error_for(good), "");
}

}  // namespace
}  // namespace hashmem
