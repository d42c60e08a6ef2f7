#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

namespace relay::emu {

namespace {

double to_ms(const timeval& tv) { return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; }

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

MemorySample read_memory(pid_t pid) {
  MemorySample sample;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  auto field = [&line](const char* name, long& out) {
    const size_t length = std::strlen(name);
    if (line.compare(0, length, name) == 0) out = std::strtol(line.c_str() + length, nullptr, 10);
  };
  while (std::getline(status, line)) {
    field("VmRSS:", sample.vm_rss_kb);
    field("RssAnon:", sample.rss_anon_kb);
    field("VmHWM:", sample.vm_hwm_kb);
  }
  return sample;
}

ChildProcess::ChildProcess(ChildOptions options) : options_(std::move(options)) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe2 failed");
  }

  std::vector<std::string> argv_storage{options_.path};
  argv_storage.insert(argv_storage.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (const auto& [key, value] : options_.env) env_storage.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  // Our listening sockets are not close-on-exec; the extension must not inherit them.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the emulator ignores SIGPIPE; the child must not inherit that
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  started_at_ = std::chrono::steady_clock::now();
  const int rc =
      ::posix_spawn(&pid_, options_.path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("cannot launch " + options_.path + ": " + std::strerror(rc));
  }

  readers_.emplace_back([this, fd = out_pipe[0]] { pump(fd, options_.stdout_path, 1); });
  readers_.emplace_back([this, fd = err_pipe[0]] { pump(fd, options_.stderr_path, 2); });
  reaper_ = std::thread([this] { reap(); });
}

ChildProcess::~ChildProcess() {
  kill();
  if (reaper_.joinable()) reaper_.join();
  for (auto& reader : readers_) {
    if (reader.joinable()) reader.join();
  }
}

void ChildProcess::send_signal(int sig) {
  std::lock_guard lock(mu_);
  // Checked under the lock the reaper takes, so a reaped (reusable) pid is never signalled.
  if (!exit_ && pid_ > 0) ::kill(pid_, sig);
}

bool ChildProcess::freeze() {
  send_signal(SIGSTOP);
  const std::string stat_path = "/proc/" + std::to_string(pid_) + "/stat";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat(stat_path);
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // The state follows the parenthesised command name, which may itself contain spaces.
    const auto paren = text.rfind(')');
    if (paren == std::string::npos || paren + 2 >= text.size()) return false;  // gone
    if (text[paren + 2] == 'T') return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

MemorySample ChildProcess::memory() const {
  std::lock_guard lock(mu_);
  // Under the lock the reaper takes: a reaped (reusable) pid is never read.
  if (exit_ || pid_ <= 0) return {};
  return read_memory(pid_);
}

bool ChildProcess::wait_exit(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [this] { return exit_.has_value(); });
}

std::optional<ExitInfo> ChildProcess::exit_info() const {
  std::lock_guard lock(mu_);
  return exit_;
}

void ChildProcess::reap() {
  int status = 0;
  rusage usage{};
  // WNOHANG polling keeps the pid un-reaped until we hold the lock, so signal() cannot race
  // with pid reuse; a blocking waitid(WNOWAIT) first avoids a busy loop.
  //
  // ru_maxrss is useless here: posix_spawn runs the child on our own address space until exec,
  // and the kernel carries that (our) peak into the child's. So the child's own VmHWM is
  // sampled every few ms while it runs; its peak is what it reached after exec.
  long peak_kb = 0;
  while (true) {
    siginfo_t info{};
    const int rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT | WNOHANG);
    if (rc == 0 && info.si_pid == pid_) break;
    if (rc != 0 && errno != EINTR) break;
    peak_kb = std::max(peak_kb, read_memory(pid_).vm_hwm_kb);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::unique_lock lock(mu_);
  while (::wait4(pid_, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  ExitInfo exit;
  exit.at = std::chrono::steady_clock::now();
  if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  exit.user_cpu_ms = to_ms(usage.ru_utime);
  exit.system_cpu_ms = to_ms(usage.ru_stime);
  exit.max_rss_kb = peak_kb > 0 ? peak_kb : usage.ru_maxrss;
  exit_ = exit;
  cv_.notify_all();
  lock.unlock();
  if (options_.on_exit) options_.on_exit(exit);
}

void ChildProcess::pump(int fd, const std::string& path, int fallback_fd) {
  int out_fd = fallback_fd;
  if (!path.empty()) {
    out_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  std::string pending;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out_fd >= 0) write_all(out_fd, buf, static_cast<size_t>(n));
    if (!options_.on_line) continue;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      options_.on_line(std::string_view(pending).substr(start, nl - start));
    }
    pending.erase(0, start);
  }
  if (!pending.empty() && options_.on_line) options_.on_line(pending);
  if (!path.empty() && out_fd >= 0) ::close(out_fd);
  ::close(fd);
}

}  // namespace relay::emu
