// Guest RAM on memfd: create, map shared, unmap, punch holes, drop or populate page ranges,
// and external ArrayBuffer windows over a live mapping. Lifetime is explicit: windows have no
// finalizer, and only unmap() releases a mapping (see mappings.h for the registry).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "mappings.h"

namespace livemig {
namespace {

// One external ArrayBuffer is at most 4 GiB in Node 20 (buffer.constants.MAX_LENGTH). Asking
// N-API for more fails after running the finalizer, and node-addon-api then frees again; so
// the size is checked here, before N-API sees it.
constexpr uint64_t kMaxWindow = uint64_t{1} << 32;

// memfdCreate(name, size, hugetlb?) → fd. memfd_create(2) + ftruncate(2); close-on-exec.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowErrno(env, "memfd_create", EINVAL, "name must be a string");
  std::string name = info[0].As<Napi::String>();
  uint64_t size = ArgU64(info, 1, "ftruncate");
  bool huge = info.Length() > 2 && info[2].ToBoolean();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
  if (fd < 0) ThrowErrno(env, "memfd_create", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "ftruncate", err);
  }
  return Napi::Number::New(env, fd);
}

// fdSize(fd) → st_size, e.g. of a memfd received from another process.
Napi::Value FdSize(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fstat");
  struct stat st;
  if (fstat(fd, &st) < 0) ThrowErrno(info.Env(), "fstat", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_size));
}

// mapShared(fd, offset, length) → address. MAP_SHARED so every mapping of the memfd, in this
// process or another, sees the same pages.
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mmap");
  uint64_t offset = ArgU64(info, 1, "mmap");
  uint64_t length = ArgU64(info, 2, "mmap");
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) ThrowErrno(env, "mmap", errno);
  if (!RegisterMapping(reinterpret_cast<uintptr_t>(p), length)) {
    munmap(p, length);  // cannot happen unless someone unmapped behind the registry's back
    ThrowErrno(env, "mmap", EEXIST, "address already registered");
  }
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

// unmap(addr) → length. Only a live mapping's start is accepted; a second unmap is EINVAL.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uintptr_t addr = ArgU64(info, 0, "munmap");
  size_t length = UnregisterMapping(addr);
  if (length == 0) ThrowErrno(env, "munmap", EINVAL, "not the start of a live mapping");
  if (munmap(reinterpret_cast<void*>(addr), length) < 0) ThrowErrno(env, "munmap", errno);
  return Napi::Number::New(env, static_cast<double>(length));
}

// The range [addr, addr+length) must lie in one live mapping; EFAULT otherwise, as the kernel
// says for a bad user address.
void RequireInside(Napi::Env env, const char* syscall, uint64_t addr, uint64_t length) {
  if (!InsideMapping(addr, length)) ThrowErrno(env, syscall, EFAULT, "outside any live mapping");
}

// punchHole(fd, offset, length): fallocate(PUNCH_HOLE|KEEP_SIZE) frees the pages in the file
// (a postcopy DISCARD on shmem must drop the page cache, not only this process's PTEs).
Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fallocate");
  uint64_t offset = ArgU64(info, 1, "fallocate");
  uint64_t length = ArgU64(info, 2, "fallocate");
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(length)) < 0) {
    ThrowErrno(info.Env(), "fallocate", errno);
  }
  return info.Env().Undefined();
}

// seekData(fd, offset, hole?) → lseek(SEEK_DATA) (or SEEK_HOLE): the next offset ≥ `offset`
// that holds data (or starts a hole), or -1 when there is none (ENXIO). On shmem a hole is a
// page never written: it reads as zeros without being allocated, so precopy can send it as a
// zero page without touching it.
Napi::Value SeekData(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "lseek");
  uint64_t offset = ArgU64(info, 1, "lseek");
  bool hole = info.Length() > 2 && info[2].ToBoolean();
  off_t r = lseek(fd, static_cast<off_t>(offset), hole ? SEEK_HOLE : SEEK_DATA);
  if (r < 0) {
    if (errno == ENXIO) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "lseek", errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

Napi::Value Advise(const Napi::CallbackInfo& info, int advice) {
  Napi::Env env = info.Env();
  uint64_t addr = ArgU64(info, 0, "madvise");
  uint64_t length = ArgU64(info, 1, "madvise");
  RequireInside(env, "madvise", addr, length);
  if (madvise(reinterpret_cast<void*>(addr), length, advice) < 0) {
    ThrowErrno(env, "madvise", errno);
  }
  return env.Undefined();
}

// dontneed(addr, length): MADV_DONTNEED drops this mapping's PTEs; on shmem the data stays in
// the page cache and the next access maps it again (a MINOR fault when registered for it).
Napi::Value DontNeed(const Napi::CallbackInfo& info) { return Advise(info, MADV_DONTNEED); }

// populateWrite(addr, length): MADV_POPULATE_WRITE (Linux 5.14) faults every page in writable,
// QEMU's -mem-prealloc.
Napi::Value PopulateWrite(const Napi::CallbackInfo& info) {
  return Advise(info, MADV_POPULATE_WRITE);
}

// window(addr, offset, length) → ArrayBuffer over [addr+offset, +length), without a finalizer.
// Any thread may call it with the mapping's address; all see the same memory.
Napi::Value Window(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t addr = ArgU64(info, 0, "window");
  uint64_t offset = ArgU64(info, 1, "window");
  uint64_t length = ArgU64(info, 2, "window");
  if (length > kMaxWindow) ThrowErrno(env, "window", ERANGE, "a window is at most 4 GiB");
  RequireInside(env, "window", addr + offset, length);
  return Napi::ArrayBuffer::New(env, reinterpret_cast<void*>(addr + offset), length);
}

// findMapping(addr) → {start, length} of the live mapping holding addr, or null.
Napi::Value FindMappingOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uintptr_t start = 0;
  size_t length = 0;
  if (!FindMapping(ArgU64(info, 0, "findMapping"), &start, &length)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("start", Napi::Number::New(env, static_cast<double>(start)));
  o.Set("length", Napi::Number::New(env, static_cast<double>(length)));
  return o;
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("fdSize", Napi::Function::New(env, FdSize, "fdSize"));
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  exports.Set("seekData", Napi::Function::New(env, SeekData, "seekData"));
  exports.Set("dontNeed", Napi::Function::New(env, DontNeed, "dontNeed"));
  exports.Set("populateWrite", Napi::Function::New(env, PopulateWrite, "populateWrite"));
  exports.Set("window", Napi::Function::New(env, Window, "window"));
  exports.Set("findMapping", Napi::Function::New(env, FindMappingOf, "findMapping"));
}

}  // namespace livemig
