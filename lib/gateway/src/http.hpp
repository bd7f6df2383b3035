// HTTP/1.1 parsing for the data plane: Beast's basic_parser (limits, chunked bodies,
// keep-alive rules), with derived classes that keep only what the gateway reads, in
// strings whose capacity is reused from one request to the next.
#pragma once

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace svcctl::gateway::http {

namespace beast = boost::beast;
using error_code = boost::system::error_code;

// What the gateway keeps of a request.
struct Request {
  beast::http::verb method = beast::http::verb::unknown;
  int version = 11;  // 10 for HTTP/1.0
  std::string target;
  std::string api_key;     // X-Api-Key
  std::string request_id;  // X-Request-Id
  std::string forwarded_for;  // X-Forwarded-For (several headers joined with ", ")
  std::string pinned_version;  // X-Svcctl-Version
  bool expect_continue = false;  // Expect: 100-continue
  // Every other header, as "name:value\n" lines (for a sticky split by header).
  std::string other_fields;
  std::string body;
  void clear() {
    method = beast::http::verb::unknown;
    expect_continue = false;
    target.clear();
    api_key.clear();
    request_id.clear();
    forwarded_for.clear();
    pinned_version.clear();
    other_fields.clear();
    body.clear();
  }
  // The value of the first header `name` (any case) among other_fields; empty if none.
  std::string_view field(std::string_view name) const {
    std::string_view rest = other_fields;
    while (!rest.empty()) {
      const auto end = rest.find('\n');
      const std::string_view line = rest.substr(0, end);
      const auto colon = line.find(':');
      const std::string_view field_name = line.substr(0, colon);
      if (beast::iequals(beast::string_view(field_name.data(), field_name.size()),
                         beast::string_view(name.data(), name.size())))
        return line.substr(colon + 1);
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
    return {};
  }
};

// The body handling both parsers share: the body goes into `body`, chunked or not.
template <bool IsRequest>
class Collecting : public beast::http::basic_parser<IsRequest> {
 protected:
  explicit Collecting(std::string& body) : m_body(body) {}

 private:
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) m_body.reserve(static_cast<std::size_t>(*length));  // within body_limit
  }
  std::size_t on_body_impl(beast::string_view s, error_code&) override {
    m_body.append(s.data(), s.size());
    return s.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view s, error_code&) override {
    m_body.append(s.data(), s.size());
    return s.size();
  }
  void on_finish_impl(error_code&) override {}

  std::string& m_body;
};

class RequestParser final : public Collecting<true> {
 public:
  explicit RequestParser(Request& out) : Collecting<true>(out.body), m_out(out) {}

 private:
  void on_request_impl(beast::http::verb method, beast::string_view, beast::string_view target, int version,
                       error_code&) override {
    m_out.method = method;
    m_out.version = version;
    m_out.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, beast::string_view, int, error_code&) override {}
  void on_field_impl(beast::http::field name, beast::string_view name_string, beast::string_view value,
                     error_code&) override {
    if (name == beast::http::field::unknown) {
      if (beast::iequals(name_string, "x-api-key")) m_out.api_key.assign(value.data(), value.size());
      else if (beast::iequals(name_string, "x-request-id")) m_out.request_id.assign(value.data(), value.size());
      else if (beast::iequals(name_string, "x-forwarded-for")) {
        if (!m_out.forwarded_for.empty()) m_out.forwarded_for += ", ";
        m_out.forwarded_for.append(value.data(), value.size());
      } else if (beast::iequals(name_string, "x-svcctl-version")) {
        m_out.pinned_version.assign(value.data(), value.size());
      } else {
        other(name_string, value);
      }
    } else if (name == beast::http::field::expect && beast::iequals(value, "100-continue")) {
      m_out.expect_continue = true;
    } else if (name != beast::http::field::content_length && name != beast::http::field::transfer_encoding) {
      other(name_string, value);
    }
  }
  void other(beast::string_view name, beast::string_view value) {
    m_out.other_fields.append(name.data(), name.size());
    m_out.other_fields += ':';
    m_out.other_fields.append(value.data(), value.size());
    m_out.other_fields += '\n';
  }
  void on_header_impl(error_code&) override {}


  Request& m_out;
};

// What the gateway keeps of a provider's response.
struct Response {
  int status = 0;
  std::string body;
  void clear() {
    status = 0;
    body.clear();
  }
};

class ResponseParser final : public Collecting<false> {
 public:
  explicit ResponseParser(Response& out) : Collecting<false>(out.body), m_out(out) {}

 private:
  void on_request_impl(beast::http::verb, beast::string_view, beast::string_view, int, error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, error_code&) override { m_out.status = code; }
  void on_field_impl(beast::http::field, beast::string_view, beast::string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}

  Response& m_out;
};

// A byte buffer for one socket's input: [begin, end) is unread data.
class InBuffer {
 public:
  std::string_view data() const { return {m_buf.data() + m_begin, m_end - m_begin}; }
  bool empty() const { return m_begin == m_end; }
  std::size_t size() const { return m_end - m_begin; }
  void consume(std::size_t n) {
    m_begin += n;
    if (m_begin == m_end) m_begin = m_end = 0;
  }
  // Room for at least `n` more bytes at the end.
  char* prepare(std::size_t n) {
    if (m_buf.size() - m_end < n) {
      if (m_begin > 0) {  // move unread data to the front first
        std::memmove(m_buf.data(), m_buf.data() + m_begin, m_end - m_begin);
        m_end -= m_begin;
        m_begin = 0;
      }
      if (m_buf.size() - m_end < n) m_buf.resize(m_end + n);
    }
    return m_buf.data() + m_end;
  }
  std::size_t room() const { return m_buf.size() - m_end; }
  void commit(std::size_t n) { m_end += n; }
  // Gives back memory after a large message, keeping a small buffer.
  void shrink(std::size_t keep) {
    if (m_buf.size() > keep && empty()) {
      std::string().swap(m_buf);
      m_buf.resize(keep);
    }
  }

 private:
  std::string m_buf;
  std::size_t m_begin = 0;
  std::size_t m_end = 0;
};

}  // namespace svcctl::gateway::http
