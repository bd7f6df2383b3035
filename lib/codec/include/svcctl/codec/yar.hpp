// Yar framing and message bodies (see YAR.md of the design): an 82-byte header, an 8-byte
// packager name, then the packed body. Over HTTP the message length is the HTTP body's;
// body_len is read but not trusted, and always written correctly.
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/core/expected.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace svcctl::codec {

inline constexpr std::size_t k_yar_header_size = 82;
inline constexpr std::size_t k_yar_packager_size = 8;
inline constexpr std::uint32_t k_yar_magic = 0x80DFEC60;
inline constexpr std::size_t k_yar_field_size = 32;  // provider and token

enum class Packager { Json, Msgpack };
std::string_view packager_name(Packager p);  // "JSON", "MSGPACK"

struct YarHeader {
  std::uint32_t id = 0;
  std::uint16_t version = 0;
  std::uint32_t magic = k_yar_magic;
  std::uint32_t reserved = 0;
  std::string provider;  // up to 32 bytes, NUL padding removed
  std::string token;     // up to 32 bytes, NUL padding removed
  std::uint32_t body_len = 0;
};

struct YarFrame {
  YarHeader header;
  Packager packager = Packager::Json;
  std::string_view payload;  // the packed body, a view into the decoded bytes
};

// True when the bytes start like a Yar message (the magic number at offset 6).
bool has_yar_magic(std::string_view bytes);

// Errors carry the Yar status PHP's server would answer with (code) and its message:
// empty → Packager "empty request body"; < 82 bytes → Protocol "malformed request, 82
// bytes expected at least"; bad magic → Packager "malformed request header"; an unknown
// packager name → Packager "unsupported packager 'X'". The packager name is matched like
// PHP does: case-insensitively on its first 7 bytes, up to the first NUL.
Expected<YarFrame> decode_frame(std::string_view message);

// header.body_len is ignored and written as 8 + payload size; provider and token are cut
// to 32 bytes.
std::string encode_frame(const YarHeader& header, Packager packager, std::string_view payload);

// A call: {"i": id, "m": method, "p": params}.
struct YarRequest {
  std::int64_t id = 0;
  std::string method;
  Value params = Value::array();  // as sent: usually a list, PHP also accepts a map
};

// A reply: {"i", "s", "o"?, "r"?, "e"?}.
struct YarResponse {
  std::int64_t id = 0;
  std::int64_t status = 0;
  std::string output;           // "o": what the method printed
  Value result;                 // "r" (null when absent)
  std::optional<Value> error;   // "e": a string, or the exception map for status 64
};

// Decodes the packed body of a request frame. Errors carry a Yar status: an undecodable
// body is Packager ("json unpack error"/"msgpack unpack error"), a missing "m" or "p" is
// Request ("need specifical request method"/"... parameters"), as PHP answers.
Expected<YarRequest> decode_request(const YarFrame& frame, const Limits& limits = {});
// Decodes the packed body of a response frame; "i" and "s" are required (Protocol).
Expected<YarResponse> decode_response(const YarFrame& frame, const Limits& limits = {});

// Whole messages (header + packager + body), keys in the order PHP writes them. The header
// id is the body's id cut to 32 bits.
Expected<std::string> encode_request(const YarRequest& request, Packager packager,
                                     std::string_view provider = {}, std::string_view token = {});
Expected<std::string> encode_response(const YarResponse& response, Packager packager,
                                      std::string_view provider = "PHP Yar Server");

// An error reply carrying a plain message, as the PHP server writes one.
std::string encode_error_response(std::int64_t id, YarStatus status, std::string_view message,
                                  Packager packager);

}  // namespace svcctl::codec
