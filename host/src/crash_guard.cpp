#include "crash_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <vector>

namespace relay {

// Sink names are at most 64 characters (is_valid_sink_name); batch ids at most 128 (the ABI).
constexpr size_t kMaxSinkName = 64;
constexpr size_t kMaxBatchId = 128;
constexpr size_t kMaxSites = 64;

struct MarkerPaths {
  std::string path;
  std::string temp;
};

struct CrashSite {
  std::array<char, kMaxSinkName + 1> name{};
  std::atomic<const MarkerPaths*> marker{nullptr};  // set once the outlet knows its spool
};

namespace {

constexpr const char* kMarkerFile = "crashed";
constexpr const char* kMarkerTemp = ".crashed.tmp";
constexpr const char* kMarkerMagic = "telemetry-relay crash 1";
constexpr size_t kAltStackBytes = 64 * 1024;

// Sites and marker paths are never freed: a handler may read them until the process ends.
struct Registry {
  std::mutex mu;
  std::array<CrashSite, kMaxSites + 1> sites;  // the last one is shared beyond kMaxSites
  size_t used = 0;
  std::deque<MarkerPaths> paths;
};

Registry& registry() {
  static auto* instance = new Registry;
  return *instance;
}

constinit thread_local const PluginCallScope* current_call = nullptr;
std::atomic<bool> crash_reported{false};

constexpr std::array<int, 5> kFatalSignals = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
std::array<struct sigaction, kFatalSignals.size()> previous_actions{};

const char* signal_name(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGABRT:
      return "SIGABRT";
  }
  return "a fatal signal";
}

bool is_printable(char c) { return c >= ' ' && c < 0x7f; }

// Builds text in a fixed buffer without allocating: usable in a signal handler. Text from
// outside (a batch id read back from a spool) is kept to printable ASCII, one line per newline().
class TextBuffer {
 public:
  TextBuffer& add(std::string_view text, size_t max_bytes = SIZE_MAX) {
    for (size_t i = 0; i < text.size() && i < max_bytes && size_ < buffer_.size(); ++i) {
      buffer_[size_++] = is_printable(text[i]) ? text[i] : '?';
    }
    return *this;
  }
  TextBuffer& newline() {
    if (size_ == buffer_.size()) --size_;  // a line cut short still ends
    buffer_[size_++] = '\n';
    return *this;
  }
  std::string_view view() const { return {buffer_.data(), size_}; }

 private:
  std::array<char, 1024> buffer_{};
  size_t size_ = 0;
};

std::string_view name_of(const CrashSite& site) {
  size_t n = 0;
  while (n < site.name.size() && site.name[n] != '\0') ++n;
  return {site.name.data(), n};
}

// "sink <sink> crashed in <call> (<cause>)[ delivering <batch>]"; exit() reads as a call.
void describe_crash(TextBuffer& out, std::string_view sink, std::string_view call,
                    std::string_view cause, std::string_view batch_id) {
  out.add("sink ").add(sink, kMaxSinkName);
  if (cause == "exit()") {
    out.add(" called exit() in ").add(call);
  } else {
    out.add(" crashed in ").add(call).add(" (").add(cause).add(")");
  }
  if (!batch_id.empty()) out.add(" delivering ").add(batch_id, kMaxBatchId);
}

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Async-signal-safe: open/write/close/rename of preformatted paths.
void write_marker(const PluginCallScope& scope, std::string_view cause) {
  const MarkerPaths* paths = scope.site.marker.load(std::memory_order_acquire);
  if (paths == nullptr) return;
  TextBuffer text;
  text.add(kMarkerMagic).newline().add(name_of(scope.site)).newline();
  text.add(to_string(scope.call)).newline().add(cause).newline();
  text.add(scope.batch_id, kMaxBatchId).newline();
  const int fd =
      ::open(paths->temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  const bool written = write_all(fd, text.view());
  ::close(fd);
  if (written) ::rename(paths->temp.c_str(), paths->path.c_str());
}

// One line on stderr (where the host logs) and the note for the next process; once per process,
// so a second crash while reporting the first cannot loop.
void report_crash(const PluginCallScope* scope, std::string_view cause) {
  if (crash_reported.exchange(true)) return;
  TextBuffer line;
  line.add("telemetry-relay Fatal [relay.crash] ");
  if (scope != nullptr) {
    describe_crash(line, name_of(scope->site), to_string(scope->call), cause, scope->batch_id);
    line.add(": telemetry-relay ends; what every sink held in memory is lost, what is spooled");
    line.add(" is replayed by the next process").newline();
  } else {
    line.add("fatal signal ").add(cause).add(" on a thread outside any plugin call: ");
    line.add("telemetry-relay ends").newline();
  }
  write_all(STDERR_FILENO, line.view());
  if (scope != nullptr) write_marker(*scope, cause);
}

void on_fatal_signal(int signal, siginfo_t* info, void*) {
  const int saved_errno = errno;
  report_crash(current_call, signal_name(signal));
  // Hand the signal to what was there before (the default action: Lambda sees the crash; or a
  // sanitizer's handler). A fault re-runs its instruction on return; a sent signal (abort(),
  // kill) is sent again, and arrives once this handler returns.
  for (size_t i = 0; i < kFatalSignals.size(); ++i) {
    if (kFatalSignals[i] == signal) ::sigaction(signal, &previous_actions[i], nullptr);
  }
  if (info == nullptr || info->si_code <= 0) ::raise(signal);
  errno = saved_errno;
}

// exit() runs atexit handlers and static destructors while the other threads still use them;
// after a plugin's exit() nothing of the host may run, so the process ends here, at once: the
// raw exit_group, because a sanitizer's _exit runs its own finalisation first while the other
// threads carry on (under TSan the lifecycle reached SHUTDOWN meanwhile).
void on_exit_called() {
  if (current_call == nullptr) return;
  report_crash(current_call, "exit()");
  ::syscall(SYS_exit_group, EXIT_FAILURE);
}

// A plugin's stack overflow faults on the stack itself: the handler needs another one. Kept
// when something (a sanitizer) already gave the thread one.
struct AltStack {
  std::unique_ptr<char[]> memory;
  ~AltStack() {
    if (!memory) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    ::sigaltstack(&off, nullptr);
  }
};
constinit thread_local bool alt_stack_checked = false;
thread_local AltStack alt_stack;

void ensure_alt_stack() {
  if (alt_stack_checked) return;
  alt_stack_checked = true;
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return;
  auto memory = std::make_unique<char[]>(kAltStackBytes);
  stack_t stack{};
  stack.ss_sp = memory.get();
  stack.ss_size = kAltStackBytes;
  if (::sigaltstack(&stack, nullptr) == 0) alt_stack.memory = std::move(memory);
}

bool printable(std::string_view text, size_t max_bytes) {
  return text.size() <= max_bytes && std::all_of(text.begin(), text.end(), is_printable);
}

}  // namespace

const char* to_string(PluginCall call) {
  // In the enum's order; a lookup, safe in a signal handler.
  static constexpr const char* kNames[] = {"entry", "create", "deliver", "flush", "destroy"};
  const auto index = static_cast<size_t>(call);
  return index < std::size(kNames) ? kNames[index] : "call";
}

void install_crash_guard() {
  static std::once_flag once;
  std::call_once(once, [] {
    ensure_alt_stack();
    struct sigaction action {};
    action.sa_sigaction = &on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < kFatalSignals.size(); ++i) {
      ::sigaction(kFatalSignals[i], &action, &previous_actions[i]);
    }
    std::atexit(&on_exit_called);
  });
}

CrashSite& crash_site(std::string_view sink_name) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  const std::string_view name = sink_name.substr(0, kMaxSinkName);
  for (size_t i = 0; i < r.used; ++i) {
    if (name_of(r.sites[i]) == name) return r.sites[i];
  }
  if (r.used == kMaxSites) {
    CrashSite& shared = r.sites[kMaxSites];
    constexpr std::string_view kShared = "(one of many sinks)";
    if (shared.name[0] == '\0') kShared.copy(shared.name.data(), kShared.size());
    return shared;
  }
  CrashSite& site = r.sites[r.used++];
  name.copy(site.name.data(), name.size());
  return site;
}

PluginCallScope::PluginCallScope(CrashSite& crash_site, PluginCall plugin_call,
                                 std::string_view delivery_batch_id)
    : site(crash_site), call(plugin_call), batch_id(delivery_batch_id), outer_(current_call) {
  ensure_alt_stack();
  current_call = this;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // set before the plugin runs
}

PluginCallScope::~PluginCallScope() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  current_call = outer_;
}

std::string crash_marker_path(const std::string& dir) { return dir + "/" + kMarkerFile; }

void record_crashes_in(std::string_view sink_name, const std::string& dir) {
  CrashSite& site = crash_site(sink_name);
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  const MarkerPaths& paths =
      r.paths.emplace_back(MarkerPaths{crash_marker_path(dir), dir + "/" + kMarkerTemp});
  site.marker.store(&paths, std::memory_order_release);
}

std::string CrashRecord::describe() const {
  TextBuffer text;
  describe_crash(text, sink, call, cause, batch_id);
  return std::string(text.view());
}

std::optional<CrashRecord> read_and_clear_crash_marker(const std::string& dir) {
  const std::string path = crash_marker_path(dir);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::array<char, 1024> bytes{};  // a whole marker is far smaller; more is not one of ours
  size_t size = 0;
  while (size < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + size, bytes.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  ::unlink(path.c_str());

  std::vector<std::string_view> lines;
  std::string_view text(bytes.data(), size);
  while (!text.empty() && lines.size() < 6) {
    const size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;  // torn
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  if (lines.size() != 5 || !text.empty() || lines[0] != kMarkerMagic) return std::nullopt;
  CrashRecord record{std::string(lines[1]), std::string(lines[2]), std::string(lines[3]),
                     std::string(lines[4])};
  if (!printable(record.sink, kMaxSinkName) || record.sink.empty() || !printable(record.call, 16) ||
      !printable(record.cause, 16) || !printable(record.batch_id, kMaxBatchId)) {
    return std::nullopt;
  }
  return record;
}

}  // namespace relay
