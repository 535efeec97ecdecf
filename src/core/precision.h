// The state-precision policy of half-precision (bfloat16, float16) parameters: three
// hyperparameters that every kind has (docs/precision.md).
//   state_precision      "float32" (default): state slots and all arithmetic in float32, the
//                        parameter rounded to its dtype once per step;
//                        "master": as float32, plus a float32 master copy of the parameter (slot
//                        "master"), of which the parameter is the rounding;
//                        "param": MLX's behaviour, state in the parameter's dtype and every
//                        operation rounded to it.
//   stochastic_rounding  (float32 policy only) round the parameter write stochastically, from a
//   rounding_seed        counter-based hash of (seed, step, parameter, element): reproducible.
// The policy is fixed once the state is initialised. float32 and float64 parameters ignore all
// three.
#pragma once

#include <cstdint>
#include <string>

#include "common/dtype.h"
#include "config/hyperparameters.h"

namespace descent {

enum class StatePrecision { Float32, Master, Param };

struct PrecisionSettings {
  StatePrecision policy = StatePrecision::Float32;
  bool stochastic = false;
  uint64_t seed = 0;
};

extern const char* const kStatePrecision;  // "state_precision"

// The rule's schema followed by the three precision keys (one cached copy per rule schema).
const Schema& schema_with_precision(const Schema& rule_schema);

PrecisionSettings read_precision(const Hyperparameters& h);
const char* precision_name(StatePrecision p) noexcept;

// The dtype of the state slots of a parameter of dtype `param` under `policy`.
inline DType slot_dtype(DType param, StatePrecision policy) {
  return is_half(param) && policy != StatePrecision::Param ? DType::Float32 : param;
}
// Whether a parameter of dtype `param` gets a float32 master slot.
inline bool has_master(DType param, StatePrecision policy) {
  return is_half(param) && policy == StatePrecision::Master;
}
constexpr const char* kMasterSlot = "master";

}  // namespace descent
