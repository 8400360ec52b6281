// userfaultfd(2): open with a features handshake, register ranges (MISSING, MINOR, WP), resolve
// faults (UFFDIO_COPY, ZEROPAGE, CONTINUE, WAKE, WRITEPROTECT) and read fault messages. Fault
// readiness reaches JS through an FdWatcher (fd-watcher.cc) on the main loop; this file only
// reads the batch of uffd_msg records when told the fd is readable.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "mappings.h"

namespace livemig {
namespace {

// uffdOpen(flags) → fd. The syscall first; where it is refused (vm.unprivileged_userfaultfd,
// seccomp) /dev/userfaultfd's USERFAULTFD_IOC_NEW gives the same object (Linux 6.1). Always
// O_NONBLOCK: poll() on a blocking uffd errors out, and reads must never block the loop.
Napi::Value UffdOpen(const Napi::CallbackInfo& info) {
  int flags = static_cast<int>(OptU64(info, 0, 0, "userfaultfd")) | O_CLOEXEC | O_NONBLOCK;
  int fd = static_cast<int>(syscall(SYS_userfaultfd, flags));
  if (fd >= 0) return Napi::Number::New(info.Env(), fd);
  int first = errno;
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int err = errno;
    close(dev);
    if (fd >= 0) return Napi::Number::New(info.Env(), fd);
    first = err;
  }
  ThrowErrno(info.Env(), "userfaultfd", first);
}

Napi::Object ApiResult(Napi::Env env, const uffdio_api& api) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("features", Napi::Number::New(env, static_cast<double>(api.features)));
  // A u64 mask with bit 63 (_UFFDIO_API) set: a BigInt, since a double would round it.
  o.Set("ioctls", Napi::BigInt::New(env, static_cast<uint64_t>(api.ioctls)));
  return o;
}

// uffdApi(fd, features) → {features, ioctls}. UFFDIO_API is allowed once per fd; the kernel
// answers EINVAL when a requested feature is not offered.
Napi::Value UffdApi(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "ioctl(UFFDIO_API)");
  uffdio_api api = {};
  api.api = UFFD_API;
  api.features = OptU64(info, 1, 0, "ioctl(UFFDIO_API)");
  if (ioctl(fd, UFFDIO_API, &api) < 0) ThrowErrno(info.Env(), "ioctl(UFFDIO_API)", errno);
  return ApiResult(info.Env(), api);
}

// uffdProbe() → {features, ioctls}: what this kernel offers, asked on a throwaway fd with no
// features requested (QEMU's uffd_query_features does the same).
Napi::Value UffdProbe(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) ThrowErrno(info.Env(), "userfaultfd", errno);
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    int err = errno;
    close(dev);
    if (fd < 0) ThrowErrno(info.Env(), "userfaultfd", err);
  }
  uffdio_api api = {};
  api.api = UFFD_API;
  int rc = ioctl(fd, UFFDIO_API, &api);
  int err = errno;
  close(fd);
  if (rc < 0) ThrowErrno(info.Env(), "ioctl(UFFDIO_API)", err);
  return ApiResult(info.Env(), api);
}

// Reads (fd, start, len) and checks the range is inside one of our live mappings: registering
// or resolving over V8's own heap would hang or crash the process.
uffdio_range ArgRange(const Napi::CallbackInfo& info, const char* syscall) {
  uffdio_range r;
  r.start = ArgU64(info, 1, syscall);
  r.len = ArgU64(info, 2, syscall);
  if (!InsideMapping(r.start, r.len)) ThrowErrno(info.Env(), syscall, EFAULT, "outside any live mapping");
  return r;
}

// uffdRegister(fd, addr, len, mode) → the ioctls mask (BigInt) the range supports.
Napi::Value UffdRegister(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_REGISTER)";
  int fd = ArgFd(info, 0, sc);
  uffdio_register reg = {};
  reg.range = ArgRange(info, sc);
  reg.mode = ArgU64(info, 3, sc);
  if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) ThrowErrno(info.Env(), sc, errno);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reg.ioctls));
}

// uffdUnregister(fd, addr, len). Also wakes every thread blocked on a fault in the range (it
// retries the access, which then proceeds without userfaultfd).
Napi::Value UffdUnregister(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_UNREGISTER)";
  int fd = ArgFd(info, 0, sc);
  uffdio_range r = ArgRange(info, sc);
  if (ioctl(fd, UFFDIO_UNREGISTER, &r) < 0) ThrowErrno(info.Env(), sc, errno);
  return info.Env().Undefined();
}

// The source of a COPY: a Buffer/TypedArray (at least len bytes) or an address inside a live
// mapping (e.g. a staging RAM block).
uint64_t CopySource(const Napi::CallbackInfo& info, uint64_t len, const char* sc) {
  Napi::Value v = info[2];
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    if (ta.ByteLength() < len) ThrowErrno(info.Env(), sc, EINVAL, "source shorter than len");
    auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data());
    return reinterpret_cast<uint64_t>(base + ta.ByteOffset());
  }
  uint64_t src = ArgU64(info, 2, sc);
  if (!InsideMapping(src, len)) ThrowErrno(info.Env(), sc, EFAULT, "source outside any live mapping");
  return src;
}

// uffdCopy(fd, dst, src, len, mode) → bytes copied. Atomically fills missing pages and wakes
// the faulting threads (unless UFFDIO_COPY_MODE_DONTWAKE). EEXIST: a page is already present.
Napi::Value UffdCopy(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_COPY)";
  int fd = ArgFd(info, 0, sc);
  uffdio_copy c = {};
  c.dst = ArgU64(info, 1, sc);
  c.len = ArgU64(info, 3, sc);
  c.src = CopySource(info, c.len, sc);
  c.mode = OptU64(info, 4, 0, sc);
  if (ioctl(fd, UFFDIO_COPY, &c) < 0) ThrowErrno(info.Env(), sc, errno);
  return Napi::Number::New(info.Env(), static_cast<double>(c.copy));
}

// uffdZeropage(fd, dst, len, mode) → bytes zero-filled.
Napi::Value UffdZeropage(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_ZEROPAGE)";
  int fd = ArgFd(info, 0, sc);
  uffdio_zeropage z = {};
  z.range.start = ArgU64(info, 1, sc);
  z.range.len = ArgU64(info, 2, sc);
  z.mode = OptU64(info, 3, 0, sc);
  if (ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0) ThrowErrno(info.Env(), sc, errno);
  return Napi::Number::New(info.Env(), static_cast<double>(z.zeropage));
}

// uffdContinue(fd, dst, len, mode) → bytes mapped. Resolves MINOR faults: maps the page that
// is already in the page cache (written through another mapping of the memfd).
Napi::Value UffdContinue(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_CONTINUE)";
  int fd = ArgFd(info, 0, sc);
  uffdio_continue c = {};
  c.range.start = ArgU64(info, 1, sc);
  c.range.len = ArgU64(info, 2, sc);
  c.mode = OptU64(info, 3, 0, sc);
  if (ioctl(fd, UFFDIO_CONTINUE, &c) < 0) ThrowErrno(info.Env(), sc, errno);
  return Napi::Number::New(info.Env(), static_cast<double>(c.mapped));
}

// uffdWake(fd, addr, len): wakes threads waiting on faults in the range (after DONTWAKE batches).
Napi::Value UffdWake(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_WAKE)";
  int fd = ArgFd(info, 0, sc);
  uffdio_range r;
  r.start = ArgU64(info, 1, sc);
  r.len = ArgU64(info, 2, sc);
  if (ioctl(fd, UFFDIO_WAKE, &r) < 0) ThrowErrno(info.Env(), sc, errno);
  return info.Env().Undefined();
}

// uffdWriteProtect(fd, addr, len, mode): MODE_WP sets protection, 0 clears it (and wakes).
Napi::Value UffdWriteProtect(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(UFFDIO_WRITEPROTECT)";
  int fd = ArgFd(info, 0, sc);
  uffdio_writeprotect wp = {};
  wp.range.start = ArgU64(info, 1, sc);
  wp.range.len = ArgU64(info, 2, sc);
  wp.mode = OptU64(info, 3, 0, sc);
  if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0) ThrowErrno(info.Env(), sc, errno);
  return info.Env().Undefined();
}

// uffdRead(fd, buffer) → number of 32-byte uffd_msg records read into buffer; 0 when none is
// pending (EAGAIN). One read(2) returns as many messages as fit: the batch.
Napi::Value UffdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "read");
  if (!info[1].IsTypedArray()) ThrowErrno(env, "read", EINVAL, "expected a Uint8Array");
  auto ta = info[1].As<Napi::TypedArray>();
  size_t cap = ta.ByteLength() / sizeof(uffd_msg) * sizeof(uffd_msg);
  if (cap == 0) ThrowErrno(env, "read", EINVAL, "buffer smaller than one uffd_msg");
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  ssize_t n;
  do n = read(fd, base, cap); while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(env, 0);
    ThrowErrno(env, "read", errno);
  }
  return Napi::Number::New(env, static_cast<double>(n / sizeof(uffd_msg)));
}

// gettid() → the calling thread's kernel id: what UFFD_FEATURE_THREAD_ID reports for a fault,
// so a vCPU worker can say which tid is its own.
Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

}  // namespace

void InitUserfaultfd(Napi::Env env, Napi::Object exports) {
  exports.Set("uffdOpen", Napi::Function::New(env, UffdOpen, "uffdOpen"));
  exports.Set("uffdApi", Napi::Function::New(env, UffdApi, "uffdApi"));
  exports.Set("uffdProbe", Napi::Function::New(env, UffdProbe, "uffdProbe"));
  exports.Set("uffdRegister", Napi::Function::New(env, UffdRegister, "uffdRegister"));
  exports.Set("uffdUnregister", Napi::Function::New(env, UffdUnregister, "uffdUnregister"));
  exports.Set("uffdCopy", Napi::Function::New(env, UffdCopy, "uffdCopy"));
  exports.Set("uffdZeropage", Napi::Function::New(env, UffdZeropage, "uffdZeropage"));
  exports.Set("uffdContinue", Napi::Function::New(env, UffdContinue, "uffdContinue"));
  exports.Set("uffdWake", Napi::Function::New(env, UffdWake, "uffdWake"));
  exports.Set("uffdWriteProtect", Napi::Function::New(env, UffdWriteProtect, "uffdWriteProtect"));
  exports.Set("uffdRead", Napi::Function::New(env, UffdRead, "uffdRead"));
  exports.Set("gettid", Napi::Function::New(env, GetTid, "gettid"));
}

}  // namespace livemig
