#include "fleet.hpp"

#include <svcctl/rpc/rpc.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <thread>

namespace svcctl::cmd::fleet {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds k_poll{100};
// Each gateway's answer is awaited at most this long per round (less near the deadline).
constexpr milliseconds k_ask_timeout{1000};

// One round: every gateway registered now and what its /-/stats says of the target.
Expected<std::vector<drain::Answer>> ask_gateways(registry::Registry& reg, const Target& target,
                                                  milliseconds timeout) {
  SVCCTL_TRY(auto gateways, reg.list_gateways());
  std::vector<drain::Answer> answers;
  std::vector<std::string> urls;
  std::vector<std::size_t> asked;  // the answer each URL is for
  for (auto& g : gateways) {
    drain::Answer a{std::move(g.gateway), std::nullopt, {}};
    if (a.gateway.admin.empty()) {
      a.error = "registered without an admin address";
    } else {
      urls.push_back(fmt::format("http://{}/-/stats", a.gateway.admin));
      asked.push_back(answers.size());
    }
    answers.push_back(std::move(a));
  }
  auto replies = rpc::http_get_many(urls, rpc::Timeouts{timeout, timeout});
  for (std::size_t i = 0; i < replies.size(); ++i) {
    auto& a = answers[asked[i]];
    if (!replies[i]) {
      a.error = replies[i].error().message;
    } else if (replies[i]->status != 200) {
      a.error = fmt::format("/-/stats answered HTTP {}", replies[i]->status);
    } else {
      auto j = nlohmann::json::parse(replies[i]->body, nullptr, false);
      auto seen = drain::read_stats(j, target.services, target.address);
      if (seen) a.seen = *seen;
      else a.error = seen.error().message;
    }
  }
  return answers;
}

// Tells progress on stderr when what is waited for changes, and at most once a second.
class Reporter {
 public:
  explicit Reporter(const Context& ctx) : m_ctx(ctx) {}
  void report(const drain::Progress& p) {
    auto w = p.waiting();
    if (w.empty()) return;
    auto line = fmt::format("waiting: {}", fmt::join(w, "; "));
    const auto now = Clock::now();
    if (line == m_last || now - m_at < std::chrono::seconds(1)) return;
    m_ctx.note(line);
    m_last = std::move(line);
    m_at = now;
  }

 private:
  const Context& m_ctx;
  std::string m_last;
  Clock::time_point m_at{};
};

}  // namespace

Expected<Outcome> follow(Context& ctx, registry::Registry& reg, const Target& target, milliseconds timeout,
                         drain::Progress progress) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  Reporter reporter(ctx);
  bool first = true;
  for (;;) {
    const auto round_start = Clock::now();
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - round_start);
    auto answers = ask_gateways(reg, target, std::clamp(left, milliseconds(50), k_ask_timeout));
    if (!answers) {
      // ZooKeeper away for a moment: the gateways are still there; ask again next round.
      if (first) return fail(answers.error());
      ctx.warn(answers.error().message);
    } else {
      if (first && answers->empty())
        return Outcome{std::move(progress), 0, false, true};
      progress.update(std::move(*answers));
    }
    first = false;
    const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    if (progress.done()) return Outcome{std::move(progress), waited, false, false};
    if (Clock::now() >= deadline) return Outcome{std::move(progress), waited, true, false};
    reporter.report(progress);
    std::this_thread::sleep_until(std::min(round_start + k_poll, deadline));
  }
}

}  // namespace svcctl::cmd::fleet
