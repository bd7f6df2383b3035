// Reads and writes the registry layout (DESIGN §2) through a ZooKeeper client.
//
// Writes are read-modify-write with compare-and-set on the node version: the given fields
// are merged over the node's JSON object (unknown fields are kept) and written only if the
// node has not changed since it was read; on a conflict the whole step is retried, unless
// the caller pinned a version (WriteOptions::if_version), which then fails with Conflict.
// Guard rails (last up address, non-empty service, key still used) are checked inside the
// same atomic multi-operation as the write, so a concurrent writer cannot slip past them.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/registry/history.hpp>
#include <svcctl/zk/session.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace svcctl::registry {

enum class Action { Created, Updated, Unchanged, Deleted };
std::string_view to_string(Action action);

struct WriteResult {
  std::string path;
  Action action = Action::Unchanged;
  int version = -1;          // the node's version after the write (-1 when deleted)
  nlohmann::json data;       // the node's data after the write (null when deleted)
  std::vector<std::string> removed;  // every path removed, deepest first
  std::vector<std::string> notes;    // side effects worth telling (e.g. service created)
  // The zxid of the write (the node's mzxid after it); for Unchanged, the node's mzxid as
  // read. 0 when not known (a created node, a deletion). Not in to_json().
  std::int64_t zxid = 0;
  nlohmann::json to_json() const;
};

enum class IfMissing { Refuse, CreateService };
enum class Safety { Guarded, Force };
enum class Depth { NodeOnly, Recursive };
enum class IfAbsent { Create, Refuse };  // the node itself: create it, or NotFound

struct WriteOptions {
  std::optional<int> if_version;  // fail with Conflict unless the node is at this version
  IfMissing if_missing = IfMissing::Refuse;
  Safety safety = Safety::Guarded;
  IfAbsent if_absent = IfAbsent::Create;
};

struct ServiceSummary {
  model::Service service;
  bool registered = true;  // false: found under /address or /api but no /service node
  int addresses_up = 0;
  int addresses_total = 0;
  int interfaces = 0;
  std::vector<std::string> dcs;
  std::vector<std::string> problems;
  nlohmann::json to_json() const;
};

// One version of a service's addresses (those without one are version "").
struct VersionSummary {
  std::string version;
  std::optional<std::int64_t> share;  // in the split, when it names the version
  int routable = 0;                   // addresses that take calls (model::routable)
  int total = 0;
};

struct ServiceDetail {
  model::Service service;
  bool registered = true;
  std::vector<model::Address> addresses;
  std::vector<model::Api> apis;
  std::vector<model::Acl> acls;
  std::vector<std::string> problems;
  // Every version the addresses have and the split names, sorted; none when no address
  // has a version and there is no split.
  std::vector<VersionSummary> versions() const;
  nlohmann::json to_json() const;
};

struct KeyDetail {
  model::Key key;
  std::vector<model::Acl> acls;
  std::vector<std::string> problems;
  nlohmann::json to_json() const;
};

// A gateway registered under /gateway (see model::Gateway).
struct GatewayDetail {
  model::Gateway gateway;
  nlohmann::json data;  // the node's whole object, fields this build does not know included; {} if not JSON
  std::vector<std::string> problems;
};

// The records `Registry::history` found, and what it could not read as one.
struct HistoryListing {
  std::vector<Record> records;  // oldest first
  std::vector<std::string> problems;
};

class Registry {
 public:
  explicit Registry(zk::Session& session) : m_zk(session) {}

  // From now on every write also adds its record under /history, in the same
  // multi-operation (history.hpp). Without it, nothing is recorded.
  void record_as(Author author);
  // The records, oldest first: those whose changes touch `service` when it is not empty,
  // those ZooKeeper took at or after `since_ms`.
  Expected<HistoryListing> history(const std::string& service, std::int64_t since_ms);
  // One record; NotFound when there is none (never written, or trimmed).
  Expected<Record> record(std::int64_t id);
  // How many records the history keeps (/history's "keep"): the oldest beyond it go.
  Expected<void> set_history_keep(std::size_t keep);

  // Creates the node, or updates the given fields of an existing one.
  Expected<WriteResult> put_service(const std::string& name, const model::ServiceFields& fields,
                                    const WriteOptions& options);
  // Sets the service's split by version and its stickiness, or clears both (an empty
  // split), in one compare-and-set write of /service/{svc}. A version given a share
  // without a routable address is Unsafe unless Force. Needs the service (NotFound).
  Expected<WriteResult> set_split(const std::string& service, const std::vector<model::VersionShare>& split,
                                  const model::Sticky& sticky, Safety safety);
  // Needs the service (NotFound) unless options.if_missing is CreateService. Marking the
  // last up address down is Unsafe unless options.safety is Force.
  Expected<WriteResult> put_address(const std::string& service, const model::HostPort& address,
                                    const model::AddressFields& fields, const WriteOptions& options);
  // A new interface needs fields.path (Usage).
  Expected<WriteResult> put_api(const std::string& service, const std::string& iface,
                                const model::ApiFields& fields, const WriteOptions& options);
  Expected<WriteResult> put_key(const std::string& key, const model::KeyFields& fields,
                                const WriteOptions& options);
  // Needs both the service and the key (NotFound).
  Expected<WriteResult> put_acl(const std::string& service, const std::string& key,
                                const model::AclFields& fields, const WriteOptions& options);

  // Refuses (Unsafe) a service that still has addresses, interfaces or ACLs, unless
  // Recursive, which removes them all in one atomic step.
  Expected<WriteResult> remove_service(const std::string& name, Depth depth);
  // Removing the last up address is Unsafe unless Force.
  Expected<WriteResult> remove_address(const std::string& service, const model::HostPort& address,
                                       Safety safety);
  Expected<WriteResult> remove_api(const std::string& service, const std::string& iface);
  // Refuses (Unsafe) a key still named by ACLs, unless Force, which removes those too.
  Expected<WriteResult> remove_key(const std::string& key, Safety safety);
  Expected<WriteResult> remove_acl(const std::string& service, const std::string& key);

  // Every service found under /service, /address or /api, sorted by name.
  Expected<std::vector<ServiceSummary>> list_services();
  // One service with its addresses, interfaces and ACLs (NotFound if none of it exists).
  Expected<ServiceDetail> describe_service(const std::string& name);
  // Every key with the ACLs that name it.
  Expected<std::vector<KeyDetail>> list_keys();
  // Every gateway under /gateway, sorted by id; none when /gateway does not exist. One that
  // left between the listing and its read is left out.
  Expected<std::vector<GatewayDetail>> list_gateways();
  // The names of the nodes under `path` (a folder such as paths::apis(svc)); none when it
  // does not exist. One read: shell completion cannot wait for whole listings.
  Expected<std::vector<std::string>> names_under(const std::string& path);

  // Declarative documents (declare.hpp): every registry node and container, read in
  // pipelined batches; a plan applied as one multi-operation, every write pinned to the
  // version read (Conflict when the registry changed since: nothing is written). Returns
  // the zxid of the write (0 for an empty plan).
  Expected<Tree> read_tree();
  Expected<std::int64_t> apply(const Plan& plan);

 private:
  using Guard = std::function<Expected<std::vector<zk::Op>>(const nlohmann::json* before,
                                                            const nlohmann::json& after)>;
  Expected<WriteResult> upsert(const std::string& path, const nlohmann::json& patch,
                               const nlohmann::json& defaults, const WriteOptions& options,
                               const std::function<Expected<void>(const nlohmann::json&)>& validate,
                               const Guard& guard);
  // Runs a write's ops (one on its own, several as a multi-operation), with the record of
  // `changes` among them when recording; stats as zk::Session::multi gives them.
  Expected<void> commit(std::vector<zk::Op> ops, const std::vector<Edit>& changes,
                        std::vector<zk::Stat>* stats = nullptr);
  // Removes the oldest records beyond the folder's bound (best effort: a failure here
  // loses nothing, the next writer trims).
  void trim_history();
  Expected<void> require(const std::string& path, std::string what);
  // Deletes a node that has no children; NotFound with `not_found` if it is missing.
  Expected<WriteResult> remove_leaf(const std::string& path, std::string not_found);
  Expected<std::vector<std::string>> children_or_empty(const std::string& path);
  Expected<Tree> read_tree_once();
  // Reads every address of a service, with its node version.
  struct AddressNode {
    model::Address address;
    int version = 0;
  };
  Expected<std::vector<AddressNode>> read_addresses(const std::string& service);
  // A check op on one other up address, or Unsafe if `target` is the last one up.
  Expected<std::vector<zk::Op>> last_up_guard(const std::string& service, const std::string& target,
                                              std::string_view doing);

  zk::Session& m_zk;
  std::optional<Author> m_author;
  bool m_history_folder = false;  // /history is known to exist
};

}  // namespace svcctl::registry
