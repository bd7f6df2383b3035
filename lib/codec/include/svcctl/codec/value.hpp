// The value model shared by the codecs: JSON with its key order kept (PHP arrays are
// ordered, and a Yar "p" map passes its values by position).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>

namespace svcctl::codec {

using Value = nlohmann::ordered_json;

struct Limits {
  std::size_t max_depth = 256;              // nesting of arrays and maps
  std::size_t max_bytes = 16u * 1024 * 1024;  // encoded input size
};

// Yar status codes (the "s" field), as the PHP extension defines them.
enum class YarStatus : int {
  Ok = 0x00,
  Packager = 0x01,   // empty body, bad magic, unknown packager, undecodable payload
  Protocol = 0x02,   // shorter than the 82-byte header
  Request = 0x04,    // unknown method, missing "m" or "p"
  Output = 0x08,
  Transport = 0x10,
  Forbidden = 0x20,
  Exception = 0x40,  // the method threw; "e" is the exception map
  EmptyResponse = 0x80,
};

}  // namespace svcctl::codec
