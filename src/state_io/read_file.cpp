#include "state_io/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "common/error.h"
#include "state_io/safetensors_format.h"

namespace descent::state_io {

namespace {

[[noreturn]] void io_error(const std::string& path, const std::string& what, int err) {
  throw Error(DESCENT_ERR_IO, "cannot read " + quote_path(path) + ": " + what +
                                  (err ? ": " + std::generic_category().message(err) : ""));
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::vector<unsigned char> read_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) io_error(path, "open failed", errno);
  struct stat st;
  if (::fstat(f.fd, &st) != 0) io_error(path, "fstat failed", errno);
  if (!S_ISREG(st.st_mode)) io_error(path, "not a regular file", 0);
  std::vector<unsigned char> data(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t r = ::read(f.fd, data.data() + done, data.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      io_error(path, "read failed", errno);
    }
    if (r == 0) break;  // the file shrank meanwhile: what was read is parsed (and found short)
    done += static_cast<std::size_t>(r);
  }
  data.resize(done);
  return data;
}

}  // namespace descent::state_io
