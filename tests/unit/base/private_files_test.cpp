// Private files: mode checks and tightening, 0600 writes over looser files, passphrase files.
#include "base/private_files.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace verbund {
namespace {

namespace fs = std::filesystem;

class PrivateFiles : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("verbund-private-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static unsigned mode(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  fs::path file(const std::string& name, const std::string& text, unsigned m) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    EXPECT_EQ(::chmod(p.c_str(), m), 0);
    return p;
  }
  fs::path dir_;
};

TEST_F(PrivateFiles, CheckReportsAndTightensLooseModes) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  auto d = checkPrivateMode(dir_.string(), kPrivateDirMode, false);
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ(**d, 0755u);
  EXPECT_EQ(mode(dir_), 0755u); // reported only
  d = checkPrivateMode(dir_.string(), kPrivateDirMode, true);
  ASSERT_TRUE(d && d->has_value());
  EXPECT_EQ(mode(dir_), 0700u);
  d = checkPrivateMode(dir_.string(), kPrivateDirMode, true);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->has_value()); // private now

  fs::path db = file("verbund.db", "x", 0644);
  auto f = checkPrivateMode(db.string(), kPrivateFileMode, true);
  ASSERT_TRUE(f && f->has_value());
  EXPECT_EQ(**f, 0644u);
  EXPECT_EQ(mode(db), 0600u);
  fs::path strict = file("key", "x", 0400);
  f = checkPrivateMode(strict.string(), kPrivateFileMode, true);
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->has_value());
  EXPECT_EQ(mode(strict), 0400u); // stricter modes stay
  f = checkPrivateMode((dir_ / "missing").string(), kPrivateFileMode, true);
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->has_value());
  EXPECT_EQ(modeString(0755), "0755");
}

TEST_F(PrivateFiles, WriteIsPrivateEvenOverALooseFile) {
  fs::path fresh = dir_ / "bundle.pem";
  ASSERT_TRUE(writePrivateFile(fresh.string(), "secret bundle"));
  EXPECT_EQ(mode(fresh), 0600u);
  fs::path old = file("old.pem", "a much longer previous content", 0644);
  ASSERT_TRUE(writePrivateFile(old.string(), "new"));
  EXPECT_EQ(mode(old), 0600u);
  std::ifstream in(old);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "new");
  auto bad = writePrivateFile((dir_ / "no" / "such" / "dir").string(), "x");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("cannot write"), std::string::npos);
}

TEST_F(PrivateFiles, PassphraseFileFirstLineAndModeCheck) {
  auto ok = readPrivateLine(file("pass", "correct horse\r\nsecond line\n", 0600).string());
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, "correct horse");
  auto noNewline = readPrivateLine(file("pass2", "no newline", 0400).string());
  ASSERT_TRUE(noNewline);
  EXPECT_EQ(*noNewline, "no newline");
  for (unsigned loose : {0644u, 0640u, 0606u}) {
    auto r = readPrivateLine(file("loose", "x\n", loose).string());
    ASSERT_FALSE(r) << modeString(loose);
    EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(modeString(loose)), std::string::npos);
  }
  EXPECT_FALSE(readPrivateLine((dir_ / "missing").string()));
  EXPECT_FALSE(readPrivateLine(dir_.string())); // not a regular file
  EXPECT_FALSE(readPrivateLine(file("huge", std::string(5000, 'x'), 0600).string()));
}

} // namespace
} // namespace verbund
