// The pure part of `svcctl stats`: what one round of fetching every gateway's /-/stats
// gave, the rows shown from it (by service, interface, address or key), their order, the
// rates between two rounds, and their table and JSON forms. No I/O, so unit-tested.
#pragma once

#include <svcctl/gateway/stats.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/output/output.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::ops::stats {

enum class By { Service, Interface, Address, Key, Version };
std::string_view to_string(By by);
std::optional<By> parse_by(std::string_view text);

// A registered gateway and how fetching its figures went.
struct Reached {
  model::Gateway gateway;
  std::string error;  // empty: it answered
  bool ok() const { return error.empty(); }
};

// The figures of one gateway that answered.
struct Answer {
  // Who answered: the gateway's id and its node's data, which a restarted gateway (same
  // id, new process) changes, so that its counters starting again from 0 are not
  // taken for a fall.
  std::string identity;
  gateway::StatsView view;
};

// One round: every registered gateway, the answers of those that answered, their merge.
struct Round {
  std::vector<Reached> gateways;
  std::vector<Answer> answers;
  gateway::StatsView merged;
  std::chrono::steady_clock::time_point at;
  std::size_t answered() const { return answers.size(); }
};

// Merges the answers into round.merged.
void merge_answers(Round& round);

struct Query {
  By by = By::Service;
  std::string service;  // only this service when not empty
  std::size_t top = 0;  // at most this many rows; 0: all
};

struct Row {
  std::string service;
  std::string name;  // the interface, address or key; empty by service
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;  // every code
  std::uint64_t rate_limited = 0;
  std::uint64_t p50_us = 0;  // from the merged histogram: the upper edge of its bucket
  std::uint64_t p90_us = 0;
  std::uint64_t p99_us = 0;
  std::int64_t in_flight = 0;   // by service and by address
  std::uint64_t ejections = 0;  // by address: times taken out of rotation, all gateways
  std::size_t ejected_by = 0;   // by address: gateways that have it out of rotation now
  std::int64_t ejected_for_ms = 0;  // by address: the longest of those
  std::uint64_t shadow = 0;     // by key: calls its ACL in shadow mode would have refused
  std::uint64_t passed_over = 0;  // by version: calls its share held that went to another version
  std::optional<double> per_second;  // requests per second since the previous round
};

// The rows of `now` that have something to tell (calls, calls in flight, shadow counts,
// an ejection), busiest first: by requests per second when `before` is given (from its
// gateways that answered both times, over the time between the rounds), else by
// requests; ties by service and name. At most query.top.
std::vector<Row> build_rows(const Round& now, const Round* before, const Query& query);

// The merged view with only `service` (all of it when empty).
gateway::StatsView only_service(const gateway::StatsView& view, const std::string& service);

// "2 gateways: gw-a, gw-b; 1 unreachable: gw-c (cannot connect ...)"
std::string summary_line(const std::vector<Reached>& gateways);
// "unrouted: 12 requests (unknown_service 10, not_found 2)", or empty when none.
std::string unrouted_line(const gateway::Counters& unrouted);

// Whether the table has a REQ/S column (there is a round before this one to compare with).
enum class Rates { Hidden, Shown };
// The table of the rows. `gateways`: how many answered (the EJECTED column says "k of n"
// when more than one did).
output::Table table(const std::vector<Row>& rows, By by, Rates rates, std::size_t gateways);

// [{"id","admin","listen","dc","version","ok"[,"error"]}...]
nlohmann::json gateways_json(const std::vector<Reached>& gateways);
// One object per row: "service", the dimension's name ("interface", "address", "key"),
// "requests", "errors", "rate_limited", "latency_ms": {"p50","p90","p99"}, and as the
// dimension has them "in_flight", "ejections", "ejected_by", "ejected_for_ms", "shadow",
// "requests_per_second".
nlohmann::json rows_json(const std::vector<Row>& rows, By by);

// Cell texts, for tests: "0.30ms", "12.5ms", "1203ms"; "-" for no requests.
std::string format_ms(std::uint64_t us, std::uint64_t requests);
// "0.0%", "<0.1%", "12.5%"; "-" for no requests.
std::string format_pct(std::uint64_t part, std::uint64_t whole);

}  // namespace svcctl::ops::stats
