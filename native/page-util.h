// Shared by the page I/O calls (page-io.cc: multifd channel threads; ram-records.cc: the
// RAM stream's runs): argument readers that check every RAM range against the live mappings,
// the zero-page scan, and send/receive loops over iovecs.
#pragma once

#include <napi.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace livemig {
namespace pageio {

constexpr size_t kPage = 4096;

struct Typed {
  uint8_t* data;
  size_t bytes;
  size_t elements;
  napi_typedarray_type type;
};

// Any typed array argument (SharedArrayBuffer-backed ones included), EINVAL otherwise.
Typed AnyTyped(Napi::Env env, napi_value v, const char* sc);

// A typed array argument of kind `want` (SharedArrayBuffer-backed ones included), EINVAL
// otherwise; null or undefined give {nullptr, 0} when `nullable`.
Typed TypedOf(Napi::Env env, napi_value v, napi_typedarray_type want, const char* sc, bool nullable = false);

// A RAM block at info[i], of info[i+1] bytes: one live mapping's range (EFAULT otherwise).
uint8_t* RamArg(const Napi::CallbackInfo& info, size_t i, uint64_t* bytes, const char* sc);

// pages[from, from+count) of the Int32Array at info[i], each a page index inside `bytes`.
const int32_t* PageList(const Napi::CallbackInfo& info, size_t i, uint64_t from, uint64_t count,
                        uint64_t bytes, const char* sc);

bool IsZeroPage(const uint8_t* p);
void PutBe64(uint8_t* p, uint64_t v);
uint64_t GetBe64(const uint8_t* p);

// One non-blocking send of up to IOV_MAX pieces (MSG_NOSIGNAL; writev for a non-socket).
ssize_t SendVec(int fd, iovec* iov, size_t cnt);
// Drops `n` bytes from the front of iov[*at..cnt).
void Consume(iovec* iov, size_t cnt, size_t* at, size_t n);
// Blocking (poll(2) while full / empty): 0 or an errno. RecvAll stops early at end of stream.
int SendAll(int fd, std::vector<iovec>& iov, size_t* written);
int RecvAll(int fd, std::vector<iovec>& iov, size_t* got);

}  // namespace pageio
}  // namespace livemig
