// The gateway's log: one line per event (started, ejected, draining, registry trouble...)
// and, when asked, one line per call (the access log). Text or JSON lines, to standard
// error or to a file that reopen() opens again (SIGHUP, after logrotate moved it).
//
// Thread-safe: workers hand over whole batches of lines (a write(2) each, under a mutex
// shared with reopen), so a line is never split or lost to a reopen.
#pragma once

#include <svcctl/core/expected.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace svcctl::gateway {

struct CallRecord {
  std::string_view request_id;
  std::string_view service;
  std::string_view iface;
  std::string_view upstream;  // host:port, empty when no provider was called
  std::string_view key;
  int status = 0;
  std::string_view error;  // the error code, empty on success
  std::uint64_t duration_us = 0;
  bool retried = false;
};

// Text lines for people, or one JSON object per line for collectors.
enum class LogFormat { Text, Json };

class Log {
 public:
  // `path` empty: standard error. Unavailable when the file cannot be opened.
  static Expected<std::unique_ptr<Log>> open(std::string path, LogFormat format);
  ~Log();

  // Opens the file again (a no-op on standard error); on failure keeps the old one and says so.
  void reopen();
  // One event line: "TS svcctl proxy: message" or {"ts":..,"level":..,"msg":..}.
  void event(std::string_view level, std::string_view message);
  // The same with fields (a JSON object): JSON lines carry them after "msg"; text lines
  // only the message.
  void event(std::string_view level, std::string_view message, const nlohmann::json& fields);
  // Appends one access line to `out` (the caller's buffer, written with write_lines()).
  void format_call(std::string& out, const CallRecord& r) const;
  void write_lines(std::string_view lines);

 private:
  Log(std::string path, LogFormat format, int fd)
      : m_path(std::move(path)), m_json(format == LogFormat::Json), m_fd(fd) {}
  std::string m_path;
  bool m_json;
  std::mutex m_mu;
  int m_fd;
};

// Now, as the log writes it: 2026-11-22T10:00:00.123Z.
std::string log_timestamp();

}  // namespace svcctl::gateway
