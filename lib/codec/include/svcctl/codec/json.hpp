// JSON text ⇄ Value, with a nesting limit checked before parsing.
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/core/expected.hpp>

#include <string>
#include <string_view>

namespace svcctl::codec {

// Parses one JSON value (trailing white space allowed, nothing else). Integers that fit
// int64/uint64 stay integers; larger ones become floats, as PHP's json_decode does.
// Errors: ErrorKind::Usage, code YarStatus::Packager, message "invalid JSON: ...".
Expected<Value> parse_json(std::string_view text, const Limits& limits = {});

// Compact JSON, valid UTF-8: invalid bytes in strings become U+FFFD. Floats keep a
// fractional part ("2.0").
std::string to_json_text(const Value& value);

// JSON as PHP's json_encode writes it (what Yar's JSON packager sends): compact, "/" as
// "\/", every non-ASCII character as \uXXXX. Floats keep their ".0" (PHP would drop it and
// turn 2.0 into the integer 2; keeping it is what a JSON caller means).
std::string to_php_json_text(const Value& value);

// The deepest nesting of arrays/objects in the text, counted without parsing.
std::size_t json_depth(std::string_view text);

}  // namespace svcctl::codec
