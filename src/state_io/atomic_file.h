// Replacing a file so that a crash at any moment leaves either the old file or the new one:
// write a temporary file in the same directory, fsync it, rename it over the target, fsync the
// directory. On failure the temporary file is removed and the target is untouched.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <functional>
#include <string>

#include "state_io/byte_sink.h"

namespace descent::state_io {

// The system calls write_file_atomically makes. Internal tests substitute versions that fail
// (short writes, ENOSPC, EIO from fsync, a failing rename) to check the cleanup paths; this
// never crosses the C API.
struct FileOps {
  int (*open)(const char* path, int flags, mode_t mode);
  ssize_t (*write)(int fd, const void* data, std::size_t n);
  int (*fsync)(int fd);
  int (*close)(int fd);
  int (*rename)(const char* from, const char* to);
  int (*unlink)(const char* path);
};

const FileOps& posix_file_ops();

// Calls produce() with a sink writing to a new temporary file next to `path`, then makes it
// `path` durably. Throws DESCENT_ERR_IO naming the path and the system's reason, after removing
// the temporary file; exceptions from produce() propagate after the same cleanup.
void write_file_atomically(const std::string& path, const std::function<void(ByteSink&)>& produce,
                           const FileOps& ops = posix_file_ops());

// The name prefix of the temporary files write_file_atomically creates for `path` (a crash
// mid-save can leave one behind): "<dir>/.<name>.tmp-".
std::string temporary_prefix(const std::string& path);

}  // namespace descent::state_io
