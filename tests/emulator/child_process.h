#pragma once

// The extension as a child process: spawned with an explicit environment, its stdout and stderr
// captured line by line, frozen and thawed with SIGSTOP/SIGCONT, reaped with its resource usage.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace relay::emu {

struct ExitInfo {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::chrono::steady_clock::time_point at;
  double user_cpu_ms = 0;
  double system_cpu_ms = 0;
  long max_rss_kb = 0;
};

// The resident memory of a live process, from /proc/<pid>/status (all 0 when unreadable).
struct MemorySample {
  long vm_rss_kb = 0;    // VmRSS: resident now
  long rss_anon_kb = 0;  // RssAnon: of which anonymous (heap, stacks); the rest is mostly
                         // shared library pages
  long vm_hwm_kb = 0;    // VmHWM: peak since exec
};

MemorySample read_memory(pid_t pid);

struct ChildOptions {
  std::string path;
  std::vector<std::string> args;           // after argv[0], which is `path` as Lambda runs it
  std::map<std::string, std::string> env;  // the whole environment of the child
  // Where the raw output goes; empty means our own stdout/stderr.
  std::string stdout_path;
  std::string stderr_path;
  // Each complete output line, from a reader thread.
  std::function<void(std::string_view line)> on_line;
  // Called once from the reaper thread after the process ended.
  std::function<void(const ExitInfo&)> on_exit;
};

class ChildProcess {
 public:
  explicit ChildProcess(ChildOptions options);  // throws std::runtime_error if spawn fails
  ~ChildProcess();                              // SIGKILLs a running child and joins every thread
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }

  void send_signal(int sig);  // no-op once the process has been reaped
  // SIGSTOP, then waits (bounded) until the kernel reports the process stopped, since the
  // signal is delivered asynchronously; false if it did not stop in time.
  bool freeze();
  void thaw() { send_signal(SIGCONT); }
  void kill() { send_signal(SIGKILL); }

  // The child's resident memory now; all 0 once it was reaped.
  MemorySample memory() const;

  bool wait_exit(std::chrono::steady_clock::time_point deadline);
  std::optional<ExitInfo> exit_info() const;

 private:
  void reap();
  void pump(int fd, const std::string& path, int fallback_fd);

  ChildOptions options_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_at_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<ExitInfo> exit_;
  std::thread reaper_;
  std::vector<std::thread> readers_;
};

}  // namespace relay::emu
