#include "spool.h"

#include <Poco/AutoPtr.h>
#include <Poco/BinaryWriter.h>
#include <Poco/Channel.h>
#include <Poco/Checksum.h>
#include <Poco/Logger.h>
#include <Poco/MemoryStream.h>
#include <Poco/Message.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "test_support.h"

namespace relay {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string batch_file(uint64_t seq) {
  char name[64];
  std::snprintf(name, sizeof name, "%020llu.batch", static_cast<unsigned long long>(seq));
  return name;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// n events over the bytes between json's brackets, contiguous and non-empty, as the host hands
// them (views into json); each with a one-byte type, no time and the whole event as its record.
std::vector<TelemetryEvent> events_over(std::string_view json, size_t n) {
  std::vector<TelemetryEvent> events;
  if (n == 0) return events;
  const std::string_view inner = json.substr(1, json.size() - 2);
  const size_t piece = inner.size() / n;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view event =
        inner.substr(i * piece, i + 1 == n ? std::string_view::npos : piece);
    events.push_back(TelemetryEvent{event, event.substr(0, 1), {}, event});
  }
  return events;
}

// Spool::put with n events spread over json (see events_over).
bool put(Spool& spool, std::string_view id, std::string_view json, size_t n,
         std::string* error = nullptr, uint64_t* seq = nullptr) {
  const std::vector<TelemetryEvent> events = events_over(json, n);
  return spool.put(id, json, events, error, seq);
}

// Deterministic content per batch number, so a reader can check a replayed file byte for byte.
std::string payload_for(uint64_t n, size_t size) {
  std::string json = "[\"batch " + std::to_string(n) + "\"";
  while (json.size() + 1 < size) json += static_cast<char>('a' + (n + json.size()) % 26);
  return json + "]";
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // Parameterized names contain '/': keep the folder one level deep so TearDown removes it.
    std::string unique = "spool_test-" + std::to_string(::getpid()) + "-" +
                         info->test_suite_name() + "-" + info->name();
    std::replace(unique.begin(), unique.end(), '/', '_');
    root_ = fs::path(::testing::TempDir()) / unique;
    fs::remove_all(root_);
    dir_ = root_ / "nested" / "spool";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  SpoolLimits limits(uint64_t max_bytes = 1u << 20, uint32_t max_files = 64) const {
    return SpoolLimits{dir_.string(), max_bytes, max_files};
  }

  fs::path root_;
  fs::path dir_;
};

TEST_F(SpoolTest, RoundTripKeepsIdEventsAndExactBytes) {
  Spool spool(limits());
  EXPECT_EQ(spool.stats().files, 0u);
  EXPECT_FALSE(spool.oldest().has_value());

  const std::string json = "[{\"record\":\"\\u0000 binary \xff ok\"}]";
  std::string error;
  ASSERT_TRUE(put(spool, "batch-1", json, 1, &error)) << error;
  EXPECT_EQ(spool.stats().files, 1u);
  EXPECT_EQ(spool.stats().events, 1u);
  EXPECT_EQ(spool.stats().bytes, Spool::kHeaderBytes + 7 + Spool::kEventBytes + json.size());

  const auto got = spool.oldest();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->batch_id, "batch-1");
  EXPECT_EQ(got->events, 1u);
  EXPECT_EQ(got->json, json);
  // Reading does not consume.
  EXPECT_EQ(spool.stats().files, 1u);
  EXPECT_EQ(spool.oldest()->seq, got->seq);

  EXPECT_EQ(names_in(dir_), (std::vector<std::string>{batch_file(got->seq), "corrupt"}));
  spool.remove(got->seq);
  EXPECT_EQ(spool.stats().files, 0u);
  EXPECT_EQ(spool.stats().bytes, 0u);
  EXPECT_EQ(spool.stats().events, 0u);
  EXPECT_FALSE(spool.oldest().has_value());
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"corrupt"});
  EXPECT_EQ(spool.stats().quarantined, 0u);
}

TEST_F(SpoolTest, FolderAndFilesArePrivate) {
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "id", "[1]", 1, nullptr));
  EXPECT_EQ(fs::status(dir_).permissions(), fs::perms::owner_all);
  const auto seq = spool.oldest()->seq;
  EXPECT_EQ(fs::status(dir_ / batch_file(seq)).permissions(),
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(SpoolTest, ExistingFolderIsTightenedTo0700) {
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_all | fs::perms::others_all);
  Spool spool(limits());
  EXPECT_EQ(fs::status(dir_).permissions(), fs::perms::owner_all);
}

TEST_F(SpoolTest, ReturnsEntriesInPutOrder) {
  Spool spool(limits());
  for (int i = 0; i < 40; ++i) {
    std::string error;
    ASSERT_TRUE(put(spool, "id-" + std::to_string(i), payload_for(i, 50 + i), 1, &error)) << error;
  }
  EXPECT_EQ(spool.stats().files, 40u);
  EXPECT_EQ(spool.stats().events, 40u);
  uint64_t last_seq = 0;
  for (int i = 0; i < 40; ++i) {
    const auto got = spool.oldest();
    ASSERT_TRUE(got.has_value()) << i;
    EXPECT_EQ(got->batch_id, "id-" + std::to_string(i));
    EXPECT_EQ(got->json, payload_for(i, 50 + i));
    EXPECT_GT(got->seq, last_seq);
    last_seq = got->seq;
    spool.remove(got->seq);
  }
  EXPECT_FALSE(spool.oldest().has_value());
  EXPECT_EQ(spool.stats().bytes, 0u);
}

TEST_F(SpoolTest, NewSpoolReplaysEarlierFilesInOrderAndContinuesSeq) {
  uint64_t highest = 0;
  {
    Spool first(limits());
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(put(first, "old-" + std::to_string(i), "[1,2]", 2, nullptr));
    const auto head = first.oldest();
    first.remove(head->seq);  // delivered before the process ended
    highest = head->seq + 2;
  }
  Spool second(limits());
  EXPECT_EQ(second.stats().files, 2u);
  EXPECT_EQ(second.stats().events, 4u);
  EXPECT_EQ(second.stats().initial_files, 2u);
  EXPECT_EQ(second.stats().initial_events, 4u);
  ASSERT_TRUE(put(second, "new-0", "[3]", 1, nullptr));

  std::vector<std::string> ids;
  std::vector<uint64_t> seqs;
  while (const auto got = second.oldest()) {
    ids.push_back(got->batch_id);
    seqs.push_back(got->seq);
    second.remove(got->seq);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"old-1", "old-2", "new-0"}));
  ASSERT_EQ(seqs.size(), 3u);
  EXPECT_EQ(seqs[1], highest);
  EXPECT_GT(seqs[2], highest);
}

TEST_F(SpoolTest, SeqNeverReusesAQuarantinedFilesNumber) {
  uint64_t corrupt_seq = 0;
  {
    Spool first(limits());
    ASSERT_TRUE(put(first, "a", "[1]", 1, nullptr));
    corrupt_seq = first.oldest()->seq;
  }
  write_file(dir_ / batch_file(corrupt_seq), "garbage");
  Spool second(limits());
  EXPECT_EQ(second.stats().quarantined, 1u);
  ASSERT_TRUE(put(second, "b", "[2]", 1, nullptr));
  EXPECT_GT(second.oldest()->seq, corrupt_seq);
}

TEST_F(SpoolTest, LeftoverTempFilesAreRemovedAndNotReplayed) {
  uint64_t seq = 0;
  {
    Spool first(limits());
    ASSERT_TRUE(put(first, "whole", "[1]", 1, nullptr));
    seq = first.oldest()->seq;
  }
  // A temp file with complete, valid content still never counts: only a renamed file is whole.
  fs::copy_file(dir_ / batch_file(seq), dir_ / (".tmp-" + std::to_string(seq + 1)));
  write_file(dir_ / ".tmp-99", "half a bat");
  Spool second(limits());
  EXPECT_EQ(second.stats().files, 1u);
  EXPECT_EQ(second.stats().quarantined, 0u);
  EXPECT_EQ(names_in(dir_), (std::vector<std::string>{batch_file(seq), "corrupt"}));
  EXPECT_EQ(second.oldest()->batch_id, "whole");
}

TEST_F(SpoolTest, UnrelatedFilesAreLeftAlone) {
  fs::create_directories(dir_);
  write_file(dir_ / "README", "not ours");
  Spool spool(limits());
  EXPECT_EQ(spool.stats().files, 0u);
  EXPECT_EQ(spool.stats().quarantined, 0u);
  EXPECT_TRUE(fs::exists(dir_ / "README"));
}

// One corruption applied to the first of three spooled files.
struct Corruption {
  const char* name;
  std::function<void(std::string&)> apply;
  const char* reason;
};

// Overwrites a little-endian field of a spool file in place.
template <class T>
void set_at(std::string& bytes, size_t at, T value) {
  Poco::MemoryOutputStream stream(bytes.data() + at, sizeof(T));
  Poco::BinaryWriter out(stream, Poco::BinaryWriter::LITTLE_ENDIAN_BYTE_ORDER);
  out << value;
  out.flush();
}
void set_u32(std::string& bytes, size_t at, uint32_t v) { set_at<Poco::UInt32>(bytes, at, v); }
void set_u64(std::string& bytes, size_t at, uint64_t v) { set_at<Poco::UInt64>(bytes, at, v); }

// Recomputes a file's CRC-32 (everything but its own field at byte 32), as a forger would.
void reseal(std::string& bytes) {
  Poco::Checksum crc(Poco::Checksum::TYPE_CRC32);
  crc.update(bytes.data(), 32);
  crc.update(bytes.data() + 36, static_cast<unsigned>(bytes.size() - 36));
  set_u32(bytes, 32, crc.checksum());
}

const Corruption kCorruptions[] = {
    {"truncated", [](std::string& b) { b.resize(b.size() - 5); }, "truncated"},
    {"truncated_header", [](std::string& b) { b.resize(17); }, "truncated: 17 bytes"},
    {"flipped_payload_byte", [](std::string& b) { b[b.size() - 3] ^= 0x20; }, "checksum mismatch"},
    {"flipped_id_byte", [](std::string& b) { b[Spool::kHeaderBytes] ^= 0x01; },
     "checksum mismatch"},
    {"flipped_event_count", [](std::string& b) { set_u64(b, 16, 1); }, "header promises"},
    {"flipped_offset_byte", [](std::string& b) { b[Spool::kHeaderBytes + 5] ^= 0x01; },
     "checksum mismatch"},
    {"bad_magic", [](std::string& b) { b[0] = 'X'; }, "bad magic"},
    {"wrong_version", [](std::string& b) { set_u32(b, 8, 3); }, "unsupported format version 3"},
    {"length_larger_than_file", [](std::string& b) { set_u64(b, 24, 1000); }, "header promises"},
    {"trailing_bytes", [](std::string& b) { b += "extra"; }, "5 trailing bytes"},
    {"huge_id_length", [](std::string& b) { set_u32(b, 12, 4096); }, "batch id length 4096"},
    {"huge_payload_length", [](std::string& b) { set_u64(b, 24, uint64_t{1} << 40); },
     "exceeds the spool's max_bytes"},
    {"zero_length", [](std::string& b) { b.clear(); }, "truncated: 0 bytes"},
    // A file of the previous format (no offset table): never replayed, its events counted.
    {"old_version", [](std::string& b) { set_u32(b, 8, 1); }, "format version 1"},
    // Forged offset tables with a valid checksum. The file is "id-0" (4 bytes) and 3 events, so
    // event i's entry starts at 44 + 32 i: json at/size, type at/size, time.., record...
    {"forged_offset_out_of_range",
     [](std::string& b) {
       set_u32(b, 44 + 32, 0xffffff00u);
       reseal(b);
     },
     "event 1: json at 4294967040+"},
    {"forged_negative_like_length",
     [](std::string& b) {
       set_u32(b, 44 + 32 + 4, 0xffffffffu);
       reseal(b);
     },
     "runs past the 100-byte payload"},
    {"forged_overlapping_events",
     [](std::string& b) {
       set_u32(b, 44 + 64, 1);  // event 2 starts inside event 0
       reseal(b);
     },
     "event 2: json at 1+"},
    {"forged_field_outside_its_event",
     [](std::string& b) {
       set_u32(b, 44 + 32 + 24, 0);  // event 1's record at the payload's start
       reseal(b);
     },
     "event 1: record at 0+"},
    {"forged_count_larger_than_present",
     [](std::string& b) {
       set_u64(b, 16, 5);
       reseal(b);
     },
     "offsets of 5 events"},
    // Sizes consistent: the table's 4th entry is read from the payload's first bytes.
    {"forged_count_with_size_to_match",
     [](std::string& b) {
       set_u64(b, 16, 4);
       set_u64(b, 24, 100 - Spool::kEventBytes);
       reseal(b);
     },
     "runs past the 68-byte payload"},
    {"truncated_offset_table",
     [](std::string& b) {
       b.erase(44 + 64 + 16, 16);  // half of the last entry
       reseal(b);
     },
     "offsets of 3 events"},
};

class SpoolCorruption : public SpoolTest,
                        public ::testing::WithParamInterface<std::tuple<Corruption, bool>> {};

TEST_P(SpoolCorruption, IsQuarantinedWithReasonAndTheNextValidOneIsReturned) {
  const auto& [corruption, restart] = GetParam();
  auto spool = std::make_unique<Spool>(limits());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(put(*spool, "id-" + std::to_string(i), payload_for(i, 100), 3, nullptr));
  }
  const uint64_t bad_seq = spool->oldest()->seq;
  const fs::path bad = dir_ / batch_file(bad_seq);
  std::string bytes = read_file(bad);
  corruption.apply(bytes);
  write_file(bad, bytes);
  // Either the running spool meets the damage when it reads the file, or a new process does.
  if (restart) spool = std::make_unique<Spool>(limits());

  const auto got = spool->oldest();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->batch_id, "id-1");
  EXPECT_EQ(got->json, payload_for(1, 100));
  EXPECT_EQ(spool->stats().quarantined, 1u);
  EXPECT_THAT(spool->stats().last_quarantine_reason, HasSubstr(corruption.reason));
  EXPECT_THAT(spool->stats().last_quarantine_reason, HasSubstr(batch_file(bad_seq)));
  EXPECT_EQ(spool->stats().files, 2u);
  EXPECT_EQ(spool->stats().events, 6u);
  // A running spool knows what the lost file held (a new one only what its header claimed).
  if (!restart) {
    EXPECT_EQ(spool->stats().quarantined_events, 3u);
  }
  EXPECT_FALSE(fs::exists(bad));
  EXPECT_TRUE(fs::exists(dir_ / "corrupt" / batch_file(bad_seq)));
  EXPECT_EQ(read_file(dir_ / "corrupt" / batch_file(bad_seq)), bytes);
}

std::string corruption_test_name(
    const ::testing::TestParamInfo<SpoolCorruption::ParamType>& param_info) {
  return std::string(std::get<0>(param_info.param).name) +
         (std::get<1>(param_info.param) ? "_AfterRestart" : "_WhileRunning");
}

INSTANTIATE_TEST_SUITE_P(All, SpoolCorruption,
                         ::testing::Combine(::testing::ValuesIn(kCorruptions), ::testing::Bool()),
                         corruption_test_name);

TEST_F(SpoolTest, SymlinkInPlaceOfABatchFileIsNotFollowed) {
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr));
  ASSERT_TRUE(put(spool, "b", "[2]", 1, nullptr));
  const uint64_t seq = spool.oldest()->seq;
  const fs::path secret = root_ / "secret";
  write_file(secret, "do not read me");
  fs::remove(dir_ / batch_file(seq));
  fs::create_symlink(secret, dir_ / batch_file(seq));

  const auto got = spool.oldest();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->batch_id, "b");
  EXPECT_EQ(spool.stats().quarantined, 1u);
  EXPECT_THAT(spool.stats().last_quarantine_reason, HasSubstr("symlink"));
  EXPECT_EQ(read_file(secret), "do not read me");
}

TEST_F(SpoolTest, FileThatVanishedIsCountedAndSkipped) {
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr));
  ASSERT_TRUE(put(spool, "b", "[2]", 1, nullptr));
  fs::remove(dir_ / batch_file(spool.oldest()->seq));
  EXPECT_EQ(spool.oldest()->batch_id, "b");
  EXPECT_EQ(spool.stats().quarantined, 1u);
  EXPECT_EQ(spool.stats().quarantined_events, 1u);
  EXPECT_THAT(spool.stats().last_quarantine_reason, HasSubstr("vanished"));
}

TEST_F(SpoolTest, QuarantineIsLoggedAsAWarningNamingFileAndReason) {
  std::vector<std::string> lines;
  {
    const testing::LogCapture capture("relay.spool");
    Spool spool(limits());
    ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr));
    const uint64_t seq = spool.oldest()->seq;
    write_file(dir_ / batch_file(seq), "TRSPOOL1");
    EXPECT_FALSE(spool.oldest().has_value());
    lines = capture.lines();
  }
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], StartsWith(std::to_string(Poco::Message::PRIO_WARNING) + " "));
  EXPECT_THAT(lines[0], HasSubstr(dir_.string()));
  EXPECT_THAT(lines[0], HasSubstr("truncated: 8 bytes"));
  EXPECT_THAT(lines[0], HasSubstr("moved to corrupt/"));
}

TEST_F(SpoolTest, ValidFileReplacedBehindItsBackIsQuarantinedKeepingCountsTrue) {
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "a", "[1,2,3]", 3, nullptr));
  ASSERT_TRUE(put(spool, "b", "[4]", 1, nullptr));
  const uint64_t seq = spool.oldest()->seq;
  {
    // A whole, checksummed file with other contents, swapped in under the same name.
    Spool other(SpoolLimits{(root_ / "other").string(), 1u << 20, 10});
    ASSERT_TRUE(put(other, "x", "[9,9,9,9,9]", 5, nullptr));
    fs::rename(root_ / "other" / batch_file(other.oldest()->seq), dir_ / batch_file(seq));
  }
  EXPECT_EQ(spool.oldest()->batch_id, "b");
  EXPECT_THAT(spool.stats().last_quarantine_reason, HasSubstr("replaced on disk"));
  EXPECT_EQ(spool.stats().events, 1u);
  EXPECT_EQ(spool.stats().quarantined_events, 3u);
  EXPECT_EQ(spool.stats().bytes, Spool::kHeaderBytes + 1 + 3 + Spool::kEventBytes);
}

TEST_F(SpoolTest, OutOfDescriptorsKeepsTheEntrySpooled) {
#ifdef __SANITIZE_ADDRESS__
  // UBSan's vptr check probes memory through a pipe(), which needs the very descriptors this
  // test takes away, and then reports the spool's logger as an invalid object.
  GTEST_SKIP() << "needs spare file descriptors under the sanitizers; runs in the release build";
#endif
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit exhausted = saved;
  exhausted.rlim_cur = static_cast<rlim_t>(lowest_free);  // the next open() fails with EMFILE
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &exhausted), 0);
  const bool got_one = spool.oldest().has_value();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_FALSE(got_one);
  EXPECT_EQ(spool.stats().quarantined, 0u);
  EXPECT_EQ(spool.stats().files, 1u);
  const auto later = spool.oldest();
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->batch_id, "a");
}

TEST_F(SpoolTest, CorruptFolderKeepsOnlyTheNewestFew) {
  {
    Spool spool(limits());
    for (int i = 0; i < 12; ++i) ASSERT_TRUE(put(spool, "id", "[1]", 1, nullptr));
  }
  std::vector<std::string> all = names_in(dir_);
  all.pop_back();  // "corrupt"
  ASSERT_EQ(all.size(), 12u);
  for (const auto& name : all) write_file(dir_ / name, "TRSPOOL1 but garbage");
  Spool spool(limits());
  EXPECT_EQ(spool.stats().quarantined, 12u);
  EXPECT_EQ(spool.stats().files, 0u);
  const std::vector<std::string> kept(all.end() - Spool::kMaxCorruptFiles, all.end());
  EXPECT_EQ(names_in(dir_ / "corrupt"), kept);
}

TEST_F(SpoolTest, FileLimitRefusesWithReasonUntilSpaceIsFreed) {
  Spool spool(limits(1u << 20, 2));
  ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr));
  ASSERT_TRUE(put(spool, "b", "[2]", 1, nullptr));
  std::string error;
  EXPECT_FALSE(put(spool, "c", "[3]", 1, &error));
  EXPECT_THAT(error, HasSubstr("spool full"));
  EXPECT_THAT(error, HasSubstr("max_files is 2"));
  EXPECT_EQ(spool.stats().files, 2u);
  spool.remove(spool.oldest()->seq);
  EXPECT_TRUE(put(spool, "c", "[3]", 1, &error)) << error;
  EXPECT_EQ(names_in(dir_).size(), 3u);  // two batches and corrupt/, no temp file
}

TEST_F(SpoolTest, ByteLimitCountsWholeFilesAndRefusesWithReason) {
  const std::string json(100, 'x');
  const uint64_t file_size = Spool::kHeaderBytes + 2 + Spool::kEventBytes + json.size();
  Spool spool(limits(2 * file_size, 100));
  ASSERT_TRUE(put(spool, "id", json, 1, nullptr));
  ASSERT_TRUE(put(spool, "id", json, 1, nullptr));
  EXPECT_EQ(spool.stats().bytes, 2 * file_size);
  std::string error;
  EXPECT_FALSE(put(spool, "id", "[]", 0, &error));
  EXPECT_THAT(error, HasSubstr("spool full"));
  EXPECT_THAT(error, HasSubstr("max_bytes " + std::to_string(2 * file_size)));

  Spool empty_limit(SpoolLimits{(root_ / "tiny").string(), 10, 100});
  EXPECT_FALSE(put(empty_limit, "id", json, 1, &error));
  EXPECT_THAT(error, HasSubstr("max_bytes 10"));
  EXPECT_EQ(names_in(root_ / "tiny"), std::vector<std::string>{"corrupt"});
}

TEST_F(SpoolTest, OutOfBoundsInputIsRefusedWithReason) {
  Spool spool(limits());
  std::string error;
  EXPECT_FALSE(put(spool, std::string(Spool::kMaxBatchIdBytes + 1, 'i'), "[1]", 1, &error));
  EXPECT_THAT(error, HasSubstr("batch id of 129 bytes"));
  EXPECT_TRUE(put(spool, std::string(Spool::kMaxBatchIdBytes, 'i'), "[1]", 1, &error)) << error;
  // Event views must lie inside the JSON, in order, each field inside its event.
  const std::string json = "[1,2]";
  const std::string elsewhere = "[3]";
  const std::string_view one = std::string_view(json).substr(1, 1);
  const std::string_view two = std::string_view(json).substr(3, 1);
  const auto event = [](std::string_view whole, std::string_view type = {}) {
    return TelemetryEvent{whole, type, {}, {}};
  };
  const std::vector<std::pair<std::vector<TelemetryEvent>, std::string>> bad = {
      {{event(std::string_view(elsewhere).substr(1, 1))}, "outside the delivery's JSON"},
      {{event(two), event(one)}, "overlaps the previous event"},
      {{event(one, two)}, "event 0: type at 3+1 lies outside its json at 1+1"},
      {{event(std::string_view(json).substr(1, 0))}, "is empty"},
  };
  for (const auto& [events, reason] : bad) {
    EXPECT_FALSE(spool.put("id", json, events, &error)) << reason;
    EXPECT_THAT(error, HasSubstr(reason));
  }
  EXPECT_FALSE(spool.put("id", json, bad[0].first, nullptr));  // error is optional
  EXPECT_EQ(spool.stats().files, 1u);
}

TEST_F(SpoolTest, RemoveUpdatesFilesBytesAndEvents) {
  Spool spool(limits());
  ASSERT_TRUE(put(spool, "a", "[1,2,3]", 3, nullptr));
  ASSERT_TRUE(put(spool, "bb", "[4,5]", 2, nullptr));
  const uint64_t first = spool.oldest()->seq;
  EXPECT_EQ(spool.stats().files, 2u);
  EXPECT_EQ(spool.stats().events, 5u);
  EXPECT_EQ(spool.stats().bytes, 2 * Spool::kHeaderBytes + 1 + 7 + 2 + 5 + 5 * Spool::kEventBytes);
  spool.remove(first + 1);  // removing out of order is allowed
  EXPECT_EQ(spool.stats().files, 1u);
  EXPECT_EQ(spool.stats().events, 3u);
  EXPECT_EQ(spool.stats().bytes, Spool::kHeaderBytes + 1 + 7 + 3 * Spool::kEventBytes);
  spool.remove(first + 1);  // unknown seq: no effect
  spool.remove(12345);
  EXPECT_EQ(spool.stats().files, 1u);
  EXPECT_EQ(spool.oldest()->batch_id, "a");
}

TEST_F(SpoolTest, SymlinkedFolderIsRefused) {
  const fs::path real = root_ / "real";
  fs::create_directories(real);
  fs::create_symlink(real, root_ / "link");
  try {
    Spool spool(SpoolLimits{(root_ / "link").string(), 1u << 20, 10});
    FAIL() << "a symlinked spool folder was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr((root_ / "link").string()));
    EXPECT_THAT(e.what(), HasSubstr("symlink"));
  }
  EXPECT_TRUE(fs::is_empty(real));
}

TEST_F(SpoolTest, UnusableFolderThrowsNamingThePath) {
  fs::create_directories(root_);
  write_file(root_ / "file", "x");
  EXPECT_THAT(
      [&] {
        Spool s(SpoolLimits{(root_ / "file").string(), 100, 1});
      },
      ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("not a directory")));
  EXPECT_THAT(
      [&] {
        Spool s(SpoolLimits{(root_ / "file" / "sub").string(), 100, 1});
      },
      ::testing::ThrowsMessage<std::runtime_error>(HasSubstr((root_ / "file").string())));
  EXPECT_THAT([&] { Spool s(SpoolLimits{"", 100, 1}); }, ::testing::Throws<std::runtime_error>());
}

TEST_F(SpoolTest, FolderOwnedBySomeoneElseIsRefused) {
  fs::create_directories(dir_);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the folder away";
  ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
  EXPECT_THAT([&] { Spool s(limits()); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("owned by uid 65534")));
}

TEST_F(SpoolTest, ConcurrentPutOldestRemoveStayConsistent) {
  Spool spool(limits(64u << 20, 100000));
  constexpr int kBatches = 300;
  std::thread producer([&] {
    for (int i = 0; i < kBatches; ++i) {
      ASSERT_TRUE(put(spool, "id-" + std::to_string(i), payload_for(i, 64), 1, nullptr));
    }
  });
  std::vector<std::string> seen;
  std::thread consumer([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (seen.size() < kBatches && std::chrono::steady_clock::now() < until) {
      const auto got = spool.oldest();
      if (!got) {
        std::this_thread::yield();
        continue;
      }
      seen.push_back(got->batch_id);
      spool.remove(got->seq);
      (void)spool.stats().files;
      (void)spool.stats().bytes;
    }
  });
  producer.join();
  consumer.join();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kBatches));
  for (int i = 0; i < kBatches; ++i) EXPECT_EQ(seen[i], "id-" + std::to_string(i));
  EXPECT_EQ(spool.stats().files, 0u);
  EXPECT_EQ(spool.stats().bytes, 0u);
  EXPECT_EQ(spool.stats().quarantined, 0u);
}

// A process killed at an arbitrary instant while spooling leaves only whole, valid batches.
TEST_F(SpoolTest, SigkillAtAnyInstantLeavesOnlyWholeFiles) {
  std::mt19937 random(std::random_device{}());
  uint64_t replayed = 0;
  int killed_mid_put = 0;  // rounds that left a temp file: the case this test is about
  for (int round = 0; round < 8; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Child: spool forever, making room by removing the oldest when full.
      try {
        Spool spool(limits(4u << 20, 1000));
        std::mt19937 sizes(static_cast<unsigned>(::getpid()));
        for (uint64_t n = 0;; ++n) {
          const size_t size = 1000 + sizes() % (200u << 10);
          if (!put(spool, "round-" + std::to_string(round) + "-" + std::to_string(n),
                   payload_for(n, size), 1, nullptr)) {
            if (const auto head = spool.oldest()) spool.remove(head->seq);
          }
        }
      } catch (...) {
      }
      ::_exit(3);
    }
    // A failed assertion below must not leave the child spooling forever.
    struct Reaper {
      pid_t pid;
      ~Reaper() {
        if (pid > 0) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, nullptr, 0);
        }
      }
    } reaper{child};
    // Kill only once the child is writing, then at a random moment.
    ASSERT_TRUE(testing::eventually([&] {
      std::error_code ec;
      if (!fs::exists(dir_, ec)) return false;
      for (const auto& e : fs::directory_iterator(dir_, ec)) {
        if (e.path().filename() != "corrupt") return true;
      }
      return false;
    }));
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 30000));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    reaper.pid = 0;
    ASSERT_TRUE(WIFSIGNALED(status)) << "child ended on its own, status " << status;

    for (const auto& name : names_in(dir_)) {
      if (name.rfind(".tmp-", 0) == 0) ++killed_mid_put;
    }

    Spool reader(limits(4u << 20, 1000));
    EXPECT_EQ(reader.stats().quarantined, 0u) << reader.stats().last_quarantine_reason;
    for (const auto& name : names_in(dir_)) EXPECT_THAT(name, ::testing::Not(StartsWith(".tmp-")));
    const uint64_t indexed = reader.stats().files;
    uint64_t read = 0;
    while (const auto got = reader.oldest()) {
      const std::string prefix = "round-" + std::to_string(round) + "-";
      ASSERT_THAT(got->batch_id, StartsWith(prefix));
      const uint64_t n = std::stoull(got->batch_id.substr(prefix.size()));
      EXPECT_EQ(got->json, payload_for(n, got->json.size())) << got->batch_id;
      reader.remove(got->seq);
      ++read;
    }
    EXPECT_EQ(read, indexed);
    EXPECT_EQ(reader.stats().quarantined, 0u) << reader.stats().last_quarantine_reason;
    replayed += read;
  }
  RecordProperty("replayed_batches", std::to_string(replayed));
  RecordProperty("killed_mid_put", std::to_string(killed_mid_put));
}

TEST_F(SpoolTest, ForgedHugeSeqIsQuarantinedAndNumberingDoesNotWrapOntoOldFiles) {
  uint64_t first = 0;
  {
    Spool spool(limits());
    ASSERT_TRUE(put(spool, "a", "[1]", 1, nullptr, &first));
  }
  // A valid file under the largest name: without a bound the next seq would wrap to 0.
  fs::copy_file(dir_ / batch_file(first), dir_ / "18446744073709551615.batch");
  fs::copy_file(dir_ / batch_file(first), dir_ / batch_file(0));
  Spool spool(limits());
  EXPECT_EQ(spool.stats().quarantined, 1u);
  EXPECT_EQ(spool.stats().files, 2u);  // 0 and first
  uint64_t next = 0;
  ASSERT_TRUE(put(spool, "b", "[2]", 1, nullptr, &next));
  EXPECT_EQ(next, first + 1);
  EXPECT_EQ(spool.read(0)->json, "[1]");
  EXPECT_EQ(spool.read(next)->json, "[2]");
}

TEST_F(SpoolTest, DeadLetterMovesTheFileAsideForGoodAndItsSeqIsNeverReused) {
  uint64_t poison = 0;
  uint64_t next = 0;
  {
    Spool spool(limits());
    ASSERT_TRUE(put(spool, "poison", "[1]", 1, nullptr, &poison));
    ASSERT_TRUE(put(spool, "fine", "[2]", 1, nullptr));
    std::string error;
    const std::optional<std::string> where = spool.dead_letter(poison, &error);
    ASSERT_TRUE(where.has_value()) << error;
    EXPECT_EQ(*where, (dir_ / "dead-letter" / batch_file(poison)).string());
    EXPECT_EQ(spool.stats().files, 1u);
    EXPECT_EQ(spool.stats().events, 1u);
    EXPECT_EQ(spool.dead_lettered(), 1u);
    EXPECT_EQ(spool.oldest()->batch_id, "fine");
  }
  EXPECT_TRUE(fs::exists(dir_ / "dead-letter" / batch_file(poison)));
  Spool reopened(limits());
  EXPECT_EQ(reopened.stats().files, 1u);  // not replayed by the next process
  EXPECT_EQ(reopened.oldest()->batch_id, "fine");
  reopened.remove(reopened.oldest()->seq);
  ASSERT_TRUE(put(reopened, "later", "[3]", 1, nullptr, &next));
  EXPECT_GT(next, poison + 1);
}

TEST_F(SpoolTest, DeadLetterFolderKeepsOnlyTheNewest) {
  Spool spool(limits(1u << 20, 200));
  std::vector<std::string> names;
  for (size_t i = 0; i < Spool::kMaxDeadLetterFiles + 3; ++i) {
    uint64_t seq = 0;
    ASSERT_TRUE(put(spool, "p", "[1]", 1, nullptr, &seq));
    std::string error;
    ASSERT_TRUE(spool.dead_letter(seq, &error).has_value()) << error;
    names.push_back(batch_file(seq));
  }
  const std::vector<std::string> kept(names.end() - Spool::kMaxDeadLetterFiles, names.end());
  EXPECT_EQ(names_in(dir_ / "dead-letter"), kept);
}

TEST_F(SpoolTest, SymlinkedSpoolParentIsRefusedNotFollowed) {
  fs::create_directories(root_ / "elsewhere");
  fs::create_symlink(root_ / "elsewhere", root_ / "link");
  try {
    Spool spool(SpoolLimits{(root_ / "link" / "http").string()});
    FAIL() << "a symlinked RELAY_SPOOL_DIR was followed";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is a symlink"));
  }
  EXPECT_TRUE(fs::is_empty(root_ / "elsewhere"));
}

TEST_F(SpoolTest, MissingParentsAreCreatedPrivateWhateverTheUmask) {
  const mode_t previous = ::umask(0);
  { Spool spool(limits()); }
  ::umask(previous);
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "nested").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(SpoolTest, ThousandsOfCorruptFilesGiveAFewLinesAndOneSummary) {
  {
    Spool spool(limits(1u << 20, 2000));
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(put(spool, "id", "[1]", 1, nullptr));
  }
  for (const auto& name : names_in(dir_)) {
    if (name.ends_with(".batch")) write_file(dir_ / name, "garbage");
  }
  std::vector<std::string> lines;
  {
    const testing::LogCapture capture("relay.spool");
    Spool spool(limits(1u << 20, 2000));
    EXPECT_EQ(spool.stats().quarantined, 300u);
    lines = capture.lines();
  }
  ASSERT_EQ(lines.size(), Spool::kLoggedQuarantines + 1);
  EXPECT_THAT(lines.back(), HasSubstr("300 corrupt spool files"));
}

TEST_F(SpoolTest, EventOffsetsRoundTripToTheSameViewsAlsoAfterARestart) {
  const std::string json =
      R"([{"time":"t1","type":"function","record":"a"},{"type":"platform.start","record":{}},)"
      R"({"time":"t3","type":"x","record":"c"}])";
  // The event objects and their fields, found by hand the way the parser reports them.
  std::vector<TelemetryEvent> events;
  size_t at = 1;
  for (int i = 0; i < 3; ++i) {
    const size_t end = json.find(i < 2 ? "},{" : "}]", at) + 1;
    const std::string_view object = std::string_view(json).substr(at, end - at);
    // Strings without their quotes, except the record: raw JSON (see TelemetryEvent).
    const auto value = [&](std::string_view key) -> std::string_view {
      const size_t k = object.find("\"" + std::string(key) + "\":");
      if (k == std::string_view::npos) return {};
      const size_t v = k + key.size() + 3;
      const bool raw = key == "record";
      if (object[v] == '"') {
        return object.substr(v + !raw, object.find('"', v + 1) - v + (raw ? 1 : -1));
      }
      return object.substr(v, object.size() - 1 - v);
    };
    events.push_back(TelemetryEvent{object, value("type"), value("time"), value("record")});
    at = end + 1;
  }
  ASSERT_EQ(events[1].type, "platform.start");
  ASSERT_TRUE(events[1].time.empty());
  ASSERT_EQ(events[1].record, "{}");
  const auto expect_same = [&](const SpooledDelivery& got) {
    EXPECT_EQ(got.events, 3u);
    ASSERT_EQ(got.offsets.size(), 3u);
    EXPECT_EQ(got.json, json);
    for (size_t i = 0; i < 3; ++i) {
      const TelemetryEvent view = got.offsets[i].in(got.json);
      EXPECT_EQ(view.json, events[i].json) << i;
      EXPECT_EQ(view.type, events[i].type) << i;
      EXPECT_EQ(view.time, events[i].time) << i;
      EXPECT_EQ(view.record, events[i].record) << i;
      // Views into the delivery's own bytes, not copies.
      EXPECT_EQ(view.json.data(), got.json.data() + (events[i].json.data() - json.data())) << i;
    }
  };
  uint64_t seq = 0;
  {
    Spool spool(limits());
    std::string error;
    ASSERT_TRUE(spool.put("with-offsets", json, events, &error, &seq)) << error;
    EXPECT_EQ(spool.stats().events, 3u);
    EXPECT_EQ(spool.stats().bytes, Spool::kHeaderBytes + 12 + 3 * Spool::kEventBytes + json.size());
    const auto got = spool.read(seq);
    ASSERT_TRUE(got.has_value());
    expect_same(*got);
  }
  Spool restarted(limits());
  const auto got = restarted.read(seq);
  ASSERT_TRUE(got.has_value());
  expect_same(*got);
  EXPECT_EQ(restarted.stats().quarantined, 0u);
}

// The previous format, written as that build wrote it: the same header without an offset table.
TEST_F(SpoolTest, FileOfTheOldFormatIsQuarantinedAndItsEventsCounted) {
  const std::string id = "old";
  const std::string payload = R"([{"type":"function"},{"type":"function"}])";
  std::string file(Spool::kHeaderBytes, '\0');
  {
    Poco::MemoryOutputStream stream(file.data(), static_cast<std::streamsize>(file.size()));
    Poco::BinaryWriter out(stream, Poco::BinaryWriter::LITTLE_ENDIAN_BYTE_ORDER);
    out.writeRaw("TRSPOOL1", 8);
    out << Poco::UInt32{1} << static_cast<Poco::UInt32>(id.size()) << Poco::UInt64{2}
        << static_cast<Poco::UInt64>(payload.size()) << Poco::UInt32{0} << Poco::UInt32{0};
    out.flush();
  }
  file += id + payload;
  reseal(file);
  fs::create_directories(dir_);
  write_file(dir_ / batch_file(3), file);
  std::vector<std::string> lines;
  {
    const testing::LogCapture capture("relay.spool");
    Spool spool(limits());
    EXPECT_EQ(spool.stats().files, 0u);
    EXPECT_EQ(spool.stats().quarantined, 1u);
    EXPECT_EQ(spool.stats().quarantined_events, 2u);  // counted as lost, never silently
    EXPECT_THAT(spool.stats().last_quarantine_reason, HasSubstr("format version 1"));
    uint64_t next = 0;
    ASSERT_TRUE(put(spool, "new", "[1]", 1, nullptr, &next));
    EXPECT_EQ(next, 4u);  // its number is not reused
    lines = capture.lines();
  }
  EXPECT_EQ(read_file(dir_ / "corrupt" / batch_file(3)), file);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("without event offsets"));
}

// The fuzz seed valid_three_events was written from the layout documented in spool.cpp, by a
// script, not by Spool::put: the format is what the documentation says.
TEST_F(SpoolTest, AFileWrittenFromTheDocumentedLayoutIsRead) {
  fs::create_directories(dir_);
  fs::copy_file(fs::path(RELAY_SOURCE_DIR) / "tests/fuzz/corpus/spool_reader/valid_three_events",
                dir_ / batch_file(5));
  Spool spool(limits());
  const auto got = spool.read(5);
  ASSERT_TRUE(got.has_value()) << spool.stats().last_quarantine_reason;
  EXPECT_EQ(got->batch_id, "three");
  ASSERT_EQ(got->events, 3u);
  const TelemetryEvent first = got->offsets[0].in(got->json);
  EXPECT_EQ(first.json, R"({"time":"t1","type":"function","record":"a"})");
  EXPECT_EQ(first.type, "function");
  EXPECT_EQ(first.time, "t1");
  EXPECT_EQ(first.record, "\"a\"");
  const TelemetryEvent second = got->offsets[1].in(got->json);
  EXPECT_EQ(second.type, "platform.start");
  EXPECT_TRUE(second.time.empty());
  EXPECT_EQ(second.record, "{}");
}

}  // namespace
}  // namespace relay
