#include <svcctl/codec/msgpack.hpp>

#include <fmt/format.h>
#include <msgpack.hpp>

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <limits>
#include <vector>

namespace svcctl::codec {

namespace {

Unexpected invalid(std::string why) {
  return fail(ErrorKind::Usage, fmt::format("invalid msgpack: {}", why),
              static_cast<int>(YarStatus::Packager));
}

// Builds a Value from msgpack-c's parse events (no intermediate object tree, no recursion).
class Builder {
 public:
  explicit Builder(const Limits& limits) : m_limits(limits) {}

  bool visit_nil() { return key_or_value("", Value(nullptr), KeyKind::Nil); }
  bool visit_boolean(bool v) { return key_or_value(v ? "1" : "0", Value(v), KeyKind::Other); }
  bool visit_positive_integer(std::uint64_t v) {
    Value val = v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                    ? Value(static_cast<std::int64_t>(v))
                    : Value(v);
    return key_or_value(std::to_string(v), std::move(val), KeyKind::Other);
  }
  bool visit_negative_integer(std::int64_t v) {
    return key_or_value(std::to_string(v), Value(v), KeyKind::Other);
  }
  bool visit_float32(float v) { return visit_float64(static_cast<double>(v)); }
  bool visit_float64(double v) {
    std::string key;
    if (m_expect_key) {
      // PHP truncates a float key to an integer.
      if (!std::isfinite(v) || std::fabs(v) >= 9.2e18) return refuse("a float map key out of range");
      key = std::to_string(static_cast<std::int64_t>(v));
    }
    return key_or_value(std::move(key), Value(v), KeyKind::Other);
  }
  bool visit_str(const char* p, std::uint32_t n) { return visit_text(p, n); }
  bool visit_bin(const char* p, std::uint32_t n) { return visit_text(p, n); }
  bool visit_ext(const char*, std::uint32_t) { return refuse("ext values are not supported"); }

  bool start_array(std::uint32_t) { return open(Value::array()); }
  bool start_array_item() { return true; }
  bool end_array_item() { return true; }
  bool end_array() { return close(); }
  bool start_map(std::uint32_t) { return open(Value::object()); }
  bool start_map_key() {
    m_expect_key = true;
    return true;
  }
  bool end_map_key() { return true; }
  bool start_map_value() {
    // After a nil key, a string value is msgpack-php's class-name marker.
    m_skip_class_name = m_nil_key;
    m_nil_key = false;
    return true;
  }
  bool end_map_value() {
    m_skip_class_name = false;
    return true;
  }
  bool end_map() { return close(); }
  void parse_error(std::size_t, std::size_t off) {
    if (m_error.empty()) m_error = fmt::format("malformed data at byte {}", off);
  }
  void insufficient_bytes(std::size_t, std::size_t off) {
    if (m_error.empty()) m_error = fmt::format("truncated at byte {}", off);
  }
  bool referenced() const { return false; }
  void set_referenced(bool) {}

  Value take() { return std::move(m_root); }
  const std::string& error() const { return m_error; }

 private:
  enum class KeyKind { Nil, Other };

  bool refuse(std::string why) {
    if (m_error.empty()) m_error = std::move(why);
    return false;
  }

  bool visit_text(const char* p, std::uint32_t n) {
    std::string s(p, n);
    if (m_expect_key) return key_or_value(std::move(s), Value(), KeyKind::Other);
    if (m_skip_class_name) {  // {nil: "ClassName"}: msgpack-php's object marker
      m_skip_class_name = false;
      return true;
    }
    return key_or_value({}, Value(std::move(s)), KeyKind::Other);
  }

  // A scalar: the pending map key, or a value placed in the current container.
  bool key_or_value(std::string key, Value value, KeyKind kind) {
    if (m_expect_key) {
      m_expect_key = false;
      m_key = std::move(key);
      m_nil_key = kind == KeyKind::Nil;
      return true;
    }
    m_skip_class_name = false;
    place(std::move(value));
    return true;
  }

  void place(Value value) {
    if (m_stack.empty()) {
      m_root = std::move(value);
      return;
    }
    Value& top = *m_stack.back();
    if (top.is_array()) top.push_back(std::move(value));
    else top[m_key] = std::move(value);
  }

  bool open(Value container) {
    if (m_expect_key) return refuse("arrays and maps cannot be map keys");
    if (m_stack.size() >= m_limits.max_depth)
      return refuse(fmt::format("nested more than {} deep", m_limits.max_depth));
    m_skip_class_name = false;
    if (m_stack.empty()) {
      m_root = std::move(container);
      m_stack.push_back(&m_root);
    } else {
      Value& top = *m_stack.back();
      Value* child = nullptr;
      if (top.is_array()) {
        top.push_back(std::move(container));
        child = &top.back();
      } else {
        top[m_key] = std::move(container);
        child = &top[m_key];
      }
      m_stack.push_back(child);
    }
    return true;
  }

  bool close() {
    m_stack.pop_back();
    return true;
  }

 private:
  const Limits& m_limits;
  Value m_root;
  std::vector<Value*> m_stack;
  std::string m_key;
  std::string m_error;
  bool m_expect_key = false;
  bool m_nil_key = false;
  bool m_skip_class_name = false;
};

// msgpack-c's packer writes to anything with write(const char*, size_t).
struct Sink {
  std::string& out;
  void write(const char* p, std::size_t n) { out.append(p, n); }
};

// msgpack-c's pack_double writes a double with no fractional part as an integer (2.0 as
// 0x02); PHP and JSON callers mean a float, so always float64.
void pack_float64(Sink& sink, double d) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
  sink.write(buf, sizeof buf);
}

// PHP's rule for array keys: a string that is a canonical decimal integer in int64 range
// ("10", "-3", not "010", "+1", "-0") is an integer key; msgpack-php writes it as one.
std::optional<std::int64_t> php_integer_key(const std::string& k) {
  if (k.empty() || k.size() > 20) return std::nullopt;
  std::size_t i = k[0] == '-' ? 1 : 0;
  if (i == k.size() || (k[i] == '0' && k.size() > i + 1) || (i == 1 && k == "-0")) return std::nullopt;
  for (std::size_t j = i; j < k.size(); ++j)
    if (k[j] < '0' || k[j] > '9') return std::nullopt;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(k.data(), k.data() + k.size(), v);
  if (ec != std::errc{} || end != k.data() + k.size()) return std::nullopt;
  return v;
}

void pack(msgpack::packer<Sink>& pk, Sink& sink, const Value& v, std::size_t depth,
          std::size_t max_depth, bool& too_deep) {
  if (depth > max_depth) {
    too_deep = true;
    return;
  }
  switch (v.type()) {
    case Value::value_t::null: pk.pack_nil(); break;
    case Value::value_t::boolean:
      if (v.get<bool>()) pk.pack_true();
      else pk.pack_false();
      break;
    case Value::value_t::number_integer: pk.pack_int64(v.get<std::int64_t>()); break;
    case Value::value_t::number_unsigned: pk.pack_uint64(v.get<std::uint64_t>()); break;
    case Value::value_t::number_float: pack_float64(sink, v.get<double>()); break;
    case Value::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      pk.pack_str(static_cast<std::uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
      break;
    }
    case Value::value_t::binary: {
      const auto& b = v.get_binary();
      pk.pack_bin(static_cast<std::uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
      break;
    }
    case Value::value_t::array:
      pk.pack_array(static_cast<std::uint32_t>(v.size()));
      for (const auto& e : v) pack(pk, sink, e, depth + 1, max_depth, too_deep);
      break;
    case Value::value_t::object:
      if (v.empty()) {
        pk.pack_array(0);  // see the header: 0x80 would reach PHP as a stdClass object
        break;
      }
      pk.pack_map(static_cast<std::uint32_t>(v.size()));
      for (const auto& [k, e] : v.items()) {
        if (auto n = php_integer_key(k)) {
          pk.pack_int64(*n);
        } else {
          pk.pack_str(static_cast<std::uint32_t>(k.size()));
          pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
        }
        pack(pk, sink, e, depth + 1, max_depth, too_deep);
      }
      break;
    case Value::value_t::discarded: pk.pack_nil(); break;
  }
}

}  // namespace

Expected<Value> msgpack_to_value(std::string_view bytes, const Limits& limits,
                                 std::size_t* trailing) {
  if (bytes.empty()) return invalid("no data");
  if (bytes.size() > limits.max_bytes)
    return invalid(fmt::format("{} bytes is more than the limit of {}", bytes.size(), limits.max_bytes));
  Builder v(limits);
  std::size_t off = 0;
  bool ok = false;
  try {
    ok = msgpack::parse(bytes.data(), bytes.size(), off, v);
  } catch (const std::exception& e) {  // msgpack-c throws for an ext of 2^32-1 bytes
    return invalid(e.what());
  }
  if (!ok) return invalid(v.error().empty() ? "malformed data" : v.error());
  if (trailing) *trailing = bytes.size() - off;
  return v.take();
}

Expected<void> append_msgpack(std::string& out, const Value& value, const Limits& limits) {
  Sink sink{out};
  msgpack::packer<Sink> pk(sink);
  bool too_deep = false;
  pack(pk, sink, value, 1, limits.max_depth, too_deep);
  if (too_deep)
    return fail(ErrorKind::Usage,
                fmt::format("value nested more than {} deep", limits.max_depth),
                static_cast<int>(YarStatus::Packager));
  return {};
}

Expected<std::string> value_to_msgpack(const Value& value, const Limits& limits) {
  std::string out;
  SVCCTL_CHECK(append_msgpack(out, value, limits));
  return out;
}

}  // namespace svcctl::codec
