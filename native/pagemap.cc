// PAGEMAP_SCAN (Linux 6.7, Documentation/admin-guide/mm/pagemap.rst): walk this process's page
// tables over a range and report runs of pages matching a category mask, optionally
// write-protecting what matched in the same walk. With a range registered for userfaultfd
// write-protect in async mode (UFFD_FEATURE_WP_ASYNC), "written" means written since the last
// protect, so scan-and-reprotect is an exact, atomic dirty-log harvest.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/types.h>

#include <cerrno>
#include <vector>

#include "errors.h"
#include "mappings.h"

// Debian 12's headers predate PAGEMAP_SCAN: the ABI from include/uapi/linux/fs.h (6.7).
#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;  // exclusive
  __u64 categories;
};

struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;  // written by the kernel: where the walk stopped (end when complete)
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};

#define PAGEMAP_IOCTL_MAGIC 'f'
#define PAGEMAP_SCAN _IOWR(PAGEMAP_IOCTL_MAGIC, 16, struct pm_scan_arg)
#endif

namespace livemig {
namespace {

// pagemapOpen() → fd of /proc/self/pagemap, the file the ioctl is issued on.
Napi::Value PagemapOpen(const Napi::CallbackInfo& info) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "open", errno, "/proc/self/pagemap");
  return Napi::Number::New(info.Env(), fd);
}

// pagemapScan(fd, start, end, flags, categoryMask, categoryInverted, anyofMask, returnMask,
//             maxPages, out) → {count, walkEnd}
// `out` is a Float64Array receiving [start, end, categories] per region (addresses are below
// 2^47, exact in a double). count is the number of regions written; walkEnd < end means the
// output filled (or maxPages was reached) and the caller continues from walkEnd.
Napi::Value PagemapScan(const Napi::CallbackInfo& info) {
  const char* sc = "ioctl(PAGEMAP_SCAN)";
  Napi::Env env = info.Env();
  pm_scan_arg arg = {};
  arg.size = sizeof(arg);
  int fd = ArgFd(info, 0, sc);
  arg.start = ArgU64(info, 1, sc);
  arg.end = ArgU64(info, 2, sc);
  arg.flags = ArgU64(info, 3, sc);
  arg.category_mask = ArgU64(info, 4, sc);
  arg.category_inverted = ArgU64(info, 5, sc);
  arg.category_anyof_mask = ArgU64(info, 6, sc);
  arg.return_mask = ArgU64(info, 7, sc);
  arg.max_pages = ArgU64(info, 8, sc);
  if (arg.end < arg.start || !InsideMapping(arg.start, arg.end - arg.start)) {
    ThrowErrno(env, sc, EFAULT, "outside any live mapping");
  }
  if (!info[9].IsTypedArray() || info[9].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowErrno(env, sc, EINVAL, "out must be a Float64Array");
  }
  auto out = info[9].As<Napi::Float64Array>();
  size_t capacity = out.ElementLength() / 3;
  if (capacity == 0) ThrowErrno(env, sc, EINVAL, "out holds no region");

  // The kernel writes page_region records; convert them to doubles in the caller's array.
  thread_local std::vector<page_region> vec;
  if (vec.size() < capacity) vec.resize(capacity);
  arg.vec = reinterpret_cast<__u64>(vec.data());
  arg.vec_len = capacity;
  int n = ioctl(fd, PAGEMAP_SCAN, &arg);
  if (n < 0) ThrowErrno(env, sc, errno);
  double* dst = out.Data();
  for (int i = 0; i < n; i++) {
    dst[3 * i] = static_cast<double>(vec[i].start);
    dst[3 * i + 1] = static_cast<double>(vec[i].end);
    dst[3 * i + 2] = static_cast<double>(vec[i].categories);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("count", Napi::Number::New(env, n));
  o.Set("walkEnd", Napi::Number::New(env, static_cast<double>(arg.walk_end)));
  return o;
}

}  // namespace

void InitPagemap(Napi::Env env, Napi::Object exports) {
  exports.Set("pagemapOpen", Napi::Function::New(env, PagemapOpen, "pagemapOpen"));
  exports.Set("pagemapScan", Napi::Function::New(env, PagemapScan, "pagemapScan"));
}

}  // namespace livemig
