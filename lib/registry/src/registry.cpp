// The registry layout of DESIGN §2 over a zk::Session: paths, compare-and-set upserts with
// their guard rails checked in the same multi-op, removals and pipelined listings. Long
// because each kind of node (service, address, interface, key, ACL, gateway) has its
// write, removal and listing here, side by side, in the same shape.
#include <svcctl/registry/paths.hpp>
#include <svcctl/registry/registry.hpp>

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

namespace svcctl::registry {

using nlohmann::json;

namespace {

// How often a read-modify-write is retried when another writer got in between.
constexpr int k_max_attempts = 32;

std::string dump(const json& j) { return j.dump(); }

template <typename T>
void add_problems(std::vector<std::string>& out, const std::string& path, const model::Decoded<T>& d) {
  for (const auto& p : d.problems) out.push_back(fmt::format("{}: {}", path, p));
}

Unexpected too_many_writers(std::string_view what) {
  return fail(ErrorKind::Conflict, fmt::format("{}: gave up after {} attempts, too many concurrent "
                                               "writers",
                                               what, k_max_attempts));
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Created: return "created";
    case Action::Updated: return "updated";
    case Action::Unchanged: return "unchanged";
    case Action::Deleted: return "deleted";
  }
  return "unchanged";
}

json WriteResult::to_json() const {
  json j = {{"path", path}, {"action", to_string(action)}};
  if (action == Action::Deleted) {
    j["removed"] = removed;
  } else {
    j["version"] = version;
    j["data"] = data;
  }
  if (!notes.empty()) j["notes"] = notes;
  return j;
}

json ServiceSummary::to_json() const {
  json j = model::to_json(service);
  j["registered"] = registered;
  j["addresses_up"] = addresses_up;
  j["addresses_total"] = addresses_total;
  j["interfaces"] = interfaces;
  j["dcs"] = dcs;
  if (!problems.empty()) j["problems"] = problems;
  return j;
}

std::vector<VersionSummary> ServiceDetail::versions() const {
  std::map<std::string, VersionSummary> by;
  for (const auto& a : addresses) {
    auto& v = by[a.version];
    ++v.total;
    v.routable += model::routable(a);
  }
  if (service.split.empty() && (by.empty() || (by.size() == 1 && by.count("")))) return {};
  for (const auto& s : service.split) by[s.version].share = s.share;
  std::vector<VersionSummary> out;
  for (auto& [name, v] : by) {
    v.version = name;
    out.push_back(std::move(v));
  }
  return out;
}

json ServiceDetail::to_json() const {
  json j = model::to_json(service);
  j["registered"] = registered;
  j["versions"] = json::array();
  for (const auto& v : versions())
    j["versions"].push_back({{"version", v.version},
                             {"share", v.share ? json(*v.share) : json(nullptr)},
                             {"routable", v.routable},
                             {"total", v.total}});
  j["addresses"] = json::array();
  for (const auto& a : addresses) j["addresses"].push_back(model::to_json(a));
  j["interfaces"] = json::array();
  for (const auto& a : apis) j["interfaces"].push_back(model::to_json(a));
  j["acls"] = json::array();
  for (const auto& a : acls) j["acls"].push_back(model::to_json(a));
  if (!problems.empty()) j["problems"] = problems;
  return j;
}

json KeyDetail::to_json() const {
  json j = model::to_json(key);
  j["acls"] = json::array();
  for (const auto& a : acls) j["acls"].push_back(model::to_json(a));
  if (!problems.empty()) j["problems"] = problems;
  return j;
}

// ---- writes ----------------------------------------------------------------------------

namespace {
// The patch's fields over `data`; a null field removes it.
void merge(json& data, const json& patch) {
  for (const auto& [field, value] : patch.items()) {
    if (value.is_null()) data.erase(field);
    else data[field] = value;
  }
}
}  // namespace

void Registry::record_as(Author author) { m_author = std::move(author); }

Expected<void> Registry::commit(std::vector<zk::Op> ops, const std::vector<Edit>& changes,
                                std::vector<zk::Stat>* stats) {
  const bool recording = m_author && !changes.empty();
  if (recording) {
    if (!m_history_folder) {
      SVCCTL_CHECK(m_zk.ensure_shared_folder(std::string(k_history)));
      m_history_folder = true;
    }
    ops.push_back(zk::Op::create(zk::join(k_history, k_record_prefix), encode_record(*m_author, changes),
                                 zk::CreateMode::PersistentSequential));
  }
  Expected<void> r;
  if (ops.size() == 1 && ops[0].type == zk::Op::Type::Create) {
    r = m_zk.create(ops[0].path, ops[0].data, ops[0].mode);
  } else if (ops.size() == 1 && ops[0].type == zk::Op::Type::Remove) {
    r = m_zk.remove(ops[0].path, ops[0].version);
  } else if (ops.size() == 1 && ops[0].type == zk::Op::Type::Set) {
    auto st = m_zk.set(ops[0].path, ops[0].data, ops[0].version);
    if (!st) return fail(st.error());
    if (stats) *stats = {*st};
  } else {
    r = m_zk.multi(ops, stats);
  }
  if (r && recording) trim_history();
  return r;
}

void Registry::trim_history() {
  auto folder = m_zk.get(std::string(k_history));
  if (!folder) return;
  std::size_t keep = k_default_keep;
  if (auto j = model::parse_object(folder->data); j && j->contains("keep") && (*j)["keep"].is_number_unsigned())
    keep = std::max<std::size_t>(1, (*j)["keep"].get<std::size_t>());
  // Trimmed in batches, once a tenth over the bound, not a node at every write.
  if (static_cast<std::size_t>(folder->stat.num_children) <= keep + keep / 10) return;
  auto names = m_zk.children(std::string(k_history));
  if (!names) return;
  std::erase_if(*names, [](const std::string& n) { return !record_id(n); });
  if (names->size() <= keep) return;
  std::sort(names->begin(), names->end());  // ten digits: the name's order is the record's
  names->resize(names->size() - keep);
  constexpr std::size_t k_batch = 200;
  for (std::size_t i = 0; i < names->size(); i += k_batch) {
    std::vector<zk::Op> ops;
    for (std::size_t j = i; j < std::min(names->size(), i + k_batch); ++j)
      ops.push_back(zk::Op::remove(zk::join(k_history, (*names)[j]), -1));
    if (!m_zk.multi(ops)) return;  // another writer trimming at the same time
  }
}

Expected<HistoryListing> Registry::history(const std::string& service, std::int64_t since_ms) {
  if (!service.empty()) SVCCTL_CHECK(model::validate_name("service", service));
  SVCCTL_TRY(auto names, children_or_empty(std::string(k_history)));
  std::erase_if(names, [](const std::string& n) { return !record_id(n); });
  std::sort(names.begin(), names.end());
  std::vector<std::string> node_paths;
  for (const auto& n : names) node_paths.push_back(zk::join(k_history, n));
  auto nodes = m_zk.get_many(node_paths);
  HistoryListing out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!nodes[i]) {
      if (zk::is(nodes[i].error(), zk::Code::NoNode)) continue;  // trimmed meanwhile
      return fail(nodes[i].error());
    }
    auto r = decode_record(names[i], *nodes[i]);
    if (!r) {
      out.problems.push_back(r.error().message);
      continue;
    }
    if (r->time_ms < since_ms) continue;
    if (!service.empty()) {
      auto touched = r->services();
      if (std::find(touched.begin(), touched.end(), service) == touched.end()) continue;
    }
    out.records.push_back(std::move(*r));
  }
  return out;
}

Expected<Record> Registry::record(std::int64_t id) {
  const std::string path = record_path(id);
  auto node = m_zk.get(path);
  if (!node) {
    if (zk::is(node.error(), zk::Code::NoNode))
      return fail(ErrorKind::NotFound, fmt::format("no record {} in the history (svcctl history lists them; the "
                                                   "oldest are trimmed)",
                                                   id));
    return fail(node.error());
  }
  return decode_record(path.substr(k_history.size() + 1), *node);
}

Expected<void> Registry::set_history_keep(std::size_t keep) {
  if (keep < 1) return fail(ErrorKind::Usage, "the history must keep at least 1 record");
  SVCCTL_CHECK(m_zk.ensure_shared_folder(std::string(k_history)));
  m_history_folder = true;
  SVCCTL_TRY(auto folder, m_zk.get(std::string(k_history)));
  auto parsed = model::parse_object(folder.data);
  json data = parsed ? std::move(*parsed) : json::object();
  data["keep"] = keep;
  SVCCTL_CHECK(m_zk.set(std::string(k_history), dump(data), folder.stat.version));
  trim_history();
  return {};
}

Expected<WriteResult> Registry::upsert(const std::string& path, const json& patch,
                                       const json& defaults, const WriteOptions& options,
                                       const std::function<Expected<void>(const json&)>& validate,
                                       const Guard& guard) {
  for (int attempt = 0; attempt < k_max_attempts; ++attempt) {
    auto node = m_zk.get(path);
    if (!node && !zk::is(node.error(), zk::Code::NoNode)) return fail(node.error());

    if (!node) {
      if (options.if_absent == IfAbsent::Refuse) return fail(ErrorKind::NotFound, fmt::format("{} not found", path));
      if (options.if_version)
        return fail(ErrorKind::NotFound,
                    fmt::format("{} does not exist (--if-version needs an existing node)", path));
      json data = defaults;
      merge(data, patch);
      if (validate) SVCCTL_CHECK(validate(data));
      std::vector<zk::Op> ops;
      if (guard) {
        SVCCTL_TRY(ops, guard(nullptr, data));
      }
      ops.push_back(zk::Op::create(path, dump(data)));
      auto r = commit(std::move(ops), {{path, nullptr, data, 0}});
      if (!r) {
        if (zk::is(r.error(), zk::Code::NodeExists) || zk::is(r.error(), zk::Code::BadVersion))
          continue;  // someone created it first, or a guarded node moved: read again
        return fail(r.error());
      }
      return WriteResult{path, Action::Created, 0, std::move(data), {}, {}};
    }

    auto before = model::parse_object(node->data);
    if (!before)
      return fail(ErrorKind::Error,
                  fmt::format("cannot update {}: its {}; fix or remove the node first", path,
                              before.error().message));
    if (options.if_version && *options.if_version != node->stat.version)
      return fail(ErrorKind::Conflict,
                  fmt::format("{} is at version {}, not {} (--if-version)", path,
                              node->stat.version, *options.if_version),
                  static_cast<int>(zk::Code::BadVersion));
    json after = *before;
    merge(after, patch);
    if (after == *before) {
      WriteResult same{path, Action::Unchanged, node->stat.version, std::move(after), {}, {}};
      same.zxid = node->stat.mzxid;
      return same;
    }
    if (validate) SVCCTL_CHECK(validate(after));
    std::vector<zk::Op> ops;
    if (guard) {
      SVCCTL_TRY(ops, guard(&*before, after));
    }
    const int version = node->stat.version;
    std::int64_t zxid = 0;
    ops.push_back(zk::Op::set(path, dump(after), version));
    const std::size_t set_at = ops.size() - 1;
    std::vector<zk::Stat> stats;
    auto r = commit(std::move(ops), {{path, *before, after, version + 1}}, &stats);
    if (r && stats.size() > set_at) zxid = stats[set_at].mzxid;
    if (!r) {
      bool raced = zk::is(r.error(), zk::Code::BadVersion) || zk::is(r.error(), zk::Code::NoNode);
      if (!raced) return fail(r.error());
      if (options.if_version)
        return fail(ErrorKind::Conflict,
                    fmt::format("{} changed while it was being written (--if-version {})", path,
                                *options.if_version),
                    static_cast<int>(zk::Code::BadVersion));
      continue;
    }
    WriteResult updated{path, Action::Updated, version + 1, std::move(after), {}, {}};
    updated.zxid = zxid;
    return updated;
  }
  return too_many_writers(path);
}

Expected<void> Registry::require(const std::string& path, std::string what) {
  SVCCTL_TRY(auto stat, m_zk.exists(path));
  if (!stat) return fail(ErrorKind::NotFound, std::move(what));
  return {};
}

Expected<std::vector<std::string>> Registry::children_or_empty(const std::string& path) {
  auto kids = m_zk.children(path);
  if (!kids && zk::is(kids.error(), zk::Code::NoNode)) return std::vector<std::string>{};
  return kids;
}

Expected<std::vector<std::string>> Registry::names_under(const std::string& path) {
  SVCCTL_TRY(auto names, children_or_empty(path));
  std::sort(names.begin(), names.end());
  return names;
}

Expected<WriteResult> Registry::put_service(const std::string& name,
                                            const model::ServiceFields& fields,
                                            const WriteOptions& options) {
  SVCCTL_CHECK(model::validate_name("service", name));
  SVCCTL_CHECK(m_zk.ensure_path(std::string(paths::k_services)));
  SVCCTL_TRY(auto result, upsert(paths::service(name), fields.patch(), model::ServiceFields::defaults(),
                                 options, nullptr, nullptr));
  // The containers of the service's addresses and interfaces (idempotent).
  SVCCTL_CHECK(m_zk.ensure_path(paths::addresses(name)));
  SVCCTL_CHECK(m_zk.ensure_path(paths::apis(name)));
  return result;
}

Expected<WriteResult> Registry::set_split(const std::string& service, const std::vector<model::VersionShare>& split,
                                          const model::Sticky& sticky, Safety safety) {
  SVCCTL_CHECK(model::validate_name("service", service));
  for (const auto& v : split) SVCCTL_CHECK(model::validate_version(v.version));
  json patch = json::object();
  if (split.empty()) {
    patch["split"] = nullptr;
    patch["sticky"] = nullptr;
  } else {
    json shares = json::object();
    for (const auto& v : split) shares[v.version] = v.share;
    patch["split"] = std::move(shares);
    patch["sticky"] = sticky.by == model::Sticky::By::None ? json(nullptr) : json(model::to_string(sticky));
  }
  // Each version given a share has a routable address, pinned at the version read so that
  // it cannot go away under the write.
  auto guard = [&](const json*, const json&) -> Expected<std::vector<zk::Op>> {
    std::vector<zk::Op> ops;
    if (safety == Safety::Force) return ops;
    SVCCTL_TRY(auto all, read_addresses(service));
    std::vector<std::string> missing;
    for (const auto& v : split) {
      if (v.share == 0) continue;
      auto it = std::find_if(all.begin(), all.end(), [&](const AddressNode& a) {
        return a.address.version == v.version && model::routable(a.address);
      });
      if (it == all.end()) missing.push_back(v.version.empty() ? "\"\" (no version)" : "\"" + v.version + "\"");
      else ops.push_back(zk::Op::check(paths::address(service, it->address.address), it->version));
    }
    if (!missing.empty())
      return fail(ErrorKind::Unsafe,
                  fmt::format("refusing to split service \"{}\": version{} {} ha{} no routable address (use "
                              "--force to do it anyway)",
                              service, missing.size() == 1 ? "" : "s", fmt::join(missing, ", "),
                              missing.size() == 1 ? "s" : "ve"));
    return ops;
  };
  WriteOptions options;
  options.if_absent = IfAbsent::Refuse;
  auto r = upsert(paths::service(service), patch, model::ServiceFields::defaults(), options, nullptr, guard);
  if (!r && r.error().kind == ErrorKind::NotFound)
    return fail(ErrorKind::NotFound, fmt::format("service \"{}\" not found", service));
  return r;
}

Expected<WriteResult> Registry::put_address(const std::string& service, const model::HostPort& address,
                                            const model::AddressFields& fields,
                                            const WriteOptions& options) {
  SVCCTL_CHECK(model::validate_name("service", service));
  std::vector<std::string> notes;
  SVCCTL_TRY(auto svc, m_zk.exists(paths::service(service)));
  if (!svc) {
    if (options.if_missing == IfMissing::Refuse)
      return fail(ErrorKind::NotFound,
                  fmt::format("service \"{}\" not found (register it first, or pass "
                              "--create-service)",
                              service));
    SVCCTL_TRY(auto created, put_service(service, {}, WriteOptions{}));
    if (created.action == Action::Created) notes.push_back(fmt::format("created service \"{}\"", service));
  }
  SVCCTL_CHECK(m_zk.ensure_path(paths::addresses(service)));
  const std::string hp = address.str();
  Guard guard = [&](const json* before, const json& after) -> Expected<std::vector<zk::Op>> {
    bool was_up = before && model::decode_address(service, hp, dump(*before)).value.status ==
                                model::Status::Up;
    bool now_down = after.value("status", "up") == "down";
    if (!was_up || !now_down || options.safety == Safety::Force) return std::vector<zk::Op>{};
    return last_up_guard(service, hp, "mark down");
  };
  SVCCTL_TRY(auto result, upsert(paths::address(service, hp), fields.patch(),
                                 model::AddressFields::defaults(), options, nullptr, guard));
  result.notes = std::move(notes);
  return result;
}

Expected<WriteResult> Registry::put_api(const std::string& service, const std::string& iface,
                                        const model::ApiFields& fields, const WriteOptions& options) {
  SVCCTL_CHECK(model::validate_name("service", service));
  SVCCTL_CHECK(model::validate_name("interface", iface));
  std::vector<std::string> notes;
  SVCCTL_TRY(auto svc, m_zk.exists(paths::service(service)));
  if (!svc) {
    if (options.if_missing == IfMissing::Refuse)
      return fail(ErrorKind::NotFound,
                  fmt::format("service \"{}\" not found (register it first, or pass "
                              "--create-service)",
                              service));
    SVCCTL_TRY(auto created, put_service(service, {}, WriteOptions{}));
    if (created.action == Action::Created) notes.push_back(fmt::format("created service \"{}\"", service));
  }
  SVCCTL_CHECK(m_zk.ensure_path(paths::apis(service)));
  auto validate = [&](const json& data) -> Expected<void> {
    if (!data.contains("path"))
      return fail(ErrorKind::Usage,
                  fmt::format("interface \"{}\" of service \"{}\" is new: --path is required",
                              iface, service));
    return {};
  };
  SVCCTL_TRY(auto result, upsert(paths::api(service, iface), fields.patch(),
                                 model::ApiFields::defaults(), options, validate, nullptr));
  result.notes = std::move(notes);
  return result;
}

Expected<WriteResult> Registry::put_key(const std::string& key, const model::KeyFields& fields,
                                        const WriteOptions& options) {
  SVCCTL_CHECK(model::validate_name("key", key));
  SVCCTL_CHECK(m_zk.ensure_path(std::string(paths::k_keys)));
  return upsert(paths::key(key), fields.patch(), model::KeyFields::defaults(), options, nullptr,
                nullptr);
}

Expected<WriteResult> Registry::put_acl(const std::string& service, const std::string& key,
                                        const model::AclFields& fields, const WriteOptions& options) {
  SVCCTL_CHECK(model::validate_name("service", service));
  SVCCTL_CHECK(model::validate_name("key", key));
  SVCCTL_CHECK(require(paths::service(service), fmt::format("service \"{}\" not found", service)));
  SVCCTL_CHECK(require(paths::key(key),
                       fmt::format("key \"{}\" not found (register it with: svcctl register key {})",
                                   key, key)));
  SVCCTL_CHECK(m_zk.ensure_path(paths::acls(service)));
  return upsert(paths::acl(service, key), fields.patch(), model::AclFields::defaults(), options,
                nullptr, nullptr);
}

Expected<std::vector<Registry::AddressNode>> Registry::read_addresses(const std::string& service) {
  SVCCTL_TRY(auto names, children_or_empty(paths::addresses(service)));
  std::vector<std::string> node_paths;
  for (const auto& n : names) node_paths.push_back(paths::address(service, n));
  auto nodes = m_zk.get_many(node_paths);
  std::vector<AddressNode> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!nodes[i]) {
      if (zk::is(nodes[i].error(), zk::Code::NoNode)) continue;  // removed meanwhile
      return fail(nodes[i].error());
    }
    auto d = model::decode_address(service, names[i], nodes[i]->data);
    d.value.ephemeral = nodes[i]->stat.ephemeral_owner != 0;
    out.push_back({std::move(d.value), nodes[i]->stat.version});
  }
  return out;
}

Expected<std::vector<zk::Op>> Registry::last_up_guard(const std::string& service,
                                                      const std::string& target,
                                                      std::string_view doing) {
  SVCCTL_TRY(auto all, read_addresses(service));
  // One other up address, pinned at the version read, is enough: whichever writer commits
  // last still sees an up address that did not change under it.
  for (const auto& a : all) {
    if (a.address.address != target && a.address.status == model::Status::Up)
      return std::vector<zk::Op>{zk::Op::check(paths::address(service, a.address.address), a.version)};
  }
  return fail(ErrorKind::Unsafe,
              fmt::format("refusing to {} {}: it is the last up address of service \"{}\" (use "
                          "--force to do it anyway)",
                          doing, target, service));
}

Expected<WriteResult> Registry::remove_service(const std::string& name, Depth depth) {
  SVCCTL_CHECK(model::validate_name("service", name));
  const std::string containers[] = {paths::addresses(name), paths::apis(name), paths::acls(name)};
  for (int attempt = 0; attempt < k_max_attempts; ++attempt) {
    auto svc = m_zk.get(paths::service(name));
    if (!svc && !zk::is(svc.error(), zk::Code::NoNode)) return fail(svc.error());
    std::vector<zk::Op> ops;
    std::vector<std::string> removed;
    std::vector<Edit> changes;
    std::size_t counts[3] = {0, 0, 0};
    bool any_container = false;
    for (int c = 0; c < 3; ++c) {
      SVCCTL_TRY(auto stat, m_zk.exists(containers[c]));
      if (!stat) continue;
      any_container = true;
      SVCCTL_TRY(auto kids, children_or_empty(containers[c]));
      counts[c] = kids.size();
      std::vector<std::string> kid_paths;
      for (const auto& k : kids) kid_paths.push_back(zk::join(containers[c], k));
      // Each removed at the version read, so that what the history keeps is what went.
      auto nodes = m_zk.get_many(kid_paths);
      for (std::size_t i = 0; i < kid_paths.size(); ++i) {
        if (!nodes[i] && !zk::is(nodes[i].error(), zk::Code::NoNode)) return fail(nodes[i].error());
        if (!nodes[i]) continue;  // gone meanwhile: the container's delete below decides
        ops.push_back(zk::Op::remove(kid_paths[i], nodes[i]->stat.version));
        removed.push_back(kid_paths[i]);
        changes.push_back({kid_paths[i], node_value(nodes[i]->data), nullptr, -1,
                           nodes[i]->stat.ephemeral_owner != 0});
      }
      // A child added meanwhile makes this delete fail (not empty); the step is then retried.
      ops.push_back(zk::Op::remove(containers[c], -1));
      removed.push_back(containers[c]);
    }
    if (!svc && !any_container)
      return fail(ErrorKind::NotFound, fmt::format("service \"{}\" not found", name));
    if (depth == Depth::NodeOnly && counts[0] + counts[1] + counts[2] > 0)
      return fail(ErrorKind::Unsafe,
                  fmt::format("service \"{}\" still has {}, {} and {}; use --recursive to remove "
                              "them with it",
                              name, plural(counts[0], "address", "addresses"),
                              plural(counts[1], "interface", "interfaces"),
                              plural(counts[2], "ACL", "ACLs")));
    if (svc) {
      ops.push_back(zk::Op::remove(paths::service(name), svc->stat.version));
      removed.push_back(paths::service(name));
      changes.push_back({paths::service(name), node_value(svc->data), nullptr, -1});
    }
    auto r = commit(std::move(ops), changes);
    if (!r) {
      if (zk::is(r.error(), zk::Code::NotEmpty) || zk::is(r.error(), zk::Code::NoNode) ||
          zk::is(r.error(), zk::Code::BadVersion))
        continue;
      return fail(r.error());
    }
    return WriteResult{paths::service(name), Action::Deleted, -1, nullptr, std::move(removed), {}};
  }
  return too_many_writers(fmt::format("service \"{}\"", name));
}

Expected<WriteResult> Registry::remove_address(const std::string& service,
                                               const model::HostPort& address, Safety safety) {
  SVCCTL_CHECK(model::validate_name("service", service));
  const std::string hp = address.str();
  const std::string path = paths::address(service, hp);
  for (int attempt = 0; attempt < k_max_attempts; ++attempt) {
    auto node = m_zk.get(path);
    if (!node) {
      if (zk::is(node.error(), zk::Code::NoNode))
        return fail(ErrorKind::NotFound,
                    fmt::format("address {} of service \"{}\" not found", hp, service));
      return fail(node.error());
    }
    std::vector<zk::Op> ops;
    bool up = model::decode_address(service, hp, node->data).value.status == model::Status::Up;
    if (up && safety == Safety::Guarded) {
      SVCCTL_TRY(ops, last_up_guard(service, hp, "remove"));
    }
    ops.push_back(zk::Op::remove(path, node->stat.version));
    auto r = commit(std::move(ops), {{path, node_value(node->data), nullptr, -1, node->stat.ephemeral_owner != 0}});
    if (!r) {
      if (zk::is(r.error(), zk::Code::BadVersion) || zk::is(r.error(), zk::Code::NoNode)) continue;
      return fail(r.error());
    }
    return WriteResult{path, Action::Deleted, -1, nullptr, {path}, {}};
  }
  return too_many_writers(path);
}

Expected<WriteResult> Registry::remove_leaf(const std::string& path, std::string not_found) {
  for (int attempt = 0; attempt < k_max_attempts; ++attempt) {
    auto node = m_zk.get(path);
    if (!node) {
      if (zk::is(node.error(), zk::Code::NoNode)) return fail(ErrorKind::NotFound, std::move(not_found));
      return fail(node.error());
    }
    auto r = commit({zk::Op::remove(path, node->stat.version)}, {{path, node_value(node->data), nullptr, -1}});
    if (!r) {
      if (zk::is(r.error(), zk::Code::BadVersion) || zk::is(r.error(), zk::Code::NoNode)) continue;
      return fail(r.error());
    }
    return WriteResult{path, Action::Deleted, -1, nullptr, {path}, {}};
  }
  return too_many_writers(path);
}

Expected<WriteResult> Registry::remove_api(const std::string& service, const std::string& iface) {
  SVCCTL_CHECK(model::validate_name("service", service));
  SVCCTL_CHECK(model::validate_name("interface", iface));
  return remove_leaf(paths::api(service, iface),
                     fmt::format("interface \"{}\" of service \"{}\" not found", iface, service));
}

Expected<WriteResult> Registry::remove_key(const std::string& key, Safety safety) {
  SVCCTL_CHECK(model::validate_name("key", key));
  const std::string path = paths::key(key);
  for (int attempt = 0; attempt < k_max_attempts; ++attempt) {
    auto key_node = m_zk.get(path);
    if (!key_node) {
      if (zk::is(key_node.error(), zk::Code::NoNode))
        return fail(ErrorKind::NotFound, fmt::format("key \"{}\" not found", key));
      return fail(key_node.error());
    }
    // ACLs that name the key: /acl/{svc}/{key} for every service.
    SVCCTL_TRY(auto services, children_or_empty(std::string(paths::k_acls)));
    std::vector<std::string> acl_paths;
    for (const auto& s : services) acl_paths.push_back(paths::acl(s, key));
    auto found = m_zk.get_many(acl_paths);
    std::vector<zk::Op> ops;
    std::vector<std::string> users;
    std::vector<std::string> removed;
    std::vector<Edit> changes;
    for (std::size_t i = 0; i < found.size(); ++i) {
      if (!found[i]) {
        if (zk::is(found[i].error(), zk::Code::NoNode)) continue;
        return fail(found[i].error());
      }
      users.push_back(services[i]);
      ops.push_back(zk::Op::remove(acl_paths[i], found[i]->stat.version));
      removed.push_back(acl_paths[i]);
      changes.push_back({acl_paths[i], node_value(found[i]->data), nullptr, -1});
    }
    if (!users.empty() && safety == Safety::Guarded)
      return fail(ErrorKind::Unsafe,
                  fmt::format("key \"{}\" is still named by ACLs of {} (remove them with "
                              "\"svcctl unregister acl SVC {}\", or pass --force to remove them "
                              "with the key)",
                              key, fmt::join(users, ", "), key));
    ops.push_back(zk::Op::remove(path, key_node->stat.version));
    removed.push_back(path);
    changes.push_back({path, node_value(key_node->data), nullptr, -1});
    auto r = commit(std::move(ops), changes);
    if (!r) {
      if (zk::is(r.error(), zk::Code::BadVersion) || zk::is(r.error(), zk::Code::NoNode)) continue;
      return fail(r.error());
    }
    return WriteResult{path, Action::Deleted, -1, nullptr, std::move(removed), {}};
  }
  return too_many_writers(path);
}

Expected<WriteResult> Registry::remove_acl(const std::string& service, const std::string& key) {
  SVCCTL_CHECK(model::validate_name("service", service));
  SVCCTL_CHECK(model::validate_name("key", key));
  return remove_leaf(paths::acl(service, key),
                     fmt::format("no ACL for key \"{}\" on service \"{}\"", key, service));
}

// ---- reads -----------------------------------------------------------------------------

Expected<std::vector<ServiceSummary>> Registry::list_services() {
  // Every name under /service, /address and /api: a service whose /service node is missing
  // is still shown (registered: false), since a gateway would see its addresses.
  std::set<std::string> names;
  std::set<std::string> registered;
  for (auto root : {paths::k_services, paths::k_addresses, paths::k_apis}) {
    SVCCTL_TRY(auto kids, children_or_empty(std::string(root)));
    for (auto& k : kids) {
      if (root == paths::k_services) registered.insert(k);
      names.insert(std::move(k));
    }
  }
  std::vector<std::string> list(names.begin(), names.end());
  const std::size_t n = list.size();

  std::vector<std::string> service_paths;
  std::vector<std::string> container_paths;  // /address/x for all x, then /api/x for all x
  for (const auto& s : list) {
    if (registered.count(s)) service_paths.push_back(paths::service(s));
    container_paths.push_back(paths::addresses(s));
  }
  for (const auto& s : list) container_paths.push_back(paths::apis(s));
  auto service_nodes = m_zk.get_many(service_paths);
  auto containers = m_zk.children_many(container_paths);

  std::vector<ServiceSummary> out(n);
  std::vector<std::string> address_paths;
  std::vector<std::size_t> address_owner;
  std::size_t si = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ServiceSummary& sum = out[i];
    sum.service.name = list[i];
    sum.registered = registered.count(list[i]) > 0;
    if (sum.registered) {
      auto& node = service_nodes[si++];
      if (node) {
        auto d = model::decode_service(list[i], node->data);
        add_problems(sum.problems, paths::service(list[i]), d);
        sum.service = std::move(d.value);
      } else if (!zk::is(node.error(), zk::Code::NoNode)) {
        return fail(node.error());
      } else {
        sum.registered = false;
      }
    }
    if (!sum.registered) {
      sum.service.status = model::Status::Down;
      sum.problems.push_back(fmt::format("{}: no such node; the service is not registered",
                                         paths::service(list[i])));
    }
    auto& addrs = containers[i];
    if (addrs) {
      for (const auto& a : *addrs) {
        address_paths.push_back(paths::address(list[i], a));
        address_owner.push_back(i);
      }
    } else if (!zk::is(addrs.error(), zk::Code::NoNode)) {
      return fail(addrs.error());
    }
    auto& apis = containers[n + i];
    if (apis) sum.interfaces = static_cast<int>(apis->size());
    else if (!zk::is(apis.error(), zk::Code::NoNode)) return fail(apis.error());
  }

  auto address_nodes = m_zk.get_many(address_paths);
  std::vector<std::set<std::string>> dcs(n);
  for (std::size_t k = 0; k < address_paths.size(); ++k) {
    auto& node = address_nodes[k];
    if (!node) {
      if (zk::is(node.error(), zk::Code::NoNode)) continue;
      return fail(node.error());
    }
    std::size_t i = address_owner[k];
    auto name = address_paths[k].substr(address_paths[k].rfind('/') + 1);
    auto d = model::decode_address(list[i], name, node->data);
    add_problems(out[i].problems, address_paths[k], d);
    ++out[i].addresses_total;
    if (d.value.status == model::Status::Up) ++out[i].addresses_up;
    if (!d.value.dc.empty()) dcs[i].insert(d.value.dc);
  }
  for (std::size_t i = 0; i < n; ++i) out[i].dcs.assign(dcs[i].begin(), dcs[i].end());
  return out;
}

Expected<ServiceDetail> Registry::describe_service(const std::string& name) {
  SVCCTL_CHECK(model::validate_name("service", name));
  ServiceDetail detail;
  detail.service.name = name;
  auto svc = m_zk.get(paths::service(name));
  if (svc) {
    auto d = model::decode_service(name, svc->data);
    add_problems(detail.problems, paths::service(name), d);
    detail.service = std::move(d.value);
  } else if (zk::is(svc.error(), zk::Code::NoNode)) {
    detail.registered = false;
    detail.service.status = model::Status::Down;
  } else {
    return fail(svc.error());
  }

  auto kids = m_zk.children_many({paths::addresses(name), paths::apis(name), paths::acls(name)});
  for (auto& k : kids)
    if (!k && !zk::is(k.error(), zk::Code::NoNode)) return fail(k.error());
  if (!detail.registered && !kids[0] && !kids[1])
    return fail(ErrorKind::NotFound, fmt::format("service \"{}\" not found", name));
  if (!detail.registered)
    detail.problems.push_back(
        fmt::format("{}: no such node; the service is not registered", paths::service(name)));

  auto names_of = [](auto& k) {
    auto names = k ? *k : std::vector<std::string>{};
    std::sort(names.begin(), names.end());
    return names;
  };
  std::vector<std::string> addr_names = names_of(kids[0]);
  std::vector<std::string> api_names = names_of(kids[1]);
  std::vector<std::string> acl_names = names_of(kids[2]);
  std::vector<std::string> all;
  for (auto& a : addr_names) all.push_back(paths::address(name, a));
  for (auto& a : api_names) all.push_back(paths::api(name, a));
  for (auto& a : acl_names) all.push_back(paths::acl(name, a));
  auto nodes = m_zk.get_many(all);
  std::size_t idx = 0;
  auto next = [&](std::vector<std::string>& names, auto&& take) -> Expected<void> {
    for (auto& child : names) {
      const std::string& path = all[idx];
      auto& node = nodes[idx++];
      if (!node) {
        if (zk::is(node.error(), zk::Code::NoNode)) continue;
        return fail(node.error());
      }
      take(child, path, *node);
    }
    return {};
  };
  SVCCTL_CHECK(next(addr_names, [&](const std::string& child, const std::string& path, zk::Node& node) {
    auto d = model::decode_address(name, child, node.data);
    d.value.ephemeral = node.stat.ephemeral_owner != 0;
    add_problems(detail.problems, path, d);
    detail.addresses.push_back(std::move(d.value));
  }));
  SVCCTL_CHECK(next(api_names, [&](const std::string& child, const std::string& path, zk::Node& node) {
    auto d = model::decode_api(name, child, node.data);
    add_problems(detail.problems, path, d);
    detail.apis.push_back(std::move(d.value));
  }));
  SVCCTL_CHECK(next(acl_names, [&](const std::string& child, const std::string& path, zk::Node& node) {
    auto d = model::decode_acl(name, child, node.data);
    add_problems(detail.problems, path, d);
    detail.acls.push_back(std::move(d.value));
  }));
  return detail;
}

Expected<std::vector<KeyDetail>> Registry::list_keys() {
  SVCCTL_TRY(auto keys, children_or_empty(std::string(paths::k_keys)));
  SVCCTL_TRY(auto services, children_or_empty(std::string(paths::k_acls)));
  std::sort(keys.begin(), keys.end());
  std::sort(services.begin(), services.end());
  std::vector<std::string> key_paths;
  for (const auto& k : keys) key_paths.push_back(paths::key(k));
  auto key_nodes = m_zk.get_many(key_paths);

  std::vector<std::string> acl_dirs;
  for (const auto& s : services) acl_dirs.push_back(paths::acls(s));
  auto acl_kids = m_zk.children_many(acl_dirs);
  std::vector<std::string> acl_paths;
  std::vector<std::pair<std::string, std::string>> acl_ids;  // (service, key)
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (!acl_kids[i]) {
      if (zk::is(acl_kids[i].error(), zk::Code::NoNode)) continue;
      return fail(acl_kids[i].error());
    }
    for (const auto& k : *acl_kids[i]) {
      acl_paths.push_back(paths::acl(services[i], k));
      acl_ids.emplace_back(services[i], k);
    }
  }
  auto acl_nodes = m_zk.get_many(acl_paths);

  std::map<std::string, KeyDetail> by_key;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!key_nodes[i]) {
      if (zk::is(key_nodes[i].error(), zk::Code::NoNode)) continue;
      return fail(key_nodes[i].error());
    }
    auto d = model::decode_key(keys[i], key_nodes[i]->data);
    KeyDetail& kd = by_key[keys[i]];
    add_problems(kd.problems, key_paths[i], d);
    kd.key = std::move(d.value);
  }
  for (std::size_t i = 0; i < acl_paths.size(); ++i) {
    if (!acl_nodes[i]) {
      if (zk::is(acl_nodes[i].error(), zk::Code::NoNode)) continue;
      return fail(acl_nodes[i].error());
    }
    auto d = model::decode_acl(acl_ids[i].first, acl_ids[i].second, acl_nodes[i]->data);
    auto it = by_key.find(acl_ids[i].second);
    if (it == by_key.end()) {
      // An ACL naming a key that does not exist: show it under that key, flagged.
      KeyDetail& kd = by_key[acl_ids[i].second];
      kd.key.name = acl_ids[i].second;
      kd.key.status = model::Status::Down;
      kd.problems.push_back(fmt::format("{}: no such node; ACLs name a key that does not exist",
                                        paths::key(acl_ids[i].second)));
      it = by_key.find(acl_ids[i].second);
    }
    add_problems(it->second.problems, acl_paths[i], d);
    it->second.acls.push_back(std::move(d.value));
  }
  std::vector<KeyDetail> out;
  for (auto& [k, v] : by_key) out.push_back(std::move(v));
  return out;
}

Expected<std::vector<GatewayDetail>> Registry::list_gateways() {
  SVCCTL_TRY(auto ids, children_or_empty(std::string(paths::k_gateways)));
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> node_paths;
  for (const auto& id : ids) node_paths.push_back(paths::under(paths::k_gateways, id));
  auto nodes = m_zk.get_many(node_paths);
  std::vector<GatewayDetail> out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!nodes[i]) {
      if (zk::is(nodes[i].error(), zk::Code::NoNode)) continue;  // it stopped meanwhile
      return fail(nodes[i].error());
    }
    auto d = model::decode_gateway(ids[i], nodes[i]->data);
    GatewayDetail g;
    add_problems(g.problems, node_paths[i], d);
    g.gateway = std::move(d.value);
    auto obj = model::parse_object(nodes[i]->data);
    g.data = obj ? std::move(*obj) : json::object();
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace svcctl::registry
