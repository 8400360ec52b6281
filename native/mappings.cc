// The live-mapping registry (see mappings.h). An ordered map keyed by start address gives the
// one candidate mapping for an address with upper_bound.
#include "mappings.h"

#include <map>
#include <mutex>

namespace livemig {
namespace {

std::mutex& Lock() {
  static std::mutex m;
  return m;
}

std::map<uintptr_t, size_t>& Live() {
  static std::map<uintptr_t, size_t> live;
  return live;
}

// The entry whose start is the greatest one <= addr (caller holds the lock).
std::map<uintptr_t, size_t>::iterator Containing(uintptr_t addr) {
  auto& live = Live();
  auto it = live.upper_bound(addr);
  if (it == live.begin()) return live.end();
  --it;
  return addr - it->first < it->second ? it : live.end();
}

}  // namespace

bool RegisterMapping(uintptr_t addr, size_t length) {
  std::lock_guard<std::mutex> guard(Lock());
  auto& live = Live();
  auto next = live.lower_bound(addr);
  if (next != live.end() && next->first < addr + length) return false;
  if (Containing(addr) != live.end()) return false;
  live.emplace(addr, length);
  return true;
}

size_t UnregisterMapping(uintptr_t addr) {
  std::lock_guard<std::mutex> guard(Lock());
  auto& live = Live();
  auto it = live.find(addr);
  if (it == live.end()) return 0;
  size_t length = it->second;
  live.erase(it);
  return length;
}

bool InsideMapping(uintptr_t addr, size_t length) {
  std::lock_guard<std::mutex> guard(Lock());
  auto it = Containing(addr);
  if (it == Live().end()) return false;
  return length <= it->second - (addr - it->first);
}

bool FindMapping(uintptr_t addr, uintptr_t* start, size_t* length) {
  std::lock_guard<std::mutex> guard(Lock());
  auto it = Containing(addr);
  if (it == Live().end()) return false;
  *start = it->first;
  *length = it->second;
  return true;
}

}  // namespace livemig
