// JSON ⇄ msgpack conversion and the behaviour of PHP peers (msgpack-php, json_encode).
#include <svcctl/codec/json.hpp>
#include <svcctl/codec/msgpack.hpp>
#include <svcctl/codec/params.hpp>
#include <svcctl/codec/yar.hpp>

#include <doctest/doctest.h>

using namespace svcctl;
using namespace svcctl::codec;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}
Value mp(const std::string& b) {
  auto v = msgpack_to_value(b);
  REQUIRE_MESSAGE(v, (v ? "" : v.error().message));
  return *v;
}
}  // namespace

TEST_CASE("msgpack: integer map keys (PHP's numeric string keys) become strings") {
  // {10: "ten", 20: "twenty"}
  auto v = mp(bytes({0x82, 0x0a, 0xa3, 't', 'e', 'n', 0x14, 0xa6, 't', 'w', 'e', 'n', 't', 'y'}));
  CHECK(to_json_text(v) == R"({"10":"ten","20":"twenty"})");
  // negative, true/false, float keys as PHP array keys are
  auto k = mp(bytes({0x84, 0xff, 0x01, 0xc3, 0x02, 0xc2, 0x03, 0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54,
                     0x44, 0x2d, 0x18, 0x04}));
  CHECK(to_json_text(k) == R"({"-1":1,"1":2,"0":3,"3":4})");
}

TEST_CASE("msgpack: the object marker {nil: class} is dropped; empty stdClass is {}") {
  auto empty = mp(bytes({0x81, 0xc0, 0xa8, 's', 't', 'd', 'C', 'l', 'a', 's', 's'}));
  CHECK(empty.is_object());
  CHECK(empty.empty());
  // {nil: "Point", "x": 1}
  auto obj = mp(bytes({0x82, 0xc0, 0xa5, 'P', 'o', 'i', 'n', 't', 0xa1, 'x', 0x01}));
  CHECK(to_json_text(obj) == R"({"x":1})");
  // a nil key whose value is not a string is a plain "" key
  auto odd = mp(bytes({0x81, 0xc0, 0x05}));
  CHECK(to_json_text(odd) == R"({"":5})");
}

TEST_CASE("msgpack: canonical decimal keys go out as integers, as PHP sends them") {
  auto out = *value_to_msgpack(Value::parse(R"({"10":1,"-3":2,"010":3,"+1":4,"-0":5,"x":6})"));
  CHECK(out == bytes({0x86, 0x0a, 0x01, 0xfd, 0x02, 0xa3, '0', '1', '0', 0x03, 0xa2, '+', '1', 0x04,
                      0xa2, '-', '0', 0x05, 0xa1, 'x', 0x06}));
  CHECK(to_json_text(mp(out)) == R"({"10":1,"-3":2,"010":3,"+1":4,"-0":5,"x":6})");
  auto huge = *value_to_msgpack(Value::parse(R"({"99999999999999999999":1})"));
  CHECK(huge[1] == static_cast<char>(0xb4));  // beyond int64: stays a string
}

TEST_CASE("msgpack: empty containers go out as 0x90") {
  CHECK(*value_to_msgpack(Value::object()) == bytes({0x90}));
  CHECK(*value_to_msgpack(Value::array()) == bytes({0x90}));
  CHECK(*value_to_msgpack(Value::parse(R"({"a":{}})")) == bytes({0x81, 0xa1, 'a', 0x90}));
}

TEST_CASE("msgpack: floats stay floats, integers are exact to 64 bits") {
  auto two = *value_to_msgpack(Value(2.0));
  CHECK(two == bytes({0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0}));
  CHECK(mp(two).is_number_float());
  CHECK(to_json_text(mp(two)) == "2.0");
  CHECK(to_json_text(mp(bytes({0xca, 0x3f, 0x80, 0, 0}))) == "1.0");  // float32
  auto max = mp(bytes({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  CHECK(to_json_text(max) == "18446744073709551615");
  auto min = mp(bytes({0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}));
  CHECK(to_json_text(min) == "-9223372036854775808");
  // back again, in the smallest form
  CHECK(*value_to_msgpack(max) == bytes({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  CHECK(*value_to_msgpack(Value(5)) == bytes({0x05}));
  CHECK(*value_to_msgpack(Value(4294967296LL)) == bytes({0xcf, 0, 0, 0, 1, 0, 0, 0, 0}));
  CHECK(*value_to_msgpack(Value(-33)) == bytes({0xd0, 0xdf}));
}

TEST_CASE("msgpack: bin is read as a string; bytes that are not UTF-8 survive") {
  CHECK(mp(bytes({0xc4, 0x02, 'h', 'i'})) == Value("hi"));
  auto raw = mp(bytes({0xa2, 0xff, 0xfe}));
  CHECK(raw.get<std::string>() == bytes({0xff, 0xfe}));
  CHECK(*value_to_msgpack(raw) == bytes({0xa2, 0xff, 0xfe}));  // msgpack to msgpack: unchanged
  CHECK(to_json_text(raw) == "\"\xef\xbf\xbd\xef\xbf\xbd\"");  // JSON text: U+FFFD each
}

TEST_CASE("msgpack: refused input") {
  auto truncated = msgpack_to_value(bytes({0x92, 0x01}));
  REQUIRE(!truncated);
  CHECK(truncated.error().message.find("truncated") != std::string::npos);
  CHECK(truncated.error().code == static_cast<int>(YarStatus::Packager));
  CHECK(!msgpack_to_value(""));
  CHECK(!msgpack_to_value(bytes({0xc1})));                          // never-used byte
  CHECK(!msgpack_to_value(bytes({0xd4, 0x01, 0x00})));              // fixext
  CHECK(!msgpack_to_value(bytes({0x81, 0x90, 0x01})));              // array as a key
  CHECK(!msgpack_to_value(bytes({0xdd, 0xff, 0xff, 0xff, 0xff})));  // 4G elements, no data
  Limits small;
  small.max_bytes = 4;
  CHECK(!msgpack_to_value(bytes({0x95, 1, 2, 3, 4, 5}), small));
}

TEST_CASE("msgpack: nesting is bounded both ways, without recursion limits being hit") {
  std::string deep(100000, static_cast<char>(0x91));
  deep += static_cast<char>(0x01);
  auto r = msgpack_to_value(deep);
  REQUIRE(!r);
  CHECK(r.error().message.find("nested more than 256 deep") != std::string::npos);
  std::string ok(200, static_cast<char>(0x91));
  ok += static_cast<char>(0x01);
  CHECK(msgpack_to_value(ok));
  Value v = 1;
  for (int i = 0; i < 300; ++i) v = Value::array({v});
  CHECK(!value_to_msgpack(v));
}

TEST_CASE("msgpack: trailing bytes are ignored, as msgpack-php does, and counted") {
  std::size_t trailing = 0;
  auto v = msgpack_to_value(bytes({0x01, 0x02, 0x03}), {}, &trailing);
  REQUIRE(v);
  CHECK(*v == Value(1));
  CHECK(trailing == 2);
}

TEST_CASE("msgpack: key order is kept (PHP arrays are ordered)") {
  Value v = Value::parse(R"({"z":1,"a":2,"m":[true,false,null]})");
  CHECK(mp(*value_to_msgpack(v)) == v);
  CHECK(to_json_text(mp(*value_to_msgpack(v))) == R"({"z":1,"a":2,"m":[true,false,null]})");
}

TEST_CASE("JSON: parsing, limits, and PHP's json_encode form") {
  CHECK(parse_json(R"( {"a": [1, 2.5, "x"]} )"));
  CHECK(!parse_json("{oops"));
  CHECK(!parse_json("{} x"));
  auto big = parse_json("18446744073709551616");  // 2^64: a float, as in PHP
  REQUIRE(big);
  CHECK(big->is_number_float());
  auto exact = parse_json("18446744073709551615");
  REQUIRE(exact);
  CHECK(exact->is_number_unsigned());
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  auto d = parse_json(deep);
  REQUIRE(!d);
  CHECK(d.error().message.find("nested 1000 deep") != std::string::npos);
  CHECK(json_depth(R"({"a":"[[[[","b":[{}]})") == 3);

  Value v = Value::parse(R"({"path":"a/b","name":"svc-α ✓","emoji":"😀","n":2.0})");
  CHECK(to_php_json_text(v) ==
        R"({"path":"a\/b","name":"svc-\u03b1 \u2713","emoji":"\ud83d\ude00","n":2.0})");
}

TEST_CASE("parameter mapping, both ways") {
  auto obj = Value::parse(R"({"a":1})");
  CHECK(*yar_params_from_json(obj) == Value::parse(R"([{"a":1}])"));
  CHECK(*yar_params_from_json(Value::parse("[1,2]")) == Value::parse("[1,2]"));
  CHECK(!yar_params_from_json(Value(3)));
  CHECK(!yar_params_from_json(Value("x")));
  CHECK(json_from_yar_params(Value::parse(R"([{"a":1}])")) == obj);
  CHECK(json_from_yar_params(Value::parse(R"([{"a":1},2])")) == Value::parse(R"([{"a":1},2])"));
  CHECK(json_from_yar_params(Value::parse("[[1]]")) == Value::parse("[[1]]"));
  CHECK(json_from_yar_params(Value::parse("[]")) == Value::array());
  CHECK(json_from_yar_params(Value(nullptr)) == Value::array());
  // one rule, so a round trip is the identity for objects and arrays
  for (const char* s : {R"({"x":[1,{"y":2}]})", "[1,2,3]", "[]", R"([{"a":1},{"b":2}])"}) {
    Value j = Value::parse(s);
    CHECK(json_from_yar_params(*yar_params_from_json(j)) == j);
  }
}

TEST_CASE("Yar framing edge cases") {
  YarRequest r;
  r.id = 4294967293LL + 3;  // wraps to 0 in the 32-bit header
  r.method = "add";
  r.params = Value::parse("[1,2]");
  auto msg = encode_request(r, Packager::Msgpack, std::string(40, 'p'), "tok");
  REQUIRE(msg);
  auto f = decode_frame(*msg);
  REQUIRE(f);
  CHECK(f->header.id == 0);
  CHECK(f->header.provider == std::string(32, 'p'));  // cut to the field
  CHECK(f->header.token == "tok");
  CHECK(f->header.body_len == msg->size() - 82);
  auto back = decode_request(*f);
  REQUIRE(back);
  CHECK(back->id == r.id);

  // 82..89 bytes: the packager name is cut short
  auto cut = decode_frame(msg->substr(0, 86));
  REQUIRE(!cut);
  CHECK(cut.error().code == 1);
  // a valid header and name but no body
  auto none = decode_frame(msg->substr(0, 90));
  REQUIRE(none);
  CHECK(!decode_request(*none));
  // bad magic
  std::string bad = *msg;
  bad[6] = 0x12;
  auto bm = decode_frame(bad);
  REQUIRE(!bm);
  CHECK(bm.error().message == "malformed request header");
  CHECK(!has_yar_magic(bad));
  CHECK(has_yar_magic(*msg));

  auto err = encode_error_response(7, YarStatus::Request, "nope", Packager::Json);
  auto ef = decode_frame(err);
  REQUIRE(ef);
  auto er = decode_response(*ef);
  REQUIRE(er);
  CHECK(er->status == 4);
  CHECK(er->id == 7);
  CHECK(*er->error == Value("nope"));
}
