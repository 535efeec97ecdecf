// Reference loops for descent_bench, compiled with -march=native (peer_kernels.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace peer {
int threads();
// One step of `kind` over n elements with `slots` state arrays (the kind's own count).
void step(const std::string& kind, bool dbl, int64_t n, void* p, const void* g, void** s);
// The memory traffic of a kind with `slots` state arrays: p and every slot read and written, g
// read: (3 + 2*slots) * sizeof(element) bytes per element.
void stream(int slots, bool dbl, int64_t n, void* p, const void* g, void** s);
}  // namespace peer
