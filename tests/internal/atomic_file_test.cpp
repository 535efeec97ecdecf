// write_file_atomically under injected failures (state_io::FileOps, an internal seam that never
// crosses the C API): short writes, ENOSPC, EIO from fsync or close, a failing rename, a failing
// directory sync, a producer that throws, and a process killed in the middle of a write. In every
// case the previous file is still there, bit for bit, and loads; no temporary file is left behind
// except by the killed process (which cannot clean up); errors name the path and the errno text.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "core/optimizer.h"
#include "state_io/atomic_file.h"
#include "state_io/checkpoint.h"
#include "state_io/read_file.h"

namespace {

using descent::Error;
using descent::state_io::ByteSink;
using descent::state_io::FileOps;
using descent::state_io::posix_file_ops;
using descent::state_io::write_file_atomically;

using Bytes = std::vector<unsigned char>;

// ---- fault injection: which call fails, how -----------------------------------------------------

struct Faults {
  int write_calls = 0;
  int fail_write_at = -1;  // this write call (0-based) fails with write_errno
  int write_errno = ENOSPC;
  bool short_writes = false;  // every write writes at most half of what it is asked
  bool write_returns_zero = false;
  int eintr_writes = 0;    // the first N writes fail with EINTR
  int kill_at_write = -1;  // this write call writes half, then the process SIGKILLs itself
  int fsync_calls = 0;
  int fail_fsync_at = -1;  // 0: the file's fsync, 1: the directory's
  int fsync_errno = EIO;
  bool fail_close = false;
  bool fail_rename = false;
};
Faults faults;

ssize_t faulty_write(int fd, const void* data, std::size_t n) {
  const int call = faults.write_calls++;
  if (call < faults.eintr_writes) {
    errno = EINTR;
    return -1;
  }
  if (call == faults.fail_write_at) {
    errno = faults.write_errno;
    return -1;
  }
  if (faults.write_returns_zero) return 0;
  if (call == faults.kill_at_write) {
    (void)::write(fd, data, n / 2);
    raise(SIGKILL);
  }
  if (faults.short_writes && n > 1) n /= 2;
  return ::write(fd, data, n);
}
int faulty_fsync(int fd) {
  if (faults.fsync_calls++ == faults.fail_fsync_at) {
    errno = faults.fsync_errno;
    return -1;
  }
  return ::fsync(fd);
}
int faulty_close(int fd) {
  const int rc = ::close(fd);
  if (faults.fail_close) {
    errno = EIO;
    return -1;
  }
  return rc;
}
int faulty_rename(const char* from, const char* to) {
  if (faults.fail_rename) {
    errno = EXDEV;
    return -1;
  }
  return ::rename(from, to);
}

FileOps faulty_ops() {
  FileOps ops = posix_file_ops();
  ops.write = faulty_write;
  ops.fsync = faulty_fsync;
  ops.close = faulty_close;
  ops.rename = faulty_rename;
  return ops;
}

// ---- files --------------------------------------------------------------------------------------

class AtomicFile : public testing::Test {
 protected:
  void SetUp() override {
    faults = Faults{};
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/descent-atomic-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.safetensors";
  }
  void TearDown() override {
    for (const auto& n : names()) unlink((dir_ + "/" + n).c_str());
    rmdir(dir_.c_str());
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    if (DIR* d = opendir(dir_.c_str())) {
      while (dirent* e = readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
      closedir(d);
    }
    return out;
  }
  Bytes contents() const {
    std::ifstream in(path_, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Writes `bytes` to the target in chunks of 1000 through `ops`.
  void save(const Bytes& bytes, const FileOps& ops) {
    write_file_atomically(
        path_,
        [&](ByteSink& sink) {
          for (std::size_t i = 0; i < bytes.size(); i += 1000)
            sink.write(bytes.data() + i, std::min<std::size_t>(1000, bytes.size() - i));
        },
        ops);
  }
  // Expects save(new_bytes) under the current faults to fail with DESCENT_ERR_IO naming the path
  // and `reason`, leaving exactly the old file and nothing else.
  void expect_failed_save(const Bytes& old_bytes, const Bytes& new_bytes,
                          const std::string& reason) {
    try {
      save(new_bytes, faulty_ops());
      ADD_FAILURE() << "the save succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), DESCENT_ERR_IO) << e.what();
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
    EXPECT_TRUE(contents() == old_bytes) << "the previous file changed";
    EXPECT_EQ(names(), std::vector<std::string>{"state.safetensors"})
        << "temporary file left behind";
  }

  std::string dir_, path_;
};

Bytes pattern(std::size_t n, unsigned char seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed + i * 7);
  return b;
}

TEST_F(AtomicFile, WritesAndReplaces) {
  save(pattern(5000, 1), posix_file_ops());
  EXPECT_TRUE(contents() == pattern(5000, 1));
  save(pattern(300, 2), posix_file_ops());
  EXPECT_TRUE(contents() == pattern(300, 2));
  EXPECT_EQ(names(), std::vector<std::string>{"state.safetensors"});
}

TEST_F(AtomicFile, ShortWritesAndEintrAreRetried) {
  faults.short_writes = true;
  faults.eintr_writes = 3;
  save(pattern(5000, 3), faulty_ops());
  EXPECT_TRUE(contents() == pattern(5000, 3));
  EXPECT_GT(faults.write_calls, 10);
}

TEST_F(AtomicFile, DiskFullMidWrite) {
  const Bytes old_bytes = pattern(4000, 4);
  save(old_bytes, posix_file_ops());
  faults.short_writes = true;  // partial writes first, then ENOSPC
  faults.fail_write_at = 4;
  faults.write_errno = ENOSPC;
  expect_failed_save(old_bytes, pattern(9000, 5), "No space left on device");
}

TEST_F(AtomicFile, WriteMakesNoProgress) {
  const Bytes old_bytes = pattern(100, 6);
  save(old_bytes, posix_file_ops());
  faults.write_returns_zero = true;
  expect_failed_save(old_bytes, pattern(9000, 7), "write made no progress");
}

TEST_F(AtomicFile, FsyncFails) {
  const Bytes old_bytes = pattern(100, 8);
  save(old_bytes, posix_file_ops());
  faults.fail_fsync_at = 0;
  faults.fsync_errno = EIO;
  expect_failed_save(old_bytes, pattern(9000, 9), "Input/output error");
}

TEST_F(AtomicFile, CloseFails) {
  const Bytes old_bytes = pattern(100, 10);
  save(old_bytes, posix_file_ops());
  faults.fail_close = true;
  expect_failed_save(old_bytes, pattern(9000, 11), "Input/output error");
}

TEST_F(AtomicFile, RenameFails) {
  const Bytes old_bytes = pattern(100, 12);
  save(old_bytes, posix_file_ops());
  faults.fail_rename = true;
  expect_failed_save(old_bytes, pattern(9000, 13), "Invalid cross-device link");
}

TEST_F(AtomicFile, ProducerThrows) {
  const Bytes old_bytes = pattern(100, 14);
  save(old_bytes, posix_file_ops());
  try {
    write_file_atomically(path_, [](ByteSink& sink) {
      sink.write("partial", 7);
      throw Error(DESCENT_ERR_INTERNAL, "producer failed");
    });
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), DESCENT_ERR_INTERNAL);
  }
  EXPECT_TRUE(contents() == old_bytes);
  EXPECT_EQ(names(), std::vector<std::string>{"state.safetensors"});
}

// After the rename the new file is in place; a directory that cannot be synced (EINVAL: the file
// system does not support it) is accepted, any other failure is reported.
TEST_F(AtomicFile, DirectorySync) {
  faults.fail_fsync_at = 1;
  faults.fsync_errno = EINVAL;
  save(pattern(100, 15), faulty_ops());
  EXPECT_TRUE(contents() == pattern(100, 15));

  faults = Faults{};
  faults.fail_fsync_at = 1;
  faults.fsync_errno = EIO;
  try {
    save(pattern(200, 16), faulty_ops());
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), DESCENT_ERR_IO);
    EXPECT_NE(std::string(e.what()).find("the new file is in place"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(contents() == pattern(200, 16));
  EXPECT_EQ(names(), std::vector<std::string>{"state.safetensors"});
}

// ---- a whole optimizer: every write failing in turn, and a process killed mid-write ------------

std::unique_ptr<descent::Optimizer> trained_adam(int64_t n, int steps) {
  auto opt = descent::make_optimizer("adam");
  opt->configure_json(R"({"learning_rate": 0.01, "bias_correction": true})");
  opt->add_parameter("w", descent::DType::Float32, {n});
  std::vector<float> p(static_cast<std::size_t>(n)), g(p.size());
  for (int s = 0; s < steps; ++s) {
    for (std::size_t i = 0; i < g.size(); ++i)
      g[i] = static_cast<float>((i * 31 + s * 7) % 17) - 8.0f;
    const char* names[] = {"w"};
    void* params[] = {p.data()};
    const void* grads[] = {g.data()};
    opt->update(1, names, nullptr, nullptr, params, grads);
  }
  return opt;
}

Bytes state_bytes(const descent::Optimizer& opt) {
  const descent::state_io::CheckpointWriter writer(opt);
  struct VecSink : ByteSink {
    Bytes out;
    void write(const void* d, std::size_t n) override {
      out.insert(out.end(), static_cast<const unsigned char*>(d),
                 static_cast<const unsigned char*>(d) + n);
    }
  } sink;
  writer.write(sink);
  return sink.out;
}

void save_optimizer(const descent::Optimizer& opt, const std::string& path, const FileOps& ops) {
  const descent::state_io::CheckpointWriter writer(opt);
  write_file_atomically(
      path, [&](ByteSink& sink) { writer.write(sink); }, ops);
}

// The target loads into a fresh optimizer and equals `expected`'s state.
void expect_loads_as(const std::string& path, const descent::Optimizer& expected, int64_t n) {
  auto fresh = descent::make_optimizer("adam");
  fresh->add_parameter("w", descent::DType::Float32, {n});
  const Bytes file = descent::state_io::read_file(path);
  descent::state_io::load_checkpoint(*fresh, file.data(), file.size());
  EXPECT_TRUE(state_bytes(*fresh) == state_bytes(expected));
}

TEST_F(AtomicFile, EveryFailingWriteOfACheckpointKeepsThePreviousOne) {
  const auto old_opt = trained_adam(1000, 2);
  save_optimizer(*old_opt, path_, posix_file_ops());
  const Bytes old_file = contents();
  const auto new_opt = trained_adam(1000, 5);
  // The header and each of the slots is one write call.
  for (int k = 0; k < 5; ++k) {
    SCOPED_TRACE("write " + std::to_string(k) + " fails");
    faults = Faults{};
    faults.fail_write_at = k;
    faults.write_errno = k % 2 ? EIO : ENOSPC;
    EXPECT_THROW(save_optimizer(*new_opt, path_, faulty_ops()), Error);
    EXPECT_TRUE(contents() == old_file);
    EXPECT_EQ(names(), std::vector<std::string>{"state.safetensors"});
    expect_loads_as(path_, *old_opt, 1000);
  }
}

// A child process saving a large state kills itself (SIGKILL) halfway through a write: the
// previous file is intact and loads; the partial temporary file is all that is left over.
TEST_F(AtomicFile, ProcessKilledMidWrite) {
  const int64_t n = 1 << 20;
  const auto old_opt = trained_adam(n, 1);
  save_optimizer(*old_opt, path_, posix_file_ops());
  const Bytes old_file = contents();
  const auto new_opt = trained_adam(n, 3);
  for (int k = 0; k < 4; ++k) {  // killed while writing the header, step, learning_rate, w.m
    SCOPED_TRACE("killed in write " + std::to_string(k));
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      faults = Faults{};
      faults.kill_at_write = k;
      try {
        save_optimizer(*new_opt, path_, faulty_ops());
      } catch (...) {
      }
      _exit(3);  // not reached when the kill fires
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    EXPECT_TRUE(contents() == old_file);
    expect_loads_as(path_, *old_opt, n);
    std::size_t temporaries = 0;
    for (const auto& name : names())
      if (name.rfind(".state.safetensors.tmp-", 0) == 0) {
        ++temporaries;
        unlink((dir_ + "/" + name).c_str());
      }
    EXPECT_EQ(temporaries, 1u);
  }
}

}  // namespace
