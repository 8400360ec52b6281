// Whole multifd packets between a socket and guest RAM, for the channel threads (blocking:
// poll(2) while the socket is full or empty):
//
//   sendPages   packet header + the packet's normal pages, one vector, straight from RAM
//   readFull    exactly n bytes of a packet header
//   recvPages   the packet's pages straight into RAM (readv, no copy in between)
//   zeroScan    which pages of a list are all zeros (a word-wise scan)
//   zeroPages   make pages zero, writing only those that are not (QEMU ram_handle_zero)
//
// Blocking calls wait in poll(2) with no timeout: a channel is cancelled by shutting its socket
// down from another thread (shutdown(SHUT_RDWR) wakes the poll; the next send fails with EPIPE,
// the next read sees end of stream), as QEMU's qio_channel_shutdown does for its threads.
#include <cerrno>
#include <vector>

#include "errors.h"
#include "page-util.h"

namespace livemig {
namespace {

using namespace pageio;

// zeroScan(base, bytes, pages, from, count, isZero) → how many of pages[from, from+count) are
// all zeros; isZero[k] = 1 for those, 0 for the others.
Napi::Value ZeroScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "zeroScan";
  uint64_t bytes;
  uint8_t* base = RamArg(info, 0, &bytes, sc);
  uint64_t from = ArgU64(info, 3, sc);
  uint64_t count = ArgU64(info, 4, sc);
  const int32_t* pages = PageList(info, 2, from, count, bytes, sc);
  Typed flags = TypedOf(env, info[5], napi_uint8_array, sc);
  if (flags.bytes < count) ThrowErrno(env, sc, ERANGE, "isZero shorter than count");
  double zero = 0;
  for (uint64_t k = 0; k < count; k++) {
    const bool z = IsZeroPage(base + static_cast<uint64_t>(pages[k]) * kPage);
    flags.data[k] = z ? 1 : 0;
    zero += z ? 1 : 0;
  }
  return Napi::Number::New(env, zero);
}

// sendPages(fd, head, headLen, base, bytes, pages, count) → bytes sent: head[0, headLen) then
// the pages in order, straight from RAM, waiting while the socket is full.
Napi::Value SendPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "sendmsg";
  int fd = ArgFd(info, 0, sc);
  Typed head = TypedOf(env, info[1], napi_uint8_array, sc);
  uint64_t headLen = ArgU64(info, 2, sc);
  if (headLen > head.bytes) ThrowErrno(env, sc, ERANGE, "headLen past the header buffer");
  uint64_t bytes;
  uint8_t* base = RamArg(info, 3, &bytes, sc);
  uint64_t count = ArgU64(info, 6, sc);
  const int32_t* pages = PageList(info, 5, 0, count, bytes, sc);
  std::vector<iovec> iov;
  iov.reserve(count + 1);
  if (headLen) iov.push_back({head.data, headLen});
  for (uint64_t k = 0; k < count; k++) iov.push_back({base + static_cast<uint64_t>(pages[k]) * kPage, kPage});
  size_t sent = 0;
  if (int e = SendAll(fd, iov, &sent)) ThrowErrno(env, sc, e);
  return Napi::Number::New(env, static_cast<double>(sent));
}

// readFull(fd, buf, off, len) → bytes read into buf[off, off+len): len, or fewer only when the
// stream ended first (0: it ended before the first byte). Waits while the socket is empty.
Napi::Value ReadFull(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "read");
  Typed buf = TypedOf(env, info[1], napi_uint8_array, "read");
  uint64_t off = ArgU64(info, 2, "read");
  uint64_t len = ArgU64(info, 3, "read");
  if (off > buf.bytes || len > buf.bytes - off) ThrowErrno(env, "read", ERANGE, "range outside the buffer");
  std::vector<iovec> iov = {{buf.data + off, len}};
  size_t got = 0;
  if (int e = len ? RecvAll(fd, iov, &got) : 0) ThrowErrno(env, "read", e);
  return Napi::Number::New(env, static_cast<double>(got));
}

// recvPages(fd, base, bytes, pages, count) → bytes read straight into the pages (in order);
// fewer than count pages' worth only when the stream ended first.
Napi::Value RecvPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "readv";
  int fd = ArgFd(info, 0, sc);
  uint64_t bytes;
  uint8_t* base = RamArg(info, 1, &bytes, sc);
  uint64_t count = ArgU64(info, 4, sc);
  const int32_t* pages = PageList(info, 3, 0, count, bytes, sc);
  std::vector<iovec> iov;
  iov.reserve(count);
  for (uint64_t k = 0; k < count; k++) iov.push_back({base + static_cast<uint64_t>(pages[k]) * kPage, kPage});
  size_t got = 0;
  if (int e = RecvAll(fd, iov, &got)) ThrowErrno(env, sc, e);
  return Napi::Number::New(env, static_cast<double>(got));
}

// zeroPages(base, bytes, pages, count) → pages written: each page of the list that is not
// already all zeros is cleared (QEMU ram_handle_zero: a fresh page stays unwritten).
Napi::Value ZeroPages(const Napi::CallbackInfo& info) {
  const char* sc = "zeroPages";
  uint64_t bytes;
  uint8_t* base = RamArg(info, 0, &bytes, sc);
  uint64_t count = ArgU64(info, 3, sc);
  const int32_t* pages = PageList(info, 2, 0, count, bytes, sc);
  double written = 0;
  for (uint64_t k = 0; k < count; k++) {
    uint8_t* page = base + static_cast<uint64_t>(pages[k]) * kPage;
    if (!IsZeroPage(page)) {
      std::memset(page, 0, kPage);
      written++;
    }
  }
  return Napi::Number::New(info.Env(), written);
}

}  // namespace

void InitPageIo(Napi::Env env, Napi::Object exports) {
  exports.Set("zeroScan", Napi::Function::New(env, ZeroScan, "zeroScan"));
  exports.Set("sendPages", Napi::Function::New(env, SendPages, "sendPages"));
  exports.Set("readFull", Napi::Function::New(env, ReadFull, "readFull"));
  exports.Set("recvPages", Napi::Function::New(env, RecvPages, "recvPages"));
  exports.Set("zeroPages", Napi::Function::New(env, ZeroPages, "zeroPages"));
}

}  // namespace livemig
