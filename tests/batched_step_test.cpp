// The batched step of the elementwise kinds (src/core/batched_step.h, kernels/batch_kernel.h):
// many tensors of every length around the vector width, stepped in one update, give the bits of
// one large tensor holding the same elements, whose vector tail falls elsewhere (every kind is
// elementwise, so where a tensor ends cannot change an element). Bytes next to each tensor are
// never written: the flat layout's padding and guard bytes after tightly allocated buffers.
// Mixed dtypes in one update give the bits of one dtype at a time. Run again under each
// instruction set and with 1, 2 and 3 threads (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace {

const char* const kElementwise[] = {"sgd",  "rmsprop", "adagrad", "adadelta",
                                    "adam", "adamw",   "adamax",  "lion"};

// Every length from 0 to 40 (all tails of a 16-float / 8-double vector), then a few larger.
std::vector<int64_t> lengths() {
  std::vector<int64_t> out;
  for (int64_t n = 0; n <= 40; ++n) out.push_back(n);
  for (int64_t n : {63, 64, 65, 100, 257, 1000}) out.push_back(n);
  return out;
}

double value(uint64_t i, uint64_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<double>(x >> 11) * 0x1p-53 * 2.0 - 1.0;
}

void put(unsigned char* at, descent_dtype dtype, double v) {
  if (dtype == DESCENT_FLOAT32) {
    const float f = static_cast<float>(v);
    std::memcpy(at, &f, 4);
  } else {
    std::memcpy(at, &v, 8);
  }
}

descent_optimizer* make(const std::string& kind) {
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_optimizer_create(kind.c_str(), &opt, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.01), DESCENT_OK);
  if (kind == "sgd") {
    EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"momentum": 0.9, "weight_decay": 0.1})"),
              DESCENT_OK);
  }
  if (kind == "adam") {
    EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"bias_correction": true})"), DESCENT_OK);
  }
  return opt;
}

std::vector<unsigned char> slot(descent_optimizer* opt, const std::string& key, int64_t n,
                                descent_dtype dtype) {
  std::vector<unsigned char> out(static_cast<size_t>(n) * (dtype == DESCENT_FLOAT32 ? 4 : 8));
  EXPECT_EQ(descent_optimizer_state_get(opt, key.c_str(), dtype, out.data(), n), DESCENT_OK) << key;
  return out;
}

std::vector<std::string> slot_names(descent_optimizer* opt, const std::string& param) {
  size_t count = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &count), DESCENT_OK);
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    const char* key = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &key), DESCENT_OK);
    const std::string k = key;
    if (k.compare(0, param.size() + 1, param + ".") == 0) out.push_back(k.substr(param.size() + 1));
  }
  return out;
}

struct Case {
  std::string kind;
  descent_dtype dtype;
  bool flat;  // the flat buffer, else indexed updates over separate tight buffers
};

class BatchedStep : public testing::TestWithParam<Case> {};

TEST_P(BatchedStep, ManySmallTensorsGiveTheBitsOfOneLarge) {
  const auto [kind, dtype, flat] = GetParam();
  const size_t es = dtype == DESCENT_FLOAT32 ? 4 : 8;
  const std::vector<int64_t> len = lengths();
  int64_t total = 0;
  for (int64_t n : len) total += n;

  descent_optimizer* many = make(kind);
  descent_optimizer* one = make(kind);
  std::vector<std::string> names;
  for (size_t i = 0; i < len.size(); ++i) {
    names.push_back("t" + std::to_string(i));
    ASSERT_EQ(descent_optimizer_add_parameter(many, names.back().c_str(), dtype, 1, &len[i]),
              DESCENT_OK);
  }
  ASSERT_EQ(descent_optimizer_add_parameter(one, "w", dtype, 1, &total), DESCENT_OK);

  // The large tensor's buffers, and the small ones': one flat buffer (padding between tensors)
  // or one tight buffer per tensor followed by 64 guard bytes. Everything not a parameter
  // element holds the sentinel byte and must keep it.
  const unsigned char kSentinel = 0xA5;
  std::vector<unsigned char> p1(static_cast<size_t>(total) * es), g1(p1.size());
  size_t flat_size = 0;
  ASSERT_EQ(descent_optimizer_flat_size(many, &flat_size), DESCENT_OK);
  std::vector<size_t> at(len.size());
  size_t bytes = 0;
  for (size_t i = 0; i < len.size(); ++i) {
    if (flat) {
      ASSERT_EQ(descent_optimizer_flat_offset(many, i, &at[i]), DESCENT_OK);
    } else {
      at[i] = bytes;
      bytes += (static_cast<size_t>(len[i]) * es + 64 + 63) / 64 * 64;
    }
  }
  if (flat) bytes = flat_size;
  std::vector<unsigned char> pstore(bytes + 64, kSentinel), gstore(bytes + 64, kSentinel);
  auto align = [](std::vector<unsigned char>& v) {
    const auto a = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + ((64 - a % 64) % 64);
  };
  unsigned char* pbuf = align(pstore);
  unsigned char* gbuf = align(gstore);
  std::vector<size_t> idx(len.size());
  std::vector<void*> pp(len.size());
  std::vector<const void*> gp(len.size());
  for (size_t i = 0; i < len.size(); ++i) {
    idx[i] = i;
    pp[i] = pbuf + at[i];
    gp[i] = gbuf + at[i];
  }
  const std::vector<unsigned char> pstore_before = pstore;

  for (int step = 0; step < 3; ++step) {
    int64_t e = 0;
    for (size_t i = 0; i < len.size(); ++i)
      for (int64_t k = 0; k < len[i]; ++k, ++e) {
        const auto ue = static_cast<uint64_t>(e);
        if (step == 0) {
          put(pbuf + at[i] + k * es, dtype, value(ue, 1));
          put(p1.data() + e * es, dtype, value(ue, 1));
        }
        put(gbuf + at[i] + k * es, dtype, 0.1 * value(ue, 100 + step));
        put(g1.data() + e * es, dtype, 0.1 * value(ue, 100 + step));
      }
    if (flat)
      ASSERT_EQ(descent_optimizer_update_flat(many, pbuf, gbuf, flat_size), DESCENT_OK)
          << descent_optimizer_last_error(many);
    else
      ASSERT_EQ(descent_optimizer_update_indexed(many, idx.size(), idx.data(), nullptr, nullptr,
                                                 pp.data(), gp.data()),
                DESCENT_OK)
          << descent_optimizer_last_error(many);
    const size_t zero = 0;
    void* p1p = p1.data();
    const void* g1p = g1.data();
    ASSERT_EQ(descent_optimizer_update_indexed(one, 1, &zero, nullptr, nullptr, &p1p, &g1p),
              DESCENT_OK);
  }

  // Parameters, element for element; bytes outside them unchanged.
  int64_t e = 0;
  for (size_t i = 0; i < len.size(); ++i) {
    EXPECT_EQ(std::memcmp(pbuf + at[i], p1.data() + e * es, static_cast<size_t>(len[i]) * es), 0)
        << "parameter t" << i << " (" << len[i] << " elements) differs";
    const size_t end = at[i] + static_cast<size_t>(len[i]) * es;
    const size_t next = i + 1 < len.size() ? at[i + 1] : bytes;
    for (size_t b = end; b < next; ++b)
      ASSERT_EQ(pbuf[b], kSentinel) << "byte " << (b - end) << " after t" << i << " was written";
    e += len[i];
  }
  const size_t lead = static_cast<size_t>(pbuf - pstore.data());
  for (size_t b = 0; b < lead; ++b) ASSERT_EQ(pstore[b], pstore_before[b]);
  // State slots, element for element.
  for (const std::string& s : slot_names(one, "w")) {
    const auto whole = slot(one, "w." + s, total, dtype);
    e = 0;
    for (size_t i = 0; i < len.size(); ++i) {
      if (len[i] > 0) {
        const auto part = slot(many, names[i] + "." + s, len[i], dtype);
        EXPECT_EQ(std::memcmp(part.data(), whole.data() + e * es, part.size()), 0)
            << "slot " << names[i] << "." << s << " differs";
      }
      e += len[i];
    }
  }
  descent_optimizer_free(many);
  descent_optimizer_free(one);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* k : kElementwise)
    for (descent_dtype d : {DESCENT_FLOAT32, DESCENT_FLOAT64})
      for (bool flat : {true, false}) out.push_back({k, d, flat});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Kinds, BatchedStep, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.kind + "_" +
                                  descent_test::dtype_suffix(info.param.dtype) +
                                  (info.param.flat ? "_flat" : "_indexed");
                         });

// float32, float64 and bfloat16 tensors interleaved in one update: the bits of three updates,
// one per dtype (a batch holds one dtype; half-precision tensors step one at a time).
TEST(BatchedStepMixed, InterleavedDtypesGiveTheBitsOfOneDtypeAtATime) {
  const descent_dtype kinds_of[] = {DESCENT_FLOAT32, DESCENT_FLOAT64, DESCENT_BFLOAT16};
  for (const char* kind : {"adamw", "sgd", "lion"}) {
    SCOPED_TRACE(kind);
    descent_optimizer* mixed = make(kind);
    descent_optimizer* per[3] = {make(kind), make(kind), make(kind)};
    const int count = 45;
    std::vector<std::vector<unsigned char>> pm(count), gm(count), pr(count), gr(count);
    std::vector<size_t> local(count);
    size_t next[3] = {0, 0, 0};
    for (int i = 0; i < count; ++i) {
      const descent_dtype d = kinds_of[i % 3];
      const int64_t n = 1 + (i * 7) % 37;
      const std::string name = "p" + std::to_string(i);
      ASSERT_EQ(descent_optimizer_add_parameter(mixed, name.c_str(), d, 1, &n), DESCENT_OK);
      ASSERT_EQ(descent_optimizer_add_parameter(per[i % 3], name.c_str(), d, 1, &n), DESCENT_OK);
      local[i] = next[i % 3]++;
      const size_t es = d == DESCENT_FLOAT64 ? 8 : d == DESCENT_FLOAT32 ? 4 : 2;
      pm[i].resize(static_cast<size_t>(n) * es);
      gm[i].resize(pm[i].size());
      for (int64_t k = 0; k < n; ++k) {
        const double v = value(static_cast<uint64_t>(i * 1000 + k), 7);
        if (d == DESCENT_BFLOAT16) {
          const float f = static_cast<float>(v);
          uint32_t bits;
          std::memcpy(&bits, &f, 4);
          const auto h = static_cast<uint16_t>(bits >> 16);  // exact: any bf16 value will do
          std::memcpy(pm[i].data() + k * 2, &h, 2);
        } else {
          put(pm[i].data() + k * es, d, v);
        }
      }
      for (size_t b = 0; b < gm[i].size(); ++b) gm[i][b] = static_cast<unsigned char>(b * 37 % 61);
      pr[i] = pm[i];
      gr[i] = gm[i];
    }
    for (int step = 0; step < 2; ++step) {
      std::vector<size_t> idx(count);
      std::vector<void*> pp(count);
      std::vector<const void*> gp(count);
      for (int i = 0; i < count; ++i) {
        idx[i] = static_cast<size_t>(i);
        pp[i] = pm[i].data();
        gp[i] = gm[i].data();
      }
      ASSERT_EQ(descent_optimizer_update_indexed(mixed, count, idx.data(), nullptr, nullptr,
                                                 pp.data(), gp.data()),
                DESCENT_OK)
          << descent_optimizer_last_error(mixed);
      for (int d = 0; d < 3; ++d) {
        std::vector<size_t> li;
        std::vector<void*> lp;
        std::vector<const void*> lg;
        for (int i = d; i < count; i += 3) {
          li.push_back(local[i]);
          lp.push_back(pr[i].data());
          lg.push_back(gr[i].data());
        }
        ASSERT_EQ(descent_optimizer_update_indexed(per[d], li.size(), li.data(), nullptr, nullptr,
                                                   lp.data(), lg.data()),
                  DESCENT_OK);
      }
    }
    for (int i = 0; i < count; ++i) EXPECT_EQ(pm[i], pr[i]) << "parameter p" << i << " differs";
    descent_optimizer_free(mixed);
    for (auto* o : per) descent_optimizer_free(o);
  }
}

}  // namespace
