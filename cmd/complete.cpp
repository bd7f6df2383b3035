#include "complete.hpp"

namespace svcctl::cmd::cli {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Global options are accepted after the subcommand too, so the options in force are those
// of every command on the way, the innermost first.
const Option* find_option(const std::vector<const Command*>& chain, std::string_view name) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    for (const auto& o : (*it)->options)
      for (const auto& n : o.names)
        if (n == name) return &o;
  return nullptr;
}

std::string key_of(const Option& o) {
  for (const auto& n : o.names)
    if (starts_with(n, "--")) return n;
  return o.names.empty() ? std::string() : o.names.front();
}

Source source_of(std::string_view what) {
  if (what == "SVC") return Source::Services;
  if (what == "IFACE") return Source::Interfaces;
  if (what == "HOST:PORT") return Source::Addresses;
  if (what == "KEY") return Source::Keys;
  if (what == "FILE") return Source::Files;
  return Source::Nothing;
}

// The state after the words before the cursor.
struct Walk {
  std::vector<const Command*> chain;  // svcctl first, the innermost subcommand last
  std::size_t positional = 0;         // positionals filled at the innermost command
  std::map<std::string, std::string> positionals;  // their values, by name
  std::map<std::string, std::string> given;
  const Option* pending = nullptr;  // an option whose value is the next word
  bool only_positionals = false;    // after "--"
};

void take_long_option(Walk& w, const std::string& word) {
  auto eq = word.find('=');
  const Option* o = find_option(w.chain, word.substr(0, eq));
  if (!o || o->value.empty()) return;
  if (eq == std::string::npos)
    w.pending = o;
  else
    w.given[key_of(*o)] = word.substr(eq + 1);
}

// "-qv", "-ojson", "-o json": flags may share a dash; an option's value is the rest of the
// word, or the next word.
void take_short_options(Walk& w, const std::string& word) {
  for (std::size_t i = 1; i < word.size(); ++i) {
    const Option* o = find_option(w.chain, std::string{'-', word[i]});
    if (!o || o->value.empty()) continue;
    auto rest = word.substr(i + 1);
    if (!rest.empty() && rest.front() == '=') rest.erase(0, 1);
    if (rest.empty())
      w.pending = o;
    else
      w.given[key_of(*o)] = rest;
    return;
  }
}

void take_argument(Walk& w, const std::string& word) {
  const Command* at = w.chain.back();
  if (w.positional == 0) {
    if (const Command* sub = at->find(word)) {
      w.chain.push_back(sub);
      return;
    }
  }
  if (w.positional >= at->positionals.size()) return;
  const auto& p = at->positionals[w.positional];
  w.positionals[p.name] = word;
  if (!p.repeats) ++w.positional;
}

void take(Walk& w, const std::string& word) {
  if (w.pending) {
    w.given[key_of(*w.pending)] = word;
    w.pending = nullptr;
  } else if (!w.only_positionals && word == "--") {
    w.only_positionals = true;
  } else if (!w.only_positionals && starts_with(word, "--")) {
    take_long_option(w, word);
  } else if (!w.only_positionals && word.size() > 1 && word.front() == '-') {
    take_short_options(w, word);
  } else {
    take_argument(w, word);
  }
}

void add_if_matching(Completion& c, std::string word, const std::string& description) {
  if (!starts_with(word, c.word)) return;
  for (const auto& have : c.candidates)
    if (have.word == word) return;
  c.candidates.push_back({std::move(word), description});
}

void offer_options(Completion& c, const Walk& w) {
  c.source = Source::Words;
  for (auto it = w.chain.rbegin(); it != w.chain.rend(); ++it)
    for (const auto& o : (*it)->options)
      for (const auto& n : o.names) add_if_matching(c, n, o.description);
}

// What the value of `what` (an option's type, a positional's name) may be; `prefix` is the
// part of the word before the value ("--status=").
void offer_value(Completion& c, const Walk& w, const std::string& what,
                 const std::vector<std::string>& choices, const std::string& prefix) {
  c.prefix = prefix;
  if (!choices.empty()) {
    c.source = Source::Words;
    for (const auto& v : choices) add_if_matching(c, prefix + v, "");
    return;
  }
  c.source = source_of(what);
  if (auto svc = w.positionals.find("SVC"); svc != w.positionals.end()) c.service = svc->second;
  if ((c.source == Source::Interfaces || c.source == Source::Addresses) && c.service.empty())
    c.source = Source::Nothing;
}

void offer_arguments(Completion& c, const Walk& w) {
  const Command* at = w.chain.back();
  if (w.positional == 0 && !at->subcommands.empty()) {
    for (const auto& sub : at->subcommands) add_if_matching(c, sub.path.back(), sub.description);
    return;
  }
  if (w.positional < at->positionals.size()) {
    const auto& p = at->positionals[w.positional];
    return offer_value(c, w, p.name, {}, "");
  }
  offer_options(c, w);
}

}  // namespace

Completion complete(const Command& root, const std::vector<std::string>& words) {
  Walk w;
  w.chain.push_back(&root);
  const std::size_t before = words.empty() ? 0 : words.size() - 1;
  for (std::size_t i = 0; i < before; ++i) take(w, words[i]);

  Completion c;
  c.word = words.empty() ? std::string() : words.back();
  if (w.pending) {
    offer_value(c, w, w.pending->value, w.pending->choices, "");
  } else if (!w.only_positionals && starts_with(c.word, "--") && c.word.find('=') != std::string::npos) {
    auto name = c.word.substr(0, c.word.find('='));
    const Option* o = find_option(w.chain, name);
    if (o && !o->value.empty())
      offer_value(c, w, o->value, o->choices, name + "=");
    else
      c.source = Source::Nothing;
  } else if (!w.only_positionals && starts_with(c.word, "-")) {
    offer_options(c, w);
  } else {
    offer_arguments(c, w);
  }
  c.given = std::move(w.given);
  return c;
}

std::vector<Candidate> matching(const Completion& completion, const std::vector<std::string>& names) {
  std::vector<Candidate> out;
  for (const auto& n : names) {
    auto word = completion.prefix + n;
    if (starts_with(word, completion.word)) out.push_back({std::move(word), ""});
  }
  return out;
}

}  // namespace svcctl::cmd::cli
