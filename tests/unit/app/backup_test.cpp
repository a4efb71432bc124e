// Backup and restore of a data directory (src/app/backup.h) on real files: the copy while the
// database is open and written, the manifest, mode 0600, the refusals (running node, existing
// database, newer major version, unknown schema, not a backup).
#include "app/backup.h"
#include "app/data_lock.h"
#include "store/database.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

namespace verbund::app {
namespace {

namespace fs = std::filesystem;

std::vector<store::Migration> schema() {
  return {{"node", 1, "node identity",
           "CREATE TABLE node_identity(id TEXT NOT NULL, "
           "created_ms INTEGER NOT NULL);"},
          {"things", 1, "things", "CREATE TABLE things(id INTEGER PRIMARY KEY, name TEXT);"},
          {"things", 2, "more", "ALTER TABLE things ADD COLUMN more TEXT;"},
          {"calls", 1, "journal", "CREATE TABLE ringing_calls(id TEXT);"}};
}
const std::map<std::string, int> kKnown{{"node", 1}, {"things", 2}, {"calls", 1}};

class BackupTest : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("verbund-backup-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "a");
    a_ = (root_ / "a").string();
    b_ = (root_ / "b").string();
    file_ = (root_ / "node.backup").string();
    db_ = std::move(store::Database::open(a_ + "/verbund.db", schema()).value());
    ASSERT_TRUE(db_->exec("INSERT INTO node_identity VALUES ('node-1', 1)").ok());
    for (int i = 0; i < 100; ++i)
      ASSERT_TRUE(
          db_->exec("INSERT INTO things(name) VALUES (?1)", {"n" + std::to_string(i)}).ok());
    ASSERT_TRUE(db_->exec("INSERT INTO ringing_calls VALUES ('a call of node a')").ok());
    std::ofstream(a_ + "/federation-trust.secret") << std::string(64, 'a') << "\n";
    fs::permissions(a_ + "/federation-trust.secret",
                    fs::perms::owner_read | fs::perms::owner_write);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(root_);
  }
  static int64_t things(const std::string& dir) {
    auto db = store::Database::open(dir + "/verbund.db", {});
    auto rows = (*db)->query("SELECT COUNT(*) FROM things");
    return store::asInt(rows->at(0).at(0)).value_or(-1);
  }
  void setManifest(const std::string& key, const std::string& value) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file_.c_str(), &db), SQLITE_OK);
    std::string sql = "UPDATE verbund_backup SET value = '" + value + "' WHERE key = '" + key + "'";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  fs::path root_;
  std::string a_, b_, file_;
  std::unique_ptr<store::Database> db_;
};

TEST_F(BackupTest, RoundTripWhileTheDatabaseIsOpen) {
  // The node keeps the database open and in WAL mode; part of the data is in the WAL only.
  auto m = createBackup(a_, file_, "0.1.0", 1767225600000);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->nodeId, "node-1");
  EXPECT_EQ(m->schema.at("things"), 2);
  struct stat st {};
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(file_ + "-journal"));
  EXPECT_FALSE(fs::exists(file_ + "-wal"));

  auto read = readBackupManifest(file_);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->version, "0.1.0");
  EXPECT_EQ(read->createdMs, 1767225600000);
  EXPECT_EQ(read->schema, m->schema);

  BackupManifest restored;
  auto e = restoreBackup(file_, b_, "0.1.0", kKnown, {}, &restored);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(restored.nodeId, "node-1");
  EXPECT_EQ(things(b_), 100);
  std::ifstream secret(b_ + "/federation-trust.secret");
  std::string line;
  std::getline(secret, line);
  EXPECT_EQ(line, std::string(64, 'a'));
  ASSERT_EQ(::stat((b_ + "/federation-trust.secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The backup's own tables do not stay in the restored database, nor the calls that were
  // ringing on node a (the restored node would end them and cancel node a's phones).
  auto db = store::Database::open(b_ + "/verbund.db", {});
  EXPECT_FALSE((*db)->query("SELECT COUNT(*) FROM verbund_backup").ok());
  auto ringing = (*db)->query("SELECT COUNT(*) FROM ringing_calls");
  ASSERT_TRUE(ringing.ok());
  EXPECT_EQ(store::asInt(ringing->at(0).at(0)), 0);
}

TEST_F(BackupTest, RestoreRefusesARunningNodeAndAnExistingDatabase) {
  ASSERT_TRUE(createBackup(a_, file_, "0.1.0", 1).ok());
  {
    fs::create_directories(b_);
    auto lock = DataDirLock::acquire(b_); // as a running node holds it
    ASSERT_TRUE(lock.ok()) << lock.error().message;
    auto e = restoreBackup(file_, b_, "0.1.0", kKnown, {}, nullptr);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->exitCode, kBackupRefused);
    EXPECT_NE(e->message.find("stop the node"), std::string::npos) << e->message;
    EXPECT_FALSE(fs::exists(b_ + "/verbund.db"));
  }
  // The data directory of node a has a database: only with --force.
  db_->exec("INSERT INTO things(name) VALUES ('after the backup')").ok();
  db_.reset();
  auto e = restoreBackup(file_, a_, "0.1.0", kKnown, {}, nullptr);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exitCode, kBackupRefused);
  EXPECT_NE(e->message.find("--force"), std::string::npos) << e->message;
  EXPECT_EQ(things(a_), 101);
  e = restoreBackup(file_, a_, "0.1.0", kKnown, RestoreOptions{true}, nullptr);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(things(a_), 100);
}

TEST_F(BackupTest, NewerVersionsAreRefusedOlderAccepted) {
  ASSERT_TRUE(createBackup(a_, file_, "0.1.0", 1).ok());
  setManifest("version", "1.0.0");
  auto e = restoreBackup(file_, b_, "0.1.0", kKnown, {}, nullptr);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exitCode, kBackupTooNew);
  EXPECT_NE(e->message.find("newer major version"), std::string::npos) << e->message;
  EXPECT_FALSE(fs::exists(b_ + "/verbund.db"));
  // An older backup is fine (the node's migrations bring it up to date).
  EXPECT_FALSE(
      checkCompatible(BackupManifest{kBackupFormat, "0.0.9", {{"things", 1}}}, "0.1.0", kKnown));
  EXPECT_FALSE(checkCompatible(BackupManifest{kBackupFormat, "1.0.0", {}}, "1.4.0", kKnown));
  // Same major, but a migration this binary does not know.
  auto schema =
      checkCompatible(BackupManifest{kBackupFormat, "0.1.0", {{"things", 3}}}, "0.1.0", kKnown);
  ASSERT_TRUE(schema);
  EXPECT_EQ(schema->exitCode, kBackupTooNew);
  EXPECT_NE(schema->message.find("things version 3"), std::string::npos) << schema->message;
}

TEST_F(BackupTest, NotABackupIsRefused) {
  std::ofstream(file_) << "this is not a database";
  auto e = restoreBackup(file_, b_, "0.1.0", kKnown, {}, nullptr);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exitCode, kBackupError);
  // A database without a manifest.
  fs::remove(file_);
  ASSERT_TRUE(store::Database::open(file_, schema()).ok());
  e = restoreBackup(file_, b_, "0.1.0", kKnown, {}, nullptr);
  ASSERT_TRUE(e);
  EXPECT_NE(e->message.find("not a verbund backup"), std::string::npos) << e->message;
  EXPECT_FALSE(createBackup(b_ + "/nothing", file_ + "2", "0.1.0", 1).ok());
}

TEST(DataDirLock, SecondHolderIsRefusedWithThePid) {
  auto dir = fs::temp_directory_path() / ("verbund-lock-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    auto first = DataDirLock::acquire(dir.string());
    ASSERT_TRUE(first.ok());
    auto second = DataDirLock::acquire(dir.string());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code, 409);
    EXPECT_NE(second.error().message.find(std::to_string(::getpid())), std::string::npos);
  }
  EXPECT_TRUE(DataDirLock::acquire(dir.string()).ok()); // released with its holder
  fs::remove_all(dir);
}

} // namespace
} // namespace verbund::app
