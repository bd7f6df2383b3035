#include <svcctl/model/model.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>

namespace svcctl::model {

using nlohmann::json;

std::string_view to_string(Status status) { return status == Status::Up ? "up" : "down"; }

std::string_view to_string(Encoding encoding) {
  switch (encoding) {
    case Encoding::Json: return "json";
    case Encoding::YarMsgpack: return "yar-msgpack";
    case Encoding::YarJson: return "yar-json";
  }
  return "json";
}

Expected<Status> parse_status(std::string_view text) {
  if (text == "up") return Status::Up;
  if (text == "down") return Status::Down;
  return fail(ErrorKind::Usage, fmt::format("invalid status \"{}\": use up or down", text));
}

Expected<Encoding> parse_encoding(std::string_view text) {
  if (text == "json") return Encoding::Json;
  if (text == "yar-msgpack") return Encoding::YarMsgpack;
  if (text == "yar-json") return Encoding::YarJson;
  return fail(ErrorKind::Usage,
              fmt::format("invalid encoding \"{}\": use json, yar-msgpack or yar-json", text));
}

namespace {

// A whole decimal number, no sign, no spaces; nullopt if not exactly that.
std::optional<std::int64_t> parse_whole(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text[0] == '-') return std::nullopt;
  return v;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

}  // namespace

Expected<std::int64_t> parse_weight(std::string_view text) {
  auto v = parse_whole(text);
  if (!v || *v > k_max_weight)
    return fail(ErrorKind::Usage,
                fmt::format("invalid weight \"{}\": use a whole number from 0 to {}", text,
                            k_max_weight));
  return *v;
}

Expected<std::int64_t> parse_positive(std::string_view what, std::string_view text,
                                      std::int64_t max) {
  auto v = parse_whole(text);
  if (!v || *v < 1 || *v > max)
    return fail(ErrorKind::Usage,
                fmt::format("invalid {} \"{}\": use a whole number from 1 to {}", what, text, max));
  return *v;
}

Expected<double> parse_rate(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v) ||
      v <= 0 || v > 1e9)
    return fail(ErrorKind::Usage,
                fmt::format("invalid rate \"{}\": use a number of requests per second > 0", text));
  return v;
}

Expected<std::int64_t> parse_duration_s(std::string_view what, std::string_view text) {
  auto bad = [&] {
    return fail(ErrorKind::Usage, fmt::format("invalid {} \"{}\": use a whole number and a unit, s, m, h or d "
                                              "(e.g. 90s, 15m, 7d)",
                                              what, text));
  };
  if (text.size() < 2) return bad();
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return bad();
  }
  std::int64_t n = 0;
  auto digits = text.substr(0, text.size() - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || end != digits.data() + digits.size() || n < 0 || n > std::int64_t{100} * 365 * 86400 / unit)
    return bad();
  return n * unit;
}

Expected<void> validate_name(std::string_view what, std::string_view name) {
  bool ok = !name.empty() && name.size() <= k_max_name_length && name != "." && name != "..";
  for (char c : name) ok = ok && is_name_char(c);
  if (!ok) {
    return fail(ErrorKind::Usage,
                fmt::format("invalid {} name \"{}\": use 1 to {} characters from A-Z a-z 0-9 . _ - "
                            "(not \".\" or \"..\")",
                            what, name, k_max_name_length));
  }
  return {};
}

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

bool routable(const Address& a) {
  return a.status == Status::Up && a.weight > 0 && parse_host_port(a.address).has_value();
}

Expected<HostPort> parse_host_port(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(ErrorKind::Usage,
                fmt::format("invalid address \"{}\": {} (use HOST:PORT, e.g. 10.0.0.5:8080 or "
                            "[::1]:8080)",
                            text, why));
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("IPv6 host needs the form [HOST]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.empty()) return bad("empty host");
    for (char c : host)
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'))
        return bad("bad character in IPv6 host");
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty()) return bad("empty host");
    if (host.size() > 253) return bad("host longer than 253 characters");
    for (char c : host) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-' || c == '_';
      if (!ok) return bad(c == ':' ? "IPv6 hosts go in [brackets]" : "bad character in host");
    }
    if (host.front() == '.' || host.front() == '-' || host.back() == '-' ||
        host.find("..") != std::string_view::npos)
      return bad("malformed host");
  }
  auto p = parse_whole(port);
  if (!p || *p < 1 || *p > 65535) return bad("port must be a whole number from 1 to 65535");
  return HostPort{std::string(host), static_cast<std::uint16_t>(*p)};
}

Expected<void> validate_api_path(std::string_view path) {
  bool ok = !path.empty() && path.front() == '/' && path.size() <= 2048;
  for (char c : path) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
  if (!ok)
    return fail(ErrorKind::Usage,
                fmt::format("invalid path \"{}\": it must start with / and hold no spaces or "
                            "control characters",
                            path));
  return {};
}

Expected<std::vector<std::string>> parse_name_list(std::string_view what, std::string_view text) {
  if (text == "*") return std::vector<std::string>{"*"};
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto comma = text.find(',', start);
    auto item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (item.empty())
      return fail(ErrorKind::Usage,
                  fmt::format("invalid {} list \"{}\": empty item (use A,B,C)", what, text));
    SVCCTL_CHECK(validate_name(what, item));
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Expected<json> parse_object(std::string_view data) {
  if (data.empty()) return json::object();
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(ErrorKind::Error, "data is not valid JSON");
  if (!j.is_object()) return fail(ErrorKind::Error, "data is JSON but not an object");
  return j;
}

// ---- lenient decoding ----------------------------------------------------------------

namespace {

// Reads fields out of a node's object, recording problems instead of failing.
class Reader {
 public:
  Reader(std::string_view data, std::vector<std::string>& problems) : m_problems(problems) {
    auto obj = parse_object(data);
    if (obj) {
      m_obj = std::move(*obj);
    } else {
      problems.push_back(obj.error().message);
      m_obj = json::object();
    }
  }

  void string(const char* field, std::string& out) {
    auto it = m_obj.find(field);
    if (it == m_obj.end() || it->is_null()) return;
    if (it->is_string()) out = it->get<std::string>();
    else problem(field, "is not a string");
  }

  void status(Status& out) {
    auto it = m_obj.find("status");
    if (it == m_obj.end()) return;
    if (it->is_string() && (*it == "up" || *it == "down")) {
      out = *it == "up" ? Status::Up : Status::Down;
    } else {
      out = Status::Down;
      problem("status", "is not \"up\" or \"down\"; taken as down");
    }
  }

  void integer(const char* field, std::int64_t min, std::int64_t max, std::int64_t& out,
               std::int64_t fallback) {
    auto it = m_obj.find(field);
    if (it == m_obj.end() || it->is_null()) return;
    if (it->is_number_integer()) {
      auto v = it->is_number_unsigned() && it->get<std::uint64_t>() >
                                               static_cast<std::uint64_t>(INT64_MAX)
                   ? max + 1
                   : it->get<std::int64_t>();
      if (v >= min && v <= max) {
        out = v;
        return;
      }
    }
    out = fallback;
    problem(field, fmt::format("is not a whole number from {} to {}; taken as {}", min, max,
                               fallback));
  }

  void boolean(const char* field, bool& out) {
    auto it = m_obj.find(field);
    if (it == m_obj.end() || it->is_null()) return;
    if (it->is_boolean()) out = it->get<bool>();
    else problem(field, "is not true or false");
  }

  void strings(const char* field, std::vector<std::string>& out) {
    auto it = m_obj.find(field);
    if (it == m_obj.end() || it->is_null()) return;
    if (it->is_array() && std::all_of(it->begin(), it->end(), [](auto& e) { return e.is_string(); })) {
      out = it->get<std::vector<std::string>>();
    } else if (it->is_string()) {
      out = {it->get<std::string>()};  // "apis": "*"
    } else {
      problem(field, "is not a list of strings");
    }
  }

  const json& object() const { return m_obj; }

  void problem(const char* field, std::string_view what) {
    m_problems.push_back(fmt::format("field \"{}\" {}", field, what));
  }

 private:
  json m_obj;
  std::vector<std::string>& m_problems;
};

}  // namespace

Expected<void> validate_version(std::string_view version) {
  if (version.empty()) return {};
  return validate_name("version", version);
}

Expected<Sticky> parse_sticky(std::string_view text) {
  if (text.empty()) return Sticky{};
  if (text == "key") return Sticky{Sticky::By::Key, {}};
  constexpr std::string_view k_header = "header:";
  if (text.starts_with(k_header)) {
    std::string_view name = text.substr(k_header.size());
    // An HTTP field name is a token: letters, digits and !#$%&'*+-.^_`|~
    auto token = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    };
    if (!name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), token))
      return Sticky{Sticky::By::Header, std::string(name)};
  }
  return fail(ErrorKind::Usage, fmt::format("invalid sticky \"{}\": use key or header:NAME", text));
}

std::string to_string(const Sticky& sticky) {
  switch (sticky.by) {
    case Sticky::By::None: return "";
    case Sticky::By::Key: return "key";
    case Sticky::By::Header: return "header:" + sticky.header;
  }
  return "";
}

namespace {
// "split": an object of version → whole number 0-100, at least one above 0. Anything else
// is a problem and no split (every routable address takes calls by its weight).
void read_split(Reader& r, Service& s) {
  auto it = r.object().find("split");
  if (it == r.object().end() || it->is_null()) return;
  std::vector<VersionShare> split;
  std::int64_t sum = 0;
  bool ok = it->is_object();
  if (ok) {
    for (const auto& [version, share] : it->items()) {
      if (!validate_version(version) || !share.is_number_integer() || share.get<std::int64_t>() < 0 ||
          share.get<std::int64_t>() > 100) {
        ok = false;
        break;
      }
      split.push_back({version, share.get<std::int64_t>()});
      sum += split.back().share;
    }
  }
  if (!ok || sum == 0) {
    r.problem("split", "is not an object of versions to shares from 0 to 100, one above 0; no split");
    return;
  }
  std::sort(split.begin(), split.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  s.split = std::move(split);
}
}  // namespace

Decoded<Service> decode_service(std::string name, std::string_view data) {
  Decoded<Service> d;
  d.value.name = std::move(name);
  Reader r(data, d.problems);
  r.status(d.value.status);
  r.string("desc", d.value.desc);
  r.string("owner", d.value.owner);
  read_split(r, d.value);
  std::string sticky;
  r.string("sticky", sticky);
  if (auto st = parse_sticky(sticky)) d.value.sticky = *st;
  else r.problem("sticky", "is not \"key\" or \"header:NAME\"; not sticky");
  return d;
}

Decoded<Address> decode_address(std::string service, std::string address, std::string_view data) {
  Decoded<Address> d;
  d.value.service = std::move(service);
  d.value.address = std::move(address);
  Reader r(data, d.problems);
  r.string("dc", d.value.dc);
  r.integer("weight", 0, k_max_weight, d.value.weight, k_default_weight);
  r.status(d.value.status);
  r.string("version", d.value.version);
  r.strings("tags", d.value.tags);
  return d;
}

Decoded<Api> decode_api(std::string service, std::string name, std::string_view data) {
  Decoded<Api> d;
  d.value.service = std::move(service);
  d.value.name = std::move(name);
  Reader r(data, d.problems);
  r.string("path", d.value.path);
  if (d.value.path.empty()) r.problem("path", "is missing");
  auto enc = r.object().find("encoding");
  if (enc != r.object().end()) {
    auto parsed = enc->is_string() ? parse_encoding(enc->get<std::string>())
                                   : Expected<Encoding>(fail(ErrorKind::Error, ""));
    if (parsed) d.value.encoding = *parsed;
    else r.problem("encoding", "is not json, yar-msgpack or yar-json; taken as json");
  }
  r.status(d.value.status);
  if (r.object().contains("timeout_ms")) {
    std::int64_t t = 0;
    r.integer("timeout_ms", 1, 3'600'000, t, 0);
    if (t > 0) d.value.timeout_ms = t;
  }
  r.string("method", d.value.method);
  r.boolean("idempotent", d.value.idempotent);
  return d;
}

Decoded<Key> decode_key(std::string name, std::string_view data) {
  Decoded<Key> d;
  d.value.name = std::move(name);
  Reader r(data, d.problems);
  r.string("owner", d.value.owner);
  r.status(d.value.status);
  return d;
}

Decoded<Acl> decode_acl(std::string service, std::string key, std::string_view data) {
  Decoded<Acl> d;
  d.value.service = std::move(service);
  d.value.key = std::move(key);
  Reader r(data, d.problems);
  auto rate = r.object().find("rate");
  if (rate != r.object().end() && !rate->is_null()) {
    if (rate->is_number() && rate->get<double>() > 0) d.value.rate = rate->get<double>();
    else r.problem("rate", "is not a number > 0; taken as unlimited");
  }
  if (r.object().contains("burst")) {
    std::int64_t b = 0;
    r.integer("burst", 1, 1'000'000'000, b, 0);
    if (b > 0) d.value.burst = b;
  }
  r.strings("apis", d.value.apis);
  r.boolean("shadow", d.value.shadow);
  r.string("version", d.value.version);
  if (!validate_version(d.value.version)) {
    r.problem("version", "is not a version name; the key is not pinned");
    d.value.version.clear();
  }
  return d;
}

Decoded<Gateway> decode_gateway(std::string id, std::string_view data) {
  Decoded<Gateway> d;
  d.value.id = std::move(id);
  Reader r(data, d.problems);
  r.string("listen", d.value.listen);
  r.string("admin", d.value.admin);
  r.string("dc", d.value.dc);
  r.string("started", d.value.started);
  r.string("version", d.value.version);
  r.integer("pid", 0, INT32_MAX, d.value.pid, 0);
  return d;
}

std::int64_t Acl::effective_burst() const {
  if (burst) return *burst;
  return rate ? std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(*rate))) : 1;
}

// ---- listing form ----------------------------------------------------------------------

json to_json(const Service& v) {
  json split = json::object();
  for (const auto& s : v.split) split[s.version] = s.share;
  return {{"service", v.name}, {"status", to_string(v.status)}, {"desc", v.desc},
          {"owner", v.owner},  {"split", split},                 {"sticky", to_string(v.sticky)}};
}

json to_json(const Address& v) {
  return {{"service", v.service}, {"address", v.address},     {"dc", v.dc},
          {"weight", v.weight},   {"status", to_string(v.status)}, {"version", v.version},
          {"tags", v.tags},       {"ephemeral", v.ephemeral}};
}

json to_json(const Api& v) {
  return {{"service", v.service},
          {"interface", v.name},
          {"path", v.path},
          {"encoding", to_string(v.encoding)},
          {"status", to_string(v.status)},
          {"timeout_ms", v.timeout_ms ? json(*v.timeout_ms) : json(nullptr)},
          {"method", v.method.empty() ? v.name : v.method},
          {"idempotent", v.idempotent}};
}

json to_json(const Key& v) {
  return {{"key", v.name}, {"owner", v.owner}, {"status", to_string(v.status)}};
}

json to_json(const Acl& v) {
  return {{"service", v.service},
          {"key", v.key},
          {"rate", v.rate ? json(*v.rate) : json(nullptr)},
          {"burst", v.burst ? json(*v.burst) : json(nullptr)},
          {"apis", v.apis},
          {"shadow", v.shadow},
          {"version", v.version}};
}

json to_json(const Gateway& v) {
  return {{"id", v.id},           {"listen", v.listen},   {"admin", v.admin}, {"dc", v.dc},
          {"started", v.started}, {"version", v.version}, {"pid", v.pid}};
}

// ---- patches -------------------------------------------------------------------------

namespace {
template <typename T>
void put(json& j, const char* field, const std::optional<T>& v) {
  if (v) j[field] = *v;
}
void put(json& j, const char* field, const std::optional<Status>& v) {
  if (v) j[field] = to_string(*v);
}
}  // namespace

json ServiceFields::patch() const {
  json j = json::object();
  put(j, "status", status);
  put(j, "desc", desc);
  put(j, "owner", owner);
  return j;
}
json ServiceFields::defaults() { return {{"status", "up"}, {"desc", ""}, {"owner", ""}}; }

json AddressFields::patch() const {
  json j = json::object();
  put(j, "dc", dc);
  put(j, "weight", weight);
  put(j, "status", status);
  put(j, "version", version);
  put(j, "tags", tags);
  return j;
}
json AddressFields::defaults() {
  return {{"dc", ""}, {"weight", k_default_weight}, {"status", "up"}};
}

json ApiFields::patch() const {
  json j = json::object();
  put(j, "path", path);
  if (encoding) j["encoding"] = to_string(*encoding);
  put(j, "status", status);
  put(j, "timeout_ms", timeout_ms);
  put(j, "method", method);
  put(j, "idempotent", idempotent);
  return j;
}
json ApiFields::defaults() { return {{"encoding", "json"}, {"status", "up"}}; }

json KeyFields::patch() const {
  json j = json::object();
  put(j, "owner", owner);
  put(j, "status", status);
  return j;
}
json KeyFields::defaults() { return {{"owner", ""}, {"status", "up"}}; }

json AclFields::patch() const {
  json j = json::object();
  put(j, "rate", rate);
  put(j, "burst", burst);
  put(j, "apis", apis);
  put(j, "shadow", shadow);
  put(j, "version", version);
  return j;
}
json AclFields::defaults() { return {{"apis", json::array({"*"})}, {"shadow", false}}; }

}  // namespace svcctl::model
