// Byte I/O on non-blocking descriptors owned by the addon's side rather than libuv's streams:
// FdChannel reads into its own large buffers and writes queued pieces (staged bytes, guest-RAM
// views) with one writev(2), and a descriptor can be duplicated for a worker thread. "Would
// block" is the value -1, not an error: it is the normal case of a non-blocking socket.
//
// SIGPIPE: writev on a socket whose peer is gone raises it; Node ignores SIGPIPE process-wide,
// so the call returns EPIPE instead, which is what the channel reports.
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "errors.h"
#include "page-util.h"

namespace livemig {
namespace {

// IOV_MAX: the kernel refuses longer vectors (EINVAL); the caller continues from what was taken.
constexpr uint32_t kMaxIov = IOV_MAX;

// (pointer, byte length) of a typed array argument, EINVAL for anything else: page-util's
// reader (the data pointer napi gives already includes the view's offset).
std::pair<uint8_t*, size_t> Bytes(Napi::Env env, napi_value v, const char* sc) {
  pageio::Typed t = pageio::AnyTyped(env, v, sc);
  return {t.data, t.bytes};
}

// Arguments 1–3 of read() and peek(): buf, off, len → the range buf[off, off+len).
static std::pair<uint8_t*, size_t> BufferRange(const Napi::CallbackInfo& info, const char* sc) {
  Napi::Env env = info.Env();
  auto [p, size] = Bytes(env, info[1], sc);
  uint64_t off = ArgU64(info, 2, sc);
  uint64_t len = ArgU64(info, 3, sc);
  if (off > size || len > size - off) ThrowErrno(env, sc, ERANGE, "range outside the buffer");
  return {p + off, static_cast<size_t>(len)};
}

// A non-blocking call's result: bytes, or -1 for "nothing now" (EAGAIN); other errors throw.
static Napi::Value BytesOrWouldBlock(Napi::Env env, ssize_t n, const char* sc) {
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(env, -1);
    ThrowErrno(env, sc, errno);
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// read(fd, buf, off, len) → bytes read into buf[off, off+len); 0 at end of stream, -1 when
// nothing is available now.
Napi::Value Read(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "read");
  auto [p, len] = BufferRange(info, "read");
  ssize_t n;
  do n = read(fd, p, len); while (n < 0 && errno == EINTR);
  return BytesOrWouldBlock(info.Env(), n, "read");
}

// writev(fd, chunks, index = 0, offset = 0) → bytes written, or -1 when the descriptor is full.
// Writes chunks[index] from byte `offset`, then the chunks after it, at most IOV_MAX of them:
// a queue resumes after a partial write without slicing anything in JavaScript.
Napi::Value Writev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "writev");
  if (!info[1].IsArray()) ThrowErrno(env, "writev", EINVAL, "chunks must be an array");
  napi_value chunks = info[1];
  uint64_t index = OptU64(info, 2, 0, "writev");
  uint64_t offset = OptU64(info, 3, 0, "writev");
  uint32_t count = info[1].As<Napi::Array>().Length();
  if (index > count) ThrowErrno(env, "writev", ERANGE, "index past the last chunk");
  std::vector<iovec> iov;
  iov.reserve(std::min<uint64_t>(count - index, kMaxIov));
  for (uint32_t i = static_cast<uint32_t>(index); i < count && iov.size() < kMaxIov; i++) {
    napi_value item;
    if (napi_get_element(env, chunks, i, &item) != napi_ok) ThrowErrno(env, "writev", EINVAL, "unreadable chunk");
    auto [p, n] = Bytes(env, item, "writev");
    size_t skip = 0;
    if (i == index) {
      if (offset > n) ThrowErrno(env, "writev", ERANGE, "offset past the end of the chunk");
      skip = offset;
    }
    if (n > skip) iov.push_back({p + skip, n - skip});
  }
  if (iov.empty()) return Napi::Number::New(env, 0);
  ssize_t n;
  do n = writev(fd, iov.data(), static_cast<int>(iov.size())); while (n < 0 && errno == EINTR);
  return BytesOrWouldBlock(env, n, "writev");
}

// peek(fd, buf, off, len) → bytes waiting at the front of the socket, copied to buf[off, …)
// and left there (recv MSG_PEEK); 0 at end of stream, -1 when nothing is there yet. QEMU tells a
// new incoming connection's kind (main stream or multifd channel) by its first bytes.
Napi::Value Peek(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "recv");
  auto [p, len] = BufferRange(info, "recv");
  ssize_t n;
  do n = recv(fd, p, len, MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  return BytesOrWouldBlock(info.Env(), n, "recv");
}

// dup(fd) → a new close-on-exec descriptor for the same open socket: a worker gets its own
// number, so either side may close without pulling the socket from under the other.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fcntl");
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) ThrowErrno(info.Env(), "fcntl", errno);
  return Napi::Number::New(info.Env(), d);
}

}  // namespace

void InitFdIo(Napi::Env env, Napi::Object exports) {
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("writev", Napi::Function::New(env, Writev, "writev"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("peek", Napi::Function::New(env, Peek, "peek"));
}

}  // namespace livemig
