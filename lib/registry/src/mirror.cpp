#include <svcctl/registry/mirror.hpp>
#include <svcctl/registry/paths.hpp>

#include <algorithm>
#include <functional>
#include <iterator>
#include <utility>

namespace svcctl::registry {

const std::array<Mirror::Root, 6> Mirror::k_roots = {{{paths::k_services, 1},
                                                      {paths::k_addresses, 2},
                                                      {paths::k_apis, 2},
                                                      {paths::k_keys, 1},
                                                      {paths::k_acls, 2},
                                                      {paths::k_gateways, 1}}};

int Mirror::depth_of(std::string_view path, const Root** root) {
  for (const auto& r : k_roots) {
    if (path.substr(0, r.path.size()) != r.path) continue;
    if (path.size() == r.path.size()) {
      if (root) *root = &r;
      return 0;
    }
    if (path[r.path.size()] != '/') continue;
    if (root) *root = &r;
    return static_cast<int>(
        std::count(path.begin() + static_cast<std::ptrdiff_t>(r.path.size()), path.end(), '/'));
  }
  return -1;
}

bool Mirror::is_container(std::string_view path) {
  const Root* root = nullptr;
  const int d = depth_of(path, &root);
  return d >= 0 && d < root->leaf_depth;
}

std::size_t Mirror::shard_of(std::string_view path) {
  return std::hash<std::string_view>{}(path) % Snapshot::k_shards;
}

Mirror::Names::Names(std::vector<std::string> names) : m_names(std::move(names)) {
  std::sort(m_names.begin(), m_names.end());
  m_names.erase(std::unique(m_names.begin(), m_names.end()), m_names.end());
}

bool Mirror::Names::count(std::string_view name) const {
  return std::binary_search(m_names.begin(), m_names.end(), name, std::less<>{});
}

void Mirror::Names::insert(std::string name) {
  auto it = std::lower_bound(m_names.begin(), m_names.end(), name);
  if (it == m_names.end() || *it != name) m_names.insert(it, std::move(name));
}

void Mirror::Names::erase(std::string_view name) {
  auto it = std::lower_bound(m_names.begin(), m_names.end(), name, std::less<>{});
  if (it != m_names.end() && *it == name) m_names.erase(it);
}

Mirror::Mirror(std::size_t sessions) : m_sessions(std::max<std::size_t>(1, sessions)), m_rounds(m_sessions) {
  for (auto& s : m_shards) s = std::make_shared<Snapshot::Shard>();
  m_owned.fill(true);
}

std::size_t Mirror::session_of(std::string_view path) const {
  if (m_sessions == 1) return 0;
  auto slash = path.find('/', 1);
  if (slash == std::string_view::npos) return 0;
  auto name = path.substr(slash + 1);
  name = name.substr(0, name.find('/'));
  return std::hash<std::string_view>{}(name) % m_sessions;
}

const CacheEntry* Mirror::find(std::string_view path) const { return m_shards[shard_of(path)]->find(path); }

std::size_t Mirror::size() const {
  std::size_t n = 0;
  for (const auto& s : m_shards) n += s->size();
  return n;
}

std::vector<std::shared_ptr<const Snapshot::Shard::Item>> Mirror::held_by(std::size_t i) const {
  std::vector<std::shared_ptr<const Snapshot::Shard::Item>> out;
  for (const auto& shard : m_shards)
    for (const auto& item : *shard)
      if (session_of(item->path) == i) out.push_back(item);
  return out;
}

std::size_t Mirror::count_held_by(std::size_t i) const {
  std::size_t n = 0;
  for (const auto& shard : m_shards)
    for (const auto& item : *shard) n += session_of(item->path) == i;
  return n;
}

void Mirror::share_into(Snapshot& snap) {
  for (std::size_t i = 0; i < Snapshot::k_shards; ++i) {
    snap.m_shards[i] = m_shards[i];
    m_owned[i] = false;
  }
}

// The shard, made private to the mirror first if a snapshot shares it.
Snapshot::Shard& Mirror::writable(std::size_t i) {
  if (!m_owned[i]) {
    m_shards[i] = std::make_shared<Snapshot::Shard>(*m_shards[i]);
    m_owned[i] = true;
  }
  return *m_shards[i];
}

void Mirror::mark_seen(std::size_t via, const std::string& path) {
  if (m_rounds[via].sweep) m_rounds[via].seen.insert(path);
}

namespace {

// The entry of an item, sharing its ownership.
std::shared_ptr<const CacheEntry> entry_of(std::shared_ptr<const Snapshot::Shard::Item> item) {
  if (!item) return nullptr;
  const CacheEntry* e = &item->entry;
  return std::shared_ptr<const CacheEntry>(std::move(item), e);
}

}  // namespace

bool Mirror::old_history(const std::string& path) const {
  const Round& r = m_rounds[session_of(path)];
  return r.new_history && !r.seen.count(path);
}

void Mirror::put(std::size_t via, const std::string& path, CacheEntry e, Out& out) {
  const bool old = old_history(path);
  mark_seen(via, path);
  const std::size_t sh = shard_of(path);
  const CacheEntry* held = m_shards[sh]->find(path);
  if (!held) {
    auto after = writable(sh).put(path, std::move(e));
    out.changes.push_back(Change{Change::Kind::Added, path, nullptr, entry_of(std::move(after)), {}});
  } else if (!(*held == e) && (old || e.mzxid >= held->mzxid)) {
    // A newer state, or one of another log (its mzxid says nothing): the answer is the node.
    auto before = m_shards[sh]->item(path);  // kept alive for the change: put() drops it
    auto after = writable(sh).put(path, std::move(e));
    out.changes.push_back(
        Change{Change::Kind::Modified, path, entry_of(std::move(before)), entry_of(std::move(after)), {}});
  } else if (held->czxid == 0 && e.mzxid == held->mzxid) {  // the same state: learn when it was created
    CacheEntry known = *held;
    known.czxid = e.czxid;
    writable(sh).put(path, std::move(known));
  }
  // Otherwise an older state than the one held (never go back in time), or no change.
}

void Mirror::remove_subtree(const std::string& path, Out& out) {
  // Keep the parent's list of children true, also for a node listed but not read yet: a
  // name left in the list would hide the node's return from the next listing for good.
  const auto slash = path.rfind('/');
  if (slash > 0)
    if (auto p = m_children.find(path.substr(0, slash)); p != m_children.end())
      p->second.names.erase(path.substr(slash + 1));
  if (auto it = m_children.find(path); it != m_children.end()) {
    auto kids = std::move(it->second.names);
    m_children.erase(it);
    for (const auto& k : kids) remove_subtree(path + "/" + k, out);
  }
  const std::size_t sh = shard_of(path);
  if (!m_shards[sh]->find(path)) return;
  auto gone = writable(sh).erase(path);
  out.changes.push_back(Change{Change::Kind::Deleted, path, entry_of(std::move(gone)), nullptr, {}});
}

// The node does not exist for session `via`. If its parent's listing (read by another
// session, maybe from a server further ahead) says it does, wait for it with a watch.
void Mirror::absent(std::size_t via, const std::string& path, Out& out) {
  const auto slash = path.rfind('/');
  const std::string parent = slash > 0 ? path.substr(0, slash) : std::string();
  const std::string name = path.substr(slash + 1);
  auto p = slash > 0 ? m_children.find(parent) : m_children.end();
  const bool listed = p != m_children.end() && p->second.names.count(name);
  remove_subtree(path, out);
  if (listed && session_of(parent) != via) {
    // Still named by the listing: kept there, so that the read the watch brings is not
    // taken for a node deleted since that listing.
    m_children[parent].names.insert(name);
    out.reads.push_back(Read{via, path, ReadKind::Exists});
  } else if (depth_of(path) == 0) {
    out.reads.push_back(Read{via, path, ReadKind::Exists});  // a root: waited for
  }
}

void Mirror::data(std::size_t via, const std::string& path, zk::Code rc, zk::Node n, Out& out) {
  if (rc == zk::Code::NoNode) {
    absent(via, path, out);
    return;
  }
  if (rc != zk::Code::Ok) return;
  const auto slash = path.rfind('/');
  const std::string name = path.substr(slash + 1);
  if (auto p = m_children.find(path.substr(0, slash)); p != m_children.end()) {
    // A listing of the parent made after this node was created, and without it: this
    // node has been deleted since (its watch brings that here too). Not taken back.
    if (!p->second.old_history && !p->second.names.count(name) && p->second.pzxid >= n.stat.czxid) {
      mark_seen(via, path);  // not swept for it: it is not held
      return;
    }
    p->second.names.insert(name);
  }
  put(via, path,
      CacheEntry{std::move(n.data), n.stat.mzxid, n.stat.version, n.stat.ephemeral_owner, false, n.stat.czxid},
      out);
}

void Mirror::children(std::size_t via, const std::string& path, zk::Code rc, const std::vector<std::string>& names,
                      const zk::Stat& st, Out& out) {
  if (rc == zk::Code::NoNode) {
    absent(via, path, out);
    return;
  }
  if (rc != zk::Code::Ok) return;
  if (const auto slash = path.rfind('/'); slash > 0)
    if (auto p = m_children.find(path.substr(0, slash)); p != m_children.end())
      p->second.names.insert(path.substr(slash + 1));
  put(via, path, CacheEntry{{}, st.mzxid, st.version, st.ephemeral_owner, true, st.czxid}, out);
  Names now(names);
  Listing& known = m_children[path];
  for (const auto& name : now)
    if (!known.names.count(name)) {
      std::string child = path + "/" + name;
      const auto kind = is_container(child) ? ReadKind::Children : ReadKind::Data;
      out.reads.push_back(Read{session_of(child), std::move(child), kind});
    }
  std::vector<std::string> gone;
  for (const auto& name : known.names) {
    if (now.count(name)) continue;
    // Created after this listing was made (read through a session whose server is
    // further ahead): the listing is too old to say it is gone. The next one will.
    const std::string child = path + "/" + name;
    const CacheEntry* e = find(child);
    if (e && e->czxid > st.pzxid && !old_history(child)) now.insert(name);
    else gone.push_back(name);
  }
  known.names = std::move(now);
  known.pzxid = st.pzxid;
  known.old_history = false;
  for (const auto& name : gone) remove_subtree(path + "/" + name, out);
}

void Mirror::exists(std::size_t via, const std::string& path, Out& out) const {
  out.reads.push_back(Read{via, path, is_container(path) ? ReadKind::Children : ReadKind::Data});
}

void Mirror::from_file(const std::string& path, CacheEntry entry, Out& out) {
  const auto slash = path.rfind('/');
  if (slash > 0 && depth_of(path.substr(0, slash)) >= 0)
    m_children[path.substr(0, slash)].names.insert(path.substr(slash + 1));
  auto item = writable(shard_of(path)).put(path, std::move(entry));
  out.changes.push_back(Change{Change::Kind::Added, path, nullptr, entry_of(std::move(item)), {}});
}

std::vector<Mirror::Read> Mirror::begin_round(std::size_t i, RoundKind kind) {
  Round& r = m_rounds[i];
  r.sweep = false;
  const bool new_history = kind == RoundKind::NewHistory;
  r.new_history = new_history;
  r.seen.clear();
  const bool sweep = kind != RoundKind::Listings;
  if (new_history)
    for (auto& [path, kids] : m_children)
      if (session_of(path) == i) kids.old_history = true;
  std::vector<Read> reads;
  if (!sweep) return reads;
  for (const auto& shard : m_shards)
    for (const auto& item : *shard)
      if (session_of(item->path) == i) {
        reads.push_back(Read{i, item->path, item->entry.container ? ReadKind::Children : ReadKind::Data});
        r.sweep = true;
      }
  return reads;
}

std::size_t Mirror::end_round(std::size_t i, Out& out) {
  Round& r = m_rounds[i];
  const std::size_t seen = r.seen.size();
  if (r.sweep) {
    std::vector<std::string> gone;
    for (const auto& shard : m_shards)
      for (const auto& item : *shard)
        if (session_of(item->path) == i && !r.seen.count(item->path)) gone.push_back(item->path);
    for (const auto& p : gone) remove_subtree(p, out);
  }
  r = Round{};  // frees the seen set
  return seen;
}

}  // namespace svcctl::registry
