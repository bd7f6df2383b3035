#include <svcctl/gateway/log.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace svcctl::gateway {

namespace {

int open_file(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk loses log lines, never calls
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A JSON string's text, quotes included (invalid UTF-8 replaced, never thrown).
std::string quoted(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string log_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%FT%T}.{:03}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms);
}

Expected<std::unique_ptr<Log>> Log::open(std::string path, LogFormat format) {
  int fd = 2;
  if (!path.empty()) {
    fd = open_file(path);
    if (fd < 0)
      return fail(ErrorKind::Unavailable, fmt::format("cannot open the log file {}: {}", path, std::strerror(errno)));
  }
  return std::unique_ptr<Log>(new Log(std::move(path), format, fd));
}

Log::~Log() {
  if (m_fd > 2) ::close(m_fd);
}

void Log::reopen() {
  if (m_path.empty()) return;
  int fd = open_file(m_path);
  if (fd < 0) {
    event("error", fmt::format("cannot reopen the log file {}: {} (still writing to the old one)", m_path,
                               std::strerror(errno)));
    return;
  }
  {
    std::lock_guard lock(m_mu);
    ::close(m_fd);
    m_fd = fd;
  }
  event("info", "log file reopened");
}

void Log::event(std::string_view level, std::string_view message) {
  event(level, message, nlohmann::json::object());
}

void Log::event(std::string_view level, std::string_view message, const nlohmann::json& fields) {
  std::string line;
  if (m_json) {
    line = fmt::format("{{\"ts\":\"{}\",\"level\":\"{}\",\"msg\":{}", log_timestamp(), level, quoted(message));
    for (const auto& [name, value] : fields.items())
      line += fmt::format(",{}:{}", gateway::quoted(name),  // qualified: not std::quoted
                          value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    line += "}\n";
  } else {
    line = fmt::format("{} svcctl proxy: {}\n", log_timestamp(), message);
  }
  write_lines(line);
}

void Log::format_call(std::string& out, const CallRecord& r) const {
  const double ms = static_cast<double>(r.duration_us) / 1000.0;
  if (m_json) {
    fmt::format_to(std::back_inserter(out),
                   "{{\"ts\":\"{}\",\"level\":\"info\",\"msg\":\"call\",\"request_id\":{},\"service\":{},"
                   "\"interface\":{},\"upstream\":{},\"status\":{},\"error\":{},\"duration_ms\":{:.3f},"
                   "\"retried\":{}}}\n",
                   log_timestamp(), quoted(r.request_id), quoted(r.service), quoted(r.iface),
                   r.upstream.empty() ? std::string("null") : quoted(r.upstream), r.status,
                   r.error.empty() ? std::string("null") : quoted(r.error), ms, r.retried);
    return;
  }
  fmt::format_to(std::back_inserter(out), "{} call {} {}/{} {} {} {} {:.3f}ms{}\n", log_timestamp(),
                 r.request_id.empty() ? "-" : r.request_id, r.service.empty() ? "-" : r.service,
                 r.iface.empty() ? "-" : r.iface, r.upstream.empty() ? "-" : r.upstream, r.status,
                 r.error.empty() ? "-" : r.error, ms, r.retried ? " retried" : "");
}

void Log::write_lines(std::string_view lines) {
  std::lock_guard lock(m_mu);
  write_all(m_fd, lines);
}

}  // namespace svcctl::gateway
