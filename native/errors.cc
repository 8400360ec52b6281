// errno → JS error conversion and argument readers shared by every mechanism file.
#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

namespace livemig {
namespace {

// Per-environment state (main thread and each worker_thread load the addon separately).
struct ErrorState {
  Napi::FunctionReference errorClass;  // HostError, registered by lib/host/errors.ts
};

}  // namespace

const char* ErrnoName(int err) {
  switch (err) {
#define LIVEMIG_CASE(e) \
  case e:               \
    return #e;
    LIVEMIG_CASE(EPERM) LIVEMIG_CASE(ENOENT) LIVEMIG_CASE(ESRCH) LIVEMIG_CASE(EINTR)
    LIVEMIG_CASE(EIO) LIVEMIG_CASE(ENXIO) LIVEMIG_CASE(E2BIG) LIVEMIG_CASE(EBADF)
    LIVEMIG_CASE(ECHILD) LIVEMIG_CASE(EAGAIN) LIVEMIG_CASE(ENOMEM) LIVEMIG_CASE(EACCES)
    LIVEMIG_CASE(EFAULT) LIVEMIG_CASE(EBUSY) LIVEMIG_CASE(EEXIST) LIVEMIG_CASE(EXDEV)
    LIVEMIG_CASE(ENODEV) LIVEMIG_CASE(ENOTDIR) LIVEMIG_CASE(EISDIR) LIVEMIG_CASE(EINVAL)
    LIVEMIG_CASE(ENFILE) LIVEMIG_CASE(EMFILE) LIVEMIG_CASE(ENOTTY) LIVEMIG_CASE(EFBIG)
    LIVEMIG_CASE(ENOSPC) LIVEMIG_CASE(ESPIPE) LIVEMIG_CASE(EROFS) LIVEMIG_CASE(EPIPE)
    LIVEMIG_CASE(ERANGE) LIVEMIG_CASE(ENAMETOOLONG) LIVEMIG_CASE(ENOSYS)
    LIVEMIG_CASE(EOVERFLOW) LIVEMIG_CASE(ENOTSOCK) LIVEMIG_CASE(EMSGSIZE)
    LIVEMIG_CASE(EPROTOTYPE) LIVEMIG_CASE(EOPNOTSUPP) LIVEMIG_CASE(EADDRINUSE)
    LIVEMIG_CASE(EADDRNOTAVAIL) LIVEMIG_CASE(ENETDOWN) LIVEMIG_CASE(ECONNABORTED)
    LIVEMIG_CASE(ECONNRESET) LIVEMIG_CASE(ENOBUFS) LIVEMIG_CASE(EISCONN)
    LIVEMIG_CASE(ENOTCONN) LIVEMIG_CASE(ETIMEDOUT) LIVEMIG_CASE(ECONNREFUSED)
    LIVEMIG_CASE(EALREADY) LIVEMIG_CASE(EINPROGRESS)
#undef LIVEMIG_CASE
    default:
      return nullptr;
  }
}

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const char* detail) {
  const char* name = ErrnoName(err);
  std::string code = name ? name : "E" + std::to_string(err);
  std::string msg = code + ": " + std::strerror(err) + ", " + syscall;
  if (detail) msg += std::string(" (") + detail + ")";

  Napi::Value value;
  auto* state = env.GetInstanceData<ErrorState>();
  if (state && !state->errorClass.IsEmpty()) {
    value = state->errorClass.New({Napi::String::New(env, msg), Napi::Number::New(env, err),
                                   Napi::String::New(env, code), Napi::String::New(env, syscall)});
  } else {
    Napi::Object obj = Napi::Error::New(env, msg).Value();
    obj.Set("errno", Napi::Number::New(env, err));
    obj.Set("code", Napi::String::New(env, code));
    obj.Set("syscall", Napi::String::New(env, syscall));
    value = obj;
  }
  return Napi::Error(env, value);
}

void ThrowErrno(Napi::Env env, const char* syscall, int err, const char* detail) {
  throw ErrnoError(env, syscall, err, detail);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* syscall) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowErrno(info.Env(), syscall, EINVAL, "expected a number argument");
  double d = v.As<Napi::Number>().DoubleValue();
  // 2^53: the largest integer a double holds exactly; user addresses stay far below it.
  if (!(d >= 0) || d > 9007199254740992.0 || std::floor(d) != d) {
    ThrowErrno(info.Env(), syscall, EINVAL, "expected a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* syscall) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowErrno(info.Env(), syscall, EBADF, "expected a file descriptor");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 2147483647.0 || std::floor(d) != d) {
    ThrowErrno(info.Env(), syscall, EBADF, "expected a file descriptor");
  }
  return static_cast<int>(d);
}

uint64_t OptU64(const Napi::CallbackInfo& info, size_t i, uint64_t dflt, const char* syscall) {
  if (info.Length() <= i || info[i].IsUndefined()) return dflt;
  return ArgU64(info, i, syscall);
}

namespace {

// setErrorClass(HostError): errors thrown later in this environment are built with it.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  auto* state = info.Env().GetInstanceData<ErrorState>();
  if (!info[0].IsFunction()) ThrowErrno(info.Env(), "setErrorClass", EINVAL);
  state->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

void InitErrors(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new ErrorState());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}

}  // namespace livemig
