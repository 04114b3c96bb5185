// pmemfs/status.h — the result of every fallible pmemfs call.
//
// A Status is either OK or one errno value with a message that names what was wrong and
// where ("superblock copy 1 at offset 4096: bad checksum"). The errno is the whole
// classification: the FUSE daemon and the C API hand it to the kernel unchanged, so every
// failure of the library maps to exactly one errno. The set used is closed and documented
// in each call's header: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, ELOOP,
// EINVAL, EFBIG, ENOSPC, EROFS, EIO, EUCLEAN (corruption), EACCES, EPERM, EBUSY, ETXTBSY,
// EBADF, ENODEV, ENOTSUP, ENOMEM, EMLINK, EXDEV, EOVERFLOW; and for the inode-based calls
// and extended attributes (volume.h): ESTALE, ENODATA, ERANGE, E2BIG.
//
// No pmemfs call throws across the public API. Result<T> carries a T on success and a
// Status on failure. Both are [[nodiscard]]: ignoring a failure is a bug.
//
// Thread safety: values; copy them freely, share const ones between threads.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pmemfs {

// EUCLEAN is Linux's "structure needs cleaning": the code for a damaged volume.
inline constexpr int kErrCorrupt = EUCLEAN;

// "ENOENT", "EUCLEAN", … for an errno value; "E<n>" for unknown ones.
std::string_view errno_name(int errnum);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status ok() { return Status(); }
  // errnum must be a positive errno value.
  static Status error(int errnum, std::string message);

  bool is_ok() const { return errnum_ == 0; }
  // 0 when OK, else the errno value.
  int errnum() const { return errnum_; }
  const std::string& message() const { return message_; }
  // "ENOENT: /a/b: no such file or directory" style text, "OK" when OK.
  std::string to_string() const;

  // Prefixes the message with context ("open /x: " + message); no-op when OK.
  Status with_context(std::string_view context) const;

 private:
  Status(int errnum, std::string message) : errnum_(errnum), message_(std::move(message)) {}
  int errnum_ = 0;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit by design, like absl::StatusOr.
  Result(T value) : value_(std::move(value)) {}
  // status must not be OK.
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {
    if (status_.is_ok()) std::abort();  // a Result without a value must carry an error
  }

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  int errnum() const { return status_.errnum(); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace pmemfs

// Returns the Status of `expr` from the enclosing function if it is an error.
#define PMEMFS_TRY(expr)                                   \
  do {                                                     \
    ::pmemfs::Status pmemfs_try_status_ = (expr);          \
    if (!pmemfs_try_status_.is_ok()) return pmemfs_try_status_; \
  } while (0)

#define PMEMFS_CONCAT_INNER_(a, b) a##b
#define PMEMFS_CONCAT_(a, b) PMEMFS_CONCAT_INNER_(a, b)
// `lhs = value of expr`, or return its Status from the enclosing function.
#define PMEMFS_ASSIGN_OR_RETURN(lhs, expr)                                     \
  auto PMEMFS_CONCAT_(pmemfs_result_, __LINE__) = (expr);                      \
  if (!PMEMFS_CONCAT_(pmemfs_result_, __LINE__).is_ok())                       \
    return PMEMFS_CONCAT_(pmemfs_result_, __LINE__).status();                  \
  lhs = std::move(PMEMFS_CONCAT_(pmemfs_result_, __LINE__)).value()
