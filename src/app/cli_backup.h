#pragma once
// `verbund backup FILE` and `verbund restore FILE` (backup.h): they work on the data directory
// named by the configuration file (or --data-dir), not through the admin API, so that restore
// works on a stopped node and backup needs no credentials beyond access to the data directory.
#include <CLI/CLI.hpp>
#include <memory>

namespace verbund::app {

class BackupCommands {
public:
  // Adds the subcommands "backup" and "restore" to app.
  explicit BackupCommands(CLI::App& app);
  ~BackupCommands();
  // True when one of them was chosen (after parsing).
  bool selected() const;
  // Runs it; the exit codes of backup.h.
  int run();

private:
  struct State;
  std::unique_ptr<State> s_;
};

} // namespace verbund::app
