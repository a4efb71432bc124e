#pragma once
// Command line tools that manage a running node through its admin REST API over loopback:
//   verbund user  list|add|set|features|delete
//   verbund group list|add|set|delete|login|logout
//   verbund admin set-password
// Credentials: --token / VERBUND_API_TOKEN (bearer token), else the admin password from
// --password-file / VERBUND_ADMIN_PASSWORD (a session is opened and closed around the command).
#include <CLI/CLI.hpp>
#include <iosfwd>
#include <memory>

namespace verbund::app {

struct AdminCliState;

class AdminCommands {
public:
  // Adds the subcommands "user", "group" and "admin" to app.
  explicit AdminCommands(CLI::App& app);
  ~AdminCommands();
  // True when one of them was chosen on the command line (after app.parse()).
  bool selected() const;
  // Runs the chosen command; returns the process exit code (0 ok, 1 API error, 2 usage or
  // connection error). `in` supplies passwords read from stdin.
  int run(std::istream& in, std::ostream& out, std::ostream& err);
  int run();

private:
  std::unique_ptr<AdminCliState> s_;
};

} // namespace verbund::app
