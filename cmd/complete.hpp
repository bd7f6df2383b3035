// Shell completion over the command tree: what may come at the cursor, given the words
// typed before it. Pure; the registry names it asks for are fetched by the caller
// (`svcctl __complete`, cmd/cli_tools.cpp), which the scripts in completions/ call.
#pragma once

#include "cli_tree.hpp"

#include <map>
#include <string>
#include <vector>

namespace svcctl::cmd::cli {

struct Candidate {
  std::string word;
  std::string description;  // may be empty
};

// Where the candidates come from.
enum class Source {
  Words,       // `candidates` (subcommands, options, enumerated values)
  Files,       // file names
  Services,    // names under /service
  Interfaces,  // names under /api/{service}
  Addresses,   // names under /address/{service}
  Keys,        // names under /key
  Nothing,     // a free value (a number, a URL, ...)
};

struct Completion {
  Source source = Source::Words;
  std::vector<Candidate> candidates;  // for Words: only those starting with `word`
  std::string word;                   // the word being completed, as typed
  std::string prefix;                 // what candidates of a registry source start with ("--zk=")
  std::string service;                // for Interfaces and Addresses: the SVC typed before
  std::map<std::string, std::string> given;  // values typed for options, by their first long name
};

// `words` are the arguments after the program name; the last is the one being completed
// (empty at a fresh word).
Completion complete(const Command& root, const std::vector<std::string>& words);

// For a registry source: `prefix` + each name that makes a word starting with the typed one.
std::vector<Candidate> matching(const Completion& completion, const std::vector<std::string>& names);

}  // namespace svcctl::cmd::cli
