// The indexed and flat update forms: the flat layout's promises (alignment, declaration order,
// stable offsets, mixed dtypes), the same bits as updates by name for every kind and for
// Muon+AdamW groups, and every bad input refused with its status and message, changing nothing.
#include <cstdint>
#include <cstring>
#include <vector>

#include "api_test_support.h"

namespace {

using api_test::Handle;
using api_test::Model;

// 64-byte aligned zeroed bytes.
struct Aligned {
  std::vector<double> storage;
  unsigned char* data;
  explicit Aligned(size_t bytes) : storage(bytes / 8 + 16, 0.0) {
    auto a = reinterpret_cast<std::uintptr_t>(storage.data());
    data = reinterpret_cast<unsigned char*>((a + 63) / 64 * 64);
  }
};

size_t offset_of(descent_optimizer* opt, size_t i) {
  size_t at = SIZE_MAX;
  EXPECT_EQ(descent_optimizer_flat_offset(opt, i, &at), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  return at;
}

size_t flat_size_of(descent_optimizer* opt) {
  size_t n = SIZE_MAX;
  EXPECT_EQ(descent_optimizer_flat_size(opt, &n), DESCENT_OK) << descent_optimizer_last_error(opt);
  return n;
}

// A model with mixed dtypes, a scalar, an empty tensor and matrices (Muon takes ndim >= 2).
Model mixed_model(bool with_f64) {
  Model m;
  m.add("layers.0.weight", DESCENT_FLOAT32, {6, 5});
  m.add("layers.0.bias", DESCENT_FLOAT32, {5});
  m.add("scale", with_f64 ? DESCENT_FLOAT64 : DESCENT_FLOAT32, {});
  m.add("empty", DESCENT_FLOAT32, {0, 3});
  m.add("layers.1.weight", with_f64 ? DESCENT_FLOAT64 : DESCENT_FLOAT32, {3, 7});
  m.fill_params(11);
  return m;
}

const char* config_for(const std::string& kind) {
  if (kind == "multi") return nullptr;
  return R"({"learning_rate": 0.01})";
}

Handle make(const std::string& kind) {
  Handle h(kind.c_str());
  if (kind == "multi") {
    EXPECT_EQ(descent_multi_add_group(h, "muon", R"({"learning_rate": 0.02})", nullptr),
              DESCENT_OK);
    EXPECT_EQ(descent_multi_add_group(h, "adamw", R"({"learning_rate": 0.001})", nullptr),
              DESCENT_OK);
    EXPECT_EQ(descent_multi_filter_ndim(h, 0, 2, -1), DESCENT_OK);
  } else {
    EXPECT_EQ(descent_optimizer_configure_json(h, config_for(kind)), DESCENT_OK)
        << descent_optimizer_last_error(h);
  }
  return h;
}

TEST(FlatLayout, AlignedInDeclarationOrderAndStableWhenParametersAreAdded) {
  Handle h = make("adam");
  Model m = mixed_model(true);
  ASSERT_EQ(flat_size_of(h), 0u);
  std::vector<size_t> seen;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& t = m[i];
    DESCENT_ASSERT_OK(h, descent_optimizer_add_parameter(h, t.name.c_str(), t.dtype, t.shape.size(),
                                                         t.shape.data()));
    for (size_t k = 0; k < seen.size(); ++k) {
      EXPECT_EQ(offset_of(h, k), seen[k]) << "offset moved";
    }
    seen.push_back(offset_of(h, i));
    EXPECT_EQ(seen.back() % DESCENT_FLAT_ALIGNMENT, 0u);
    if (i > 0) {
      EXPECT_GE(seen[i], seen[i - 1] + m[i - 1].param.size());
    }
    const size_t total = flat_size_of(h);
    EXPECT_EQ(total % DESCENT_FLAT_ALIGNMENT, 0u);
    EXPECT_GE(total, seen.back() + t.param.size());
    EXPECT_LT(total, seen.back() + t.param.size() + DESCENT_FLAT_ALIGNMENT);
    size_t index = SIZE_MAX;
    DESCENT_ASSERT_OK(h, descent_optimizer_parameter_index(h, t.name.c_str(), &index));
    EXPECT_EQ(index, i);
  }
  // 30 floats = 120 bytes -> 128; 5 floats -> 64; one double -> 64; empty -> 0; 21 doubles -> 192.
  EXPECT_EQ(seen, (std::vector<size_t>{0, 128, 192, 256, 256}));
  EXPECT_EQ(flat_size_of(h), 448u);
}

// Every kind, by name, by index and flat from the same start: the same bits after 4 steps.
class UpdateForms : public testing::TestWithParam<std::string> {};

TEST_P(UpdateForms, SameBitsAsByName) {
  const std::string kind = GetParam();
  const bool f64 = kind != "multi" && kind != "muon";  // Muon's matrices share one dtype here
  Model by_name = mixed_model(f64), by_index = by_name, flat = by_name;
  Handle a = make(kind), b = make(kind), c = make(kind);
  DESCENT_ASSERT_OK(a, by_name.declare(a));
  DESCENT_ASSERT_OK(b, by_index.declare(b));
  DESCENT_ASSERT_OK(c, flat.declare(c));
  const size_t total = flat_size_of(c);
  Aligned fp(total), fg(total);
  for (size_t i = 0; i < flat.tensors.size(); ++i)  // (an empty tensor's data() may be NULL)
    if (!flat[i].param.empty())
      std::memcpy(fp.data + offset_of(c, i), flat[i].param.data(), flat[i].param.size());
  std::vector<size_t> idx;
  std::vector<void*> pp;
  std::vector<const void*> gp;
  for (size_t i = 0; i < by_index.tensors.size(); ++i) idx.push_back(i);
  for (int step = 0; step < 4; ++step) {
    by_name.fill_grads(100 + step);
    by_index.fill_grads(100 + step);
    for (size_t i = 0; i < flat.tensors.size(); ++i) {
      flat.fill_grads(100 + step);
      if (!flat[i].grad.empty())
        std::memcpy(fg.data + offset_of(c, i), flat[i].grad.data(), flat[i].grad.size());
    }
    DESCENT_ASSERT_OK(a, by_name.update(a));
    pp.clear();
    gp.clear();
    for (auto& t : by_index.tensors) {
      pp.push_back(t.param_ptr());
      gp.push_back(t.grad_ptr());
    }
    DESCENT_ASSERT_OK(b, descent_optimizer_update_indexed(b, idx.size(), idx.data(), nullptr,
                                                          nullptr, pp.data(), gp.data()));
    DESCENT_ASSERT_OK(c, descent_optimizer_update_flat(c, fp.data, fg.data, total));
  }
  for (size_t i = 0; i < flat.tensors.size(); ++i) {
    EXPECT_EQ(by_index[i].param, by_name[i].param) << by_name[i].name;
    if (!by_name[i].param.empty()) {
      EXPECT_EQ(0, std::memcmp(fp.data + offset_of(c, i), by_name[i].param.data(),
                               by_name[i].param.size()))
          << by_name[i].name;
    }
  }
  EXPECT_TRUE(api_test::state_snapshot(b) == api_test::state_snapshot(a));
  EXPECT_TRUE(api_test::state_snapshot(c) == api_test::state_snapshot(a));
}

std::vector<std::string> every_kind() {
  std::vector<std::string> kinds;
  for (const char* k : {"sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "adamax", "lion",
                        "adafactor", "muon", "multi"})
    kinds.emplace_back(k);
  return kinds;
}

INSTANTIATE_TEST_SUITE_P(EveryKind, UpdateForms, testing::ValuesIn(every_kind()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- bad input ---------------------------------------------------------------------------------

class UpdateFormsBadInput : public testing::Test {
 protected:
  void SetUp() override {
    opt_ = make("adamw");
    model_ = mixed_model(true);
    DESCENT_ASSERT_OK(opt_, model_.declare(opt_));
    model_.fill_grads(5);
    DESCENT_ASSERT_OK(opt_, model_.update(opt_));  // initialised, one step taken
    model_.fill_grads(6);
    for (auto& t : model_.tensors) {
      params_.push_back(t.param_ptr());
      grads_.push_back(t.grad_ptr());
      indices_.push_back(indices_.size());
    }
  }
  Handle opt_;
  Model model_;
  std::vector<void*> params_;
  std::vector<const void*> grads_;
  std::vector<size_t> indices_;
};

TEST_F(UpdateFormsBadInput, ParameterIndex) {
  size_t out = 77;
  EXPECT_FAILS(nullptr, &model_, DESCENT_ERR_NULL_ARGUMENT, "opt",
               descent_optimizer_parameter_index(nullptr, "scale", &out));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "name",
               descent_optimizer_parameter_index(opt_, nullptr, &out));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "out",
               descent_optimizer_parameter_index(opt_, "scale", nullptr));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_UNKNOWN_KEY, "'nope'",
               descent_optimizer_parameter_index(opt_, "nope", &out));
  EXPECT_EQ(out, 77u) << "output written on error";
}

TEST_F(UpdateFormsBadInput, ParameterInfo) {
  // As declared, by index.
  for (size_t i = 0; i < model_.tensors.size(); ++i) {
    const char* name = nullptr;
    descent_dtype dtype = DESCENT_UINT64;
    size_t ndim = 99;
    int64_t shape[DESCENT_MAX_NDIM] = {};
    DESCENT_ASSERT_OK(opt_, descent_optimizer_parameter_info(opt_, i, &name, &dtype, &ndim, shape,
                                                             DESCENT_MAX_NDIM));
    EXPECT_EQ(std::string(name), model_[i].name);
    EXPECT_EQ(dtype, model_[i].dtype);
    ASSERT_EQ(ndim, model_[i].shape.size());
    EXPECT_EQ(std::vector<int64_t>(shape, shape + ndim), model_[i].shape);
  }
  DESCENT_ASSERT_OK(
      opt_, descent_optimizer_parameter_info(opt_, 0, nullptr, nullptr, nullptr, nullptr, 0));
  const char* name = "untouched";
  size_t ndim = 77;
  int64_t shape[1] = {-5};
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_INVALID_ARGUMENT, "index 5",
               descent_optimizer_parameter_info(opt_, 5, &name, nullptr, &ndim, nullptr, 0));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_BUFFER_TOO_SMALL, "'layers.0.weight': has 2 dimensions",
               descent_optimizer_parameter_info(opt_, 0, &name, nullptr, &ndim, shape, 1));
  EXPECT_FAILS(nullptr, &model_, DESCENT_ERR_NULL_ARGUMENT, "opt",
               descent_optimizer_parameter_info(nullptr, 0, &name, nullptr, &ndim, nullptr, 0));
  EXPECT_STREQ(name, "untouched");
  EXPECT_EQ(ndim, 77u);
  EXPECT_EQ(shape[0], -5);
}

TEST_F(UpdateFormsBadInput, Indexed) {
  const size_t n = indices_.size();
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "indices",
               descent_optimizer_update_indexed(opt_, n, nullptr, nullptr, nullptr, params_.data(),
                                                grads_.data()));
  std::vector<size_t> bad = indices_;
  bad[2] = n;
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_UNKNOWN_KEY, "indices[2] = 5",
               descent_optimizer_update_indexed(opt_, n, bad.data(), nullptr, nullptr,
                                                params_.data(), grads_.data()));
  bad = indices_;
  bad[3] = 0;
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_DUPLICATE, "given twice",
               descent_optimizer_update_indexed(opt_, n, bad.data(), nullptr, nullptr,
                                                params_.data(), grads_.data()));
  std::vector<descent_dtype> dtypes(n, DESCENT_FLOAT32);
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_DTYPE_MISMATCH, "'scale'",
               descent_optimizer_update_indexed(opt_, n, indices_.data(), dtypes.data(), nullptr,
                                                params_.data(), grads_.data()));
  std::vector<int64_t> numels = {30, 5, 1, 0, 20};
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_SHAPE_MISMATCH, "'layers.1.weight'",
               descent_optimizer_update_indexed(opt_, n, indices_.data(), nullptr, numels.data(),
                                                params_.data(), grads_.data()));
  std::vector<const void*> g = grads_;
  g[1] = params_[1];
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_INVALID_ARGUMENT, "overlap",
               descent_optimizer_update_indexed(opt_, n, indices_.data(), nullptr, nullptr,
                                                params_.data(), g.data()));
  g[1] = nullptr;
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "grads[1]",
               descent_optimizer_update_indexed(opt_, n, indices_.data(), nullptr, nullptr,
                                                params_.data(), g.data()));
}

TEST_F(UpdateFormsBadInput, FlatLayoutQueries) {
  size_t out = 77;
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_INVALID_ARGUMENT, "index 5",
               descent_optimizer_flat_offset(opt_, 5, &out));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "byte_offset",
               descent_optimizer_flat_offset(opt_, 0, nullptr));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "bytes",
               descent_optimizer_flat_size(opt_, nullptr));
  EXPECT_FAILS(nullptr, &model_, DESCENT_ERR_NULL_ARGUMENT, "opt",
               descent_optimizer_flat_size(nullptr, &out));
  EXPECT_EQ(out, 77u);
}

TEST_F(UpdateFormsBadInput, Flat) {
  const size_t total = flat_size_of(opt_);
  Aligned p(total + 64), g(total + 64);
  std::memset(p.data, 0x3c, total + 64);  // finite float and double patterns
  std::memset(g.data, 0x3b, total + 64);
  const std::vector<unsigned char> before(p.data, p.data + total + 64);
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_SHAPE_MISMATCH, "448",
               descent_optimizer_update_flat(opt_, p.data, g.data, total - 64));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_SHAPE_MISMATCH, "448",
               descent_optimizer_update_flat(opt_, p.data, g.data, total + 64));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "params",
               descent_optimizer_update_flat(opt_, nullptr, g.data, total));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_NULL_ARGUMENT, "grads",
               descent_optimizer_update_flat(opt_, p.data, nullptr, total));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_INVALID_ARGUMENT, "aligned to 8",
               descent_optimizer_update_flat(opt_, p.data + 4, g.data, total));
  EXPECT_FAILS(opt_, &model_, DESCENT_ERR_INVALID_ARGUMENT, "overlap",
               descent_optimizer_update_flat(opt_, p.data, p.data + 64, total));
  EXPECT_EQ(std::vector<unsigned char>(p.data, p.data + total + 64), before) << "params written";
  // A group handle is not updated directly.
  Handle multi = make("multi");
  Model m = mixed_model(false);
  DESCENT_ASSERT_OK(multi, m.declare(multi));
  descent_optimizer* group = nullptr;
  DESCENT_ASSERT_OK(multi, descent_multi_group(multi, 1, &group));
  EXPECT_EQ(descent_optimizer_update_flat(group, p.data, g.data, flat_size_of(multi)),
            DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(descent_optimizer_update_indexed(group, 0, nullptr, nullptr, nullptr, nullptr, nullptr),
            DESCENT_ERR_INVALID_STATE);
}

TEST(UpdateFormsReadiness, FlatBeforeLearningRateChangesNothing) {
  Handle h("adam");
  Model m = mixed_model(false);
  DESCENT_ASSERT_OK(h, m.declare(h));
  const size_t total = flat_size_of(h);
  Aligned p(total), g(total);
  EXPECT_FAILS(h, &m, DESCENT_ERR_INVALID_STATE, "learning_rate",
               descent_optimizer_update_flat(h, p.data, g.data, total));
}

}  // namespace
