#include <svcctl/zk/four_letter.hpp>

#include <fmt/format.h>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

namespace svcctl::zk {

namespace {

using Clock = std::chrono::steady_clock;

// Closes the socket when the exchange ends, however it ends.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

// Splits "host:port" or "[v6]:port".
bool split(const std::string& server, std::string& host, std::string& port) {
  auto colon = server.rfind(':');
  if (colon == std::string::npos) return false;
  host = server.substr(0, colon);
  port = server.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return !host.empty() && !port.empty();
}

// A connected non-blocking socket to the first address of `server` that accepts in time.
Expected<void> connect_to(Fd& s, const std::string& server, Clock::time_point deadline) {
  std::string host, port;
  if (!split(server, host, port)) return fail(ErrorKind::Usage, fmt::format("invalid server \"{}\"", server));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return fail(ErrorKind::Unavailable, fmt::format("cannot resolve {}: {}", server, ::gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  std::string why = "no address";
  for (auto* a = found; a; a = a->ai_next) {
    Fd attempt{::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol)};
    if (attempt.fd < 0) continue;
    if (::connect(attempt.fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        why = std::strerror(errno);
        continue;
      }
      if (!wait_for(attempt.fd, POLLOUT, deadline)) {
        why = "timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(attempt.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        why = std::strerror(err);
        continue;
      }
    }
    std::swap(s.fd, attempt.fd);
    return {};
  }
  return fail(ErrorKind::Unavailable, fmt::format("cannot connect to {}: {}", server, why));
}

std::int64_t parse_session(std::string_view hex) {
  if (hex.starts_with("0x")) hex.remove_prefix(2);
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), v, 16);
  if (ec != std::errc{} || end == hex.data()) return 0;
  return static_cast<std::int64_t>(v);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

template <typename F>
void each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

std::vector<std::string> servers_of(std::string_view connect) {
  // The chroot starts at the first '/'.
  connect = connect.substr(0, connect.find('/'));
  std::vector<std::string> out;
  while (!connect.empty()) {
    auto comma = connect.find(',');
    auto one = trim(connect.substr(0, comma));
    if (!one.empty()) out.emplace_back(one);
    if (comma == std::string_view::npos) break;
    connect.remove_prefix(comma + 1);
  }
  return out;
}

Expected<std::string> four_letter(const std::string& server, std::string_view word,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Fd s;
  SVCCTL_CHECK(connect_to(s, server, deadline));
  std::size_t sent = 0;
  while (sent < word.size()) {
    if (!wait_for(s.fd, POLLOUT, deadline))
      return fail(ErrorKind::Unavailable, fmt::format("{} did not take \"{}\" in time", server, word));
    auto n = ::send(s.fd, word.data() + sent, word.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return fail(ErrorKind::Unavailable, fmt::format("sending \"{}\" to {}: {}", word, server, std::strerror(errno)));
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[16384];
  for (;;) {
    if (!wait_for(s.fd, POLLIN, deadline))
      return fail(ErrorKind::Unavailable,
                  fmt::format("{} did not finish answering \"{}\" within {} ms", server, word, timeout.count()));
    auto n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      // A server that refuses a word may reset instead of closing after its answer.
      if (!out.empty()) return out;
      return fail(ErrorKind::Unavailable, fmt::format("reading \"{}\" from {}: {}", word, server, std::strerror(errno)));
    }
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > (64u << 20))
      return fail(ErrorKind::Unavailable, fmt::format("{} answered \"{}\" with more than 64 MiB", server, word));
  }
}

bool not_whitelisted(std::string_view answer) {
  return answer.find("is not executed because it is not in the whitelist") != std::string_view::npos;
}

std::string parse_mode(std::string_view srvr) {
  std::string mode;
  each_line(srvr, [&](std::string_view line) {
    if (line.starts_with("Mode:")) mode = std::string(trim(line.substr(5)));
  });
  return mode;
}

std::set<std::int64_t> parse_cons(std::string_view cons) {
  // " /127.0.0.1:46264[1](queued=0,...,sid=0x10001695f220000,lop=...)"; a connection
  // still handshaking has no sid.
  std::set<std::int64_t> out;
  each_line(cons, [&](std::string_view line) {
    auto at = line.find("sid=");
    if (at == std::string_view::npos) return;
    auto v = line.substr(at + 4);
    v = v.substr(0, v.find_first_of(",)"));
    if (auto id = parse_session(v)) out.insert(id);
  });
  return out;
}

Dump parse_dump(std::string_view dump) {
  // SessionTracker dump:            session sets by expiry, one "\t0x.." line per session
  // ephemeral nodes dump:           "0x..:" then one "\t/path" line per node
  // Connections dump:               (not read)
  Dump d;
  enum class Section { None, Sessions, Other } section = Section::None;
  each_line(dump, [&](std::string_view raw) {
    auto line = trim(raw);
    if (line.empty()) return;
    if (line.starts_with("SessionTracker dump")) {
      section = Section::Sessions;
      d.has_sessions = true;
      return;
    }
    if (line.starts_with("ephemeral nodes dump") || line.starts_with("Connections dump")) {
      section = Section::Other;
      return;
    }
    const bool indented = !raw.empty() && (raw.front() == '\t' || raw.front() == ' ');
    if (section == Section::Sessions && indented && line.starts_with("0x"))
      if (auto id = parse_session(line)) d.sessions.insert(id);
  });
  return d;
}

}  // namespace svcctl::zk
