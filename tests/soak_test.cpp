// Soak (docs/reliability.md): a Muon+AdamW model trained for many steps with a save/load every few
// steps (alternately through a buffer and a file, each time into a new optimizer) equals an
// uninterrupted run bit for bit, and memory stays flat: after a warm-up, neither the heap in use
// (mallinfo2) nor the resident set (/proc/self/statm) grows beyond a small bound.
// Runs for DESCENT_SOAK_SECONDS (default 2; CI: 10, see docs/reliability.md).
#include <malloc.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "reliability_support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DESCENT_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DESCENT_SOAK_SANITIZED 1
#endif
#endif

namespace {

using reliability::Training;

long resident_kib() {
  long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

std::size_t heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return mallinfo2().uordblks;
#else
  return 0;
#endif
}

TEST(Soak, ManyStepsWithSaveAndLoadStayFlatAndEqualAnUninterruptedRun) {
  const char* env = std::getenv("DESCENT_SOAK_SECONDS");
  const double seconds = env && *env ? std::atof(env) : 2.0;
  reliability::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/soak.safetensors";

  Training soaked("multi", 5, 1, 2);
  Training reference("multi", 5, 1, 2);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  long rss_after_warmup = 0;
  std::size_t heap_after_warmup = 0;
  long rss_peak_growth = 0;
  long heap_peak_growth = 0;
  int cycles = 0;
  constexpr int kWarmupCycles = 20;
  while (cycles < kWarmupCycles + 20 || elapsed() < seconds) {
    for (int k = 0; k < 5; ++k) {
      soaked.step();
      reference.step();
    }
    if (cycles % 2)
      soaked.reload_from_file(path, 1);
    else
      soaked.reload_from_buffer(soaked.save(), 1);
    ++cycles;
    if (cycles % 10 == 0) {
      ASSERT_TRUE(soaked.fingerprint() == reference.fingerprint())
          << "after " << cycles << " cycles";
      ASSERT_TRUE(soaked.errors().empty()) << soaked.errors().front();
    }
    if (cycles == kWarmupCycles) {
      rss_after_warmup = resident_kib();
      heap_after_warmup = heap_in_use();
    } else if (cycles > kWarmupCycles) {
      rss_peak_growth = std::max(rss_peak_growth, resident_kib() - rss_after_warmup);
      heap_peak_growth = std::max(heap_peak_growth, long(heap_in_use()) - long(heap_after_warmup));
    }
  }
  EXPECT_TRUE(soaked.fingerprint() == reference.fingerprint());
  EXPECT_TRUE(soaked.errors().empty() && reference.errors().empty());
  std::printf(
      "soak: %d save/load cycles, %llu steps in %.1f s; after warm-up: RSS +%ld KiB, "
      "heap +%ld bytes\n",
      cycles, static_cast<unsigned long long>(soaked.steps()), elapsed(), rss_peak_growth,
      heap_peak_growth);
#ifndef DESCENT_SOAK_SANITIZED  // sanitizers replace malloc and keep freed memory in quarantine
  EXPECT_LT(heap_peak_growth, 256 * 1024) << "the heap grows";
  EXPECT_LT(rss_peak_growth, 4 * 1024) << "the resident set grows (KiB)";
#endif
}

}  // namespace
