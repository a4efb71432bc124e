#pragma once
// Files only the node's user may read: the data directory (0700), the database and key files
// (0600), exported federation certificate files (0600). Secrets live in them (HA1 values, the
// trunk password, the admin password hash, encrypted keys), so looser modes are reported and,
// for what the node owns, tightened.
#include "base/result.h"

#include <optional>
#include <string>
#include <string_view>

namespace verbund {

// Mode bits a private directory and a private file may have at most.
inline constexpr unsigned kPrivateDirMode = 0700;
inline constexpr unsigned kPrivateFileMode = 0600;

// Looks at `path` (not following a symlink). Returns the permission bits it had when they
// allowed more than `allowed` (else nullopt, also when the path does not exist). With `tighten`
// the bits beyond `allowed` are then removed (chmod); an error when that fails.
Result<std::optional<unsigned>> checkPrivateMode(const std::string& path, unsigned allowed,
                                                 bool tighten);

// "0755"
std::string modeString(unsigned mode);

// Writes `data` to `path` (created or truncated) with mode 0600, also when the file existed with
// a looser mode before. Errors name the path and the reason.
Result<void> writePrivateFile(const std::string& path, std::string_view data);

// Reads a secret (a passphrase) from the first line of `path`, without the line end. Refuses a
// file that group or others may read or write: the message says so and how to fix it.
Result<std::string> readPrivateLine(const std::string& path);

} // namespace verbund
