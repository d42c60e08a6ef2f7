// A crash-safe on-disk queue of deliveries, one file per delivery, so telemetry whose delivery
// failed survives a crash, a freeze or the end of the extension process and is replayed in
// order, also by the next extension process in the same execution environment.
//
// Each file is written as <dir>/.tmp-<seq>, fsynced, renamed to <dir>/<seq:020>.batch and the
// folder fsynced: a SIGKILL at any instant leaves either a whole, checksummed file or a temp file
// that the next Spool deletes. Every file is validated when read; one that fails is moved to
// <dir>/corrupt/ (at most kMaxCorruptFiles kept), counted and logged, never thrown. A delivery the
// outlet gives up on (a poison) moves to <dir>/dead-letter/, kept for inspection, never replayed.
//
// Each file also stores where every event's views lie in the delivery's JSON, so a replay hands
// the sink its events without parsing the JSON again; those offsets are validated when read.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry_post.h"

namespace relay {

struct SpoolLimits {
  // The spool folder; it and its parent (RELAY_SPOOL_DIR) must not be symlinks; what is missing
  // is created 0700 whatever the umask.
  std::string dir;
  uint64_t max_bytes = 16u << 20;  // sum of the spool files' sizes (headers included)
  uint32_t max_files = 256;
  // Tests only: runs inside put() between the write and its fsync (without the spool's lock),
  // so a test can hold a write "in the fsync" and check who waits for it.
  std::function<void()> before_fsync_for_test{};
};

// One byte range of a delivery's JSON: an offset from its first byte and a length.
struct SpooledRange {
  uint32_t at = 0;
  uint32_t size = 0;
};

// Where one event's TelemetryEvent views lie in the delivery's JSON. Validated when read: every
// range lies inside the JSON, the events' ranges are in order without overlapping, and each field
// lies inside its event (an empty field has size 0).
struct SpooledEvent {
  SpooledRange json, type, time, record;

  // The event's views into `json`, the delivery's bytes these offsets were read with.
  TelemetryEvent in(std::string_view json_bytes) const;
};

struct SpooledDelivery {
  uint64_t seq = 0;      // replay order (file name order)
  std::string batch_id;  // the delivery's stable id
  uint64_t events = 0;   // offsets.size(): the events actually read and valid, not a header's claim
  std::string json;      // the exact bytes to deliver
  std::vector<SpooledEvent> offsets;  // one per event, in order
};

// What a Spool holds and has refused, read together under its lock.
struct SpoolStats {
  // Currently spooled (events as recorded in the file headers).
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t events = 0;
  // Files moved aside (or, if that failed, deleted) because they failed validation, and the
  // events their headers claimed (what was lost with them), also for a file refused at start-up
  // whose header was sane but whose body was cut short.
  uint64_t quarantined = 0;
  uint64_t quarantined_events = 0;
  std::string last_quarantine_reason;
  // What the constructor found from an earlier process (valid-looking files, their events).
  uint64_t initial_files = 0;
  uint64_t initial_events = 0;
};

class Spool {
 public:
  static constexpr size_t kMaxBatchIdBytes = 128;
  static constexpr size_t kMaxCorruptFiles = 8;  // quarantined files kept for inspection
  static constexpr size_t kHeaderBytes = 40;     // fixed header before batch id and payload
  static constexpr size_t kEventBytes = 32;      // one event's entry in the offset table
  // 2: an offset table between the batch id and the payload. Files of version 1 (no offsets) are
  // quarantined like corrupt ones, their events counted: nothing had shipped with version 1.
  static constexpr uint32_t kFormatVersion = 2;
  // File names carry the seq; a larger one (forged, e.g. 18446744073709551615.batch) is
  // quarantined rather than let the numbering wrap onto existing files.
  static constexpr uint64_t kMaxSeq = 99999999999999999ull;  // 10^17 - 1
  static constexpr size_t kMaxDeadLetterFiles = 64;          // the oldest go beyond these
  static constexpr size_t kLoggedQuarantines = 5;            // one line each; then a summary

  // Creates dir (mode 0700, parents too), removes leftover temp files, indexes existing complete
  // files (from an earlier process in the same environment) in seq order and continues the seq
  // numbering after the highest one. Throws std::runtime_error naming the path if the folder
  // cannot be created or used (a symlink, not owned by this user, not a directory, I/O error).
  explicit Spool(SpoolLimits limits);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Atomic: write temp file, fsync, rename, fsync dir. Thread-safe; the disk work runs without
  // the spool's lock, so concurrent puts and the counters never wait on another put's fsync.
  // `events` are the delivery's events as views into `json` (as Delivery holds them); their
  // offsets are stored with it. False (with *error, if given) when a limit would be exceeded, the
  // id or payload is out of bounds, a view lies outside `json` or out of order, or on I/O error;
  // nothing partial is left behind.
  bool put(std::string_view batch_id, std::string_view json, std::span<const TelemetryEvent> events,
           std::string* error, uint64_t* seq = nullptr);

  // Oldest valid entry (it stays spooled until remove(seq)). A file that fails validation
  // (magic/version/length/checksum/truncation/offsets) is moved to <dir>/corrupt/, counted in
  // quarantined(), described in last_quarantine_reason(), logged as a warning, and skipped.
  // Nullopt while files() > 0 means a passing error (e.g. out of file descriptors, logged):
  // the entry stays spooled; try again later.
  std::optional<SpooledDelivery> oldest();
  // The entry `seq`, validated like oldest(): nullopt when it is gone, was quarantined, or could
  // not be read now.
  std::optional<SpooledDelivery> read(uint64_t seq);
  // The spooled seqs, oldest first.
  std::vector<uint64_t> seqs() const;

  // Moves the entry to <dir>/dead-letter/ (keeping at most kMaxDeadLetterFiles there, and no
  // more than max_bytes) and returns the path it went to; nullopt with *error when it could not
  // be moved (it is then deleted: it leaves the spool either way, never to be replayed).
  std::optional<std::string> dead_letter(uint64_t seq, std::string* error);
  uint64_t dead_lettered() const;  // files moved there by this Spool

  // Deletes the entry's file; unknown seqs are ignored.
  void remove(uint64_t seq);

  SpoolStats stats() const;

  const std::string& dir() const { return limits_.dir; }

 private:
  struct Entry {
    uint64_t size = 0;    // file size in bytes
    uint64_t events = 0;  // from the header
  };

  void open_dir();        // throws
  void index_existing();  // throws only if the folder cannot be listed
  // unindexed_events: what the header of a file that never made it into the index announced.
  void quarantine_locked(uint64_t seq, const std::string& name, const std::string& reason,
                         uint64_t unindexed_events = 0);
  void trim_folder_locked(int folder_fd, size_t max_files, uint64_t max_bytes);
  std::optional<SpooledDelivery> read_indexed_locked(uint64_t seq);
  // Nullopt with *reason when the file is unusable; *transient when the cause was not the file
  // (e.g. out of descriptors), so it must stay spooled.
  std::optional<SpooledDelivery> read_locked(uint64_t seq, const Entry& indexed,
                                             std::string* reason, bool* transient);
  bool put_unlocked(std::string_view batch_id, std::string_view json,
                    std::span<const TelemetryEvent> events, std::string* error, uint64_t* seq_out);
  bool write_file(uint64_t seq, std::string_view head, std::string_view json, std::string* error);

  const SpoolLimits limits_;
  int dir_fd_ = -1;          // the spool folder, opened O_NOFOLLOW; all file ops are relative to it
  int corrupt_fd_ = -1;      // <dir>/corrupt
  int dead_letter_fd_ = -1;  // <dir>/dead-letter

  mutable std::mutex mu_;
  std::map<uint64_t, Entry> index_;  // seq -> metadata only, never payloads
  uint64_t next_seq_ = 1;
  uint64_t reserved_files_ = 0;  // puts writing right now (outside the lock)
  uint64_t reserved_bytes_ = 0;
  SpoolStats stats_;  // files is index_.size(), filled in by stats()
  uint64_t dead_lettered_ = 0;
};

}  // namespace relay
