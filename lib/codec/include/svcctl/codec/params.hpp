// The one parameter mapping between the JSON and Yar worlds (DESIGN §4), both ways:
// a Yar parameter list holding exactly one map ⇄ that JSON object; any other list ⇄ a
// JSON array.
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/core/expected.hpp>

namespace svcctl::codec {

// JSON body → Yar "p": an object becomes [object], an array stays as it is. Anything else
// is refused (ErrorKind::Usage): "the body must be a JSON object or array".
Expected<Value> yar_params_from_json(const Value& body);
Expected<Value> yar_params_from_json(Value&& body);  // the same, moving instead of copying

// Yar "p" → JSON body: [map] becomes the map; a list stays a list; a map "p" (which PHP
// passes by position) becomes the list of its values; anything else becomes [].
Value json_from_yar_params(const Value& params);
Value json_from_yar_params(Value&& params);  // the same, moving instead of copying

}  // namespace svcctl::codec
