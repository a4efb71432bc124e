#pragma once
// SQLite access for the node: one connection, WAL journal, numbered schema migrations, prepared
// statements. One thread at a time (no locks inside): the node's event loop for the main
// database; the registrar's storage thread for the bindings file once it is loaded.
//
// Durability is chosen per file. Full (synchronous=FULL): a committed transaction survives a
// power cut (a disk flush per commit): admin changes, federation state and call records, which
// are acknowledged to someone. Normal (synchronous=NORMAL): survives kill -9 of the process (the
// WAL is in the OS page cache) but a power cut may take the last transactions (the file stays
// consistent): the registrar's bindings, written behind in batches, which phones re-register
// anyway.
#include "base/result.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace verbund::store {

using Value = std::variant<std::nullptr_t, int64_t, double, std::string>;
using Row = std::vector<Value>;

// A migration of one module's tables: modules number their migrations independently (1, 2, ...)
// and the database records which (module, version) pairs were applied, so modules can add
// tables without coordinating one global version number.
struct Migration {
  const char* module;
  int version;
  const char* name;
  const char* sql;
};

enum class Durability { Full, Normal };

class Database {
public:
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens (creating if needed) the database file and applies every migration not applied yet,
  // each in its own transaction, in the order given. ":memory:" works for tests.
  static Result<std::unique_ptr<Database>> open(const std::string& path,
                                                const std::vector<Migration>& migrations,
                                                Durability durability = Durability::Full);

  // PRAGMA synchronous of this connection (2 = FULL, 1 = NORMAL).
  int synchronousLevel();
  // How long a statement waits for a lock held by another connection (default 5 s) before it
  // fails with code 503 (busy). A connection used on an event loop keeps this short.
  void setBusyTimeout(std::chrono::milliseconds t);

  // Runs one statement with bound parameters (?1, ?2, ...). Statements are prepared once and
  // cached by their text.
  Result<void> exec(std::string_view sql, const std::vector<Value>& params = {});
  Result<std::vector<Row>> query(std::string_view sql, const std::vector<Value>& params = {});
  // Rows changed by the last exec, and the rowid of the last insert.
  int64_t changes() const;
  int64_t lastInsertId() const;

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT; rolls back when fn returns an error.
  Result<void> transaction(const std::function<Result<void>()>& fn);

  // Runs a script of several statements (migrations, tests).
  Result<void> execScript(const std::string& sql);

  // Highest applied migration version of a module (0: none).
  int schemaVersion(std::string_view module);

private:
  Database() = default;
  Result<sqlite3_stmt*> prepare(std::string_view sql);
  Result<void> bind(sqlite3_stmt* st, const std::vector<Value>& params);
  Error sqlError(const std::string& what) const;
  bool busy() const;

  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> stmts_;
};

// Accessors for row values with type checks (database rows are untrusted input too).
std::optional<int64_t> asInt(const Value& v);
std::optional<std::string> asText(const Value& v);

} // namespace verbund::store
