// What the data plane's files share for the bytes on the wire: the buffer sizes, number
// formatting into a head, and a write tried at once before the loop is involved.
#pragma once

#include "internal.hpp"

#include <svcctl/gateway/balance.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace svcctl::gateway::wire {

// A client connection's input buffer starts small (an idle keep-alive connection holds
// one) and grows while a request needs more; a buffer grown past k_keep_buffer by a large
// message is given back (never on the common path: that would be an allocation per call).
inline constexpr std::size_t k_first_read = 2 * 1024;
inline constexpr std::size_t k_read_chunk = 16 * 1024;
inline constexpr std::size_t k_keep_buffer = 64 * 1024;
inline constexpr auto k_tick = std::chrono::milliseconds(10);
inline constexpr double k_retry_burst = 20;  // retries a worker may make before the budget counts
inline constexpr std::size_t npos = balance::k_none;

inline void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // two digits a step
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

inline void append_hex(std::string& out, std::uint64_t v, int digits) {
  static constexpr char k_hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += k_hex[(v >> (i * 4)) & 0xf];
}

// Writes head and body without waiting; returns the bytes written. A small body is copied
// behind the head so that one send() goes out instead of a sendmsg() with two pieces.
inline std::size_t send_now(tcp::socket& sock, std::string& head, const std::string& body,
                            boost::system::error_code& ec) {
  if (body.size() <= 8192) {
    const std::size_t head_size = head.size();
    head += body;
    std::size_t n = sock.write_some(asio::buffer(head), ec);
    head.resize(head_size);
    return n;
  }
  std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
  return sock.write_some(bufs, ec);
}

// What is left to write after the first `written` bytes of head + body.
inline void rest_of(std::string& out, const std::string& head, const std::string& body, std::size_t written) {
  out.clear();
  if (written < head.size()) {
    out.append(head, written, std::string::npos);
    out += body;
  } else {
    out.append(body, written - head.size(), std::string::npos);
  }
}

}  // namespace svcctl::gateway::wire
