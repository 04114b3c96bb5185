#include "pmemfs/status.h"

#include <fmt/format.h>

#include <cerrno>

namespace pmemfs {

std::string_view errno_name(int errnum) {
  switch (errnum) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EOVERFLOW: return "EOVERFLOW";
    case ENOTSUP: return "ENOTSUP";
    case EUCLEAN: return "EUCLEAN";
    case ENXIO: return "ENXIO";
    case ENOTTY: return "ENOTTY";
    case ESTALE: return "ESTALE";
    case ENODATA: return "ENODATA";
    case E2BIG: return "E2BIG";
    case ECANCELED: return "ECANCELED";
    default: break;
  }
  static thread_local std::string buf;
  buf = fmt::format("E{}", errnum);
  return buf;
}

Status Status::error(int errnum, std::string message) {
  if (errnum <= 0) std::abort();  // an error Status must carry a positive errno
  return Status(errnum, std::move(message));
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return fmt::format("{}: {}", errno_name(errnum_), message_);
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  return Status(errnum_, fmt::format("{}: {}", context, message_));
}

}  // namespace pmemfs
