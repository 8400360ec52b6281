// The helpers page-util.h declares.
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
#include "page-util.h"

namespace livemig {
namespace pageio {

constexpr size_t kMaxIov = IOV_MAX;

// A typed array argument (SharedArrayBuffer-backed ones included), EINVAL otherwise.
static Typed TypedArg(Napi::Env env, napi_value v, const char* sc, bool nullable) {
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

Typed AnyTyped(Napi::Env env, napi_value v, const char* sc) {
  return TypedArg(env, v, sc, false);
}

Typed TypedOf(Napi::Env env, napi_value v, napi_typedarray_type want, const char* sc, bool nullable) {
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
static int WaitFor(int fd, short events) {
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

}  // namespace pageio
}  // namespace livemig
