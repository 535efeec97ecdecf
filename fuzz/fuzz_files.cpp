// Target e: saving to and loading from files with injected I/O faults (the internal FileOps seam
// of src/state_io/atomic_file.h), loading fuzz bytes from a file, and descent_clip_grad_norm.
//  - A save that fails leaves the previous file (or, when only the directory sync failed, the
//    complete new one) and no temporary file; a save that works loads back into a fresh optimizer
//    with the same state bytes.
//  - descent_optimizer_load of any file: a failure changes nothing; a success round-trips.
//  - clip: a failure changes neither the gradients nor *total_norm and writes a message; a success
//    is deterministic and never makes a finite gradient larger.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "capi/handle.h"
#include "common/error.h"
#include "fuzz_support.h"
#include "state_io/atomic_file.h"
#include "state_io/checkpoint.h"

namespace {

using descent::state_io::ByteSink;
using descent::state_io::FileOps;
using Bytes = std::vector<unsigned char>;

struct Faults {
  int opens = 0, fail_open_at = -1;
  int writes = 0, fail_write_at = -1, write_errno = ENOSPC, eintr_writes = 0;
  bool short_writes = false;
  int fsyncs = 0, fail_fsync_at = -1, fsync_errno = EIO, eintr_fsyncs = 0;
  bool fail_close = false, fail_rename = false;
} faults;

int f_open(const char* p, int flags, mode_t mode) {
  if (faults.opens++ == faults.fail_open_at) {
    errno = EACCES;
    return -1;
  }
  return ::open(p, flags, mode);
}
ssize_t f_write(int fd, const void* d, size_t n) {
  const int call = faults.writes++;
  if (call < faults.eintr_writes) {
    errno = EINTR;
    return -1;
  }
  if (call == faults.fail_write_at) {
    errno = faults.write_errno;
    return -1;
  }
  if (faults.short_writes && n > 1) n = n / 2;
  return ::write(fd, d, n);
}
int f_fsync(int fd) {
  const int call = faults.fsyncs++;
  if (call < faults.eintr_fsyncs) {
    errno = EINTR;
    return -1;
  }
  if (call - faults.eintr_fsyncs == faults.fail_fsync_at) {
    errno = faults.fsync_errno;
    return -1;
  }
  return ::fsync(fd);
}
int f_close(int fd) {
  const int rc = ::close(fd);
  if (faults.fail_close) {
    errno = EIO;
    return -1;
  }
  return rc;
}
int f_rename(const char* a, const char* b) {
  if (faults.fail_rename) {
    errno = EXDEV;
    return -1;
  }
  return ::rename(a, b);
}

const std::string& temp_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/descent-fuzz-XXXXXX";
    if (!mkdtemp(t.data())) fuzz::die("mkdtemp failed");
    return t;
  }();
  return dir;
}

std::vector<std::string> entries() {
  std::vector<std::string> out;
  if (DIR* d = opendir(temp_dir().c_str())) {
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
    closedir(d);
  }
  return out;
}

void clear_dir() {
  for (const std::string& n : entries()) unlink((temp_dir() + "/" + n).c_str());
}

Bytes contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const uint8_t* d, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(d), std::streamsize(n));
}

// Saves `rig` through the faulty seam; checks what is left on disk.
void faulty_save(fuzz::Input& in, fuzz::Rig& rig, const std::string& path, const Bytes& old_file) {
  faults = Faults{};
  const uint8_t a = in.byte(), b = in.byte(), c = in.byte();
  faults.fail_open_at = (a & 3) == 1 ? (a >> 2) % 2 : -1;  // 0: the temporary file, 1: the dir
  faults.fail_write_at = (b & 1) ? (b >> 1) % 16 : -1;
  faults.write_errno = (b & 0x80) ? EIO : ENOSPC;
  faults.eintr_writes = (c & 3);
  faults.short_writes = c & 4;
  faults.fail_fsync_at = (c & 8) ? (c >> 4) % 2 : -1;
  faults.fsync_errno = (c & 0x40) ? EINVAL : EIO;
  faults.eintr_fsyncs = (a >> 4) & 1;
  faults.fail_close = (a >> 5) & 1;
  faults.fail_rename = (a >> 6) & 1;
  FileOps ops = descent::state_io::posix_file_ops();
  ops.open = f_open;
  ops.write = f_write;
  ops.fsync = f_fsync;
  ops.close = f_close;
  ops.rename = f_rename;

  Bytes now;
  if (fuzz::save_bytes(rig.opt(), now) != DESCENT_OK) return;
  bool failed = false;
  try {
    const descent::state_io::CheckpointWriter writer(*rig.opt()->impl);
    descent::state_io::write_file_atomically(
        path, [&](ByteSink& s) { writer.write(s); }, ops);
  } catch (const descent::Error& e) {
    failed = true;
    if (e.status() != DESCENT_ERR_IO) fuzz::die(std::string("a faulty save threw ") + e.what());
  }
  const Bytes file = contents(path);
  if (entries() != std::vector<std::string>{"state.safetensors"})
    fuzz::die("a save left files other than the target behind");
  if (!failed && file != now) fuzz::die("a save that worked did not write the state");
  if (failed && file != old_file && file != now) fuzz::die("a failed save damaged the file");
  if (file == now) {  // loads back through the C API
    fuzz::Rig fresh(rig.kind(), rig.model());
    fresh.build();
    if (descent_optimizer_load(fresh.opt(), path.c_str()) != DESCENT_OK)
      fuzz::die("a saved file does not load: " + fresh.last_error());
    Bytes again;
    fuzz::save_bytes(fresh.opt(), again);
    if (again != now) fuzz::die("a loaded file saves other bytes");
  }
}

void clip(fuzz::Input& in) {
  const size_t count = in.byte() % 4;
  std::vector<descent_dtype> dtypes(count);
  std::vector<int64_t> numels(count);
  std::vector<Bytes> grads(count);
  std::vector<void*> ptrs(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t d = in.byte();
    dtypes[i] = d % 5 == 0 ? descent_dtype(d) : (d & 1) ? DESCENT_FLOAT64 : DESCENT_FLOAT32;
    numels[i] = int64_t(in.byte() % 9) - ((d & 0x80) ? 3 : 0);
    const size_t n = numels[i] > 0 ? size_t(numels[i]) : 0;
    grads[i].resize(n * 8 + 8);
    for (size_t k = 0; k < n * (dtypes[i] == DESCENT_FLOAT64 ? 8 : 4); ++k)
      grads[i][k] = (in.byte() & 0x01) ? in.byte() : static_cast<uint8_t>(0x3f * (k % 4 == 3));
    ptrs[i] = (d & 0x40) && (d & 0x20) ? nullptr : grads[i].data();
  }
  const double max_norm = (in.byte() & 1) ? in.f64() : double(in.byte()) / 16.0;
  const std::vector<Bytes> before = grads;
  double total = -7.0;
  char err[DESCENT_ERROR_CAPACITY] = "";
  const descent_status s = descent_clip_grad_norm(count, dtypes.data(), numels.data(), ptrs.data(),
                                                  max_norm, &total, err, sizeof err);
  fuzz::no_internal(s, "clip_grad_norm", err);
  if (s != DESCENT_OK) {
    if (grads != before || total != -7.0) fuzz::die("a failed clip_grad_norm changed something");
    if (!err[0]) fuzz::die("a failed clip_grad_norm wrote no message");
    return;
  }
  std::vector<Bytes> again = before;
  std::vector<void*> again_ptrs(count);
  for (size_t i = 0; i < count; ++i) again_ptrs[i] = ptrs[i] ? again[i].data() : nullptr;
  double total2 = 0;
  if (descent_clip_grad_norm(count, dtypes.data(), numels.data(), again_ptrs.data(), max_norm,
                             &total2, nullptr, 0) != DESCENT_OK ||
      again != grads || std::memcmp(&total, &total2, sizeof total) != 0)
    fuzz::die("clip_grad_norm is not deterministic");
  for (size_t i = 0; i < count; ++i)
    for (int64_t k = 0; k < numels[i]; ++k) {
      double x, y;
      if (dtypes[i] == DESCENT_FLOAT64) {
        std::memcpy(&x, before[i].data() + k * 8, 8);
        std::memcpy(&y, grads[i].data() + k * 8, 8);
      } else {
        float fx, fy;
        std::memcpy(&fx, before[i].data() + k * 4, 4);
        std::memcpy(&fy, grads[i].data() + k * 4, 4);
        x = fx;
        y = fy;
      }
      if (std::isfinite(x) && std::isfinite(y) && std::fabs(y) > std::fabs(x))
        fuzz::die("clip_grad_norm made a gradient larger");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kinds = fuzz::kinds();
  fuzz::Input in(data, size);
  const uint8_t mode = in.byte();
  clear_dir();
  const std::string path = temp_dir() + "/state.safetensors";
  const std::string& kind = kinds[in.byte() % kinds.size()];
  fuzz::Rig rig(kind, fuzz::models()[0]);
  rig.build();
  rig.step(0);

  switch (mode % 3) {
    case 0: {  // a good file, then saves with faults
      if (descent_optimizer_save(rig.opt(), path.c_str()) != DESCENT_OK)
        fuzz::die("save failed: " + rig.last_error());
      Bytes old_file = contents(path);
      for (int k = 0; k < 3 && in.left() > 0; ++k) {
        rig.step(uint64_t(k) + 1);
        faulty_save(in, rig, path, old_file);
        old_file = contents(path);
      }
      break;
    }
    case 1: {  // any bytes as a file, loaded through the C API
      const std::string rest = in.rest();
      write_bytes(path, reinterpret_cast<const uint8_t*>(rest.data()), rest.size());
      const descent_status s = rig.checked(
          "load(file)", [&] { return descent_optimizer_load(rig.opt(), path.c_str()); });
      if (s == DESCENT_OK) fuzz::check_roundtrip(rig);
      // A path that is a directory, missing, or empty: a clean failure.
      const std::string bad[] = {temp_dir(), temp_dir() + "/missing/x", ""};
      for (const std::string& p : bad) {
        rig.checked("load(bad path)", [&] { return descent_optimizer_load(rig.opt(), p.c_str()); });
        const descent_status t = descent_optimizer_save(rig.opt(), p.c_str());
        fuzz::no_internal(t, "save(bad path)", rig.last_error().c_str());
        if (t == DESCENT_OK) fuzz::die("saving to '" + p + "' worked");
      }
      break;
    }
    default:
      clip(in);
      break;
  }
  return 0;
}
