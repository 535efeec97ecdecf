// Compiled with -fsyntax-only as strict C++17 (see tests/CMakeLists.txt): the public header must
// be self-contained and warning-free C++, with C linkage for the whole API.
#include <descent/descent.h>

#include <type_traits>

static_assert(DESCENT_OK == 0, "status values are frozen");
static_assert(DESCENT_ERR_INTERNAL == 99, "status values are frozen");
static_assert(DESCENT_FLOAT64 == 2, "dtype values are frozen");
static_assert(DESCENT_ERR_CALLBACK == 17, "status values are frozen");
// Every enum is 32 bits wide whatever the compiler's enum packing (-fshort-enums).
static_assert(sizeof(descent_status) == 4 && sizeof(descent_dtype) == 4 &&
                  sizeof(descent_value_type) == 4,
              "enums are 32 bits");
static_assert(
    std::is_same<decltype(&descent_optimizer_create),
                 descent_status (*)(const char*, descent_optimizer**, char*, size_t)>::value,
    "descent_optimizer_create signature");
static_assert(std::is_same<decltype(&descent_optimizer_update),
                           descent_status (*)(descent_optimizer*, size_t, const char* const*,
                                              const descent_dtype*, const int64_t*, void* const*,
                                              const void* const*)>::value,
              "descent_optimizer_update signature");

int descent_header_check();

int descent_header_check() {
  descent_optimizer* opt = nullptr;
  const descent_status status = descent_optimizer_create("sgd", &opt, nullptr, 0);
  const double betas[2] = {0.9, 0.999};
  (void)descent_optimizer_set_doubles(opt, "betas", betas, 2);
  (void)descent_optimizer_set_double(opt, "learning_rate", 0.1);
  (void)descent_optimizer_configure_json(opt, "{}");
  descent_optimizer_free(opt);
  return static_cast<int>(status) + static_cast<int>(descent_version_number()) +
         (descent_status_name(DESCENT_OK) != nullptr) +
         (descent_dtype_name(DESCENT_FLOAT32) != nullptr);
}
