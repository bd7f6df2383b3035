#include <svcctl/codec/params.hpp>

namespace svcctl::codec {

Expected<Value> yar_params_from_json(const Value& body) {
  if (body.is_object()) return Value::array({body});
  if (body.is_array()) return body;
  return fail(ErrorKind::Usage, "the body must be a JSON object or array");
}

Expected<Value> yar_params_from_json(Value&& body) {
  if (body.is_object()) {
    Value list = Value::array();
    list.push_back(std::move(body));
    return list;
  }
  if (body.is_array()) return std::move(body);
  return fail(ErrorKind::Usage, "the body must be a JSON object or array");
}

Value json_from_yar_params(Value&& params) {
  if (params.is_array() && params.size() == 1 && params[0].is_object()) return std::move(params[0]);
  if (params.is_array()) return std::move(params);
  return json_from_yar_params(static_cast<const Value&>(params));
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
