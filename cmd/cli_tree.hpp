// The command line as plain data, read from the CLI11 App: the one source that shell
// completion, the man pages and the JSON dump render, so that an option added to a
// subcommand shows up in all of them with no other change.
//
// Two conventions carry what CLI11 has no field for:
//   - an option's accepted values are its type name, separated by '|' (set with
//     `choices`), so --help shows `--status up|down` and completion offers `up`, `down`;
//   - what a value names is its positional's name or its option's type name: SVC, IFACE
//     (an interface of the SVC before it), HOST:PORT (an address of that SVC), KEY, FILE.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::cmd::cli {

// Declares the values an option accepts (shown by --help, offered by completion); checking
// them stays with the model's parsers, so their messages and exit codes do not change.
CLI::Option* choices(CLI::Option* option, std::initializer_list<std::string_view> values);

struct Option {
  std::vector<std::string> names;    // as typed: "-o", "--output", "--no-idempotent"
  std::string value;                 // what follows it ("up|down", "TEXT", "INT"); empty for a flag
  std::vector<std::string> choices;  // the accepted values, when `value` lists them
  std::string description;
  std::string default_value;         // empty when none is shown
  bool required = false;
  bool repeats = false;              // may be given more than once
};

struct Positional {
  std::string name;  // SVC, IFACE, HOST:PORT, KEY, ...
  std::string description;
  bool required = false;
  bool repeats = false;  // takes every remaining argument
};

struct Command {
  std::vector<std::string> path;  // {"register", "address"}; empty for svcctl itself
  std::string description;
  std::vector<Option> options;    // this command's own, --help included
  std::vector<Positional> positionals;
  std::vector<Command> subcommands;
  bool needs_subcommand = false;

  // "svcctl register address".
  std::string display_name() const;
  // The subcommand called `name` (nullptr if none).
  const Command* find(std::string_view name) const;
};

// The visible tree: subcommands and options in a group named "" (hidden from --help) are
// left out, as they are from every rendering.
Command describe(const CLI::App& app);

// {"name", "description", "options": [...], "positionals": [...], "subcommands": [...]}.
nlohmann::json to_json(const Command& command);

}  // namespace svcctl::cmd::cli
