// Process-wide registry of the shared mappings this addon made. The .node file is loaded once
// per process and shared by the main thread and every worker_thread, so the registry is a
// static guarded by a mutex. It lets the addon refuse addresses that are not inside one of its
// own live mappings (a window or a madvise over V8's heap would crash the process) and turns a
// double unmap into a typed error instead of a second munmap.
#pragma once

#include <cstddef>
#include <cstdint>

namespace livemig {

// Records [addr, addr+length) as live. Returns false if it overlaps a live entry.
bool RegisterMapping(uintptr_t addr, size_t length);

// Removes the mapping starting exactly at addr; returns its length, or 0 if none is live.
size_t UnregisterMapping(uintptr_t addr);

// True when [addr, addr+length) lies inside a single live mapping (length may be 0).
bool InsideMapping(uintptr_t addr, size_t length);

// The live mapping containing addr: its start and length; false when none does.
bool FindMapping(uintptr_t addr, uintptr_t* start, size_t* length);

}  // namespace livemig
