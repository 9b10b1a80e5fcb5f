// Writing the subnet file (/run/flannel/subnet.env) atomically: the directory is created if
// missing, the content goes to a unique temp file in the same directory, is fsynced, and renamed
// over the target, so docker's EnvironmentFile never sees a half-written file, and two writers
// never share a temp name.
#pragma once

#include <optional>
#include <string>

namespace flannel {

// Throws std::runtime_error naming the path and the OS reason; the target is then untouched and
// the temp file removed (a directory created on the way stays).
void write_file_atomic(const std::string& path, const std::string& content, unsigned mode = 0644);

// Reads a whole file; nullopt if it does not exist. Throws std::runtime_error when it cannot be
// opened for another reason. A directory at `path` opens and reads as "" (no error).
std::optional<std::string> read_file_if_exists(const std::string& path);

}  // namespace flannel
