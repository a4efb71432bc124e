#include "app/cli_backup.h"

#include "app/backup.h"
#include "app/config.h"
#include "app/node.h"
#include "app/version.h"

#include <chrono>
#include <cstdio>

namespace verbund::app {

struct BackupCommands::State {
  CLI::App *backup = nullptr, *restore = nullptr;
  std::string file, configPath, dataDir;
  bool force = false;
};

BackupCommands::BackupCommands(CLI::App& app) : s_(std::make_unique<State>()) {
  auto& s = *s_;
  auto common = [&s](CLI::App* c) {
    c->add_option("file", s.file, "the backup file")->required();
    c->add_option("-c,--config", s.configPath, "TOML configuration file of the node")
        ->check(CLI::ExistingFile);
    c->add_option("--data-dir", s.dataDir, "data directory (default: node.data_dir of the config)");
  };
  s.backup = app.add_subcommand(
      "backup", "Copy the node's data (database and federation key secret) into one file (mode "
                "0600); works while the node runs");
  common(s.backup);
  s.restore = app.add_subcommand(
      "restore", "Restore a backup into the data directory of a stopped or new node");
  common(s.restore);
  s.restore->add_flag("--force", s.force, "replace the database the data directory has");
}

BackupCommands::~BackupCommands() = default;

bool BackupCommands::selected() const {
  return s_->backup->parsed() || s_->restore->parsed();
}

int BackupCommands::run() {
  auto& s = *s_;
  NodeConfig cfg = defaultConfig();
  if (!s.configPath.empty()) {
    auto c = loadConfig(s.configPath);
    if (!c) {
      std::fprintf(stderr, "verbund: %s\n", c.error().message.c_str());
      return kBackupError;
    }
    cfg = c.value();
  }
  if (!s.dataDir.empty()) cfg.dataDir = s.dataDir;
  if (s.backup->parsed()) {
    // The CLI has no event loop: the manifest's time is the one wall-clock read of the command.
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto m = createBackup(cfg.dataDir, s.file, std::string(kProductVersion), now);
    if (!m) {
      std::fprintf(stderr, "verbund backup: %s\n", m.error().message.c_str());
      return m.error().code == 0 ? kBackupError : m.error().code;
    }
    std::printf("wrote %s (verbund %s, node %s)\n", s.file.c_str(), m->version.c_str(),
                m->nodeId.c_str());
    return 0;
  }
  BackupManifest restored;
  if (auto e = restoreBackup(s.file, cfg.dataDir, std::string(kProductVersion),
                             Node::schemaVersions(), RestoreOptions{s.force}, &restored)) {
    std::fprintf(stderr, "verbund restore: %s\n", e->message.c_str());
    return e->exitCode;
  }
  std::printf("restored %s into %s (made by verbund %s, node %s); start the node now\n",
              s.file.c_str(), cfg.dataDir.c_str(), restored.version.c_str(),
              restored.nodeId.c_str());
  return 0;
}

} // namespace verbund::app
