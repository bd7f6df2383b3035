// The pure part of `svcctl doctor`: findings computed from a listing of the registry (every
// node with its stat), what ZooKeeper says of its sessions, what the gateways' /-/stats say,
// and which addresses answered a connect probe. Each finding carries the svcctl command
// that fixes it. No I/O, so unit-tested.
#pragma once

#include <svcctl/output/output.hpp>
#include <svcctl/registry/cache.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace svcctl::ops::doctor {

struct Finding {
  std::string check;    // "no-address", "stale-ephemeral", ... (see k_checks)
  std::string service;  // empty when the finding is not about a service
  std::string subject;  // the address, interface or key it is about; may be empty
  std::string message;
  std::string fix;      // the command that fixes it
};

struct Skipped {
  std::string check;
  std::string reason;
};

struct Report {
  std::vector<Finding> findings;
  std::vector<Skipped> skipped;
};

// Every check, in the order findings are listed.
inline constexpr const char* k_checks[] = {
    "unregistered-service", "no-address",     "no-up-address", "interface-without-path",
    "zombie-ephemeral",     "stale-ephemeral", "ejected",      "unreachable",
    "unused-key",           "acl-without-key", "acl-without-service", "acl-unknown-interface",
};

// The registry's nodes by path, as a cache snapshot holds them.
using Entries = std::map<std::string, registry::CacheEntry>;

// What ZooKeeper said of its sessions; a set is absent when it could not be learnt.
struct Sessions {
  std::optional<std::set<std::int64_t>> live;       // the leader's session tracker ("dump")
  std::optional<std::set<std::int64_t>> connected;  // every server's connections ("cons")
  std::string why_no_live;                          // why `live` is absent
  std::string why_no_connected;                     // why `connected` is absent
};

// One gateway's /-/stats, or why there is none.
struct GatewayStats {
  std::string id;
  std::optional<nlohmann::json> stats;
  std::string error;
};

// The registry's shape: services, addresses and interfaces (unregistered-service,
// no-address, no-up-address, interface-without-path).
void check_services(const Entries& e, Report& r);
// Ephemeral addresses whose owner session is gone (zombie-ephemeral), or has no connection
// to any server (stale-ephemeral). A check `sessions` cannot answer is skipped, with why.
void check_ephemerals(const Entries& e, const Sessions& sessions, Report& r);
// Addresses up in the registry that every gateway that answered has ejected.
void check_ejected(const Entries& e, const std::vector<GatewayStats>& gateways, Report& r);
// Up addresses the connect probe could not reach: address → error, per service.
void check_unreachable(const Entries& e, const std::map<std::string, std::string>& unreachable, Report& r);
// Keys no ACL names; ACLs whose key, service or interfaces do not exist.
void check_keys(const Entries& e, Report& r);

// The up addresses of every service, as "svc" → {"host:port"...}: what the probe tries.
std::map<std::string, std::set<std::string>> up_addresses(const Entries& e);
// Whether some address node is ephemeral (the session checks are needed).
bool has_ephemeral_addresses(const Entries& e);

// Orders the findings by check (k_checks), service, subject.
void sort(Report& r);

// {"findings":[{"check","service","address","message","fix"}...],"skipped":[{"check","reason"}...]}
// ("address" is the subject: an address, interface or key; null when none; "service" null too).
nlohmann::json to_json(const Report& r);
// CHECK, WHAT, FIX
output::Table table(const Report& r);

}  // namespace svcctl::ops::doctor
