// Renders command results: an aligned table for people, JSON for programs.
// Commands build one JSON value (the stable contract) and, for tables, the rows from it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::output {

enum class Format { Table, Json };

// "table", "json", or "auto"/empty: a table when stdout is a terminal, JSON otherwise.
// Returns nullopt for anything else.
std::optional<Format> parse_format(std::string_view text, bool stdout_is_tty);

bool stdout_is_tty();
enum class Color { Off, On };
// Colour only on a terminal, and never when NO_COLOR is set or TERM is "dumb".
Color use_color(std::FILE* stream);

enum class Tone { Plain, Good, Bad, Dim };

struct Cell {
  std::string text;
  Tone tone = Tone::Plain;
};

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : m_headers(std::move(headers)) {}
  void add_row(std::vector<Cell> row) { m_rows.push_back(std::move(row)); }
  bool empty() const { return m_rows.empty(); }
  // Columns padded to their widest cell (counted in UTF-8 code points), two spaces apart;
  // the last column is not padded. Colour codes only with Color::On.
  std::string render(Color color) const;

 private:
  std::vector<std::string> m_headers;
  std::vector<std::vector<Cell>> m_rows;
};

// The tone for a status word: up is good, down is bad.
Tone status_tone(std::string_view status);

// Pretty JSON (two-space indent) and a newline, on stdout.
void print_json(const nlohmann::json& value);

}  // namespace svcctl::output
