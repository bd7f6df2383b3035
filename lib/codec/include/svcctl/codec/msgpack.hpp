// msgpack ⇄ Value, with the behaviour of PHP peers (msgpack-php) handled:
//
// decoding (msgpack → Value)
//  - integers: positive ones up to 2^64-1 and negative ones down to -2^63 are exact;
//  - float32 and float64 become floats, and stay floats ("2.0");
//  - str and bin both become strings (PHP reads bin as a string); bytes that are not UTF-8
//    are kept as they are, and replaced by U+FFFD only when written out as JSON text;
//  - map keys: strings as they are; integers in decimal ("10": PHP turned the numeric
//    string key "10" into the integer 10); true/false as "1"/"0" and floats truncated, as
//    PHP array keys are; nil as "";
//  - the entry {nil: "ClassName"} that msgpack-php writes for an object is dropped, so
//    {nil: "stdClass"} (PHP's empty object) becomes {};
//  - ext values are refused; arrays and maps as keys are refused;
//  - nesting deeper than Limits::max_depth is refused (never a stack overflow);
//  - bytes after the first complete value are ignored, as msgpack-php does.
//
// encoding (Value → msgpack)
//  - integers in the smallest form, floats always as float64 (2.0 stays a float), strings
//    as str;
//  - a map key that is a canonical decimal integer ("10", "-3"; not "010" or "+1") is
//    written as an integer, as msgpack-php writes PHP's integer keys: to a PHP peer the
//    two are the same key, and the bytes match what a PHP client sends;
//  - an empty object is written as an empty array (0x90): msgpack-php decodes an empty map
//    (0x80) as a stdClass object, which PHP code does not expect.
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/core/expected.hpp>

#include <string>
#include <string_view>

namespace svcctl::codec {

// Errors: ErrorKind::Usage, code YarStatus::Packager, message "invalid msgpack: ...".
// `trailing`, when given, receives the number of bytes left after the value.
Expected<Value> msgpack_to_value(std::string_view bytes, const Limits& limits = {},
                                 std::size_t* trailing = nullptr);

// Fails only when the value nests deeper than limits.max_depth.
Expected<std::string> value_to_msgpack(const Value& value, const Limits& limits = {});
Expected<void> append_msgpack(std::string& out, const Value& value, const Limits& limits = {});

}  // namespace svcctl::codec
