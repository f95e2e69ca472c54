#include "cpu/isa.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qk {
namespace {

#define QK_ISA_NAME(name, flags) #name,
constexpr const char* kIsaNames[kNumIsas] = {QK_ISA_LIST(QK_ISA_NAME)};
#undef QK_ISA_NAME

Isa initial_cap() {
  const char* env = std::getenv("QK_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  Isa isa;
  if (!isa_from_name(env, &isa))
    throw std::invalid_argument(std::string("QK_ISA: unknown ISA '") + env + "'");
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("QK_ISA: this machine cannot run '") + env + "'");
  return isa;
}

std::atomic<int>& cap_storage() {
  static std::atomic<int> cap{static_cast<int>(initial_cap())};
  return cap;
}

}  // namespace

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

bool isa_from_name(const char* name, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (std::strcmp(name, kIsaNames[i]) == 0) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

Isa best_isa() {
  Isa best = Isa::scalar;
  for (int i = 0; i < kNumIsas; ++i)
    if (isa_supported(static_cast<Isa>(i))) best = static_cast<Isa>(i);
  return best;
}

Isa isa_cap() { return static_cast<Isa>(cap_storage().load(std::memory_order_relaxed)); }

void set_isa_cap(Isa isa) { cap_storage().store(static_cast<int>(isa), std::memory_order_relaxed); }

Isa select_isa(const bool implemented[kNumIsas]) {
  const int cap = static_cast<int>(isa_cap());
  for (int i = cap; i > 0; --i)
    if (implemented[i] && isa_supported(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return Isa::scalar;
}

}  // namespace qk
