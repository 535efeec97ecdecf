// Saving and resuming through the C API: descent's files load back bit for bit and continue
// exactly where the original left off; they are valid safetensors for an independent reader;
// buffers that are too small are refused untouched; loads that cannot apply change nothing;
// saves replace files atomically and leave no temporary file behind on failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "state_file_support.h"

namespace {

using namespace state_test;

// A configuration per kind that moves every hyperparameter off its default where MLX allows.
const char* config_for(const std::string& kind) {
  if (kind == "sgd")
    return R"({"learning_rate": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01})";
  if (kind == "rmsprop") return R"({"learning_rate": 0.01, "alpha": 0.9, "eps": 1e-7})";
  if (kind == "adagrad") return R"({"learning_rate": 0.1, "eps": 1e-6})";
  if (kind == "adadelta") return R"({"learning_rate": 1.0, "rho": 0.95, "eps": 1e-5})";
  if (kind == "adam")
    return R"({"learning_rate": 0.01, "betas": [0.8, 0.99], "bias_correction": true})";
  if (kind == "adamw") return R"({"learning_rate": 0.01, "weight_decay": 0.05, "eps": 1e-7})";
  if (kind == "adamax") return R"({"learning_rate": 0.01, "betas": [0.85, 0.995]})";
  if (kind == "lion")
    return R"({"learning_rate": 0.001, "betas": [0.95, 0.98], "weight_decay": 0.1})";
  if (kind == "adafactor")
    return R"({"learning_rate": 0.01, "relative_step": false, "beta_1": 0.9, "weight_decay": 0.01,
              "clip_threshold": 2.0, "decay_rate": -0.7, "eps": [1e-29, 2e-3]})";
  if (kind == "muon")
    return R"({"learning_rate": 0.02, "momentum": 0.9, "weight_decay": 0.01, "nesterov": false,
              "ns_steps": 4})";
  ADD_FAILURE() << "no configuration for kind " << kind;
  return "{}";
}

Model make_model(descent_dtype dtype) {
  Model m;
  m.add("w1", dtype, {7})
      .add("layers.0.weight", dtype, {4, 5})
      .add("layers.0.kernel", dtype, {2, 3, 4});
  m.add("scale", dtype, {}).add("empty", dtype, {0, 3});
  m.fill_params(1);
  return m;
}

// An optimizer of `kind` after `steps` updates of `model`.
Opt trained(const std::string& kind, Model& model, int steps) {
  Opt opt = create(kind.c_str(), config_for(kind));
  EXPECT_EQ(model.declare(opt.get()), DESCENT_OK);
  for (int s = 0; s < steps; ++s) {
    model.fill_grads(100 + s);
    EXPECT_EQ(model.update(opt.get()), DESCENT_OK) << descent_optimizer_last_error(opt.get());
  }
  return opt;
}

// Expects `call` to fail with `code`, a message mentioning `mention`, and no change to `opt`.
template <class Call>
void expect_load_fails(descent_optimizer* opt, descent_status code, const std::string& mention,
                       Call call) {
  const auto state = state_snapshot(opt);
  const auto hyper = hyper_snapshot(opt);
  std::size_t params_before = 0, params_after = 0;
  descent_optimizer_parameter_count(opt, &params_before);
  const descent_status got = call();
  EXPECT_EQ(got, code) << descent_status_name(got) << ": " << descent_optimizer_last_error(opt);
  const std::string message = descent_optimizer_last_error(opt);
  EXPECT_EQ(message, descent_last_error());
  EXPECT_NE(message.find(mention), std::string::npos)
      << "message does not mention '" << mention << "': " << message;
  EXPECT_EQ(state_snapshot(opt), state) << "state changed";
  EXPECT_EQ(hyper_snapshot(opt), hyper) << "hyperparameters changed";
  descent_optimizer_parameter_count(opt, &params_after);
  EXPECT_EQ(params_after, params_before);
}

class CheckpointRoundTrip : public testing::TestWithParam<std::tuple<std::string, descent_dtype>> {
};

// Save -> load into a fresh optimizer (created, parameters declared, nothing configured) gives
// the same state and hyperparameters bit for bit, and both continue identically.
TEST_P(CheckpointRoundTrip, LoadsBitExactAndContinuesIdentically) {
  const auto [kind, dtype] = GetParam();
  Model original_model = make_model(dtype);
  Opt original = trained(kind, original_model, 3);

  for (const bool through_file : {false, true}) {
    SCOPED_TRACE(through_file ? "file" : "buffer");
    Model model = original_model;
    Opt copy = create(kind.c_str());
    EXPECT_EQ(model.declare(copy.get()), DESCENT_OK);
    TempDir dir;
    if (through_file) {
      DESCENT_ASSERT_OK(original.get(),
                        descent_optimizer_save(original.get(), (dir / "s.safetensors").c_str()));
      DESCENT_ASSERT_OK(copy.get(),
                        descent_optimizer_load(copy.get(), (dir / "s.safetensors").c_str()));
      EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"s.safetensors"});
    } else {
      const Bytes saved = save_buffer(original.get());
      DESCENT_ASSERT_OK(copy.get(),
                        descent_optimizer_load_from_buffer(copy.get(), saved.data(), saved.size()));
    }
    EXPECT_EQ(state_snapshot(copy.get()), state_snapshot(original.get()));
    EXPECT_EQ(hyper_snapshot(copy.get()), hyper_snapshot(original.get()));
    // Saving the loaded copy gives the same bytes.
    EXPECT_TRUE(save_buffer(copy.get()) == save_buffer(original.get()));

    // Continue both with the same gradients: identical parameters and state.
    Model continued = original_model;
    Opt reference = create(kind.c_str());
    EXPECT_EQ(continued.declare(reference.get()), DESCENT_OK);
    const Bytes snapshot = save_buffer(original.get());
    DESCENT_ASSERT_OK(reference.get(), descent_optimizer_load_from_buffer(
                                           reference.get(), snapshot.data(), snapshot.size()));
    for (int s = 0; s < 3; ++s) {
      model.fill_grads(200 + s);
      continued.fill_grads(200 + s);
      DESCENT_ASSERT_OK(copy.get(), model.update(copy.get()));
      DESCENT_ASSERT_OK(reference.get(), continued.update(reference.get()));
    }
    EXPECT_TRUE(model.params() == continued.params());
    EXPECT_EQ(state_snapshot(copy.get()), state_snapshot(reference.get()));
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, CheckpointRoundTrip,
                         testing::Combine(testing::ValuesIn(descent_test::rule_kinds()),
                                          testing::Values(DESCENT_FLOAT32, DESCENT_FLOAT64)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" +
                                  descent_test::dtype_suffix(std::get<1>(info.param));
                         });

// Three steps, save, three more steps == three steps, save, load elsewhere, three more steps.
TEST(Checkpoint, ResumedRunEqualsUninterruptedRun) {
  Model a = make_model(DESCENT_FLOAT32);
  Opt uninterrupted = trained("adamw", a, 3);
  TempDir dir;
  const std::string path = dir / "ckpt.safetensors";
  DESCENT_ASSERT_OK(uninterrupted.get(), descent_optimizer_save(uninterrupted.get(), path.c_str()));
  Model b = a;  // the parameters at the save point
  for (int s = 3; s < 6; ++s) {
    a.fill_grads(100 + s);
    DESCENT_ASSERT_OK(uninterrupted.get(), a.update(uninterrupted.get()));
  }
  Opt resumed = create("adamw");
  EXPECT_EQ(b.declare(resumed.get()), DESCENT_OK);
  DESCENT_ASSERT_OK(resumed.get(), descent_optimizer_load(resumed.get(), path.c_str()));
  EXPECT_EQ(step_of(resumed.get()), 3u);
  for (int s = 3; s < 6; ++s) {
    b.fill_grads(100 + s);
    DESCENT_ASSERT_OK(resumed.get(), b.update(resumed.get()));
  }
  EXPECT_TRUE(a.params() == b.params());
  EXPECT_EQ(state_snapshot(resumed.get()), state_snapshot(uninterrupted.get()));
  EXPECT_EQ(step_of(resumed.get()), 6u);
}

TEST(Checkpoint, SaveToBufferSizesAndRefusesSmallBuffers) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt opt = trained("adam", m, 2);
  std::size_t size = 0;
  DESCENT_ASSERT_OK(opt.get(), descent_optimizer_save_to_buffer(opt.get(), nullptr, 0, &size));
  ASSERT_GT(size, 8u);

  Bytes small(size - 1, 0xAB);
  std::size_t reported = 12345;
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt.get(), small.data(), small.size(), &reported),
            DESCENT_ERR_BUFFER_TOO_SMALL);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt.get())).find(std::to_string(size)),
            std::string::npos)
      << descent_optimizer_last_error(opt.get());
  EXPECT_EQ(reported, 12345u) << "*size written on failure";
  EXPECT_TRUE(std::all_of(small.begin(), small.end(), [](unsigned char c) { return c == 0xAB; }))
      << "bytes written into a buffer that is too small";
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt.get(), small.data(), 0, &reported),
            DESCENT_ERR_BUFFER_TOO_SMALL);

  Bytes exact(size + 16, 0xCD);
  DESCENT_ASSERT_OK(
      opt.get(), descent_optimizer_save_to_buffer(opt.get(), exact.data(), size + 16, &reported));
  EXPECT_EQ(reported, size);
  EXPECT_TRUE(std::all_of(exact.begin() + static_cast<long>(size), exact.end(),
                          [](unsigned char c) { return c == 0xCD; }))
      << "bytes written past *size";

  EXPECT_EQ(descent_optimizer_save_to_buffer(opt.get(), nullptr, 0, nullptr),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_save_to_buffer(nullptr, nullptr, 0, &reported),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_save(opt.get(), nullptr), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_load(opt.get(), nullptr), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_load_from_buffer(opt.get(), nullptr, 5), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_load_from_buffer(nullptr, exact.data(), size),
            DESCENT_ERR_NULL_ARGUMENT);
}

// The bytes descent writes, read by a minimal reader that shares no code with descent: header
// length, JSON header, string metadata, offsets tiling the data, dtype/shape/bytes per slot.
TEST(Checkpoint, FileIsValidSafetensorsForAnIndependentReader) {
  Model m = make_model(DESCENT_FLOAT64);
  Opt opt = trained("adam", m, 2);
  TempDir dir;
  const std::string path = dir / "adam.safetensors";
  DESCENT_ASSERT_OK(opt.get(), descent_optimizer_save(opt.get(), path.c_str()));
  const Bytes file = read_bytes(path);
  EXPECT_TRUE(file == save_buffer(opt.get())) << "file and buffer forms differ";

  const ParsedFile parsed = parse_independently(file);
  ASSERT_TRUE(parsed.header.is_object());
  EXPECT_EQ(parsed.data_start % 8, 0u) << "data not 8-byte aligned";
  const auto& meta = parsed.header.at("__metadata__");
  ASSERT_TRUE(meta.is_object());
  for (const auto& [k, v] : meta.items()) EXPECT_TRUE(v.is_string()) << k;
  EXPECT_EQ(meta.at("format"), "descent");
  EXPECT_EQ(meta.at("format_version"), "1");
  EXPECT_EQ(meta.at("kind"), "adam");
  EXPECT_EQ(meta.at("descent_version"), descent_version_string());
  const auto config = nlohmann::json::parse(meta.at("config").get<std::string>());
  EXPECT_EQ(config.at("learning_rate").get<double>(), static_cast<double>(0.01f));
  EXPECT_EQ(config.at("betas"), nlohmann::json::parse("[0.8, 0.99]"));
  EXPECT_EQ(config.at("bias_correction"), true);

  const auto state = state_snapshot(opt.get());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::size_t tensors = 0;
  for (const auto& [key, entry] : parsed.header.items()) {
    if (key == "__metadata__") continue;
    ++tensors;
    const auto slot =
        std::find_if(state.begin(), state.end(), [&](const Slot& s) { return s.key == key; });
    ASSERT_NE(slot, state.end()) << key;
    const std::string want = slot->dtype == DESCENT_FLOAT32   ? "F32"
                             : slot->dtype == DESCENT_FLOAT64 ? "F64"
                                                              : "U64";
    EXPECT_EQ(entry.at("dtype"), want) << key;
    EXPECT_EQ(entry.at("shape").get<std::vector<int64_t>>(), slot->shape) << key;
    const auto off = entry.at("data_offsets").get<std::vector<uint64_t>>();
    ASSERT_EQ(off.size(), 2u);
    ASSERT_LE(off[0], off[1]);
    ASSERT_LE(parsed.data_start + off[1], file.size());
    ranges.emplace_back(off[0], off[1]);
    EXPECT_TRUE(Bytes(file.begin() + static_cast<long>(parsed.data_start + off[0]),
                      file.begin() + static_cast<long>(parsed.data_start + off[1])) == slot->bytes)
        << key;
  }
  EXPECT_EQ(tensors, state.size());
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (const auto& [b, e] : ranges) {
    EXPECT_EQ(b, cursor);
    cursor = e;
  }
  EXPECT_EQ(parsed.data_start + cursor, file.size());
  // MLX's key order: step and learning_rate first, then the parameters' slots.
  auto it = parsed.header.begin();
  EXPECT_EQ((++it).key(), "step");
  EXPECT_EQ((++it).key(), "learning_rate");
}

// A file written before the state exists holds step and learning_rate only; loading it leaves
// the target uninitialised, and the first update allocates zeros as usual.
TEST(Checkpoint, StateSavedBeforeInitLoadsUninitialised) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt before = create("adam", config_for("adam"));
  EXPECT_EQ(m.declare(before.get()), DESCENT_OK);
  const Bytes saved = save_buffer(before.get());
  Opt target = create("adam");
  EXPECT_EQ(m.declare(target.get()), DESCENT_OK);
  DESCENT_ASSERT_OK(target.get(),
                    descent_optimizer_load_from_buffer(target.get(), saved.data(), saved.size()));
  EXPECT_EQ(state_snapshot(target.get()), state_snapshot(before.get()));
  Model m2 = m;
  m.fill_grads(5);
  m2.fill_grads(5);
  DESCENT_ASSERT_OK(before.get(), m.update(before.get()));
  DESCENT_ASSERT_OK(target.get(), m2.update(target.get()));
  EXPECT_EQ(state_snapshot(target.get()), state_snapshot(before.get()));
  EXPECT_TRUE(m.params() == m2.params());
}

// A descent file carries the hyperparameters: loading replaces the target's configuration.
TEST(Checkpoint, DescentFileCarriesTheConfiguration) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt saved = trained("sgd", m, 1);
  Opt target = create("sgd", R"({"learning_rate": 0.5, "momentum": 0.1, "nesterov": false})");
  EXPECT_EQ(m.declare(target.get()), DESCENT_OK);
  const Bytes bytes = save_buffer(saved.get());
  DESCENT_ASSERT_OK(target.get(),
                    descent_optimizer_load_from_buffer(target.get(), bytes.data(), bytes.size()));
  EXPECT_EQ(hyper_snapshot(target.get()), hyper_snapshot(saved.get()));
}

TEST(Checkpoint, LoadsThatDoNotFitChangeNothing) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt adam = trained("adam", m, 2);
  const Bytes adam_file = save_buffer(adam.get());

  // Another kind.
  Model m_sgd = make_model(DESCENT_FLOAT32);
  Opt sgd = trained("sgd", m_sgd, 1);
  expect_load_fails(sgd.get(), DESCENT_ERR_INVALID_ARGUMENT, "'adam'", [&] {
    return descent_optimizer_load_from_buffer(sgd.get(), adam_file.data(), adam_file.size());
  });

  // Same names, another shape / dtype / an extra or a missing parameter; before and after init.
  for (const bool initialised : {false, true}) {
    SCOPED_TRACE(initialised ? "initialised target" : "fresh target");
    auto target = [&](Model model) {
      Opt o = create("adam", R"({"learning_rate": 0.25})");
      EXPECT_EQ(model.declare(o.get()), DESCENT_OK);
      if (initialised) {
        EXPECT_EQ(descent_optimizer_init(o.get()), DESCENT_OK);
      }
      return o;
    };
    auto load = [&](descent_optimizer* o) {
      return [o, &adam_file] {
        return descent_optimizer_load_from_buffer(o, adam_file.data(), adam_file.size());
      };
    };
    Model reshaped;
    reshaped.add("w1", DESCENT_FLOAT32, {7}).add("layers.0.weight", DESCENT_FLOAT32, {5, 4});
    reshaped.add("layers.0.kernel", DESCENT_FLOAT32, {2, 3, 4}).add("scale", DESCENT_FLOAT32, {});
    reshaped.add("empty", DESCENT_FLOAT32, {0, 3});
    Opt o1 = target(reshaped);
    expect_load_fails(o1.get(), DESCENT_ERR_SHAPE_MISMATCH, "layers.0.weight", load(o1.get()));

    Opt o2 = target(make_model(DESCENT_FLOAT64));
    expect_load_fails(o2.get(), DESCENT_ERR_DTYPE_MISMATCH, "F32", load(o2.get()));

    Model extra = make_model(DESCENT_FLOAT32);
    extra.add("bias", DESCENT_FLOAT32, {3});
    Opt o3 = target(extra);
    expect_load_fails(o3.get(), DESCENT_ERR_UNKNOWN_KEY, "bias.m", load(o3.get()));

    Model fewer;
    fewer.add("w1", DESCENT_FLOAT32, {7});
    Opt o4 = target(fewer);
    expect_load_fails(o4.get(), DESCENT_ERR_UNKNOWN_KEY, "layers.0.", load(o4.get()));
  }

  // Files that cannot be read name the path and the system's reason.
  TempDir dir;
  expect_load_fails(adam.get(), DESCENT_ERR_IO, "No such file or directory", [&] {
    return descent_optimizer_load(adam.get(), (dir / "missing.safetensors").c_str());
  });
  expect_load_fails(adam.get(), DESCENT_ERR_IO, dir.path(),
                    [&] { return descent_optimizer_load(adam.get(), dir.path().c_str()); });
  expect_load_fails(adam.get(), DESCENT_ERR_INVALID_ARGUMENT, "empty",
                    [&] { return descent_optimizer_load(adam.get(), ""); });
  // A corrupt file names the path too.
  write_bytes(dir / "short.safetensors", Bytes(adam_file.begin(), adam_file.begin() + 100));
  expect_load_fails(adam.get(), DESCENT_ERR_CORRUPT, "short.safetensors", [&] {
    return descent_optimizer_load(adam.get(), (dir / "short.safetensors").c_str());
  });
}

TEST(Checkpoint, FailedSavesLeaveTheOldFileAndNoTemporary) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt opt = trained("adam", m, 1);
  TempDir dir;

  const std::string nowhere = dir / "no/such/dir/state.safetensors";
  EXPECT_EQ(descent_optimizer_save(opt.get(), nowhere.c_str()), DESCENT_ERR_IO);
  std::string msg = descent_optimizer_last_error(opt.get());
  EXPECT_NE(msg.find(nowhere), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;

  // The target is a directory: rename fails; the directory and its contents stay.
  ASSERT_EQ(mkdir((dir / "adir").c_str(), 0700), 0);
  write_bytes(dir / "adir/keep", Bytes{1, 2, 3});
  EXPECT_EQ(descent_optimizer_save(opt.get(), (dir / "adir").c_str()), DESCENT_ERR_IO);
  msg = descent_optimizer_last_error(opt.get());
  EXPECT_NE(msg.find("adir"), std::string::npos) << msg;
  EXPECT_EQ(list_dir(dir / "adir"), std::vector<std::string>{"keep"});
  std::vector<std::string> names = list_dir(dir.path());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, std::vector<std::string>{"adir"}) << "a temporary file was left behind";

  EXPECT_EQ(descent_optimizer_save(opt.get(), ""), DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(descent_optimizer_save(opt.get(), (dir.path() + "/").c_str()),
            DESCENT_ERR_INVALID_ARGUMENT);

  // A directory we may not write to (meaningless for root, who may).
  if (geteuid() != 0) {
    const std::string target = dir / "ro/state.safetensors";
    ASSERT_EQ(mkdir((dir / "ro").c_str(), 0700), 0);
    DESCENT_ASSERT_OK(opt.get(), descent_optimizer_save(opt.get(), target.c_str()));
    const Bytes before = read_bytes(target);
    ASSERT_EQ(chmod((dir / "ro").c_str(), 0500), 0);
    m.fill_grads(9);
    DESCENT_ASSERT_OK(opt.get(), m.update(opt.get()));
    EXPECT_EQ(descent_optimizer_save(opt.get(), target.c_str()), DESCENT_ERR_IO);
    msg = descent_optimizer_last_error(opt.get());
    EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
    chmod((dir / "ro").c_str(), 0700);
    EXPECT_TRUE(read_bytes(target) == before);
    EXPECT_EQ(list_dir(dir / "ro"), std::vector<std::string>{"state.safetensors"});
  }
}

TEST(Checkpoint, SaveReplacesTheFileAndKeepsItsPermissions) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt opt = trained("lion", m, 1);
  TempDir dir;
  const std::string path = dir / "state.safetensors";
  write_bytes(path, Bytes(10000, 7));
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  DESCENT_ASSERT_OK(opt.get(), descent_optimizer_save(opt.get(), path.c_str()));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_TRUE(read_bytes(path) == save_buffer(opt.get()));
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"state.safetensors"});
  // A relative path (no directory part) works too.
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  const descent_status s = descent_optimizer_save(opt.get(), "relative.safetensors");
  EXPECT_EQ(chdir(cwd), 0);
  EXPECT_EQ(s, DESCENT_OK) << descent_optimizer_last_error(opt.get());
  EXPECT_TRUE(read_bytes(dir / "relative.safetensors") == save_buffer(opt.get()));
}

// MLX may store the step as another integer type and the learning rate as float64 or int32
// (mx.array(1)); descent converts where the value survives exactly.
TEST(Checkpoint, MlxScalarsConvertWhenLossless) {
  auto mlx_file = [](StTensor step, StTensor lr) {
    std::vector<float> v(6, 0.5f);
    return build_safetensors({std::move(step), std::move(lr), {"w.v", "F32", {2, 3}, bytes_of(v)}});
  };
  auto fresh = [] {
    Opt o = create("sgd", R"({"learning_rate": 0.5, "momentum": 0.9})");
    const int64_t shape[] = {2, 3};
    EXPECT_EQ(descent_optimizer_add_parameter(o.get(), "w", DESCENT_FLOAT32, 2, shape), DESCENT_OK);
    return o;
  };
  const StTensor lr_f32{"learning_rate", "F32", {}, bytes_of(std::vector<float>{0.125f})};
  struct Case {
    StTensor step, lr;
    uint64_t want_step;
    float want_lr;
  };
  const Case ok[] = {
      {{"step", "U64", {}, bytes_of(std::vector<uint64_t>{7})}, lr_f32, 7, 0.125f},
      {{"step", "I64", {}, bytes_of(std::vector<int64_t>{8})}, lr_f32, 8, 0.125f},
      {{"step", "I32", {}, bytes_of(std::vector<int32_t>{9})}, lr_f32, 9, 0.125f},
      {{"step", "U32", {}, bytes_of(std::vector<uint32_t>{10})}, lr_f32, 10, 0.125f},
      {{"step", "U64", {}, bytes_of(std::vector<uint64_t>{1})},
       {"learning_rate", "F64", {}, bytes_of(std::vector<double>{0.375})},
       1,
       0.375f},
      {{"step", "U64", {}, bytes_of(std::vector<uint64_t>{1})},
       {"learning_rate", "I32", {}, bytes_of(std::vector<int32_t>{2})},
       1,
       2.0f},
  };
  for (const auto& c : ok) {
    SCOPED_TRACE(c.step.dtype + "/" + c.lr.dtype);
    Opt o = fresh();
    const Bytes file = mlx_file(c.step, c.lr);
    DESCENT_ASSERT_OK(o.get(),
                      descent_optimizer_load_from_buffer(o.get(), file.data(), file.size()));
    EXPECT_EQ(step_of(o.get()), c.want_step);
    float lr = 0;
    EXPECT_EQ(descent_optimizer_state_get(o.get(), "learning_rate", DESCENT_FLOAT32, &lr, 1),
              DESCENT_OK);
    EXPECT_EQ(lr, c.want_lr);
  }
  const StTensor step1{"step", "U64", {}, bytes_of(std::vector<uint64_t>{1})};
  Opt o = fresh();
  Bytes f = mlx_file({"step", "I64", {}, bytes_of(std::vector<int64_t>{-1})}, lr_f32);
  expect_load_fails(o.get(), DESCENT_ERR_OUT_OF_RANGE, "negative", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
  f = mlx_file({"step", "F32", {}, bytes_of(std::vector<float>{1})}, lr_f32);
  expect_load_fails(o.get(), DESCENT_ERR_DTYPE_MISMATCH, "step", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
  f = mlx_file(step1, {"learning_rate", "F64", {}, bytes_of(std::vector<double>{0.1})});
  expect_load_fails(o.get(), DESCENT_ERR_DTYPE_MISMATCH, "float32", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
  f = mlx_file(step1, {"learning_rate", "F16", {}, Bytes{0, 0x3c}});
  expect_load_fails(o.get(), DESCENT_ERR_DTYPE_MISMATCH, "F16", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
  f = mlx_file({"step", "U64", {1}, bytes_of(std::vector<uint64_t>{1})}, lr_f32);
  expect_load_fails(o.get(), DESCENT_ERR_SHAPE_MISMATCH, "step", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
  // A file without "step" lacks state the optimizer has.
  std::vector<float> v(6, 0.5f);
  f = build_safetensors({lr_f32, {"w.v", "F32", {2, 3}, bytes_of(v)}});
  expect_load_fails(o.get(), DESCENT_ERR_UNKNOWN_KEY, "step", [&] {
    return descent_optimizer_load_from_buffer(o.get(), f.data(), f.size());
  });
}

// An MLX file supplies the learning rate when the caller set none (MLX: the loaded value
// overrides the constructor's).
TEST(Checkpoint, MlxFileSuppliesTheLearningRate) {
  Opt o = create("sgd");
  const int64_t s0[] = {3, 3}, s1[] = {3, 2};
  ASSERT_EQ(descent_optimizer_add_parameter(o.get(), "layers.0.w", DESCENT_FLOAT32, 2, s0),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(o.get(), "layers.1.w", DESCENT_FLOAT32, 2, s1),
            DESCENT_OK);
  DESCENT_ASSERT_OK(
      o.get(),
      descent_optimizer_load(o.get(), (data_dir() + "/mlx-state/sgd.state.safetensors").c_str()));
  double lr = 0;
  EXPECT_EQ(descent_optimizer_get_double(o.get(), "learning_rate", &lr), DESCENT_OK);
  EXPECT_EQ(lr, 0.125);
  EXPECT_EQ(step_of(o.get()), 3u);
}

// Learning-rate schedules travel in the config; the schedule's position is the step.
TEST(Checkpoint, ScheduleTravelsWithTheConfig) {
  Opt opt = create("adam", R"({"learning_rate": 0.1})");
  DESCENT_ASSERT_OK(opt.get(),
                    descent_optimizer_set_schedule(opt.get(), "exponential_decay:0.1:0.9"));
  Model m = make_model(DESCENT_FLOAT32);
  EXPECT_EQ(m.declare(opt.get()), DESCENT_OK);
  for (int s = 0; s < 3; ++s) {
    m.fill_grads(300 + s);
    DESCENT_ASSERT_OK(opt.get(), m.update(opt.get()));
  }
  const Bytes saved = save_buffer(opt.get());
  Opt copy = create("adam", R"({"learning_rate": 0.7})");
  Model m2 = m;
  EXPECT_EQ(m2.declare(copy.get()), DESCENT_OK);
  DESCENT_ASSERT_OK(copy.get(),
                    descent_optimizer_load_from_buffer(copy.get(), saved.data(), saved.size()));
  EXPECT_EQ(state_snapshot(copy.get()), state_snapshot(opt.get()));
  for (int s = 3; s < 6; ++s) {
    m.fill_grads(300 + s);
    m2.fill_grads(300 + s);
    DESCENT_ASSERT_OK(opt.get(), m.update(opt.get()));
    DESCENT_ASSERT_OK(copy.get(), m2.update(copy.get()));
  }
  EXPECT_EQ(state_snapshot(copy.get()), state_snapshot(opt.get()));
  EXPECT_TRUE(m.params() == m2.params());
}

// Adafactor without a learning rate (MLX's None) saves no "learning_rate"; loading its file into
// one configured with a learning rate unsets it, as the saved configuration says.
TEST(Checkpoint, StateWithoutLearningRate) {
  Model m = make_model(DESCENT_FLOAT32);
  Opt saved = create("adafactor");
  EXPECT_EQ(m.declare(saved.get()), DESCENT_OK);
  m.fill_grads(500);
  DESCENT_ASSERT_OK(saved.get(), m.update(saved.get()));
  const Bytes file = save_buffer(saved.get());
  const auto keys = state_snapshot(saved.get());
  EXPECT_TRUE(std::none_of(keys.begin(), keys.end(),
                           [](const Slot& x) { return x.key == "learning_rate"; }));
  Opt target = create("adafactor", R"({"learning_rate": 0.01, "relative_step": false})");
  Model m2 = make_model(DESCENT_FLOAT32);
  EXPECT_EQ(m2.declare(target.get()), DESCENT_OK);
  DESCENT_ASSERT_OK(target.get(),
                    descent_optimizer_load_from_buffer(target.get(), file.data(), file.size()));
  EXPECT_EQ(state_snapshot(target.get()), state_snapshot(saved.get()));
  EXPECT_EQ(hyper_snapshot(target.get()), hyper_snapshot(saved.get()));
}

// MultiOptimizer: "states.<i>.<key>" slots; the file's config rebuilds the groups, so a bare
// "multi" with the parameters declared resumes the run.
TEST(Checkpoint, MultiOptimizerRoundTrip) {
  Opt multi = create("multi", R"({"groups": [
      {"kind": "adam", "config": {"learning_rate": 0.01}, "include": [{"name": "layers.*"}]},
      {"kind": "sgd", "config": {"learning_rate": 0.1, "momentum": 0.9}}]})");
  Model m = make_model(DESCENT_FLOAT32);
  EXPECT_EQ(m.declare(multi.get()), DESCENT_OK);
  for (int s = 0; s < 3; ++s) {
    m.fill_grads(400 + s);
    DESCENT_ASSERT_OK(multi.get(), m.update(multi.get()));
  }
  const Bytes saved = save_buffer(multi.get());
  Opt copy = create("multi");
  Model m2 = m;
  EXPECT_EQ(m2.declare(copy.get()), DESCENT_OK);
  DESCENT_ASSERT_OK(copy.get(),
                    descent_optimizer_load_from_buffer(copy.get(), saved.data(), saved.size()));
  const auto state = state_snapshot(copy.get());
  EXPECT_EQ(state, state_snapshot(multi.get()));
  EXPECT_TRUE(std::any_of(state.begin(), state.end(),
                          [](const Slot& x) { return x.key == "states.0.layers.0.weight.m"; }));
  EXPECT_TRUE(save_buffer(copy.get()) == saved);
  for (int s = 3; s < 5; ++s) {
    m.fill_grads(400 + s);
    m2.fill_grads(400 + s);
    DESCENT_ASSERT_OK(multi.get(), m.update(multi.get()));
    DESCENT_ASSERT_OK(copy.get(), m2.update(copy.get()));
  }
  EXPECT_EQ(state_snapshot(copy.get()), state_snapshot(multi.get()));
  EXPECT_TRUE(m.params() == m2.params());
  // A file of another kind is refused.
  Opt adam = create("adam", R"({"learning_rate": 0.01})");
  Model m3 = make_model(DESCENT_FLOAT32);
  EXPECT_EQ(m3.declare(adam.get()), DESCENT_OK);
  expect_load_fails(adam.get(), DESCENT_ERR_INVALID_ARGUMENT, "'multi'", [&] {
    return descent_optimizer_load_from_buffer(adam.get(), saved.data(), saved.size());
  });
}

// A save killed at any moment (SIGKILL, here while the temporary file is being written) leaves
// the previous file in place, complete and loadable.
TEST(CheckpointDurability, KilledSaveLeavesThePreviousFile) {
  TempDir dir;
  const std::string path = dir / "state.safetensors";
  const std::string temp_prefix = ".state.safetensors.tmp-";

  Model small = make_model(DESCENT_FLOAT32);
  Opt old_state = trained("adam", small, 2);
  DESCENT_ASSERT_OK(old_state.get(), descent_optimizer_save(old_state.get(), path.c_str()));
  const Bytes old_file = read_bytes(path);

  // A large state, so that writing it takes a while: 2 x 48 MiB.
  Opt big = create("adam", R"({"learning_rate": 0.01})");
  const int64_t n[] = {12 << 20};
  DESCENT_ASSERT_OK(big.get(),
                    descent_optimizer_add_parameter(big.get(), "w", DESCENT_FLOAT32, 1, n));
  DESCENT_ASSERT_OK(big.get(), descent_optimizer_init(big.get()));
  std::size_t big_size = 0;
  DESCENT_ASSERT_OK(big.get(), descent_optimizer_save_to_buffer(big.get(), nullptr, 0, &big_size));

  int caught_mid_write = 0, completed = 0;
  for (int round = 0; round < 40 && caught_mid_write < 3; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      const descent_status s = descent_optimizer_save(big.get(), path.c_str());
      _exit(s == DESCENT_OK ? 0 : 1);
    }
    // Kill the child as soon as its temporary file holds some, but not all, of the bytes.
    bool killed = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int status = 0;
    while (!killed && std::chrono::steady_clock::now() < deadline) {
      for (const auto& name : list_dir(dir.path())) {
        if (name.rfind(temp_prefix, 0) != 0) continue;
        struct stat st;
        if (stat((dir / name).c_str(), &st) == 0 && st.st_size > 0 &&
            static_cast<std::size_t>(st.st_size) < big_size) {
          kill(child, SIGKILL);
          killed = true;
          break;
        }
      }
      if (!killed && waitpid(child, &status, WNOHANG) == child) break;  // finished first
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (killed) waitpid(child, &status, 0);
    if (!killed && std::chrono::steady_clock::now() >= deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      FAIL() << "the child neither wrote nor finished within 20 s";
    }

    const Bytes now = read_bytes(path);
    if (killed) {
      ++caught_mid_write;
      EXPECT_TRUE(now == old_file)
          << "round " << round << ": the target changed after a killed save";
      // The previous file loads and equals the old state.
      Opt reload = create("adam");
      Model m = small;
      EXPECT_EQ(m.declare(reload.get()), DESCENT_OK);
      DESCENT_ASSERT_OK(reload.get(), descent_optimizer_load(reload.get(), path.c_str()));
      EXPECT_EQ(state_snapshot(reload.get()), state_snapshot(old_state.get()));
    } else {
      ++completed;
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      EXPECT_EQ(now.size(), big_size) << "a completed save left an incomplete file";
      DESCENT_ASSERT_OK(old_state.get(), descent_optimizer_save(old_state.get(), path.c_str()));
    }
    // A killed save leaves its temporary file behind (nothing can remove it); clear it.
    for (const auto& name : list_dir(dir.path()))
      if (name.rfind(temp_prefix, 0) == 0) unlink((dir / name).c_str());
  }
  EXPECT_GE(caught_mid_write, 1) << "never caught a save mid-write (" << completed << " completed)";
  std::printf("[ INFO     ] %d saves killed mid-write, %d completed before the kill\n",
              caught_mid_write, completed);
}

}  // namespace
