#include <svcctl/codec/json.hpp>

#include <fmt/format.h>

namespace svcctl::codec {

std::size_t json_depth(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        deepest = std::max(deepest, ++depth);
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

Expected<Value> parse_json(std::string_view text, const Limits& limits) {
  auto bad = [](std::string why) {
    return fail(ErrorKind::Usage, fmt::format("invalid JSON: {}", why),
                static_cast<int>(YarStatus::Packager));
  };
  if (text.size() > limits.max_bytes)
    return bad(fmt::format("{} bytes is more than the limit of {}", text.size(), limits.max_bytes));
  // nlohmann's parser is iterative, but writing and comparing values recurse: refuse
  // absurd nesting before building anything.
  if (auto d = json_depth(text); d > limits.max_depth)
    return bad(fmt::format("nested {} deep, more than the limit of {}", d, limits.max_depth));
  try {
    return Value::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." → the tail
    auto pos = what.find("] ");
    return bad(pos == std::string::npos ? what : what.substr(pos + 2));
  }
}

std::string to_json_text(const Value& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string to_php_json_text(const Value& value) {
  std::string text = value.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  // '/' only ever appears inside strings in JSON text, so escaping every one is exact.
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == '/') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace svcctl::codec
