#include <svcctl/codec/params.hpp>

namespace svcctl::codec {

Expected<Value> yar_params_from_json(const Value& body) {
  if (body.is_object()) return Value::array({body});
  if (body.is_array()) return body;
  return fail(ErrorKind::Usage, "the body must be a JSON object or array");
}

Value json_from_yar_params(const Value& params) {
  if (params.is_array()) {
    if (params.size() == 1 && params[0].is_object()) return params[0];
    return params;
  }
  if (params.is_object()) {
    Value values = Value::array();
    for (const auto& [k, v] : params.items()) values.push_back(v);
    return values;
  }
  return Value::array();
}

}  // namespace svcctl::codec
