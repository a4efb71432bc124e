#pragma once
// `verbund doctor`: checks a node's set-up and, through its admin API, the running node, and
// prints each problem in plain words with what to do (README "Health check"):
//   ports (bindable, or held by the node), TLS certificates (expired, expiring within 30 days),
//   the media relay (rtpengine program, the node's view, ng ping of external instances), the
//   trunk (registration state, refused credentials), each federation member (control port
//   reachable, link state), file permissions (data directory, database, keys).
// Exit code: 0 no problem (warnings allowed), 1 at least one problem, 2 usage error.
#include <CLI/CLI.hpp>
#include <iosfwd>
#include <memory>

namespace verbund::app {

struct DoctorState;

class DoctorCommand {
public:
  // Adds the subcommand "doctor" to app.
  explicit DoctorCommand(CLI::App& app);
  ~DoctorCommand();
  bool selected() const;
  int run(std::ostream& out, std::ostream& err);

private:
  std::unique_ptr<DoctorState> s_;
};

} // namespace verbund::app
