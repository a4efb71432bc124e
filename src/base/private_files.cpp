#include "base/private_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace verbund {

namespace {
Error fileError(const std::string& what, const std::string& path) {
  return Error{1, what + " " + path + ": " + std::strerror(errno)};
}
} // namespace

std::string modeString(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

Result<std::optional<unsigned>> checkPrivateMode(const std::string& path, unsigned allowed,
                                                 bool tighten) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<unsigned>();
    return fileError("cannot inspect", path);
  }
  unsigned mode = st.st_mode & 07777;
  if ((mode & ~allowed) == 0 || S_ISLNK(st.st_mode)) return std::optional<unsigned>();
  if (tighten && ::chmod(path.c_str(), mode & allowed) != 0)
    return fileError("cannot change the mode of", path);
  return std::optional<unsigned>(mode);
}

Result<void> writePrivateFile(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kPrivateFileMode);
  if (fd < 0) return fileError("cannot write", path);
  // An existing file keeps its mode through O_TRUNC: make it private before writing into it.
  if (::fchmod(fd, kPrivateFileMode) != 0) {
    Error e = fileError("cannot change the mode of", path);
    ::close(fd);
    return e;
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = fileError("cannot write", path);
      ::close(fd);
      return e;
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) return fileError("cannot write", path);
  return {};
}

Result<std::string> readPrivateLine(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fileError("cannot read", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{1, path + " is not a regular file"};
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Error{1, path + " has mode " + modeString(st.st_mode) +
                        ": a passphrase file must not be accessible to group or others "
                        "(chmod 600 " +
                        path + ")"};
  }
  constexpr size_t kMax = 4096; // a passphrase, not a document
  std::string text(kMax + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error e = fileError("cannot read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    got += size_t(n);
  }
  ::close(fd);
  text.resize(got);
  size_t end = text.find('\n');
  if (end == std::string::npos && got > kMax) return Error{1, path + ": first line too long"};
  if (end != std::string::npos) text.resize(end);
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

} // namespace verbund
