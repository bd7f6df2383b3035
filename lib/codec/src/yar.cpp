#include <svcctl/codec/json.hpp>
#include <svcctl/codec/msgpack.hpp>
#include <svcctl/codec/yar.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <charconv>
#include <cstring>

namespace svcctl::codec {

namespace {

Unexpected yar_error(YarStatus status, std::string message) {
  return fail(ErrorKind::Usage, std::move(message), static_cast<int>(status));
}

std::uint32_t read_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void write_be32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

// A NUL-padded fixed field: up to the first NUL, or all of it.
std::string read_field(const char* p, std::size_t n) {
  const void* nul = std::memchr(p, 0, n);
  return std::string(p, nul ? static_cast<std::size_t>(static_cast<const char*>(nul) - p) : n);
}

void write_field(std::string& out, std::string_view v, std::size_t n) {
  v = v.substr(0, n);
  out.append(v);
  out.append(n - v.size(), '\0');
}

bool name_is(std::string_view field, std::string_view name) {
  // PHP: byte 7 is forced to NUL, then strncasecmp(name, field, 7).
  std::size_t i = 0;
  for (; i < 7; ++i) {
    char a = i < field.size() ? field[i] : '\0';
    char b = i < name.size() ? name[i] : '\0';
    if (std::tolower(static_cast<unsigned char>(a)) != std::tolower(static_cast<unsigned char>(b)))
      return false;
    if (a == '\0') return true;
  }
  return true;
}

const char* unpack_error(Packager p) {
  return p == Packager::Json ? "json unpack error" : "msgpack unpack error";
}

Expected<Value> unpack(const YarFrame& frame, const Limits& limits) {
  if (frame.packager == Packager::Json) {
    auto v = parse_json(frame.payload, limits);
    if (!v) return yar_error(YarStatus::Packager, unpack_error(frame.packager));
    return v;
  }
  auto v = msgpack_to_value(frame.payload, limits);
  if (!v) return yar_error(YarStatus::Packager, unpack_error(frame.packager));
  return v;
}

// "i": PHP reads it with zval_get_long, so integers, floats and numeric strings all work.
std::int64_t read_id(const Value& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();  // uint64 wraps, as in PHP
  if (v.is_number_float()) {
    double d = v.get<double>();
    return std::isfinite(d) && std::fabs(d) < 9.2e18 ? static_cast<std::int64_t>(d) : 0;
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    std::int64_t id = 0;
    std::from_chars(s.data(), s.data() + s.size(), id);
    return id;
  }
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  return 0;
}

// The value of a one-letter key, looked up like PHP does (only 1-character string keys).
const Value* field(const Value& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() ? nullptr : &*it;
}

}  // namespace

std::string_view packager_name(Packager p) { return p == Packager::Json ? "JSON" : "MSGPACK"; }

bool has_yar_magic(std::string_view bytes) {
  return bytes.size() >= 10 &&
         read_be32(reinterpret_cast<const unsigned char*>(bytes.data()) + 6) == k_yar_magic;
}

Expected<YarFrame> decode_frame(std::string_view message) {
  if (message.empty()) return yar_error(YarStatus::Packager, "empty request body");
  if (message.size() < k_yar_header_size)
    return yar_error(YarStatus::Protocol, "malformed request, 82 bytes expected at least");
  const auto* u = reinterpret_cast<const unsigned char*>(message.data());
  YarFrame f;
  f.header.id = read_be32(u);
  f.header.version = static_cast<std::uint16_t>((u[4] << 8) | u[5]);
  f.header.magic = read_be32(u + 6);
  f.header.reserved = read_be32(u + 10);
  f.header.provider = read_field(message.data() + 14, k_yar_field_size);
  f.header.token = read_field(message.data() + 46, k_yar_field_size);
  f.header.body_len = read_be32(u + 78);
  if (f.header.magic != k_yar_magic) return yar_error(YarStatus::Packager, "malformed request header");
  std::string_view rest = message.substr(k_yar_header_size);
  std::string_view name = rest.substr(0, std::min(rest.size(), k_yar_packager_size));
  if (name_is(name, "JSON")) f.packager = Packager::Json;
  else if (name_is(name, "MSGPACK")) f.packager = Packager::Msgpack;
  else {
    std::string shown = read_field(name.data(), std::min<std::size_t>(name.size(), 7));
    return yar_error(YarStatus::Packager, fmt::format("unsupported packager '{}'", shown));
  }
  if (rest.size() < k_yar_packager_size)
    return yar_error(YarStatus::Packager, fmt::format("{}", unpack_error(f.packager)));
  f.payload = rest.substr(k_yar_packager_size);
  return f;
}

Expected<YarRequest> decode_request(const YarFrame& frame, const Limits& limits) {
  SVCCTL_TRY(Value body, unpack(frame, limits));
  if (!body.is_object()) {
    if (body.is_array()) return yar_error(YarStatus::Request, "need specifical request method");
    return yar_error(YarStatus::Packager, unpack_error(frame.packager));
  }
  YarRequest r;
  if (const Value* i = field(body, "i")) r.id = read_id(*i);
  const Value* m = field(body, "m");
  if (!m || !m->is_string()) return yar_error(YarStatus::Request, "need specifical request method");
  r.method = m->get<std::string>();
  const Value* p = field(body, "p");
  if (!p) return yar_error(YarStatus::Request, "need specifical request parameters");
  if (p->is_array() || p->is_object()) r.params = std::move(body["p"]);  // body is ours: no copy
  else r.params = Value::array();
  return r;
}

Expected<YarResponse> decode_response(const YarFrame& frame, const Limits& limits) {
  SVCCTL_TRY(Value body, unpack(frame, limits));
  if (!body.is_object()) return yar_error(YarStatus::Protocol, "malformed response body");
  const Value* i = field(body, "i");
  const Value* s = field(body, "s");
  if (!i || !s || !s->is_number_integer())
    return yar_error(YarStatus::Protocol, "malformed response body: \"i\" and \"s\" are required");
  YarResponse r;
  r.id = read_id(*i);
  r.status = s->get<std::int64_t>();
  if (const Value* o = field(body, "o"); o && o->is_string()) r.output = o->get<std::string>();
  if (r.status == 0) {
    if (field(body, "r")) r.result = std::move(body["r"]);  // body is ours: no copy
  } else if (field(body, "e")) {
    r.error = std::move(body["e"]);
  } else {
    r.error = Value("");
  }
  return r;
}

namespace {

// The header, then the packager name, then room for the body: the body is packed straight
// behind them (no intermediate string) and body_len is filled in at the end.
std::string frame_start(const YarHeader& header, Packager packager, std::size_t body_hint) {
  std::string out;
  out.reserve(k_yar_header_size + k_yar_packager_size + body_hint);
  write_be32(out, header.id);
  out += static_cast<char>(header.version >> 8);
  out += static_cast<char>(header.version & 0xff);
  write_be32(out, header.magic);
  write_be32(out, header.reserved);
  write_field(out, header.provider, k_yar_field_size);
  write_field(out, header.token, k_yar_field_size);
  write_be32(out, 0);  // body_len, below
  write_field(out, packager_name(packager), k_yar_packager_size);
  return out;
}

void frame_finish(std::string& out) {
  auto len = static_cast<std::uint32_t>(out.size() - k_yar_header_size);
  std::string be;
  write_be32(be, len);
  out.replace(k_yar_header_size - 4, 4, be);
}

// Writes a map of the given (key, value) pairs, in order, keys as PHP writes them.
Expected<void> append_body(std::string& out, Packager packager,
                           std::initializer_list<std::pair<const char*, const Value*>> fields) {
  if (packager == Packager::Json) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : fields) {
      if (!first) out += ',';
      first = false;
      out += '"';
      out += k;
      out += "\":";
      out += to_php_json_text(*v);
    }
    out += '}';
    return {};
  }
  out += static_cast<char>(0x80 | fields.size());  // fixmap: at most 5 fields
  for (const auto& [k, v] : fields) {
    out += static_cast<char>(0xa0 | std::strlen(k));  // fixstr
    out += k;
    SVCCTL_CHECK(append_msgpack(out, *v));
  }
  return {};
}

}  // namespace

std::string encode_frame(const YarHeader& header, Packager packager, std::string_view payload) {
  std::string out = frame_start(header, packager, payload.size());
  out.append(payload);
  frame_finish(out);
  return out;
}

Expected<std::string> encode_request(const YarRequest& request, Packager packager,
                                     std::string_view provider, std::string_view token) {
  YarHeader h;
  h.id = static_cast<std::uint32_t>(request.id);
  h.provider = provider;
  h.token = token;
  std::string out = frame_start(h, packager, 256);
  const Value id(request.id);
  const Value method(request.method);
  SVCCTL_CHECK(append_body(out, packager, {{"i", &id}, {"m", &method}, {"p", &request.params}}));
  frame_finish(out);
  return out;
}

Expected<std::string> encode_response(const YarResponse& response, Packager packager,
                                      std::string_view provider) {
  YarHeader h;
  h.id = static_cast<std::uint32_t>(response.id);
  h.provider = provider;
  std::string out = frame_start(h, packager, 256);
  const Value id(response.id);
  const Value status(response.status);
  const Value output(response.output);
  const Value empty("");
  const Value* last = response.status == 0 ? &response.result : (response.error ? &*response.error : &empty);
  const char* last_key = response.status == 0 ? "r" : "e";
  if (response.output.empty())
    SVCCTL_CHECK(append_body(out, packager, {{"i", &id}, {"s", &status}, {last_key, last}}));
  else
    SVCCTL_CHECK(append_body(out, packager, {{"i", &id}, {"s", &status}, {"o", &output}, {last_key, last}}));
  frame_finish(out);
  return out;
}

std::string encode_error_response(std::int64_t id, YarStatus status, std::string_view message,
                                  Packager packager) {
  YarResponse r;
  r.id = id;
  r.status = static_cast<std::int64_t>(status);
  r.error = Value(std::string(message));
  auto out = encode_response(r, packager);
  return out ? std::move(*out) : std::string();  // a string "e" always encodes
}

}  // namespace svcctl::codec
