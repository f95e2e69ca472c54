// A kernel family's table of entries per ISA path: entry i serves Isa i, and
// an empty entry means "use the next path below" (scalar, entry 0, is always
// filled). Included only by the families' drivers, which are compiled
// without ISA flags.
#pragma once

#include <initializer_list>

#include "cpu/isa.h"

namespace qk {

template <class Kernels>
class KernelTable {
 public:
  struct Entry {
    Isa isa;
    const Kernels* kernels;
  };

  // Entries of other architectures go inside QK_ON_<arch>(...) (isa_list.h).
  constexpr KernelTable(std::initializer_list<Entry> entries) {
    for (const Entry& e : entries) entries_[static_cast<int>(e.isa)] = e.kernels;
  }

  // The best filled path at or below the cap that the machine supports.
  Isa select() const {
    bool filled[kNumIsas];
    for (int i = 0; i < kNumIsas; ++i) filled[i] = entries_[i] != nullptr;
    return select_isa(filled);
  }

  // The entry of a path select() returned.
  const Kernels& at(Isa isa) const { return *entries_[static_cast<int>(isa)]; }

 private:
  const Kernels* entries_[kNumIsas] = {};
};

}  // namespace qk
