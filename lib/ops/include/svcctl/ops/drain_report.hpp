// The pure part of `svcctl drain` and `undrain`: what a gateway's /-/stats says about one
// address, and whether the fleet of gateways is done with it, round after round of asking.
// No I/O, so unit-tested.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/model/model.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::ops::drain {

// What one gateway's /-/stats says about the address being drained.
struct Seen {
  std::int64_t zxid = 0;       // registry.zxid: the highest zxid in its registry view
  std::int64_t in_flight = 0;  // calls in flight to the address (0 when it lists none)
  bool held = false;           // its mass-change guard holds the service at the old view
};

// "0x1a2b" (or decimal) → the number; nullopt when it is neither.
std::optional<std::int64_t> parse_zxid(std::string_view text);
// Reads Seen from a /-/stats answer (DeliveryFailed when it lacks registry.zxid): calls in
// flight to `address` of the first of `services` (none when address is empty), and
// whether the mass-change guard holds any of them.
Expected<Seen> read_stats(const nlohmann::json& stats, const std::vector<std::string>& services,
                          const std::string& address);
Expected<Seen> read_stats(const nlohmann::json& stats, const std::string& service, const std::string& address);

// One gateway's answer in one round: `seen`, or `error` saying why there is none.
struct Answer {
  model::Gateway gateway;
  std::optional<Seen> seen;
  std::string error;
};

// What the command waits for: every gateway to have seen the write (undrain --wait), or
// to have seen it and have no call left in flight to the address (drain).
enum class Need { Seen, Idle };
// A gateway whose admin listener does not answer: keep waiting for it (and time out
// naming it), or count it as done (--ignore-unreachable).
enum class Unreachable { Wait, Ignore };

// One gateway followed over the rounds.
struct Tracked {
  model::Gateway gateway;
  std::optional<Seen> last;  // its latest answer
  std::string error;         // why the latest round had no answer from it; empty if it answered
  int seen_round = -1;       // the first round in which it had seen the write
  bool done = false;         // latched: it stays done
  bool ignored = false;      // done only because it did not answer (Unreachable::Ignore)
};

class Progress {
 public:
  Progress(std::int64_t zxid, Need need, Unreachable unreachable)
      : m_zxid(zxid), m_need(need), m_unreachable(unreachable) {}

  // Takes one round of answers: every gateway registered now. A gateway no longer
  // registered is forgotten (it stopped: nothing of it is in flight any more).
  void update(std::vector<Answer> answers);
  // Whether every gateway is done (true with none).
  bool done() const;
  const std::vector<Tracked>& gateways() const { return m_gateways; }
  std::int64_t zxid() const { return m_zxid; }

  // Why it is not done: one clause per gateway that is not ("gw-a still has 3 calls in
  // flight", "gw-b has not seen the change (at zxid 0x10, the write is 0x12)", "gw-c did
  // not answer: ..."), in id order.
  std::vector<std::string> waiting() const;

 private:
  bool seen(const Seen& s) const { return s.zxid >= m_zxid && !s.held; }

  std::int64_t m_zxid;
  Need m_need;
  Unreachable m_unreachable;
  int m_round = 0;
  std::vector<Tracked> m_gateways;  // by id
};

// "0x1a2b"
std::string hex(std::int64_t zxid);

// {"service","address","action","zxid","done","waited_ms","gateways":[{"id","admin","done",
// "zxid","in_flight"[,"error"][,"ignored"]}]}; "done" is named by the caller ("drained"
// for drain, "seen" for undrain --wait).
nlohmann::json result_json(const Progress& p, std::string_view done_field, const std::string& service,
                           const std::string& address, std::string_view action, std::int64_t waited_ms);

}  // namespace svcctl::ops::drain
