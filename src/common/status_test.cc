#include "pmemfs/status.h"

#include <gtest/gtest.h>

namespace pmemfs {
namespace {

Status fails() { return Status::error(ENOENT, "x: no such file"); }
Result<int> gives(bool ok) {
  if (!ok) return Status::error(EINVAL, "bad");
  return 7;
}
Status chain(bool ok, int* out) {
  PMEMFS_ASSIGN_OR_RETURN(*out, gives(ok));
  return Status::ok();
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::ok().is_ok());
  EXPECT_EQ(Status::ok().to_string(), "OK");
  Status s = fails();
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.errnum(), ENOENT);
  EXPECT_EQ(s.to_string(), "ENOENT: x: no such file");
  EXPECT_EQ(s.with_context("open").to_string(), "ENOENT: open: x: no such file");
  EXPECT_EQ(errno_name(EUCLEAN), "EUCLEAN");
  EXPECT_EQ(errno_name(4242), "E4242");
}

TEST(Status, ResultPropagates) {
  int v = 0;
  EXPECT_TRUE(chain(true, &v).is_ok());
  EXPECT_EQ(v, 7);
  Status s = chain(false, &v);
  EXPECT_EQ(s.errnum(), EINVAL);
}

TEST(StatusDeathTest, ErrorWithoutErrnoAborts) {
  EXPECT_DEATH({ (void)Status::error(0, "x"); }, "");
  EXPECT_DEATH({ Result<int> r{Status::ok()}; (void)r; }, "");
}

}  // namespace
}  // namespace pmemfs
