// Guest pages between RAM and a socket without a JavaScript call per page: the RAM saver and
// loader hand whole runs of pages to one call, and multifd channel threads move whole packets.
//
//   single channel (main thread, non-blocking socket)
//     ramSendRecords   a run of pages of one block → QEMU RAM records, written with one
//                      sendmsg straight from the mapping (header, page, header, page …);
//                      what the kernel does not take is copied into the caller's spill area
//     ramLoadRecords   the well-formed CONTINUE records at the front of a received chunk →
//                      pages copied into RAM; stops at the first record that needs a decision
//   multifd channel threads (blocking: poll(2) while the socket is full or empty)
//     sendPages        packet header + the packet's normal pages, one vector
//     readFull         exactly n bytes of a packet header
//     recvPages        the packet's pages straight into RAM (readv, no copy in between)
//     zeroScan         which pages of a list are all zeros (a word-wise scan)
//     zeroPages        make pages zero, writing only those that are not (QEMU ram_handle_zero)
//
// What this file decides: nothing. Encoding a record is arithmetic on offsets the caller chose;
// the loader stops at any record that is not a PAGE or ZERO continuing the current block with
// an offset inside it, and the TypeScript loader then reads that record itself and reports
// whatever is wrong with it. Every RAM range is checked against the live mappings first.
//
// Blocking calls wait in poll(2) with no timeout: a channel is cancelled by shutting its socket
// down from another thread (shutdown(SHUT_RDWR) wakes the poll; the next send fails with EPIPE,
// the next read sees end of stream), as QEMU's qio_channel_shutdown does for its threads.
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"
#include "mappings.h"

namespace livemig {
namespace {

constexpr size_t kPage = 4096;
constexpr uint64_t kFlagZero = 0x02;
constexpr uint64_t kFlagPage = 0x08;
constexpr uint64_t kFlagContinue = 0x20;
constexpr size_t kMaxIov = IOV_MAX;

struct Typed {
  uint8_t* data;
  size_t bytes;
  size_t elements;
  napi_typedarray_type type;
};

// A typed array argument (SharedArrayBuffer-backed ones included), EINVAL otherwise.
Typed TypedArg(Napi::Env env, napi_value v, const char* sc, bool nullable = false) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (nullable && (vt == napi_null || vt == napi_undefined)) return {nullptr, 0, 0, napi_uint8_array};
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    ThrowErrno(env, sc, EINVAL, "expected a typed array");
  }
  size_t el = 1;
  if (type == napi_int32_array || type == napi_uint32_array || type == napi_float32_array) el = 4;
  else if (type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array) el = 8;
  else if (type == napi_int16_array || type == napi_uint16_array) el = 2;
  return {static_cast<uint8_t*>(data), length * el, length, type};
}

Typed TypedOf(Napi::Env env, napi_value v, napi_typedarray_type want, const char* sc, bool nullable = false) {
  Typed t = TypedArg(env, v, sc, nullable);
  if (t.data != nullptr && t.type != want) ThrowErrno(env, sc, EINVAL, "typed array of the wrong kind");
  return t;
}

// A RAM block: [base, base+bytes) must be one live mapping's range (EFAULT otherwise).
uint8_t* RamArg(const Napi::CallbackInfo& info, size_t i, uint64_t* bytes, const char* sc) {
  uint64_t base = ArgU64(info, i, sc);
  *bytes = ArgU64(info, i + 1, sc);
  if (*bytes % kPage != 0 || !InsideMapping(base, *bytes)) {
    ThrowErrno(info.Env(), sc, EFAULT, "RAM range outside any live mapping");
  }
  return reinterpret_cast<uint8_t*>(base);
}

// pages[from, from+count) of an Int32Array of page indices, each inside a block of `bytes`.
const int32_t* PageList(const Napi::CallbackInfo& info, size_t i, uint64_t from, uint64_t count,
                        uint64_t bytes, const char* sc) {
  Typed t = TypedOf(info.Env(), info[i], napi_int32_array, sc);
  if (from > t.elements || count > t.elements - from) ThrowErrno(info.Env(), sc, ERANGE, "page list shorter than count");
  const int32_t* p = reinterpret_cast<const int32_t*>(t.data) + from;
  const uint64_t pages = bytes / kPage;
  for (uint64_t k = 0; k < count; k++) {
    if (p[k] < 0 || static_cast<uint64_t>(p[k]) >= pages) ThrowErrno(info.Env(), sc, ERANGE, "page index outside the block");
  }
  return p;
}

bool IsZeroPage(const uint8_t* p) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  // Eight words at a time, ORed: random data leaves at the first group.
  for (size_t i = 0; i < kPage / 8; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) != 0) return false;
  }
  return true;
}

void PutBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint64_t GetBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

// One send of up to IOV_MAX pieces. MSG_NOSIGNAL: a vanished peer is EPIPE, not a signal,
// whatever thread sends; a non-socket descriptor falls back to writev.
ssize_t SendVec(int fd, iovec* iov, size_t cnt) {
  msghdr m = {};
  m.msg_iov = iov;
  m.msg_iovlen = std::min(cnt, kMaxIov);
  ssize_t n;
  do n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ENOTSOCK) {
    do n = writev(fd, iov, static_cast<int>(m.msg_iovlen)); while (n < 0 && errno == EINTR);
  }
  return n;
}

// Drops `n` written bytes from the front of iov[*at..cnt).
void Consume(iovec* iov, size_t cnt, size_t* at, size_t n) {
  while (n > 0 && *at < cnt) {
    if (n < iov[*at].iov_len) {
      iov[*at].iov_base = static_cast<uint8_t*>(iov[*at].iov_base) + n;
      iov[*at].iov_len -= n;
      return;
    }
    n -= iov[*at].iov_len;
    (*at)++;
  }
}

// Waits until fd is ready for `events`; 0 or an errno. POLLERR/POLLHUP count as ready: the
// next call reports what happened.
int WaitFor(int fd, short events) {
  pollfd p = {fd, events, 0};
  int r;
  do r = poll(&p, 1, -1); while (r < 0 && errno == EINTR);
  return r < 0 ? errno : 0;
}

// Sends the whole vector, waiting while the socket is full (blocking: channel threads only).
int SendAll(int fd, std::vector<iovec>& iov, size_t* written) {
  size_t at = 0;
  while (at < iov.size()) {
    ssize_t n = SendVec(fd, iov.data() + at, iov.size() - at);
    if (n < 0) {
      if (errno != EAGAIN) return errno;
      if (int e = WaitFor(fd, POLLOUT)) return e;
      continue;
    }
    *written += static_cast<size_t>(n);
    Consume(iov.data(), iov.size(), &at, static_cast<size_t>(n));
  }
  return 0;
}

// Reads the whole vector, waiting while the socket is empty; stops early at end of stream.
int RecvAll(int fd, std::vector<iovec>& iov, size_t* got) {
  size_t at = 0;
  while (at < iov.size()) {
    ssize_t n;
    do n = readv(fd, iov.data() + at, static_cast<int>(std::min(iov.size() - at, kMaxIov))); while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN) return errno;
      if (int e = WaitFor(fd, POLLIN)) return e;
      continue;
    }
    if (n == 0) return 0;
    *got += static_cast<size_t>(n);
    Consume(iov.data(), iov.size(), &at, static_cast<size_t>(n));
  }
  return 0;
}

// ramSendRecords(fd, base, bytes, pages, count, detectZero, name, holes, scratch, out) → the
// records' bytes. Writes one QEMU RAM record per page of pages[0, count) (block at base, of
// `bytes`): with detectZero, ZERO (be64 offset|0x02 [name] 0x00) for a page known zero (its
// `holes` bit; bits are cleared as pages go) or found zero, else PAGE (be64 offset|0x08 [name] + the page read
// straight from RAM). The first record names the block (u8 len + name) when `name` is given;
// every record after it is CONTINUE. Headers are built in scratch[0, hdr); with fd ≥ 0 the
// records go out in non-blocking sends until the socket is full, and what it did not take is
// copied to scratch[spill, …); with fd = -1 every record is copied there. out = [normal pages,
// zero pages, bytes sent, spill offset, spill bytes].
Napi::Value RamSendRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "ramSendRecords";
  int fd = -1;
  if (!(info[0].IsNumber() && info[0].As<Napi::Number>().Int32Value() == -1)) fd = ArgFd(info, 0, "sendmsg");
  uint64_t bytes;
  uint8_t* base = RamArg(info, 1, &bytes, sc);
  uint64_t count = ArgU64(info, 4, sc);
  const int32_t* pages = PageList(info, 3, 0, count, bytes, sc);
  bool detectZero = info[5].ToBoolean();
  Typed name = TypedOf(env, info[6], napi_uint8_array, sc, true);
  if (name.bytes > 255) ThrowErrno(env, sc, EINVAL, "block name longer than 255 bytes");
  Typed holes = TypedOf(env, info[7], napi_uint32_array, sc, true);
  if (holes.data && holes.elements * 32 < bytes / kPage) ThrowErrno(env, sc, ERANGE, "holes bitmap shorter than the block");
  Typed scratch = TypedOf(env, info[8], napi_uint8_array, sc);
  Typed out = TypedOf(env, info[9], napi_float64_array, sc);
  if (out.elements < 5) ThrowErrno(env, sc, ERANGE, "out needs 5 entries");

  const size_t nameExtra = name.data ? 1 + name.bytes : 0;
  const size_t hdrMax = count * 9 + nameExtra;
  const size_t spillAt = (hdrMax + 63) & ~size_t{63};
  const size_t recMax = hdrMax + count * kPage;
  if (scratch.bytes < spillAt + recMax) ThrowErrno(env, sc, ERANGE, "scratch too small for the run");

  uint32_t* hole = reinterpret_cast<uint32_t*>(holes.data);
  uint8_t* hdr = scratch.data;
  size_t h = 0;
  std::vector<iovec> iov;
  iov.reserve(2 * count + 1);
  double normal = 0, zero = 0;
  for (uint64_t k = 0; k < count; k++) {
    const uint64_t p = static_cast<uint64_t>(pages[k]);
    uint8_t* page = base + p * kPage;
    // A hole was never written: zero without reading it (reading would allocate it). Without
    // zero-page detection every page goes as PAGE, holes too.
    bool wasHole = false;
    if (hole && (hole[p >> 5] >> (p & 31)) & 1u) {
      hole[p >> 5] &= ~(1u << (p & 31));
      wasHole = true;
    }
    const bool isZero = detectZero && (wasHole || IsZeroPage(page));
    const bool named = k == 0 && name.data;
    const size_t start = h;
    PutBe64(hdr + h, p * kPage | (isZero ? kFlagZero : kFlagPage) | (named ? 0 : kFlagContinue));
    h += 8;
    if (named) {
      hdr[h++] = static_cast<uint8_t>(name.bytes);
      std::memcpy(hdr + h, name.data, name.bytes);
      h += name.bytes;
    }
    if (isZero) hdr[h++] = 0;
    // Consecutive headers (zero records) are one piece; a page is a piece of its own.
    if (!iov.empty() && static_cast<uint8_t*>(iov.back().iov_base) + iov.back().iov_len == hdr + start) {
      iov.back().iov_len += h - start;
    } else {
      iov.push_back({hdr + start, h - start});
    }
    if (isZero) {
      zero++;
    } else {
      iov.push_back({page, kPage});
      normal++;
    }
  }

  size_t total = 0;
  for (auto& v : iov) total += v.iov_len;
  size_t sent = 0, at = 0;
  while (fd >= 0 && at < iov.size()) {
    ssize_t n = SendVec(fd, iov.data() + at, iov.size() - at);
    if (n < 0) {
      if (errno == EAGAIN) break;
      ThrowErrno(env, "sendmsg", errno);
    }
    sent += static_cast<size_t>(n);
    Consume(iov.data(), iov.size(), &at, static_cast<size_t>(n));
  }
  // The rest is copied: the caller queues it, and the page may change or be freed meanwhile.
  size_t spill = 0;
  for (; at < iov.size(); at++) {
    std::memcpy(scratch.data + spillAt + spill, iov[at].iov_base, iov[at].iov_len);
    spill += iov[at].iov_len;
  }
  double* o = reinterpret_cast<double*>(out.data);
  o[0] = normal;
  o[1] = zero;
  o[2] = static_cast<double>(sent);
  o[3] = static_cast<double>(spillAt);
  o[4] = static_cast<double>(spill);
  return Napi::Number::New(env, static_cast<double>(total));
}

// ramLoadRecords(buf, off, end, base, bytes, holes, out) → the offset after the last record
// placed. Places the records at buf[off, end) while each is whole there and is exactly
// PAGE|CONTINUE or ZERO|CONTINUE with a zero fill byte and a page offset inside the block:
// a page is copied into RAM (and its `holes` bit cleared), a zero page is written only when
// RAM is not already zero there (not at all when its holes bit says it was never written).
// Anything else ends the run: the caller's own parser takes that record. out = [normal pages,
// zero pages, highest offset a data page was written at or -1].
Napi::Value RamLoadRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "ramLoadRecords";
  Typed buf = TypedOf(env, info[0], napi_uint8_array, sc);
  uint64_t off = ArgU64(info, 1, sc);
  uint64_t end = ArgU64(info, 2, sc);
  if (end > buf.bytes || off > end) ThrowErrno(env, sc, ERANGE, "range outside the buffer");
  uint64_t bytes;
  uint8_t* base = RamArg(info, 3, &bytes, sc);
  Typed holes = TypedOf(env, info[5], napi_uint32_array, sc, true);
  if (holes.data && holes.elements * 32 < bytes / kPage) ThrowErrno(env, sc, ERANGE, "holes bitmap shorter than the block");
  Typed out = TypedOf(env, info[6], napi_float64_array, sc);
  if (out.elements < 3) ThrowErrno(env, sc, ERANGE, "out needs 3 entries");
  uint32_t* hole = reinterpret_cast<uint32_t*>(holes.data);
  double normal = 0, zero = 0, highest = -1;
  while (end - off >= 8) {
    const uint64_t v = GetBe64(buf.data + off);
    const uint64_t flags = v & (kPage - 1);
    const uint64_t addr = v - flags;
    if (addr >= bytes) break;
    const uint64_t p = addr / kPage;
    const bool isHole = hole && ((__atomic_load_n(&hole[p >> 5], __ATOMIC_SEQ_CST) >> (p & 31)) & 1u);
    if (flags == (kFlagPage | kFlagContinue)) {
      if (end - off < 8 + kPage) break;
      std::memcpy(base + addr, buf.data + off + 8, kPage);
      // Atomic: multifd channel threads clear bits of the same words.
      if (isHole) __atomic_fetch_and(&hole[p >> 5], ~(1u << (p & 31)), __ATOMIC_SEQ_CST);
      if (static_cast<double>(addr) > highest) highest = static_cast<double>(addr);
      normal++;
      off += 8 + kPage;
    } else if (flags == (kFlagZero | kFlagContinue)) {
      if (end - off < 9 || buf.data[off + 8] != 0) break;
      if (!isHole && !IsZeroPage(base + addr)) std::memset(base + addr, 0, kPage);
      zero++;
      off += 9;
    } else {
      break;
    }
  }
  double* o = reinterpret_cast<double*>(out.data);
  o[0] = normal;
  o[1] = zero;
  o[2] = highest;
  return Napi::Number::New(env, static_cast<double>(off));
}

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
  exports.Set("ramSendRecords", Napi::Function::New(env, RamSendRecords, "ramSendRecords"));
  exports.Set("ramLoadRecords", Napi::Function::New(env, RamLoadRecords, "ramLoadRecords"));
  exports.Set("zeroScan", Napi::Function::New(env, ZeroScan, "zeroScan"));
  exports.Set("sendPages", Napi::Function::New(env, SendPages, "sendPages"));
  exports.Set("readFull", Napi::Function::New(env, ReadFull, "readFull"));
  exports.Set("recvPages", Napi::Function::New(env, RecvPages, "recvPages"));
  exports.Set("zeroPages", Napi::Function::New(env, ZeroPages, "zeroPages"));
}

}  // namespace livemig
