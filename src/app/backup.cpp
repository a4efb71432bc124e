#include "app/backup.h"

#include "app/data_lock.h"
#include "base/private_files.h"
#include "federation/trust/trust_store.h"
#include "store/backup.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace verbund::app {

namespace {

namespace fs = std::filesystem;

constexpr const char* kDatabaseName = "verbund.db";

// The data directory's state files besides the database that a backup carries (only these
// names are ever written by a restore: the file is untrusted input).
const std::array<std::string, 1> kStateFiles{std::string(federation::kSecretFileName)};

// State of the running node that a restored node must not take over: the journal of calls that
// were ringing (a restored node would end them as missed and send CANCELs for calls of the
// original node) and the phones' registrations (they register again with the restored node).
const std::array<std::string, 2> kVolatileTables{"ringing_calls", "registrar_bindings"};

// A small RAII connection for the backup file itself (not a node database: no WAL, no
// migrations).
class Sql {
public:
  ~Sql() {
    if (db_) sqlite3_close_v2(db_);
  }
  Result<void> open(const std::string& path, bool writable) {
    int flags = (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK)
      return Error{kBackupError, "cannot open " + path + ": " + message()};
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_busy_timeout(db_, 5000);
    return {};
  }
  Result<void> exec(const std::string& sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
      return Error{kBackupError, message()};
    return {};
  }
  // Rows of text/blob columns (integers as their text).
  Result<std::vector<std::vector<std::string>>> rows(const std::string& sql,
                                                     const std::vector<std::string>& args = {}) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      return Error{kBackupError, message()};
    for (size_t i = 0; i < args.size(); ++i)
      sqlite3_bind_text(st, int(i + 1), args[i].data(), int(args[i].size()), SQLITE_TRANSIENT);
    std::vector<std::vector<std::string>> out;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const void* p = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        row.emplace_back(p ? std::string(static_cast<const char*>(p), size_t(n)) : std::string());
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Error{kBackupError, message()};
    return out;
  }
  Result<void> insert(const std::string& sql, const std::vector<std::string>& text,
                      const std::string* blob, int64_t number) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      return Error{kBackupError, message()};
    int i = 1;
    for (const auto& t : text)
      sqlite3_bind_text(st, i++, t.data(), int(t.size()), SQLITE_TRANSIENT);
    if (blob) {
      sqlite3_bind_blob(st, i++, blob->data(), int(blob->size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, i++, number);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Error{kBackupError, message()};
    return {};
  }

private:
  std::string message() const { return db_ ? sqlite3_errmsg(db_) : "out of memory"; }
  sqlite3* db_ = nullptr;
};

Result<std::string> readWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error{kBackupError, "cannot read " + path + ": " + std::strerror(errno)};
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  ::close(fd);
  if (n < 0) return Error{kBackupError, "cannot read " + path + ": " + std::strerror(errno)};
  return out;
}

// Copies a file byte for byte into a new private file (0600), flushed to disk.
Result<void> copyPrivate(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Error{kBackupError, "cannot read " + from + ": " + std::strerror(errno)};
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) {
    ::close(in);
    return Error{kBackupError, "cannot create " + to + ": " + std::strerror(errno)};
  }
  char buf[1 << 16];
  ssize_t n;
  bool ok = true;
  while (ok && (n = ::read(in, buf, sizeof buf)) > 0) ok = ::write(out, buf, size_t(n)) == n;
  ok = ok && n == 0 && ::fsync(out) == 0;
  ::close(in);
  ::close(out);
  if (!ok) return Error{kBackupError, "cannot copy " + from + " to " + to};
  return {};
}

void syncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

std::string directoryOf(const std::string& file) {
  auto parent = fs::path(file).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Files the command creates in (or leaves beside) the database must belong to the node's user:
// run as another user (root), SQLite's -wal/-shm or the restored database would be that user's
// and the node could not open them.
Result<void> checkOwner(const std::string& dataDir) {
  struct stat st {};
  if (::stat(dataDir.c_str(), &st) != 0) return {}; // does not exist (yet)
  if (st.st_uid == ::geteuid()) return {};
  return Error{kBackupError, "data directory " + dataDir + " belongs to user id " +
                                 std::to_string(st.st_uid) + ", not to this user (" +
                                 std::to_string(::geteuid()) +
                                 "): run the command as the node's user (sudo -u ...)"};
}

} // namespace

std::optional<int> majorVersion(const std::string& version) {
  size_t i = 0;
  int major = 0;
  while (i < version.size() && version[i] >= '0' && version[i] <= '9' && i < 6)
    major = major * 10 + (version[i++] - '0');
  if (i == 0) return std::nullopt;
  return major;
}

Result<BackupManifest> createBackup(const std::string& dataDir, const std::string& file,
                                    const std::string& version, int64_t createdMs) {
  const std::string db = dataDir + "/" + kDatabaseName;
  if (auto o = checkOwner(dataDir); !o) return o.error();
  std::error_code ec;
  if (!fs::is_regular_file(db, ec))
    return Error{kBackupError, "no database at " + db + " (is the data directory right?)"};
  // Created private before SQLite writes a byte into it; renamed into place at the end, so a
  // failed backup never leaves a half-written FILE.
  const std::string tmp = file + ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error{kBackupError, "cannot create " + tmp + ": " + std::strerror(errno)};
  ::close(fd);
  auto fail = [&](Error e) -> Result<BackupManifest> {
    ::unlink(tmp.c_str());
    ::unlink((tmp + "-journal").c_str());
    return e;
  };
  if (auto r = store::copyDatabase(db, tmp); !r)
    return fail(Error{kBackupError, r.error().message});

  BackupManifest m;
  m.version = version;
  m.createdMs = createdMs;
  {
    Sql out;
    if (auto r = out.open(tmp, true); !r) return fail(r.error());
    auto schema = out.rows("SELECT module, MAX(version) FROM schema_migrations GROUP BY module");
    if (!schema)
      return fail(Error{kBackupError, "the database has no schema: " + schema.error().message});
    for (const auto& row : *schema) m.schema[row[0]] = std::atoi(row[1].c_str());
    if (auto id = out.rows("SELECT id FROM node_identity LIMIT 1"); id && !id->empty())
      m.nodeId = id->at(0)[0];
    nlohmann::json schemaJson = m.schema;
    if (auto r = out.exec("BEGIN;"
                          "CREATE TABLE verbund_backup(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                          "CREATE TABLE verbund_backup_files(name TEXT PRIMARY KEY, "
                          "data BLOB NOT NULL, mode INTEGER NOT NULL);");
        !r)
      return fail(r.error());
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
             {"format", m.format},
             {"version", m.version},
             {"schema", schemaJson.dump()},
             {"node_id", m.nodeId},
             {"created_ms", std::to_string(m.createdMs)}}) {
      if (auto r = out.insert("INSERT INTO verbund_backup(key, value) VALUES (?1, ?2)", {k, v},
                              nullptr, 0);
          !r)
        return fail(r.error());
    }
    for (const auto& name : kStateFiles) {
      const std::string path = dataDir + "/" + name;
      if (!fs::exists(path, ec)) continue;
      auto data = readWholeFile(path);
      if (!data) return fail(data.error());
      if (auto r = out.insert("INSERT INTO verbund_backup_files(name, data, mode) "
                              "VALUES (?1, ?2, ?3)",
                              {name}, &*data, 0600);
          !r)
        return fail(r.error());
    }
    if (auto r = out.exec("COMMIT"); !r) return fail(r.error());
  }
  fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return fail(Error{kBackupError, "cannot write " + file + ": " + std::strerror(errno)});
  // A FILE that existed before keeps no looser mode than the new one.
  (void)::chmod(file.c_str(), 0600);
  syncDirectory(directoryOf(file));
  return m;
}

Result<BackupManifest> readBackupManifest(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return Error{kBackupError, "no such file: " + file};
  if (auto r = store::checkDatabaseFile(file); !r)
    return Error{kBackupError, "not a verbund backup: " + r.error().message};
  Sql in;
  if (auto r = in.open(file, false); !r) return r.error();
  auto rows = in.rows("SELECT key, value FROM verbund_backup");
  if (!rows) return Error{kBackupError, file + ": not a verbund backup (no manifest)"};
  BackupManifest m;
  m.format.clear();
  for (const auto& row : *rows) {
    const std::string& k = row[0];
    const std::string& v = row[1];
    if (k == "format") {
      m.format = v;
    } else if (k == "version") {
      m.version = v;
    } else if (k == "node_id") {
      m.nodeId = v;
    } else if (k == "created_ms") {
      m.createdMs = std::atoll(v.c_str());
    } else if (k == "schema") {
      auto j = nlohmann::json::parse(v, nullptr, false);
      if (!j.is_object()) return Error{kBackupError, file + ": manifest schema is damaged"};
      for (const auto& [module, n] : j.items()) {
        if (!n.is_number_integer())
          return Error{kBackupError, file + ": manifest schema is damaged"};
        m.schema[module] = n.get<int>();
      }
    }
  }
  if (m.format != kBackupFormat)
    return Error{kBackupError, file + ": unknown backup format '" + m.format +
                                   "' (this verbund "
                                   "reads " +
                                   kBackupFormat + ")"};
  if (!majorVersion(m.version))
    return Error{kBackupError, file + ": manifest has no product version"};
  return m;
}

std::optional<BackupError> checkCompatible(const BackupManifest& m, const std::string& version,
                                           const std::map<std::string, int>& known) {
  int mine = majorVersion(version).value_or(0);
  int theirs = majorVersion(m.version).value_or(0);
  if (theirs > mine)
    return BackupError{kBackupTooNew, "the backup was made by verbund " + m.version +
                                          ", a newer major version than this one (" + version +
                                          "): restore it with verbund " + std::to_string(theirs) +
                                          ".x or newer; nothing was changed"};
  for (const auto& [module, v] : m.schema) {
    auto it = known.find(module);
    int have = it == known.end() ? 0 : it->second;
    if (v > have)
      return BackupError{kBackupTooNew,
                         "the backup's database schema is newer than this verbund knows (" +
                             module + " version " + std::to_string(v) + ", this " + version +
                             " knows " + std::to_string(have) + "): restore it with verbund " +
                             m.version + " or newer; nothing was changed"};
  }
  return std::nullopt;
}

std::optional<BackupError> restoreBackup(const std::string& file, const std::string& dataDir,
                                         const std::string& version,
                                         const std::map<std::string, int>& known,
                                         RestoreOptions options, BackupManifest* restored) {
  auto m = readBackupManifest(file);
  if (!m) return BackupError{m.error().code, m.error().message};
  if (auto bad = checkCompatible(*m, version, known)) return bad;

  if (auto o = checkOwner(dataDir); !o) return BackupError{kBackupError, o.error().message};
  std::error_code ec;
  fs::create_directories(dataDir, ec);
  if (ec) return BackupError{kBackupError, "data directory " + dataDir + ": " + ec.message()};
  (void)::chmod(dataDir.c_str(), 0700);
  // Held until the end: a node starting meanwhile is refused instead of opening a half-restored
  // directory.
  auto lock = DataDirLock::acquire(dataDir);
  if (!lock) {
    if (lock.error().code == 409)
      return BackupError{kBackupRefused, lock.error().message + ": stop the node first"};
    return BackupError{kBackupError, lock.error().message};
  }
  const std::string db = dataDir + "/" + kDatabaseName;
  if (fs::exists(db, ec) && !options.force)
    return BackupError{kBackupRefused, dataDir + " already has a database; restoring replaces "
                                                 "it (users, calls, federation): add --force"};

  const std::string tmp = db + ".restore";
  if (auto r = copyPrivate(file, tmp); !r) return BackupError{kBackupError, r.error().message};
  std::vector<std::pair<std::string, std::string>> files;
  {
    Sql in;
    if (auto r = in.open(tmp, true); !r) {
      ::unlink(tmp.c_str());
      return BackupError{kBackupError, r.error().message};
    }
    auto rows = in.rows("SELECT name, data FROM verbund_backup_files");
    if (!rows) {
      ::unlink(tmp.c_str());
      return BackupError{kBackupError, file + ": damaged: " + rows.error().message};
    }
    for (auto& row : *rows)
      for (const auto& allowed : kStateFiles)
        if (row[0] == allowed) files.emplace_back(row[0], std::move(row[1]));
    std::string drop = "DROP TABLE verbund_backup; DROP TABLE verbund_backup_files;";
    for (const auto& table : kVolatileTables) {
      auto exists =
          in.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1", {table});
      if (exists && !exists->empty()) drop += "DELETE FROM " + table + ";";
    }
    if (auto r = in.exec(drop); !r) {
      ::unlink(tmp.c_str());
      return BackupError{kBackupError, file + ": " + r.error().message};
    }
  }
  for (const auto& name : kStateFiles) {
    const std::string path = dataDir + "/" + name;
    auto it =
        std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.first == name; });
    if (it == files.end()) {
      ::unlink(path.c_str()); // belongs to the replaced database
      continue;
    }
    if (auto w = writePrivateFile(path, it->second); !w) {
      ::unlink(tmp.c_str());
      return BackupError{kBackupError, w.error().message};
    }
  }
  // The replaced database's WAL must not be applied to the restored one.
  ::unlink((db + "-wal").c_str());
  ::unlink((db + "-shm").c_str());
  if (::rename(tmp.c_str(), db.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return BackupError{kBackupError, "cannot write " + db + ": " + std::strerror(errno)};
  }
  syncDirectory(dataDir);
  if (restored) *restored = *m;
  return std::nullopt;
}

} // namespace verbund::app
