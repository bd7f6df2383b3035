#include <svcctl/ops/doctor_report.hpp>

#include <svcctl/model/model.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iterator>
#include <tuple>

namespace svcctl::ops::doctor {

namespace {

const std::string k_services_field = "services";
const std::string k_addresses_field = "addresses";

struct AddressView {
  model::Address address;
  std::int64_t owner = 0;  // the session of an ephemeral node, else 0
};

struct ServiceView {
  bool registered = false;
  model::Status status = model::Status::Up;
  std::map<std::string, AddressView> addresses;
  std::map<std::string, model::Api> apis;
  std::map<std::string, model::Acl> acls;
};

struct View {
  std::map<std::string, ServiceView> services;
  std::set<std::string> keys;
};

// The registry's entities, decoded leniently (doctor reports shapes, not bad field values).
View view_of(const Entries& entries) {
  View v;
  for (const auto& [path, e] : entries) {
    auto leaf = registry::paths::parse_leaf(path);
    if (!leaf) continue;
    if (leaf->kind == "key") {
      v.keys.insert(leaf->name);
    } else if (leaf->kind == "service") {
      auto& s = v.services[leaf->name];
      s.registered = true;
      s.status = model::decode_service(leaf->name, e.data).value.status;
    } else if (leaf->kind == "address") {
      auto d = model::decode_address(leaf->service, leaf->name, e.data);
      d.value.ephemeral = e.ephemeral_owner != 0;
      v.services[leaf->service].addresses[leaf->name] = {std::move(d.value), e.ephemeral_owner};
    } else if (leaf->kind == "api") {
      v.services[leaf->service].apis[leaf->name] = model::decode_api(leaf->service, leaf->name, e.data).value;
    } else if (leaf->kind == "acl") {
      // An ACL alone does not make a service: acl-without-service reports it.
      auto it = v.services.find(leaf->service);
      auto acl = model::decode_acl(leaf->service, leaf->name, e.data).value;
      if (it == v.services.end()) it = v.services.emplace(leaf->service, ServiceView{}).first;
      it->second.acls[leaf->name] = std::move(acl);
    }
  }
  return v;
}

bool exists(const ServiceView& s) { return s.registered || !s.addresses.empty() || !s.apis.empty(); }

bool is_up(const AddressView& a) { return a.address.status == model::Status::Up; }

// Whether `addr` is the only up address of the service (taking it away needs --force).
bool last_up(const ServiceView& s, const std::string& addr) {
  for (const auto& [name, a] : s.addresses)
    if (name != addr && is_up(a)) return false;
  return true;
}

std::string force_if_last(const ServiceView& s, const std::string& addr) {
  return last_up(s, addr) ? " --force" : "";
}

void add(Report& r, std::string check, std::string service, std::string subject, std::string message,
         std::string fix) {
  r.findings.push_back({std::move(check), std::move(service), std::move(subject), std::move(message), std::move(fix)});
}

// Whether a gateway's /-/stats says it has the address out of rotation now.
bool ejected_by(const nlohmann::json& stats, const std::string& service, const std::string& addr) {
  const nlohmann::json* at = &stats;
  for (const std::string* key : {&k_services_field, &service, &k_addresses_field, &addr}) {
    if (!at->is_object()) return false;
    auto it = at->find(*key);
    if (it == at->end()) return false;
    at = &*it;
  }
  if (!at->is_object()) return false;
  auto e = at->find("ejected");
  return e != at->end() && e->is_boolean() && e->get<bool>();
}

std::string session_hex(std::int64_t id) { return fmt::format("0x{:x}", static_cast<std::uint64_t>(id)); }

}  // namespace

void check_services(const Entries& entries, Report& r) {
  for (const auto& [name, s] : view_of(entries).services) {
    if (!exists(s)) continue;
    if (!s.registered)
      add(r, "unregistered-service", name, "",
          fmt::format("service {} has {} but no /service node", name,
                      s.apis.empty() ? "addresses" : s.addresses.empty() ? "interfaces" : "addresses and interfaces"),
          fmt::format("svcctl register service {}", name));
    if (s.addresses.empty() && !s.apis.empty()) {
      add(r, "no-address", name, "",
          fmt::format("service {} has {} interface{} but no address", name, s.apis.size(), s.apis.size() == 1 ? "" : "s"),
          fmt::format("svcctl register address {} HOST:PORT", name));
    } else if (!s.addresses.empty() && s.status == model::Status::Up &&
               std::none_of(s.addresses.begin(), s.addresses.end(), [](const auto& a) { return is_up(a.second); })) {
      const auto& first = s.addresses.begin()->first;
      add(r, "no-up-address", name, "",
          fmt::format("service {} is up but none of its {} address{} is", name, s.addresses.size(),
                      s.addresses.size() == 1 ? "" : "es"),
          fmt::format("svcctl undrain {} {}", name, first));
    }
    for (const auto& [iface, api] : s.apis)
      if (api.path.empty())
        add(r, "interface-without-path", name, iface, fmt::format("interface {} of {} has no path", iface, name),
            fmt::format("svcctl register api {} {} --path /{}", name, iface, iface));
  }
}

bool has_ephemeral_addresses(const Entries& entries) {
  for (const auto& [path, e] : entries) {
    auto leaf = registry::paths::parse_leaf(path);
    if (leaf && leaf->kind == "address" && e.ephemeral_owner != 0) return true;
  }
  return false;
}

void check_ephemerals(const Entries& entries, const Sessions& sessions, Report& r) {
  if (!has_ephemeral_addresses(entries)) return;
  if (!sessions.live) r.skipped.push_back({"zombie-ephemeral", sessions.why_no_live});
  if (!sessions.connected) r.skipped.push_back({"stale-ephemeral", sessions.why_no_connected});
  for (const auto& [name, s] : view_of(entries).services) {
    for (const auto& [addr, a] : s.addresses) {
      if (a.owner == 0) continue;
      const auto fix = fmt::format("svcctl unregister address {} {}{}", name, addr, force_if_last(s, addr));
      if (sessions.live && !sessions.live->count(a.owner)) {
        add(r, "zombie-ephemeral", name, addr,
            fmt::format("ephemeral address {} of {} is held by session {}, which ZooKeeper no longer has", addr, name,
                        session_hex(a.owner)),
            fix);
      } else if (sessions.connected && !sessions.connected->count(a.owner)) {
        add(r, "stale-ephemeral", name, addr,
            fmt::format("ephemeral address {} of {} is held by session {}, which has no connection to any "
                        "ZooKeeper server: its holder is gone or cut off, and the address stays {} until the "
                        "session expires",
                        addr, name, session_hex(a.owner), model::to_string(a.address.status)),
            fix);
      }
    }
  }
}

void check_ejected(const Entries& entries, const std::vector<GatewayStats>& gateways, Report& r) {
  std::vector<const nlohmann::json*> answered;
  for (const auto& g : gateways) {
    if (g.stats) answered.push_back(&*g.stats);
    else r.skipped.push_back({"ejected", fmt::format("gateway {} did not answer: {}", g.id, g.error)});
  }
  if (gateways.empty()) r.skipped.push_back({"ejected", "no gateway registered under /gateway"});
  if (answered.empty()) return;
  for (const auto& [name, s] : view_of(entries).services) {
    for (const auto& [addr, a] : s.addresses) {
      if (!is_up(a)) continue;
      std::size_t ejected = 0;
      for (const auto* st : answered)
        if (ejected_by(*st, name, addr)) ++ejected;
      if (ejected == answered.size())
        add(r, "ejected", name, addr,
            fmt::format("{} of {} is up in the registry, but {} ejected it after failures", addr, name,
                        answered.size() == 1 ? "the only gateway that answered has"
                                             : fmt::format("all {} gateways that answered have", answered.size())),
            fmt::format("svcctl drain {} {}{}", name, addr, force_if_last(s, addr)));
    }
  }
}

void check_unreachable(const Entries& entries, const std::map<std::string, std::string>& unreachable, Report& r) {
  for (const auto& [name, s] : view_of(entries).services)
    for (const auto& [addr, a] : s.addresses) {
      if (!is_up(a)) continue;
      auto it = unreachable.find(addr);
      if (it == unreachable.end()) continue;
      add(r, "unreachable", name, addr, fmt::format("{} of {} is up, but {}", addr, name, it->second),
          fmt::format("svcctl drain {} {}{}", name, addr, force_if_last(s, addr)));
    }
}

void check_keys(const Entries& entries, Report& r) {
  const auto v = view_of(entries);
  std::set<std::string> named;
  for (const auto& [name, s] : v.services) {
    for (const auto& [key, acl] : s.acls) {
      named.insert(key);
      const auto unregister = fmt::format("svcctl unregister acl {} {}", name, key);
      if (!v.keys.count(key)) {
        add(r, "acl-without-key", name, key, fmt::format("the ACL of {} for key {} names a key that does not exist", name, key),
            unregister);
        continue;
      }
      if (!exists(s)) {
        add(r, "acl-without-service", name, key,
            fmt::format("the ACL for key {} is for service {}, which does not exist", key, name), unregister);
        continue;
      }
      if (std::find(acl.apis.begin(), acl.apis.end(), "*") != acl.apis.end()) continue;
      std::vector<std::string> known, unknown;
      for (const auto& api : acl.apis) (s.apis.count(api) ? known : unknown).push_back(api);
      if (unknown.empty()) continue;
      add(r, "acl-unknown-interface", name, key,
          fmt::format("the ACL of {} for key {} names interface{} {} that {} not exist", name, key,
                      unknown.size() == 1 ? "" : "s", fmt::join(unknown, ", "), unknown.size() == 1 ? "does" : "do"),
          known.empty() ? unregister
                        : fmt::format("svcctl register acl {} {} --apis {}", name, key, fmt::join(known, ",")));
    }
  }
  for (const auto& key : v.keys)
    if (!named.count(key))
      add(r, "unused-key", "", key, fmt::format("key {} is named by no ACL", key), fmt::format("svcctl unregister key {}", key));
}

std::map<std::string, std::set<std::string>> up_addresses(const Entries& entries) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& [name, s] : view_of(entries).services)
    for (const auto& [addr, a] : s.addresses)
      if (is_up(a)) out[name].insert(addr);
  return out;
}

void sort(Report& r) {
  auto rank = [](const std::string& check) {
    auto it = std::find_if(std::begin(k_checks), std::end(k_checks), [&](const char* c) { return check == c; });
    return std::distance(std::begin(k_checks), it);
  };
  std::stable_sort(r.findings.begin(), r.findings.end(), [&](const Finding& a, const Finding& b) {
    return std::tuple(rank(a.check), a.service, a.subject) < std::tuple(rank(b.check), b.service, b.subject);
  });
}

nlohmann::json to_json(const Report& r) {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"check", f.check},
                        {"service", or_null(f.service)},
                        {"address", or_null(f.subject)},
                        {"message", f.message},
                        {"fix", f.fix}});
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : r.skipped) skipped.push_back({{"check", s.check}, {"reason", s.reason}});
  return {{"findings", std::move(findings)}, {"skipped", std::move(skipped)}};
}

output::Table table(const Report& r) {
  output::Table t({"CHECK", "WHAT", "FIX"});
  for (const auto& f : r.findings) t.add_row({{f.check, output::Tone::Bad}, {f.message}, {f.fix, output::Tone::Dim}});
  return t;
}

}  // namespace svcctl::ops::doctor
