// The RAM stream's runs of pages without a JavaScript call per page (the main channel, on
// the main thread, over a non-blocking socket):
//
//   ramSendRecords   a run of pages of one block → QEMU RAM records, written with one sendmsg
//                    straight from the mapping (header, page, header, page …); what the kernel
//                    does not take is copied into the caller's spill area
//   ramLoadRecords   the well-formed CONTINUE records at the front of a received chunk → pages
//                    copied into RAM; stops at the first record that needs a decision
//   ramPlaceRecords  the same records on a postcopy destination, whose RAM is registered with
//                    userfaultfd: each page placed atomically (UFFDIO_COPY / ZEROPAGE, or a
//                    write through the alias mapping and UFFDIO_CONTINUE), its received bit set
//
// What this file decides: nothing. Encoding a record is arithmetic on offsets the caller chose;
// the loader stops at any record that is not a PAGE or ZERO continuing the current block with
// an offset inside it, and the TypeScript loader then reads that record itself and reports
// whatever is wrong with it. Every RAM range is checked against the live mappings first.
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"
#include "page-util.h"

namespace livemig {
namespace {

using namespace pageio;

constexpr uint64_t kFlagZero = 0x02;
constexpr uint64_t kFlagPage = 0x08;
constexpr uint64_t kFlagContinue = 0x20;

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

// The received chunk a run is taken from: argument 0 the buffer, 1 and 2 [off, end) in it.
struct Chunk {
  const uint8_t* data;
  uint64_t off;
  uint64_t end;
};

Chunk ChunkArg(const Napi::CallbackInfo& info, const char* sc) {
  Napi::Env env = info.Env();
  Typed buf = TypedOf(env, info[0], napi_uint8_array, sc);
  uint64_t off = ArgU64(info, 1, sc);
  uint64_t end = ArgU64(info, 2, sc);
  if (end > buf.bytes || off > end) ThrowErrno(env, sc, ERANGE, "range outside the buffer");
  return {buf.data, off, end};
}

// A record a run may take: its page offset in the block, its page bytes (null for a ZERO) and
// its length in the stream.
struct RunRecord {
  uint64_t addr;
  const uint8_t* page;
  size_t len;
};

// The record at the front of `c`, if a run may take it: exactly PAGE|CONTINUE or ZERO|CONTINUE
// (fill byte 0), whole in the chunk, with a page offset inside a block of `bytes`. Anything
// else ends the run, and the caller's own parser takes that record.
bool NextRunRecord(const Chunk& c, uint64_t bytes, RunRecord* r) {
  const uint64_t left = c.end - c.off;
  if (left < 8) return false;
  const uint8_t* at = c.data + c.off;
  const uint64_t v = GetBe64(at);
  const uint64_t flags = v & (kPage - 1);
  r->addr = v - flags;
  if (r->addr >= bytes) return false;
  if (flags == (kFlagPage | kFlagContinue)) {
    if (left < 8 + kPage) return false;
    r->page = at + 8;
    r->len = 8 + kPage;
    return true;
  }
  if (flags == (kFlagZero | kFlagContinue)) {
    if (left < 9 || at[8] != 0) return false;
    r->page = nullptr;
    r->len = 9;
    return true;
  }
  return false;
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
  Chunk c = ChunkArg(info, sc);
  uint64_t bytes;
  uint8_t* base = RamArg(info, 3, &bytes, sc);
  Typed holes = TypedOf(env, info[5], napi_uint32_array, sc, true);
  if (holes.data && holes.elements * 32 < bytes / kPage) ThrowErrno(env, sc, ERANGE, "holes bitmap shorter than the block");
  Typed out = TypedOf(env, info[6], napi_float64_array, sc);
  if (out.elements < 3) ThrowErrno(env, sc, ERANGE, "out needs 3 entries");
  uint32_t* hole = reinterpret_cast<uint32_t*>(holes.data);
  double normal = 0, zero = 0, highest = -1;
  RunRecord r;
  for (; NextRunRecord(c, bytes, &r); c.off += r.len) {
    const uint64_t p = r.addr / kPage;
    const bool isHole = hole && ((__atomic_load_n(&hole[p >> 5], __ATOMIC_SEQ_CST) >> (p & 31)) & 1u);
    if (r.page) {
      std::memcpy(base + r.addr, r.page, kPage);
      // Atomic: multifd channel threads clear bits of the same words.
      if (isHole) __atomic_fetch_and(&hole[p >> 5], ~(1u << (p & 31)), __ATOMIC_SEQ_CST);
      if (static_cast<double>(r.addr) > highest) highest = static_cast<double>(r.addr);
      normal++;
    } else {
      if (!isHole && !IsZeroPage(base + r.addr)) std::memset(base + r.addr, 0, kPage);
      zero++;
    }
  }
  double* o = reinterpret_cast<double*>(out.data);
  o[0] = normal;
  o[1] = zero;
  o[2] = highest;
  return Napi::Number::New(env, static_cast<double>(c.off));
}

// One placement ioctl; true when it placed the page, false when the page was there already
// (EEXIST: a requested copy and the stream's both came). Any other failure throws.
template <typename Arg>
bool PlaceIoctl(Napi::Env env, int uffd, unsigned long req, Arg* a, const char* sc) {
  int r;
  do r = ioctl(uffd, req, a); while (r < 0 && errno == EINTR);
  if (r == 0) return true;
  if (errno == EEXIST) return false;
  ThrowErrno(env, sc, errno);
}

bool TestAndSet(int32_t* bits, uint64_t p) {
  const int32_t m = static_cast<int32_t>(1u << (p & 31));
  return (__atomic_fetch_or(&bits[p >> 5], m, __ATOMIC_SEQ_CST) & m) != 0;
}

bool TestBit(int32_t* bits, uint64_t p) {
  return (__atomic_load_n(&bits[p >> 5], __ATOMIC_SEQ_CST) >> (p & 31)) & 1;
}

// ramPlaceRecords(buf, off, end, uffd, base, bytes, aliasBase, aliasBytes, minor, zeropage,
//                 received, requested, claimed, out, req, maxRecords) → the offset after the
// last record placed. The postcopy counterpart of ramLoadRecords, for the records at buf[off, end) that
// are exactly PAGE|CONTINUE or ZERO|CONTINUE (fill byte 0) with an offset inside the block;
// stops at anything else, at a full `req`, and after maxRecords records (each may cost an
// ioctl: the caller's event loop waits meanwhile). Each page is placed as placement.ts places one:
//   copy   UFFDIO_COPY from the record (a ZERO: UFFDIO_ZEROPAGE when `zeropage`, else a copy
//          of a zero page)
//   minor  claimed bit test-and-set (a page is written through the alias once only), the bytes
//          written through the alias mapping, then UFFDIO_CONTINUE; a page claimed already is
//          left to the placer that claimed it
// then its `received` bit is set (after the page is in place: the fault worker reads it). A
// placed page whose `requested` bit is set goes into req, for the loader to tell the fault
// worker. out = [normal, zero, placed (EEXIST not counted), req entries].
Napi::Value RamPlaceRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "ramPlaceRecords";
  Chunk c = ChunkArg(info, sc);
  int uffd = ArgFd(info, 3, sc);
  uint64_t bytes;
  uint8_t* base = RamArg(info, 4, &bytes, sc);
  const bool minor = info[8].ToBoolean();
  uint8_t* alias = nullptr;
  if (minor) {
    uint64_t aliasBytes;
    alias = RamArg(info, 6, &aliasBytes, sc);
    if (aliasBytes != bytes) ThrowErrno(env, sc, EINVAL, "alias mapping of another size");
  }
  const bool zeropage = info[9].ToBoolean();
  const uint64_t words = (bytes / kPage + 31) / 32;
  Typed received = TypedOf(env, info[10], napi_int32_array, sc);
  Typed requested = TypedOf(env, info[11], napi_int32_array, sc);
  Typed claimed = TypedOf(env, info[12], napi_int32_array, sc, !minor);
  if (received.elements < words || requested.elements < words || (minor && claimed.elements < words)) {
    ThrowErrno(env, sc, ERANGE, "bitmap shorter than the block");
  }
  Typed out = TypedOf(env, info[13], napi_float64_array, sc);
  if (out.elements < 4) ThrowErrno(env, sc, ERANGE, "out needs 4 entries");
  Typed req = TypedOf(env, info[14], napi_int32_array, sc);
  const uint64_t maxRecords = ArgU64(info, 15, sc);
  int32_t* rec = reinterpret_cast<int32_t*>(received.data);
  int32_t* rq = reinterpret_cast<int32_t*>(requested.data);
  int32_t* cl = reinterpret_cast<int32_t*>(claimed.data);
  int32_t* reqOut = reinterpret_cast<int32_t*>(req.data);
  static const uint8_t kZero[kPage] = {};
  double normal = 0, zero = 0, placed = 0;
  size_t nreq = 0;
  RunRecord r;
  for (uint64_t n = 0; n < maxRecords && nreq < req.elements && NextRunRecord(c, bytes, &r); n++, c.off += r.len) {
    const uint64_t addr = r.addr;
    const uint64_t p = addr / kPage;
    const uint8_t* src = r.page;
    if (src) normal++;
    else zero++;
    bool done = false;
    bool mine = true;
    const uint64_t dst = reinterpret_cast<uint64_t>(base + addr);
    if (minor) {
      // Claimed by the fault worker (the preempt channel brought it): that placer sets the
      // received bit once its CONTINUE is done.
      mine = !TestAndSet(cl, p);
      if (mine) {
        if (src) std::memcpy(alias + addr, src, kPage);
        else std::memset(alias + addr, 0, kPage);
        uffdio_continue cont = {};
        cont.range.start = dst;
        cont.range.len = kPage;
        done = PlaceIoctl(env, uffd, UFFDIO_CONTINUE, &cont, "ioctl(UFFDIO_CONTINUE)");
      }
    } else if (!src && zeropage) {
      uffdio_zeropage z = {};
      z.range.start = dst;
      z.range.len = kPage;
      done = PlaceIoctl(env, uffd, UFFDIO_ZEROPAGE, &z, "ioctl(UFFDIO_ZEROPAGE)");
    } else {
      uffdio_copy copy = {};
      copy.dst = dst;
      copy.src = reinterpret_cast<uint64_t>(src ? src : kZero);
      copy.len = kPage;
      done = PlaceIoctl(env, uffd, UFFDIO_COPY, &copy, "ioctl(UFFDIO_COPY)");
    }
    if (done) placed++;
    if (mine) {
      TestAndSet(rec, p);
      if (TestBit(rq, p)) reqOut[nreq++] = static_cast<int32_t>(p);
    }
  }
  double* o = reinterpret_cast<double*>(out.data);
  o[0] = normal;
  o[1] = zero;
  o[2] = placed;
  o[3] = static_cast<double>(nreq);
  return Napi::Number::New(env, static_cast<double>(c.off));
}

}  // namespace

void InitRamRecords(Napi::Env env, Napi::Object exports) {
  exports.Set("ramSendRecords", Napi::Function::New(env, RamSendRecords, "ramSendRecords"));
  exports.Set("ramLoadRecords", Napi::Function::New(env, RamLoadRecords, "ramLoadRecords"));
  exports.Set("ramPlaceRecords", Napi::Function::New(env, RamPlaceRecords, "ramPlaceRecords"));
}

}  // namespace livemig
