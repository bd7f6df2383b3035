// The registry's value types (DESIGN §2), their validation, and their JSON form.
// Pure: no I/O. Shared by the registry (ZooKeeper side) and, later, the gateway.
#pragma once

#include <svcctl/core/expected.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::model {

enum class Status { Up, Down };
enum class Encoding { Json, YarMsgpack, YarJson };

std::string_view to_string(Status status);
std::string_view to_string(Encoding encoding);

// Parsers for values given on the command line; errors are ErrorKind::Usage with a
// message that names the field and says what is accepted.
Expected<Status> parse_status(std::string_view text);
Expected<Encoding> parse_encoding(std::string_view text);
// weight: a whole number from 0 to k_max_weight.
Expected<std::int64_t> parse_weight(std::string_view text);
// A whole number from 1 to max; `what` names the field in the message.
Expected<std::int64_t> parse_positive(std::string_view what, std::string_view text,
                                      std::int64_t max);
// requests per second: a number > 0 (fractions allowed, e.g. 0.5 for one per 2 s).
Expected<double> parse_rate(std::string_view text);
// A span of time: a whole number and a unit, s, m, h or d ("90s", "15m", "7d"); in seconds.
Expected<std::int64_t> parse_duration_s(std::string_view what, std::string_view text);

inline constexpr std::int64_t k_default_weight = 100;
inline constexpr std::int64_t k_max_weight = 1'000'000;
inline constexpr std::size_t k_max_name_length = 128;

// What a name denotes, for messages ("service", "interface", "key").
// Names are [A-Za-z0-9._-]{1,128}, and not "." or "..".
Expected<void> validate_name(std::string_view what, std::string_view name);

struct HostPort {
  std::string host;  // hostname, IPv4, or IPv6 without brackets
  std::uint16_t port = 0;
  // host:port, with [brackets] around an IPv6 host; this is the node name.
  std::string str() const;
};
// Accepts host:port, a.b.c.d:port and [v6]:port; port 1-65535.
Expected<HostPort> parse_host_port(std::string_view text);

// Path of an interface on its provider: starts with '/', no spaces or control characters.
Expected<void> validate_api_path(std::string_view path);

// ---- entities ----------------------------------------------------------------------

// A version's share of a service's calls. The version "" is the addresses without one.
struct VersionShare {
  std::string version;
  std::int64_t share = 0;  // relative: the gateway divides by the sum of the shares
  bool operator==(const VersionShare&) const = default;
};

// How a split keeps one caller on one version: by a hash of its key or of a request
// header's value (a call without one is placed at random).
struct Sticky {
  enum class By { None, Key, Header };
  By by = By::None;
  std::string header;  // with By::Header
  bool operator==(const Sticky&) const = default;
};
// "key", "header:NAME" (an HTTP header name), or "" for none.
Expected<Sticky> parse_sticky(std::string_view text);
std::string to_string(const Sticky& sticky);

// A version label (of an address, in a split, a pin): a name, or "" for none.
Expected<void> validate_version(std::string_view version);

struct Service {
  std::string name;
  Status status = Status::Up;
  std::string desc;
  std::string owner;
  // Calls split by version ("split": {"v1": 90, "v2": 10}), sorted by version; empty: no
  // split, every routable address takes calls by its weight.
  std::vector<VersionShare> split;
  Sticky sticky;  // "sticky": "key" | "header:NAME", with a split
};

struct Address {
  std::string service;
  std::string address;  // host:port, the node name
  std::string dc;
  std::int64_t weight = k_default_weight;
  Status status = Status::Up;
  std::string version;
  std::vector<std::string> tags;
  bool ephemeral = false;  // from the node's ZooKeeper stat, not its data
};

// Whether calls may go to the address: up, weight > 0, and its node name a host:port to
// connect to. The one rule the gateway's routes, its mass-change guard, `svcctl call` and
// `apply`'s safety check share.
bool routable(const Address& a);

struct Api {
  std::string service;
  std::string name;
  std::string path;
  Encoding encoding = Encoding::Json;
  Status status = Status::Up;
  std::optional<std::int64_t> timeout_ms;
  std::string method;  // Yar method name; empty means the interface name
  bool idempotent = false;
};

struct Key {
  std::string name;
  std::string owner;
  Status status = Status::Up;
};

struct Acl {
  std::string service;
  std::string key;
  std::optional<double> rate;         // requests/s; none = unlimited
  std::optional<std::int64_t> burst;  // none = max(1, ceil(rate))
  std::vector<std::string> apis{"*"};
  bool shadow = false;
  std::string version;  // pins the key's calls to this version ("" none)
  // The bucket size in force: burst, or the rate (at least 1) when none is given.
  std::int64_t effective_burst() const;
};

// A running gateway, as `svcctl proxy` describes itself in its ephemeral /gateway/{id}.
struct Gateway {
  std::string id;       // the node name
  std::string listen;   // host:port callers reach it on
  std::string admin;    // host:port of its admin listener; empty when it has none
  std::string dc;
  std::string started;  // UTC, ISO 8601
  std::string version;  // svcctl's version
  std::int64_t pid = 0;
};

// A node's data decoded leniently: every field that is missing takes its default, every
// field that is present but wrong is reported in `problems` and takes a safe value
// (status: down; weight: the default; others: the default). Data that is not a JSON
// object is one problem and gives all defaults. Empty data is an empty object.
template <typename T>
struct Decoded {
  T value;
  std::vector<std::string> problems;
};

Decoded<Service> decode_service(std::string name, std::string_view data);
Decoded<Address> decode_address(std::string service, std::string address, std::string_view data);
Decoded<Api> decode_api(std::string service, std::string name, std::string_view data);
Decoded<Key> decode_key(std::string name, std::string_view data);
Decoded<Acl> decode_acl(std::string service, std::string key, std::string_view data);
Decoded<Gateway> decode_gateway(std::string id, std::string_view data);

// Parses node data as a JSON object, for read-modify-write. Empty data is {}.
Expected<nlohmann::json> parse_object(std::string_view data);

// The listing form of each entity (a stable JSON contract: fields are added, never renamed).
nlohmann::json to_json(const Service& v);
nlohmann::json to_json(const Address& v);
nlohmann::json to_json(const Api& v);
nlohmann::json to_json(const Key& v);
nlohmann::json to_json(const Acl& v);
nlohmann::json to_json(const Gateway& v);

// ---- patches: the fields a `register` call sets ------------------------------------

// Each *Fields holds only what the caller gave. patch() is the JSON merged over the
// node's current object (unknown fields are kept); defaults() is what a new node starts
// from before the patch.
struct ServiceFields {
  std::optional<Status> status;
  std::optional<std::string> desc;
  std::optional<std::string> owner;
  nlohmann::json patch() const;
  static nlohmann::json defaults();
};

struct AddressFields {
  std::optional<std::string> dc;
  std::optional<std::int64_t> weight;
  std::optional<Status> status;
  std::optional<std::string> version;
  std::optional<std::vector<std::string>> tags;
  nlohmann::json patch() const;
  static nlohmann::json defaults();
};

struct ApiFields {
  std::optional<std::string> path;
  std::optional<Encoding> encoding;
  std::optional<Status> status;
  std::optional<std::int64_t> timeout_ms;
  std::optional<std::string> method;
  std::optional<bool> idempotent;
  nlohmann::json patch() const;
  static nlohmann::json defaults();
};

struct KeyFields {
  std::optional<std::string> owner;
  std::optional<Status> status;
  nlohmann::json patch() const;
  static nlohmann::json defaults();
};

struct AclFields {
  std::optional<double> rate;
  std::optional<std::int64_t> burst;
  std::optional<std::vector<std::string>> apis;
  std::optional<bool> shadow;
  std::optional<std::string> version;
  nlohmann::json patch() const;
  static nlohmann::json defaults();
};

// Splits "a,b,c" into names, each validated with validate_name(what); "*" alone is kept
// as the wildcard. Empty items are an error.
Expected<std::vector<std::string>> parse_name_list(std::string_view what, std::string_view text);

}  // namespace svcctl::model
