#include "store/database.h"
#include "store/storage_thread.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace verbund::store {
namespace {

std::vector<Migration> migrations() {
  return {{"test", 1, "items",
           "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"},
          {"test", 2, "items.note", "ALTER TABLE items ADD COLUMN note TEXT;"}};
}

TEST(Database, MigratesAndQueries) {
  auto db = Database::open(":memory:", migrations());
  ASSERT_TRUE(db.ok()) << db.error().message;
  EXPECT_EQ((*db)->schemaVersion("test"), 2);
  EXPECT_EQ((*db)->schemaVersion("other"), 0);
  ASSERT_TRUE(
      (*db)->exec("INSERT INTO items(name, note) VALUES (?1, ?2)", {std::string("a"), nullptr}));
  auto dup = (*db)->exec("INSERT INTO items(name) VALUES (?1)", {std::string("a")});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, 409);
  auto rows = (*db)->query("SELECT id, name, note FROM items");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(asText(rows->at(0)[1]).value_or(""), "a");
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(rows->at(0)[2]));
}

TEST(Database, TransactionRollsBackOnError) {
  auto db = Database::open(":memory:", migrations());
  ASSERT_TRUE(db.ok());
  auto r = (*db)->transaction([&]() -> Result<void> {
    if (auto e = (*db)->exec("INSERT INTO items(name) VALUES ('x')"); !e) return e;
    return Error{400, "abort"};
  });
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE((*db)->query("SELECT * FROM items")->empty());
}

TEST(Database, ReopenKeepsDataAndVersion) {
  auto path = std::filesystem::temp_directory_path() / ("verbund-db-" + std::to_string(getpid()));
  std::filesystem::remove(path);
  {
    auto db = Database::open(path.string(), migrations());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->exec("INSERT INTO items(name) VALUES ('kept')"));
  }
  auto db = Database::open(path.string(), migrations());
  ASSERT_TRUE(db.ok());
  EXPECT_EQ((*db)->query("SELECT name FROM items")->size(), 1u);
  db = Error{0, ""};
  for (auto suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}

TEST(Database, DurabilityAndBusyLocks) {
  auto path =
      std::filesystem::temp_directory_path() / ("verbund-db-busy-" + std::to_string(getpid()));
  std::filesystem::remove(path);
  {
    auto full = Database::open(path.string(), migrations());
    ASSERT_TRUE(full.ok());
    EXPECT_EQ((*full)->synchronousLevel(), 2);
    auto normal = Database::open(path.string(), {}, Durability::Normal);
    ASSERT_TRUE(normal.ok());
    EXPECT_EQ((*normal)->synchronousLevel(), 1);
    // A lock held by another connection: a write fails after the busy timeout with 503.
    ASSERT_TRUE((*normal)->execScript("BEGIN EXCLUSIVE"));
    (*full)->setBusyTimeout(std::chrono::milliseconds(20));
    auto w = (*full)->exec("INSERT INTO items(name) VALUES ('x')");
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, 503);
    auto t =
        (*full)->transaction([&] { return (*full)->exec("INSERT INTO items(name) VALUES ('y')"); });
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, 503);
    ASSERT_TRUE((*normal)->execScript("COMMIT"));
    EXPECT_TRUE((*full)->exec("INSERT INTO items(name) VALUES ('z')").ok());
  }
  for (auto suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}

TEST(StorageThread, RunsJobsInOrderAndDrains) {
  std::vector<int> seen;
  {
    StorageThread t;
    for (int i = 0; i < 100; ++i) t.post([&seen, i] { seen.push_back(i); });
    t.drain();
    EXPECT_EQ(seen.size(), 100u);
    t.post([&seen] { seen.push_back(100); });
  } // the destructor runs what is left
  ASSERT_EQ(seen.size(), 101u);
  for (int i = 0; i <= 100; ++i) EXPECT_EQ(seen[size_t(i)], i);
}

TEST(Database, FailedMigrationReportsItsName) {
  auto db = Database::open(":memory:", {{"test", 1, "broken", "CREATE TABLE ("}});
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.error().message.find("broken"), std::string::npos);
}

} // namespace
} // namespace verbund::store
