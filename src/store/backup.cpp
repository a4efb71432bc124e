#include "store/backup.h"

#include <sqlite3.h>
#include <thread>

namespace verbund::store {

namespace {

struct Handle {
  sqlite3* db = nullptr;
  ~Handle() {
    if (db) sqlite3_close_v2(db);
  }
  std::string error() const { return db ? sqlite3_errmsg(db) : "out of memory"; }
};

Error fail(const std::string& what, const Handle& h) {
  return Error{500, what + ": " + h.error()};
}

} // namespace

Result<void> copyDatabase(const std::string& from, const std::string& to) {
  Handle src, dst;
  if (sqlite3_open_v2(from.c_str(), &src.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return fail("open " + from, src);
  sqlite3_busy_timeout(src.db, 5000);
  if (sqlite3_open_v2(to.c_str(), &dst.db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return fail("open " + to, dst);
  sqlite3_busy_timeout(dst.db, 5000);
  // One file: the destination keeps a rollback journal, never a -wal next to it.
  if (sqlite3_exec(dst.db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return fail(to, dst);
  sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
  if (!b) return fail("backup of " + from, dst);
  // All pages in one step: one read transaction of the source, so the copy is one consistent
  // state of it. A writer holding a lock only delays the start (busy: retried for up to 10 s).
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < 200; ++attempt) {
    rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return Error{500, "backup of " + from + ": " + sqlite3_errstr(rc)};
  if (sqlite3_exec(dst.db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return fail(to, dst);
  return {};
}

Result<void> checkDatabaseFile(const std::string& path) {
  Handle h;
  if (sqlite3_open_v2(path.c_str(), &h.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK)
    return fail("open " + path, h);
  // Defensive mode: a crafted file cannot use the schema to run writable-schema tricks.
  sqlite3_db_config(h.db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h.db, "PRAGMA quick_check", -1, &st, nullptr) != SQLITE_OK)
    return Error{400, path + ": not a database file (" + h.error() + ")"};
  std::string problems;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    std::string line = t ? t : "";
    if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return Error{400, path + ": not a database file (" + h.error() + ")"};
  if (!problems.empty()) return Error{400, path + ": damaged: " + problems};
  return {};
}

} // namespace verbund::store
