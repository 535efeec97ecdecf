#include "state_io/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>
#include <system_error>

#include "common/error.h"
#include "state_io/safetensors_format.h"

namespace descent::state_io {

namespace {

std::string reason(int err) {
  return std::generic_category().message(err);
}

[[noreturn]] void io_error(const std::string& message, int err) {
  throw Error(DESCENT_ERR_IO, message + ": " + reason(err));
}

// Directory and file name of a path ("a/b" -> "a", "b"; "b" -> ".", "b"; "/b" -> "/", "b").
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

uint64_t random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t x = static_cast<uint64_t>(::getpid()) << 32 ^ counter.fetch_add(1) ^
               static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  try {
    std::random_device rd;
    x ^= static_cast<uint64_t>(rd()) << 32 | rd();
  } catch (...) {
    // No entropy source: the pid, counter and clock still make clashes unlikely, and O_EXCL
    // makes them harmless.
  }
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string hex(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = digits[v & 15];
  return out;
}

class FdSink final : public ByteSink {
 public:
  FdSink(const FileOps& ops, int fd, const std::string& what) : ops_(ops), fd_(fd), what_(what) {}
  void write(const void* data, std::size_t n) override {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
      const ssize_t r = ops_.write(fd_, p, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        io_error(what_ + ": write failed", errno);
      }
      if (r == 0) io_error(what_ + ": write made no progress", ENOSPC);
      p += r;
      n -= static_cast<std::size_t>(r);
    }
  }

 private:
  const FileOps& ops_;
  int fd_;
  const std::string& what_;
};

}  // namespace

const FileOps& posix_file_ops() {
  static const FileOps ops{
      [](const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); },
      [](int fd, const void* data, std::size_t n) { return ::write(fd, data, n); },
      [](int fd) { return ::fsync(fd); },
      [](int fd) { return ::close(fd); },
      [](const char* from, const char* to) { return ::rename(from, to); },
      [](const char* path) { return ::unlink(path); },
  };
  return ops;
}

std::string temporary_prefix(const std::string& path) {
  const auto [dir, name] = split_path(path);
  // Keep the temporary name within NAME_MAX (255) whatever the target's length.
  return (dir == "/" ? "/" : dir + "/") + "." + name.substr(0, 200) + ".tmp-";
}

void write_file_atomically(const std::string& path, const std::function<void(ByteSink&)>& produce,
                           const FileOps& ops) {
  if (path.empty()) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "path is empty");
  const auto [dir, name] = split_path(path);
  if (name.empty() || name == "." || name == "..")
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "path " + quote_path(path) + " does not name a file");
  const std::string what = "cannot save to " + quote_path(path);

  // Create the temporary file: O_EXCL guarantees it is ours.
  std::string temp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    temp = temporary_prefix(path) + hex(random_suffix());
    fd = ops.open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt == 100))
      io_error(what + ": cannot create a temporary file in " + quote_path(dir), errno);
  }
  // From here on, any failure closes and removes the temporary file.
  struct Cleanup {
    const FileOps& ops;
    const std::string& temp;
    int fd;
    bool renamed = false;
    ~Cleanup() {
      if (fd >= 0) ops.close(fd);
      if (!renamed) ops.unlink(temp.c_str());
    }
  } cleanup{ops, temp, fd};

  // Keep the permissions of the file being replaced (best effort: the content is what matters).
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) (void)::fchmod(fd, st.st_mode & 07777);

  FdSink sink(ops, fd, what);
  produce(sink);
  while (ops.fsync(fd) != 0)
    if (errno != EINTR) io_error(what + ": fsync of the temporary file failed", errno);
  cleanup.fd = -1;
  if (ops.close(fd) != 0 && errno != EINTR)
    io_error(what + ": closing the temporary file failed", errno);
  if (ops.rename(temp.c_str(), path.c_str()) != 0)
    io_error(what + ": renaming the temporary file over it failed", errno);
  cleanup.renamed = true;

  // Make the rename itself durable. Some file systems cannot sync a directory (EINVAL): the
  // rename is then as durable as they make it.
  const int dfd = ops.open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd < 0) {
    const int err = errno;
    io_error(what + ": the new file is in place, but its directory " + quote_path(dir) +
                 " could not be opened to sync it",
             err);
  }
  int rc;
  while ((rc = ops.fsync(dfd)) != 0 && errno == EINTR) {
  }
  const int err = errno;
  ops.close(dfd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP && err != EROFS)
    io_error(what + ": the new file is in place, but syncing its directory " + quote_path(dir) +
                 " failed",
             err);
}

}  // namespace descent::state_io
