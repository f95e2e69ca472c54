#include "cpu/sysfs_caches.h"

#include <cstdio>
#include <cstring>

namespace qk {
namespace {

// The first line of a small text file, without its newline ("" if unreadable).
bool read_line(const char* path, char* buf, int size) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  const bool ok = std::fgets(buf, size, f) != nullptr;
  std::fclose(f);
  if (ok) buf[std::strcspn(buf, "\n")] = '\0';
  return ok;
}

}  // namespace

CacheSizes read_sysfs_caches() {
  CacheSizes sizes{0, 0, 0};
  for (int i = 0; i < 16; ++i) {
    char path[96], level[16], type[32], size[32];
    auto field = [&](const char* name, char* buf, int n) {
      std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/%s", i, name);
      return read_line(path, buf, n);
    };
    if (!field("level", level, sizeof level)) break;
    if (!field("type", type, sizeof type) || !field("size", size, sizeof size)) continue;
    if (std::strcmp(type, "Instruction") == 0) continue;
    long bytes = 0;
    char unit = '\0';
    if (std::sscanf(size, "%ld%c", &bytes, &unit) < 1 || bytes <= 0) continue;
    if (unit == 'K') bytes <<= 10;
    if (unit == 'M') bytes <<= 20;
    switch (level[0]) {
      case '1': sizes.l1d = bytes; break;
      case '2': sizes.l2 = bytes; break;
      case '3': sizes.l3 = bytes; break;
      default: break;
    }
  }
  return sizes;
}

}  // namespace qk
