// Errors that cross into JavaScript. Every failing system call becomes one JS error carrying
// `errno` (number), `code` (the errno name, e.g. "EEXIST") and `syscall`; lib/host/errors.ts
// registers its HostError class so these arrive as HostError instances. Tests assert `code`.
#pragma once

#include <napi.h>

#include <cstdint>

namespace livemig {

// The errno's symbolic name ("EFAULT"), or "E<number>" for one we do not list.
const char* ErrnoName(int err);

// Builds the error for `err` from `syscall`, with an optional detail for the message.
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const char* detail = nullptr);

// Throws (as a C++ exception that node-addon-api turns into a JS throw).
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err,
                             const char* detail = nullptr);

// Argument readers: JS numbers are doubles, so addresses and lengths above 2^53 cannot be
// expressed; negative, fractional or non-number values throw EINVAL (a bad argument is a
// typed error like any other, never a crash).
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* syscall);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* syscall);
uint64_t OptU64(const Napi::CallbackInfo& info, size_t i, uint64_t dflt, const char* syscall);

void InitErrors(Napi::Env env, Napi::Object exports);

}  // namespace livemig
