#include "store/database.h"

#include "base/log.h"

#include <sqlite3.h>

namespace verbund::store {

Database::~Database() {
  for (auto& [sql, st] : stmts_) sqlite3_finalize(st);
  if (db_) sqlite3_close_v2(db_);
}

Error Database::sqlError(const std::string& what) const {
  return Error{busy() ? 503 : 500, what + ": " + (db_ ? sqlite3_errmsg(db_) : "no database")};
}

bool Database::busy() const {
  int rc = db_ ? (sqlite3_extended_errcode(db_) & 0xff) : 0;
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

void Database::setBusyTimeout(std::chrono::milliseconds t) {
  sqlite3_busy_timeout(db_, int(t.count()));
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path,
                                                 const std::vector<Migration>& migrations,
                                                 Durability durability) {
  std::unique_ptr<Database> d(new Database());
  int rc =
      sqlite3_open_v2(path.c_str(), &d->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return d->sqlError("open " + path);
  sqlite3_busy_timeout(d->db_, 5000);
  const char* sync =
      durability == Durability::Full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  for (const char* pragma : {"PRAGMA journal_mode=WAL", sync, "PRAGMA foreign_keys=ON"}) {
    if (auto r = d->execScript(pragma); !r) return r.error();
  }
  if (auto r = d->execScript("CREATE TABLE IF NOT EXISTS schema_migrations(module TEXT NOT NULL, "
                             "version INTEGER NOT NULL, name TEXT NOT NULL, applied_at INTEGER "
                             "NOT NULL DEFAULT (unixepoch()), PRIMARY KEY(module, version))");
      !r)
    return r.error();
  for (const auto& m : migrations) {
    if (m.version <= d->schemaVersion(m.module)) continue;
    auto r = d->transaction([&]() -> Result<void> {
      if (auto s = d->execScript(m.sql); !s) return s;
      return d->exec("INSERT INTO schema_migrations(module, version, name) VALUES (?1, ?2, ?3)",
                     {std::string(m.module), int64_t(m.version), std::string(m.name)});
    });
    if (!r) {
      return Error{500, std::string("migration ") + m.module + "/" + std::to_string(m.version) +
                            " (" + m.name + ") failed: " + r.error().message};
    }
    logger("store")->info("schema {} migrated to version {} ({})", m.module, m.version, m.name);
  }
  return d;
}

Result<void> Database::execScript(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Error{busy() ? 503 : 500, msg};
  }
  return {};
}

Result<sqlite3_stmt*> Database::prepare(std::string_view sql) {
  std::string key(sql);
  auto it = stmts_.find(key);
  if (it != stmts_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), int(sql.size()), SQLITE_PREPARE_PERSISTENT, &st,
                         nullptr) != SQLITE_OK)
    return sqlError("prepare");
  stmts_.emplace(std::move(key), st);
  return st;
}

Result<void> Database::bind(sqlite3_stmt* st, const std::vector<Value>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    int idx = int(i + 1);
    int rc = std::visit(
        [&](const auto& v) -> int {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>)
            return sqlite3_bind_null(st, idx);
          else if constexpr (std::is_same_v<T, int64_t>)
            return sqlite3_bind_int64(st, idx, v);
          else if constexpr (std::is_same_v<T, double>)
            return sqlite3_bind_double(st, idx, v);
          else
            return sqlite3_bind_text(st, idx, v.data(), int(v.size()), SQLITE_TRANSIENT);
        },
        params[i]);
    if (rc != SQLITE_OK) return sqlError("bind");
  }
  return {};
}

Result<void> Database::exec(std::string_view sql, const std::vector<Value>& params) {
  auto st = prepare(sql);
  if (!st) return st.error();
  if (auto b = bind(*st, params); !b) return b;
  int rc;
  while ((rc = sqlite3_step(*st)) == SQLITE_ROW) {
  }
  sqlite3_reset(*st);
  if (rc != SQLITE_DONE) {
    int ext = sqlite3_extended_errcode(db_);
    Error e = sqlError("exec");
    if ((ext & 0xff) == SQLITE_CONSTRAINT) e.code = 409;
    return e;
  }
  return {};
}

Result<std::vector<Row>> Database::query(std::string_view sql, const std::vector<Value>& params) {
  auto st = prepare(sql);
  if (!st) return st.error();
  if (auto b = bind(*st, params); !b) return b.error();
  std::vector<Row> rows;
  int rc;
  while ((rc = sqlite3_step(*st)) == SQLITE_ROW) {
    int n = sqlite3_column_count(*st);
    Row row;
    row.reserve(size_t(n));
    for (int i = 0; i < n; ++i) {
      switch (sqlite3_column_type(*st, i)) {
      case SQLITE_INTEGER:
        row.emplace_back(int64_t(sqlite3_column_int64(*st, i)));
        break;
      case SQLITE_FLOAT:
        row.emplace_back(sqlite3_column_double(*st, i));
        break;
      case SQLITE_NULL:
        row.emplace_back(nullptr);
        break;
      default: {
        auto* p = reinterpret_cast<const char*>(sqlite3_column_text(*st, i));
        row.emplace_back(std::string(p ? p : "", size_t(sqlite3_column_bytes(*st, i))));
      }
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_reset(*st);
  if (rc != SQLITE_DONE) return sqlError("query");
  return rows;
}

int Database::schemaVersion(std::string_view module) {
  auto v =
      query("SELECT MAX(version) FROM schema_migrations WHERE module = ?1", {std::string(module)});
  if (!v || v->empty()) return 0;
  return int(asInt(v->at(0).at(0)).value_or(0));
}

int Database::synchronousLevel() {
  auto v = query("PRAGMA synchronous");
  if (!v || v->empty() || v->at(0).empty()) return -1;
  return int(asInt(v->at(0).at(0)).value_or(-1));
}

int64_t Database::changes() const {
  return sqlite3_changes64(db_);
}
int64_t Database::lastInsertId() const {
  return sqlite3_last_insert_rowid(db_);
}

Result<void> Database::transaction(const std::function<Result<void>()>& fn) {
  if (auto r = execScript("BEGIN IMMEDIATE"); !r) return r;
  auto r = fn();
  if (!r) {
    (void)execScript("ROLLBACK");
    return r;
  }
  if (auto c = execScript("COMMIT"); !c) {
    (void)execScript("ROLLBACK");
    return c;
  }
  return {};
}

std::optional<int64_t> asInt(const Value& v) {
  if (auto p = std::get_if<int64_t>(&v)) return *p;
  return std::nullopt;
}

std::optional<std::string> asText(const Value& v) {
  if (auto p = std::get_if<std::string>(&v)) return *p;
  return std::nullopt;
}

} // namespace verbund::store
