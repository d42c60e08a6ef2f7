#include "spool.h"

#include <Poco/BinaryReader.h>
#include <Poco/BinaryWriter.h>
#include <Poco/Checksum.h>
#include <Poco/MemoryStream.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "logging.h"

namespace relay {
namespace {

// File layout (version 2), all integers little-endian, written with Poco::BinaryWriter and read
// with Poco::BinaryReader:
//   0  magic "TRSPOOL1"       8  u32 format version     12 u32 batch id length
//   16 u64 event count        24 u64 payload length     32 u32 CRC-32    36 u32 reserved (0)
//   40 the batch id bytes; then the offset table, per event 8 u32 (kEventBytes): offset and
//   length of its json, type, time and record views within the payload; then the payload (the
//   exact delivery JSON).
// The CRC covers the header (without the CRC field), the batch id, the table and the payload.
// Version 1 had the same header and no table.
constexpr char kMagic[8] = {'T', 'R', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr size_t kCrcOffset = 32;
constexpr uint32_t kVersionWithoutOffsets = 1;
// 32-bit offsets address at most this much payload.
constexpr uint64_t kMaxPayloadBytes = UINT32_MAX;
constexpr const char* kTempPrefix = ".tmp-";
constexpr const char* kBatchSuffix = ".batch";
constexpr size_t kSeqDigits = 20;
constexpr const char* kCorruptDir = "corrupt";
constexpr const char* kDeadLetterDir = "dead-letter";

std::string errno_text(int err) { return std::strerror(err); }

// Errors that say nothing about the file itself: it stays spooled and is tried again later,
// instead of being moved aside as corrupt.
bool is_transient(int err) {
  return err == EMFILE || err == ENFILE || err == ENOMEM || err == EINTR || err == EAGAIN;
}

// Poco::Checksum takes unsigned lengths; feed large payloads in chunks.
void crc_update(Poco::Checksum& crc, std::string_view bytes) {
  constexpr size_t kChunk = 1u << 20;
  for (size_t at = 0; at < bytes.size(); at += kChunk) {
    const size_t n = std::min(kChunk, bytes.size() - at);
    crc.update(bytes.data() + at, static_cast<unsigned int>(n));
  }
}

// `head`: header, batch id and offset table, as stored.
uint32_t file_crc(std::string_view head, std::string_view payload) {
  Poco::Checksum crc(Poco::Checksum::TYPE_CRC32);
  crc_update(crc, head.substr(0, kCrcOffset));
  crc_update(crc, head.substr(kCrcOffset + 4));
  crc_update(crc, payload);
  return crc.checksum();
}

std::string batch_name(uint64_t seq) {
  char name[64];
  std::snprintf(name, sizeof name, "%020llu%s", static_cast<unsigned long long>(seq), kBatchSuffix);
  return name;
}

std::optional<uint64_t> parse_batch_name(std::string_view name) {
  const std::string_view suffix = kBatchSuffix;
  if (name.size() != kSeqDigits + suffix.size() || name.substr(kSeqDigits) != suffix) {
    return std::nullopt;
  }
  uint64_t seq = 0;
  for (size_t i = 0; i < kSeqDigits; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (seq > (UINT64_MAX - digit) / 10) return std::nullopt;
    seq = seq * 10 + digit;
  }
  return seq;
}

struct Header {
  Poco::UInt32 version = 0;
  Poco::UInt32 id_len = 0;
  Poco::UInt64 events = 0;
  Poco::UInt64 payload_len = 0;
  Poco::UInt32 crc = 0;
  Poco::UInt32 reserved = 0;
};

// Checks everything that can be checked from the header and the file's size. On failure returns
// nullopt with *reason describing what was wrong, and *claimed_events the event count a
// sane-looking header announced (0 when the header itself is not believable), so a truncated or
// old-version file's loss is still counted.
std::optional<Header> check_header(std::string_view bytes, uint64_t file_size, uint64_t max_payload,
                                   std::string* reason, uint64_t* claimed_events = nullptr) {
  const uint64_t header_bytes = Spool::kHeaderBytes;
  if (file_size < header_bytes) {
    *reason = "truncated: " + std::to_string(file_size) + " bytes, shorter than the " +
              std::to_string(header_bytes) + "-byte header";
    return std::nullopt;
  }
  if (bytes.size() < header_bytes) {
    *reason = "truncated while reading the header";
    return std::nullopt;
  }
  Poco::MemoryInputStream stream(bytes.data(), static_cast<std::streamsize>(header_bytes));
  Poco::BinaryReader in(stream, Poco::BinaryReader::LITTLE_ENDIAN_BYTE_ORDER);
  std::string magic;
  Header h;
  in.readRaw(sizeof kMagic, magic);
  in >> h.version >> h.id_len >> h.events >> h.payload_len >> h.crc >> h.reserved;
  if (magic != std::string_view(kMagic, sizeof kMagic)) {
    *reason = "bad magic (not a telemetry-relay spool file)";
    return std::nullopt;
  }
  max_payload = std::min(max_payload, kMaxPayloadBytes);
  // Every event is at least one byte of the payload: a larger count is not believable.
  const bool sane = h.id_len <= Spool::kMaxBatchIdBytes && h.payload_len <= max_payload &&
                    h.events <= h.payload_len;
  if (h.version == kVersionWithoutOffsets) {
    if (claimed_events != nullptr && sane) *claimed_events = h.events;
    *reason = "format version 1 (written by an earlier build, without event offsets): not replayed";
    return std::nullopt;
  }
  if (h.version != Spool::kFormatVersion) {
    *reason = "unsupported format version " + std::to_string(h.version) + " (this build reads " +
              std::to_string(Spool::kFormatVersion) + ")";
    return std::nullopt;
  }
  if (h.reserved != 0) {
    *reason = "reserved header field is not zero";
    return std::nullopt;
  }
  if (h.id_len > Spool::kMaxBatchIdBytes) {
    *reason = "batch id length " + std::to_string(h.id_len) + " exceeds the limit of " +
              std::to_string(Spool::kMaxBatchIdBytes);
    return std::nullopt;
  }
  if (h.payload_len > max_payload) {
    *reason = "payload length " + std::to_string(h.payload_len) +
              " exceeds the spool's max_bytes " + std::to_string(max_payload);
    return std::nullopt;
  }
  if (h.events > h.payload_len) {
    *reason = "event count " + std::to_string(h.events) + " exceeds the payload's " +
              std::to_string(h.payload_len) + " bytes";
    return std::nullopt;
  }
  if (claimed_events != nullptr) *claimed_events = h.events;
  // No overflow: events <= payload_len < 2^32.
  const uint64_t expected = header_bytes + h.id_len + h.events * Spool::kEventBytes + h.payload_len;
  const std::string layout = " (" + std::to_string(h.id_len) + "-byte id, offsets of " +
                             std::to_string(h.events) + " events, " +
                             std::to_string(h.payload_len) + "-byte payload)";
  if (file_size < expected) {
    *reason = "truncated: " + std::to_string(file_size) + " bytes, header promises " +
              std::to_string(expected) + layout;
    return std::nullopt;
  }
  if (file_size > expected) {
    *reason = std::to_string(file_size - expected) + " trailing bytes: file has " +
              std::to_string(file_size) + " bytes, header promises " + std::to_string(expected) +
              layout;
    return std::nullopt;
  }
  return h;
}

uint64_t end_of(SpooledRange range) { return uint64_t{range.at} + range.size; }

// One event's ranges: its json is not empty, lies inside the payload and starts at or after
// *next_free (where the previous event ended); its fields lie inside its json. Advances *next_free.
bool check_event(const SpooledEvent& event, size_t index, uint64_t payload_size,
                 uint64_t* next_free, std::string* reason) {
  const auto describe = [](SpooledRange r) {
    return std::to_string(r.at) + "+" + std::to_string(r.size);
  };
  if (event.json.size == 0 || event.json.at < *next_free || end_of(event.json) > payload_size) {
    *reason = "event " + std::to_string(index) + ": json at " + describe(event.json) +
              " is empty, overlaps the previous event (which ends at " +
              std::to_string(*next_free) + ") or runs past the " + std::to_string(payload_size) +
              "-byte payload";
    return false;
  }
  const std::pair<const char*, SpooledRange> fields[] = {
      {"type", event.type}, {"time", event.time}, {"record", event.record}};
  for (const auto& [name, range] : fields) {
    if (range.size != 0 && (range.at < event.json.at || end_of(range) > end_of(event.json))) {
      *reason = "event " + std::to_string(index) + ": " + name + " at " + describe(range) +
                " lies outside its json at " + describe(event.json);
      return false;
    }
  }
  *next_free = end_of(event.json);
  return true;
}

// Where a view into `json` lies; nullopt when it is not inside it. An empty view has no place.
std::optional<SpooledRange> range_in(std::string_view part, std::string_view json) {
  if (part.empty()) return SpooledRange{};
  const auto begin = reinterpret_cast<uintptr_t>(json.data());
  const auto at = reinterpret_cast<uintptr_t>(part.data());
  if (at < begin || at - begin > json.size() || part.size() > json.size() - (at - begin)) {
    return std::nullopt;
  }
  return SpooledRange{static_cast<uint32_t>(at - begin), static_cast<uint32_t>(part.size())};
}

// The events' views as a validated offset table (the writer checks what the reader will).
bool offsets_of(std::span<const TelemetryEvent> events, std::string_view json,
                std::vector<SpooledEvent>* table, std::string* error) {
  table->reserve(events.size());
  uint64_t next_free = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const TelemetryEvent& e = events[i];
    const auto json_range = range_in(e.json, json);
    const auto type = range_in(e.type, json);
    const auto time = range_in(e.time, json);
    const auto record = range_in(e.record, json);
    if (!json_range || !type || !time || !record) {
      *error = "event " + std::to_string(i) + ": a view lies outside the delivery's JSON";
      return false;
    }
    table->push_back(SpooledEvent{*json_range, *type, *time, *record});
    if (!check_event(table->back(), i, json.size(), &next_free, error)) return false;
  }
  return true;
}

// Header, batch id and offset table, CRC included: what precedes the payload in the file.
std::string encode_head(std::string_view batch_id, const std::vector<SpooledEvent>& table,
                        std::string_view json) {
  std::string head(Spool::kHeaderBytes + batch_id.size() + table.size() * Spool::kEventBytes, '\0');
  Poco::MemoryOutputStream stream(head.data(), static_cast<std::streamsize>(head.size()));
  Poco::BinaryWriter out(stream, Poco::BinaryWriter::LITTLE_ENDIAN_BYTE_ORDER);
  out.writeRaw(kMagic, sizeof kMagic);
  out << Poco::UInt32{Spool::kFormatVersion} << static_cast<Poco::UInt32>(batch_id.size())
      << static_cast<Poco::UInt64>(table.size()) << static_cast<Poco::UInt64>(json.size())
      << Poco::UInt32{0} /* CRC, below */ << Poco::UInt32{0} /* reserved */;
  out.writeRaw(batch_id.data(), static_cast<std::streamsize>(batch_id.size()));
  for (const SpooledEvent& e : table) {
    for (const SpooledRange r : {e.json, e.type, e.time, e.record}) {
      out << Poco::UInt32{r.at} << Poco::UInt32{r.size};
    }
  }
  out.flush();
  // The CRC covers everything else, so it goes into its slot last.
  Poco::MemoryOutputStream crc_stream(head.data() + kCrcOffset, 4);
  Poco::BinaryWriter crc_out(crc_stream, Poco::BinaryWriter::LITTLE_ENDIAN_BYTE_ORDER);
  crc_out << Poco::UInt32{file_crc(head, json)};
  crc_out.flush();
  return head;
}

// Reads up to `size` bytes at offset 0; returns fewer only at end of file.
bool read_fully(int fd, char* out, size_t size, size_t* got, int* err) {
  *got = 0;
  while (*got < size) {
    const ssize_t n = ::pread(fd, out + *got, size - *got, static_cast<off_t>(*got));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (n == 0) break;
    *got += static_cast<size_t>(n);
  }
  return true;
}

bool write_fully(int fd, std::array<iovec, 2> iov, int* err) {
  size_t first = 0;
  while (first < iov.size()) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    const ssize_t n = ::writev(fd, iov.data() + first, static_cast<int>(iov.size() - first));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    auto left = static_cast<size_t>(n);
    while (left > 0 && first < iov.size()) {
      const size_t used = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + used;
      iov[first].iov_len -= used;
      left -= used;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  return true;
}

// Names in a folder (without "." and ".."). dir_fd stays open; a dup is handed to fdopendir.
bool list_dir(int dir_fd, std::vector<std::string>* names, int* err) {
  const int fd = ::dup(dir_fd);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    *err = errno;
    ::close(fd);
    return false;
  }
  ::rewinddir(d);
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") names->emplace_back(name);
  }
  ::closedir(d);
  return true;
}

// A private sub-folder of the spool (created 0700 if missing; a symlink is refused), opened for
// the *at calls; -1 with *error naming it when that fails.
int open_subfolder(int dir_fd, const char* name, bool create, std::string* error) {
  if (create && ::mkdirat(dir_fd, name, 0700) != 0 && errno != EEXIST) {
    *error = std::string("cannot create ") + name + "/: " + errno_text(errno);
    return -1;
  }
  const int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    *error =
        std::string("cannot open ") + name + "/ (must be a real directory): " + errno_text(err);
    errno = err;  // for a caller that tells "missing" apart
  }
  return fd;
}

std::string trim_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

SpoolLimits normalized(SpoolLimits limits) {
  limits.dir = trim_trailing_slashes(std::move(limits.dir));
  return limits;
}

}  // namespace

TelemetryEvent SpooledEvent::in(std::string_view json_bytes) const {
  const auto view = [&](SpooledRange r) {
    return r.size == 0 ? std::string_view{} : json_bytes.substr(r.at, r.size);
  };
  return TelemetryEvent{view(json), view(type), view(time), view(record)};
}

Spool::Spool(SpoolLimits limits) : limits_(normalized(std::move(limits))) {
  try {
    open_dir();
    index_existing();
  } catch (...) {
    if (dead_letter_fd_ >= 0) ::close(dead_letter_fd_);
    if (corrupt_fd_ >= 0) ::close(corrupt_fd_);
    if (dir_fd_ >= 0) ::close(dir_fd_);
    throw;
  }
}

Spool::~Spool() {
  if (dead_letter_fd_ >= 0) ::close(dead_letter_fd_);
  if (corrupt_fd_ >= 0) ::close(corrupt_fd_);
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

void Spool::open_dir() {
  const std::string& dir = limits_.dir;
  if (dir.empty()) throw std::runtime_error("spool folder is not set (empty path)");
  const auto fail = [&dir](const std::string& what) {
    throw std::runtime_error("spool folder " + dir + ": " + what);
  };

  // The parent is RELAY_SPOOL_DIR: what is missing of it is created private whatever the umask
  // (mkdir's mode is masked, never widened), and a symlink there is not followed silently.
  const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty()) {
    std::filesystem::path built;
    for (const std::filesystem::path& part : parent) {
      built /= part;
      if (::mkdir(built.c_str(), 0700) != 0 && errno != EEXIST) {
        fail("cannot create parent folder " + built.string() + ": " + errno_text(errno));
      }
    }
    struct stat parent_st {};
    if (::lstat(parent.c_str(), &parent_st) != 0) {
      fail("cannot stat parent folder " + parent.string() + ": " + errno_text(errno));
    }
    if (S_ISLNK(parent_st.st_mode)) {
      fail("parent folder " + parent.string() + " is a symlink; refusing to follow it");
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fail("cannot create: " + errno_text(errno));
  }

  // /tmp is shared with the function: the folder must be ours and must not be redirected.
  struct stat link_st {};
  if (::lstat(dir.c_str(), &link_st) != 0) fail("cannot stat: " + errno_text(errno));
  if (S_ISLNK(link_st.st_mode)) fail("is a symlink; refusing to follow it");
  if (!S_ISDIR(link_st.st_mode)) fail("exists but is not a directory");
  if (link_st.st_uid != ::geteuid()) {
    fail("is owned by uid " + std::to_string(link_st.st_uid) + ", not by this process (uid " +
         std::to_string(::geteuid()) + ")");
  }
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd_ < 0) fail("cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(dir_fd_, &st) != 0) fail("cannot stat: " + errno_text(errno));
  if (st.st_dev != link_st.st_dev || st.st_ino != link_st.st_ino) {
    fail("was replaced while being opened");
  }
  if ((st.st_mode & 07777) != 0700 && ::fchmod(dir_fd_, 0700) != 0) {
    fail("cannot restrict permissions to 0700: " + errno_text(errno));
  }

  std::string error;
  corrupt_fd_ = open_subfolder(dir_fd_, kCorruptDir, /*create=*/true, &error);
  if (corrupt_fd_ < 0) fail(error);
  // dead-letter/ is made when first needed; an existing one names seqs that must not be reused.
  dead_letter_fd_ = open_subfolder(dir_fd_, kDeadLetterDir, /*create=*/false, &error);
  if (dead_letter_fd_ < 0 && errno != ENOENT) fail(error);
}

void Spool::index_existing() {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  int err = 0;
  if (!list_dir(dir_fd_, &names, &err)) {
    throw std::runtime_error("spool folder " + limits_.dir + ": cannot list: " + errno_text(err));
  }

  uint64_t highest = 0;
  std::vector<uint64_t> seqs;
  for (const std::string& name : names) {
    if (name.rfind(kTempPrefix, 0) == 0) {
      // A put() that never reached its rename: not a whole batch, by construction.
      ::unlinkat(dir_fd_, name.c_str(), 0);
    } else if (const auto seq = parse_batch_name(name)) {
      if (*seq > kMaxSeq) {
        quarantine_locked(*seq, name, "sequence number above " + std::to_string(kMaxSeq));
        continue;
      }
      seqs.push_back(*seq);
      highest = std::max(highest, *seq);
    }
  }
  // Files moved aside keep their names; never reuse one of their seqs.
  for (const int folder_fd : {corrupt_fd_, dead_letter_fd_}) {
    std::vector<std::string> aside;
    if (folder_fd < 0 || !list_dir(folder_fd, &aside, &err)) continue;
    for (const std::string& name : aside) {
      const auto seq = parse_batch_name(name);
      if (seq && *seq <= kMaxSeq) highest = std::max(highest, *seq);
    }
  }
  next_seq_ = highest + 1;
  std::sort(seqs.begin(), seqs.end());

  // Only the header is read here (start-up stays cheap); oldest() verifies the checksum.
  for (const uint64_t seq : seqs) {
    const std::string name = batch_name(seq);
    std::string reason;
    const int fd = ::openat(dir_fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int open_err = errno;
      if (is_transient(open_err)) {
        // Left on disk, unindexed: the next process in this environment replays it.
        logger("spool").warning("cannot open spool file %s/%s now, skipping it: %s", limits_.dir,
                                name, errno_text(open_err));
        continue;
      }
      reason = open_err == ELOOP ? "is a symlink" : "cannot open: " + errno_text(open_err);
      quarantine_locked(seq, name, reason);
      continue;
    }
    struct stat st {};
    std::array<char, kHeaderBytes> header{};
    size_t got = 0;
    std::optional<Header> h;
    uint64_t claimed_events = 0;
    if (::fstat(fd, &st) != 0) {
      reason = "cannot stat: " + errno_text(errno);
    } else if (!S_ISREG(st.st_mode)) {
      reason = "not a regular file";
    } else if (!read_fully(fd, header.data(), header.size(), &got, &err)) {
      reason = "cannot read: " + errno_text(err);
    } else {
      h = check_header(std::string_view(header.data(), got), static_cast<uint64_t>(st.st_size),
                       limits_.max_bytes, &reason, &claimed_events);
    }
    ::close(fd);
    if (!h) {
      quarantine_locked(seq, name, reason, claimed_events);
      continue;
    }
    const auto size = static_cast<uint64_t>(st.st_size);
    index_[seq] = Entry{size, h->events};
    stats_.bytes += size;
    stats_.events += h->events;
  }
  stats_.initial_files = index_.size();
  stats_.initial_events = stats_.events;
  if (stats_.quarantined > kLoggedQuarantines) {
    logger("spool").warning(
        "%Lu corrupt spool files in %s moved to %s/ in all (the first %z "
        "described above)",
        stats_.quarantined, limits_.dir, std::string(kCorruptDir), kLoggedQuarantines);
  }
}

void Spool::quarantine_locked(uint64_t seq, const std::string& name, const std::string& reason,
                              uint64_t unindexed_events) {
  std::string outcome = "moved to " + std::string(kCorruptDir) + "/";
  if (::renameat(dir_fd_, name.c_str(), corrupt_fd_, name.c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      outcome = "already gone";
    } else if (::unlinkat(dir_fd_, name.c_str(), 0) == 0) {
      outcome = "deleted (could not move it aside: " + errno_text(err) + ")";
    } else {
      outcome = "left in place (could not move or delete it: " + errno_text(err) + ")";
    }
  }
  if (const auto it = index_.find(seq); it != index_.end()) {
    stats_.bytes -= it->second.size;
    stats_.events -= it->second.events;
    stats_.quarantined_events += it->second.events;
    index_.erase(it);
  } else {
    stats_.quarantined_events += unindexed_events;
  }
  ++stats_.quarantined;
  stats_.last_quarantine_reason = limits_.dir + "/" + name + ": " + reason;
  // A folder of thousands of bad files must not become thousands of lines: the first few are
  // described, the rest counted (the summary's spool_quarantined_files).
  if (stats_.quarantined <= kLoggedQuarantines) {
    logger("spool").warning("corrupt spool file %s; %s", stats_.last_quarantine_reason, outcome);
  }
  trim_folder_locked(corrupt_fd_, kMaxCorruptFiles, UINT64_MAX);
}

void Spool::trim_folder_locked(int folder_fd, size_t max_files, uint64_t max_bytes) {
  std::vector<std::string> names;
  int err = 0;
  if (!list_dir(folder_fd, &names, &err)) return;
  // Seq-named files sort oldest first; the newest are kept.
  std::sort(names.begin(), names.end());
  std::vector<uint64_t> sizes(names.size(), 0);
  uint64_t total = 0;
  if (max_bytes != UINT64_MAX) {
    for (size_t i = 0; i < names.size(); ++i) {
      struct stat st {};
      if (::fstatat(folder_fd, names[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        sizes[i] = static_cast<uint64_t>(st.st_size);
        total += sizes[i];
      }
    }
  }
  for (size_t i = 0; i < names.size() && (names.size() - i > max_files || total > max_bytes); ++i) {
    ::unlinkat(folder_fd, names[i].c_str(), 0);
    total -= sizes[i];
  }
}

bool Spool::put(std::string_view batch_id, std::string_view json,
                std::span<const TelemetryEvent> events, std::string* error, uint64_t* seq) {
  std::string local_error;
  std::string* err_out = error != nullptr ? error : &local_error;
  try {
    return put_unlocked(batch_id, json, events, err_out, seq);
  } catch (const std::exception& e) {
    *err_out = std::string("spool write failed: ") + e.what();
    return false;
  }
}

bool Spool::put_unlocked(std::string_view batch_id, std::string_view json,
                         std::span<const TelemetryEvent> events, std::string* error,
                         uint64_t* seq_out) {
  if (batch_id.size() > kMaxBatchIdBytes) {
    *error = "batch id of " + std::to_string(batch_id.size()) + " bytes exceeds the limit of " +
             std::to_string(kMaxBatchIdBytes);
    return false;
  }
  if (json.size() > kMaxPayloadBytes) {
    *error = "payload of " + std::to_string(json.size()) + " bytes exceeds the " +
             std::to_string(kMaxPayloadBytes) + " that the offsets address";
    return false;
  }
  std::vector<SpooledEvent> table;
  if (!offsets_of(events, json, &table, error)) return false;
  const std::string head = encode_head(batch_id, table, json);
  const uint64_t size = head.size() + json.size();
  uint64_t seq = 0;
  {
    // Reserve room and a name; the write and its fsyncs happen without the lock, so the
    // counters and other writers never wait on the disk.
    std::lock_guard lock(mu_);
    const uint64_t files = index_.size() + reserved_files_;
    const uint64_t bytes = stats_.bytes + reserved_bytes_;
    if (files >= limits_.max_files) {
      *error = "spool full: " + std::to_string(files) + " files, max_files is " +
               std::to_string(limits_.max_files);
      return false;
    }
    if (json.size() > limits_.max_bytes ||
        size > limits_.max_bytes - std::min(bytes, limits_.max_bytes)) {
      *error = "spool full: " + std::to_string(bytes) + " bytes spooled + " + std::to_string(size) +
               " would exceed max_bytes " + std::to_string(limits_.max_bytes);
      return false;
    }
    if (next_seq_ > kMaxSeq) {
      *error = "spool sequence numbers exhausted (above " + std::to_string(kMaxSeq) + ")";
      return false;
    }
    seq = next_seq_++;
    ++reserved_files_;
    reserved_bytes_ += size;
  }
  const bool written = write_file(seq, head, json, error);
  std::lock_guard lock(mu_);
  --reserved_files_;
  reserved_bytes_ -= size;
  if (!written) return false;
  index_[seq] = Entry{size, table.size()};
  stats_.bytes += size;
  stats_.events += table.size();
  if (seq_out != nullptr) *seq_out = seq;
  return true;
}

bool Spool::write_file(uint64_t seq, std::string_view head, std::string_view json,
                       std::string* error) {
  const std::string temp = kTempPrefix + std::to_string(seq);
  const std::string name = batch_name(seq);
  const auto failed = [&](const std::string& what, int err) {
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    *error =
        "spool write of " + limits_.dir + "/" + name + " failed: " + what + ": " + errno_text(err);
    return false;
  };

  const int fd =
      ::openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    *error = "cannot create " + limits_.dir + "/" + temp + ": " + errno_text(err);
    return false;
  }
  std::array<iovec, 2> iov{{
      {const_cast<char*>(head.data()), head.size()},
      {const_cast<char*>(json.data()), json.size()},
  }};
  int err = 0;
  if (!write_fully(fd, iov, &err)) {
    ::close(fd);
    return failed("write", err);
  }
  if (limits_.before_fsync_for_test) limits_.before_fsync_for_test();
  if (::fsync(fd) != 0) {
    err = errno;
    ::close(fd);
    return failed("fsync", err);
  }
  if (::close(fd) != 0) return failed("close", errno);
  if (::renameat(dir_fd_, temp.c_str(), dir_fd_, name.c_str()) != 0) {
    return failed("rename", errno);
  }
  if (::fsync(dir_fd_) != 0) {
    // The rename may not be durable; take the file back so the caller's accounting stays true.
    err = errno;
    ::unlinkat(dir_fd_, name.c_str(), 0);
    return failed("fsync of the folder", err);
  }
  return true;
}

std::optional<SpooledDelivery> Spool::read_locked(uint64_t seq, const Entry& indexed,
                                                  std::string* reason, bool* transient) {
  const std::string name = batch_name(seq);
  const int fd = ::openat(dir_fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    *transient = is_transient(err);
    *reason = err == ENOENT  ? "vanished from the spool folder"
              : err == ELOOP ? "is a symlink"
                             : "cannot open: " + errno_text(err);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *reason = "cannot stat: " + errno_text(errno);
    ::close(fd);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    *reason = "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  // put() keeps a whole file within max_bytes; the bound also caps what is read into memory.
  const uint64_t largest = kHeaderBytes + kMaxBatchIdBytes + limits_.max_bytes;
  if (file_size > largest) {
    *reason = "file of " + std::to_string(file_size) + " bytes exceeds the largest valid size " +
              std::to_string(largest);
    ::close(fd);
    return std::nullopt;
  }
  std::string bytes(file_size, '\0');
  size_t got = 0;
  int err = 0;
  const bool read_ok = read_fully(fd, bytes.data(), bytes.size(), &got, &err);
  ::close(fd);
  if (!read_ok) {
    *transient = is_transient(err);
    *reason = "cannot read: " + errno_text(err);
    return std::nullopt;
  }
  bytes.resize(got);
  // The header's lengths agree with the bytes read (checked here), so the reads below stay
  // inside them; each is checked all the same, and only what was read and valid counts.
  const auto h = check_header(bytes, got, limits_.max_bytes, reason);
  if (!h) return std::nullopt;
  Poco::MemoryInputStream stream(bytes.data() + kHeaderBytes,
                                 static_cast<std::streamsize>(bytes.size() - kHeaderBytes));
  Poco::BinaryReader in(stream, Poco::BinaryReader::LITTLE_ENDIAN_BYTE_ORDER);
  SpooledDelivery out;
  in.readRaw(h->id_len, out.batch_id);
  out.offsets.reserve(h->events);
  for (uint64_t i = 0; i < h->events; ++i) {
    SpooledEvent e;
    in >> e.json.at >> e.json.size >> e.type.at >> e.type.size >> e.time.at >> e.time.size >>
        e.record.at >> e.record.size;
    if (!in.good()) {
      *reason = "offset table truncated: header announces " + std::to_string(h->events) +
                " events, " + std::to_string(i) + " present";
      return std::nullopt;
    }
    out.offsets.push_back(e);
  }
  const size_t head_size = kHeaderBytes + h->id_len + out.offsets.size() * kEventBytes;
  const std::string_view payload = std::string_view(bytes).substr(head_size);
  if (payload.size() != h->payload_len) {
    *reason = "payload of " + std::to_string(payload.size()) + " bytes, header announces " +
              std::to_string(h->payload_len);
    return std::nullopt;
  }
  const uint32_t crc = file_crc(std::string_view(bytes).substr(0, head_size), payload);
  if (crc != h->crc) {
    char text[96];
    std::snprintf(text, sizeof text, "checksum mismatch (stored %08x, computed %08x)", h->crc, crc);
    *reason = text;
    return std::nullopt;
  }
  // Checksummed yet out of bounds: forged, not damaged. Nothing outside the payload is handed on.
  uint64_t next_free = 0;
  for (size_t i = 0; i < out.offsets.size(); ++i) {
    if (!check_event(out.offsets[i], i, payload.size(), &next_free, reason)) return std::nullopt;
  }
  // Spool files never change after their rename. A valid file that differs from what was indexed
  // was replaced behind our back; accepting it would make files()/bytes()/events() lie.
  if (got != indexed.size || out.offsets.size() != indexed.events) {
    *reason = "replaced on disk since it was indexed (" + std::to_string(got) + " bytes and " +
              std::to_string(out.offsets.size()) + " events, indexed " +
              std::to_string(indexed.size) + " bytes and " + std::to_string(indexed.events) +
              " events)";
    return std::nullopt;
  }
  out.seq = seq;
  out.events = out.offsets.size();
  out.json = std::string(payload);
  return out;
}

std::optional<SpooledDelivery> Spool::read_indexed_locked(uint64_t seq) {
  // Nullopt: quarantined (files() shrank), or a passing error (the entry stays).
  const auto it = index_.find(seq);
  if (it == index_.end()) return std::nullopt;
  std::string reason;
  bool transient = false;
  auto delivery = read_locked(seq, it->second, &reason, &transient);
  if (delivery) return delivery;
  if (transient) {
    logger("spool").warning("cannot read spool file %s/%s now, will try again: %s", limits_.dir,
                            batch_name(seq), reason);
    return std::nullopt;
  }
  quarantine_locked(seq, batch_name(seq), reason);
  return std::nullopt;
}

std::optional<SpooledDelivery> Spool::oldest() {
  try {
    std::lock_guard lock(mu_);
    while (!index_.empty()) {
      const uint64_t seq = index_.begin()->first;
      auto delivery = read_indexed_locked(seq);
      if (delivery) return delivery;
      if (index_.count(seq) > 0) return std::nullopt;  // a passing error: try again later
    }
  } catch (const std::exception& e) {
    logger("spool").error("reading the spool in %s failed: %s", limits_.dir, std::string(e.what()));
  }
  return std::nullopt;
}

std::optional<SpooledDelivery> Spool::read(uint64_t seq) {
  try {
    std::lock_guard lock(mu_);
    return read_indexed_locked(seq);
  } catch (const std::exception& e) {
    logger("spool").error("reading the spool in %s failed: %s", limits_.dir, std::string(e.what()));
  }
  return std::nullopt;
}

std::vector<uint64_t> Spool::seqs() const {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  out.reserve(index_.size());
  for (const auto& entry : index_) out.push_back(entry.first);
  return out;
}

std::optional<std::string> Spool::dead_letter(uint64_t seq, std::string* error) {
  std::lock_guard lock(mu_);
  const auto it = index_.find(seq);
  if (it == index_.end()) {
    *error = "not in the spool";
    return std::nullopt;
  }
  stats_.bytes -= it->second.size;
  stats_.events -= it->second.events;
  index_.erase(it);
  const std::string name = batch_name(seq);
  if (dead_letter_fd_ < 0) {
    dead_letter_fd_ = open_subfolder(dir_fd_, kDeadLetterDir, /*create=*/true, error);
  }
  if (dead_letter_fd_ < 0) {
    ::unlinkat(dir_fd_, name.c_str(), 0);  // never replayed, either way
    return std::nullopt;
  }
  if (::renameat(dir_fd_, name.c_str(), dead_letter_fd_, name.c_str()) != 0) {
    *error = "cannot move it to " + std::string(kDeadLetterDir) + "/: " + errno_text(errno);
    ::unlinkat(dir_fd_, name.c_str(), 0);  // never replayed, either way
    return std::nullopt;
  }
  ++dead_lettered_;
  trim_folder_locked(dead_letter_fd_, kMaxDeadLetterFiles, limits_.max_bytes);
  return limits_.dir + "/" + kDeadLetterDir + "/" + name;
}

uint64_t Spool::dead_lettered() const {
  std::lock_guard lock(mu_);
  return dead_lettered_;
}

void Spool::remove(uint64_t seq) {
  try {
    std::lock_guard lock(mu_);
    const auto it = index_.find(seq);
    if (it == index_.end()) return;
    stats_.bytes -= it->second.size;
    stats_.events -= it->second.events;
    index_.erase(it);
    // No folder fsync: if the unlink is lost in a crash the batch is replayed once more with the
    // same batch id, which a receiver can deduplicate; nothing is lost.
    const std::string name = batch_name(seq);
    if (::unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
      const std::string why = errno_text(errno);
      logger("spool").warning("cannot delete delivered spool file %s/%s: %s", limits_.dir, name,
                              why);
    }
  } catch (const std::exception& e) {
    logger("spool").error("removing spool entry %s failed: %s", std::to_string(seq),
                          std::string(e.what()));
  }
}

SpoolStats Spool::stats() const {
  std::lock_guard lock(mu_);
  SpoolStats copy = stats_;
  copy.files = index_.size();
  return copy;
}

}  // namespace relay
