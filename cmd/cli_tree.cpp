#include "cli_tree.hpp"

namespace svcctl::cmd::cli {

namespace {

bool hidden(const std::string& group) { return group.empty(); }

std::vector<std::string> split_choices(const std::string& type_name) {
  std::vector<std::string> out;
  if (type_name.find('|') == std::string::npos) return out;
  std::size_t start = 0;
  while (true) {
    auto bar = type_name.find('|', start);
    out.push_back(type_name.substr(start, bar - start));
    if (bar == std::string::npos) return out;
    start = bar + 1;
  }
}

// CLI11 keeps short, long and negated names apart; a flag such as
// "--idempotent,!--no-idempotent" lists both of its long names in lnames.
std::vector<std::string> names_of(const CLI::Option& o) {
  std::vector<std::string> out;
  for (const auto& s : o.get_snames()) out.push_back("-" + s);
  for (const auto& l : o.get_lnames()) out.push_back("--" + l);
  return out;
}

Option option_of(const CLI::Option& o) {
  Option out;
  out.names = names_of(o);
  if (o.get_type_size() != 0) {
    out.value = o.get_type_name();
    out.choices = split_choices(out.value);
  }
  out.description = o.get_description();
  out.default_value = o.get_default_str();
  out.required = o.get_required();
  out.repeats = o.get_expected_max() > 1;
  return out;
}

Positional positional_of(const CLI::Option& o) {
  Positional out;
  out.name = o.get_name();
  out.description = o.get_description();
  out.required = o.get_required();
  out.repeats = o.get_expected_max() > 1;
  return out;
}

Command describe_at(const CLI::App& app, std::vector<std::string> path) {
  Command out;
  out.path = path;
  out.description = app.get_description();
  out.needs_subcommand = app.get_require_subcommand_min() > 0;
  for (const auto* o : app.get_options()) {
    if (hidden(o->get_group())) continue;
    if (o->nonpositional())
      out.options.push_back(option_of(*o));
    else if (o->get_positional())
      out.positionals.push_back(positional_of(*o));
  }
  for (const auto* sub : app.get_subcommands([](const CLI::App* a) { return !hidden(a->get_group()); })) {
    auto sub_path = path;
    sub_path.push_back(sub->get_name());
    out.subcommands.push_back(describe_at(*sub, std::move(sub_path)));
  }
  return out;
}

nlohmann::json option_json(const Option& o) {
  return {{"names", o.names},         {"value", o.value},       {"choices", o.choices},
          {"description", o.description}, {"default", o.default_value}, {"required", o.required},
          {"repeats", o.repeats}};
}

nlohmann::json positional_json(const Positional& p) {
  return {{"name", p.name}, {"description", p.description}, {"required", p.required}, {"repeats", p.repeats}};
}

}  // namespace

CLI::Option* choices(CLI::Option* option, std::initializer_list<std::string_view> values) {
  std::string joined;
  for (auto v : values) {
    if (!joined.empty()) joined += '|';
    joined += v;
  }
  return option->type_name(joined);
}

std::string Command::display_name() const {
  std::string out = "svcctl";
  for (const auto& p : path) out += " " + p;
  return out;
}

const Command* Command::find(std::string_view name) const {
  for (const auto& sub : subcommands)
    if (!sub.path.empty() && sub.path.back() == name) return &sub;
  return nullptr;
}

Command describe(const CLI::App& app) { return describe_at(app, {}); }

nlohmann::json to_json(const Command& command) {
  auto options = nlohmann::json::array();
  for (const auto& o : command.options) options.push_back(option_json(o));
  auto positionals = nlohmann::json::array();
  for (const auto& p : command.positionals) positionals.push_back(positional_json(p));
  auto subcommands = nlohmann::json::array();
  for (const auto& s : command.subcommands) subcommands.push_back(to_json(s));
  return {{"name", command.display_name()},
          {"description", command.description},
          {"needs_subcommand", command.needs_subcommand},
          {"options", options},
          {"positionals", positionals},
          {"subcommands", subcommands}};
}

}  // namespace svcctl::cmd::cli
