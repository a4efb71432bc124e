#pragma once
// `verbund backup FILE` and `verbund restore FILE` (README "Backup and restore").
//
// A backup is one SQLite file: a consistent copy of the node's database (store::copyDatabase,
// taken while the node runs) plus two tables of its own: `verbund_backup` (the manifest: format,
// product version, schema versions per module, node id and name, time) and
// `verbund_backup_files` (the data directory's other state files, byte for byte: the federation
// key secret). The federation keys stay as the database stores them, encrypted under that
// secret; so the backup is as secret as the data directory and is written with mode 0600.
//
// Restore refuses while a node holds the data directory's lock (data_lock.h), refuses a backup
// of a newer major version or with a schema migration this binary does not know, and replaces
// the database (and the state files) of a stopped or fresh node. An older backup is brought up
// to date by the normal migrations when the node starts.
#include "base/result.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace verbund::app {

inline constexpr const char* kBackupFormat = "verbund-backup/1";

struct BackupManifest {
  std::string format = kBackupFormat;
  std::string version;               // product version of the verbund that made it
  std::map<std::string, int> schema; // module -> highest applied migration
  std::string nodeId, nodeName;
  int64_t createdMs = 0;
};

// Exit codes of both commands: 0 done, 1 refused (a node runs on the data directory; the data
// directory has a database and --force was not given), 2 usage, I/O error or not a backup,
// 3 the backup is from a newer version than this binary.
inline constexpr int kBackupRefused = 1;
inline constexpr int kBackupError = 2;
inline constexpr int kBackupTooNew = 3;

struct BackupError {
  int exitCode;
  std::string message;
};

// Writes the backup of `dataDir` to `file` (through a temporary file next to it, renamed at the
// end; mode 0600). `createdMs` is the time written into the manifest.
Result<BackupManifest> createBackup(const std::string& dataDir, const std::string& file,
                                    const std::string& version, int64_t createdMs);

// Reads and checks a backup's manifest (quick_check of the file first).
Result<BackupManifest> readBackupManifest(const std::string& file);

// Whether this binary (product `version`, migrations `known`) may restore the backup: an error
// with exit code kBackupTooNew and a message saying what to do otherwise.
std::optional<BackupError> checkCompatible(const BackupManifest& m, const std::string& version,
                                           const std::map<std::string, int>& known);

struct RestoreOptions {
  bool force = false; // replace an existing database
};

// Restores `file` into `dataDir` (created if missing). Errors carry the exit code.
std::optional<BackupError> restoreBackup(const std::string& file, const std::string& dataDir,
                                         const std::string& version,
                                         const std::map<std::string, int>& known,
                                         RestoreOptions options, BackupManifest* restored);

// "1.2.3" -> 1; nullopt when it does not start with a number.
std::optional<int> majorVersion(const std::string& version);

} // namespace verbund::app
