#pragma once
// Consistent copies of a live SQLite database with SQLite's online backup API: the copy is a
// snapshot of one read transaction of the source, taken while the node keeps writing (WAL: the
// writer is never blocked by the reader). Used by `verbund backup` and `verbund restore`.
#include "base/result.h"

#include <string>

namespace verbund::store {

// Copies every page of the database `from` into the database file `to` (created if needed; its
// content is replaced). `to` ends up in rollback-journal mode (one file, no -wal). The source is
// opened read-write without create (a WAL reader needs the -shm file), never written.
Result<void> copyDatabase(const std::string& from, const std::string& to);

// Runs "PRAGMA quick_check" on a database file opened read-only: an error naming what is wrong.
Result<void> checkDatabaseFile(const std::string& path);

} // namespace verbund::store
