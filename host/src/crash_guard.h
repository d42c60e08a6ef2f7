// What the host can still do when a plugin crashes the process (a fault, abort(), exit()): a
// plugin runs in the host's address space, so nothing can be saved by then. The host names the
// sink and the call in one log line, still ends the way the crash would have (Lambda reports
// Extension.Crash), and leaves the next process a note of the batch the sink crashed on, so a
// spooled batch that crashes its sink can be set aside instead of crashing every process that
// replays it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace relay {

enum class PluginCall { kEntry, kCreate, kDeliver, kFlush, kDestroy };

const char* to_string(PluginCall call);

// Handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT, and a hook for exit() called inside
// a plugin call. Once per process; later calls do nothing. The host never calls exit() itself
// (it ends with _Exit), so the hook only ever sees a plugin's.
void install_crash_guard();

// One sink's record for the handlers: its name and where its crash note goes. One per sink name,
// kept for the life of the process (at most 64 names; more share one unnamed site).
struct CrashSite;
CrashSite& crash_site(std::string_view sink_name);

// Marks the calling thread as inside a plugin call, for the handlers; scopes nest. Cheap: two
// thread-local stores (and, on a thread's first plugin call, an alternate signal stack, so a
// plugin's stack overflow is reported too).
class PluginCallScope {
 public:
  PluginCallScope(CrashSite& site, PluginCall call, std::string_view batch_id = {});
  ~PluginCallScope();
  PluginCallScope(const PluginCallScope&) = delete;
  PluginCallScope& operator=(const PluginCallScope&) = delete;

  const CrashSite& site;
  const PluginCall call;
  const std::string_view batch_id;  // the delivery's, which outlives the call

 private:
  const PluginCallScope* outer_;
};

// Runs fn, a call into a plugin, inside a PluginCallScope; returns what fn returns.
template <typename Fn>
decltype(auto) in_plugin_call(CrashSite& site, PluginCall call, std::string_view batch_id,
                              Fn&& fn) {
  PluginCallScope scope(site, call, batch_id);
  return std::forward<Fn>(fn)();
}
template <typename Fn>
decltype(auto) in_plugin_call(CrashSite& site, PluginCall call, Fn&& fn) {
  return in_plugin_call(site, call, {}, std::forward<Fn>(fn));
}

// From now on a crash in this sink's plugin leaves its note in `dir` (its spool folder), as the
// file crash_marker_path(dir). For the outlet, once it has read the previous one.
void record_crashes_in(std::string_view sink_name, const std::string& dir);
std::string crash_marker_path(const std::string& dir);

// The previous process's note: which sink crashed in which call, how, and (in deliver) on which
// batch. The spool can set that batch aside so it does not crash this process too.
struct CrashRecord {
  std::string sink;
  std::string call;   // to_string(PluginCall)
  std::string cause;  // "SIGSEGV", "SIGABRT", ... or "exit()"
  std::string batch_id;

  // "sink <sink> crashed in <call> (<cause>)[ delivering <batch_id>]", for one log line.
  std::string describe() const;
};

// Reads and removes the note in `dir`; nullopt when there is none or it is unreadable (a torn or
// foreign file is removed too, so it is never read twice).
std::optional<CrashRecord> read_and_clear_crash_marker(const std::string& dir);

}  // namespace relay
