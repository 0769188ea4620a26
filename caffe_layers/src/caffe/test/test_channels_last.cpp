// The layout changes of the CPU RoI passes (channels_last.hpp): the register-tile transposes
// against the definition dst[c][r] = src[r][c], at sizes that leave partial tiles on every
// side, with strides wider than the rows, and the NCHW <-> NHWC round trip.
#include <stdint.h>
#include <stdlib.h>

#include <vector>

#include "gtest/gtest.h"

#include "caffe/layers/channels_last.hpp"

namespace caffe {

template <typename T>
class ChannelsLastTest : public ::testing::Test {};

typedef ::testing::Types<float, double, int> ChannelsLastTypes;
TYPED_TEST_CASE(ChannelsLastTest, ChannelsLastTypes);

// Transpose at one instruction-set level against the definition, at sizes that leave partial
// tiles on every side and rows longer than the staging buffer (300), with the source rows
// wider than the data; dense: destination rows back to back (as a RoI's output), else
// padded (as an NCHW plane), whose padding must stay untouched.
template <typename T>
void CheckTranspose(channels_last::IsaLevel isa, bool stream, bool dense) {
  const int sizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 49, 64, 300};
  for (int rows : sizes) {
    for (int cols : sizes) {
      const int64_t src_stride = cols + 3, dst_stride = rows + (dense ? 0 : 5);
      std::vector<T> src(rows * src_stride);
      for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<T>(i * 7 % 1000) - 500;
      std::vector<T> dst(cols * dst_stride, static_cast<T>(-9999));
      channels_last::Transpose(src.data(), src_stride, rows, cols, dst.data(), dst_stride,
          stream, isa);
      for (int c = 0; c < cols; ++c) {
        for (int r = 0; r < dst_stride; ++r) {
          const T want = r < rows ? src[r * src_stride + c] : static_cast<T>(-9999);
          ASSERT_EQ(want, dst[c * dst_stride + r]) << "level " << isa << ", stream " << stream
              << ", dense " << dense << ", " << rows << "x" << cols << " at (" << r << ", "
              << c << ")";
        }
      }
    }
  }
}

TYPED_TEST(ChannelsLastTest, TransposeMatchesDefinition) {
  for (int level = channels_last::kPlain; level <= channels_last::Isa(); ++level) {
    for (int stream = 0; stream < 2; ++stream) {
      for (int dense = 0; dense < 2; ++dense) {
        CheckTranspose<TypeParam>(static_cast<channels_last::IsaLevel>(level), stream, dense);
      }
    }
  }
}

TYPED_TEST(ChannelsLastTest, NchwRoundTrip) {
  typedef TypeParam T;
  const int num = 2, channels = 37, plane = 5 * 29;
  std::vector<T> nchw(num * channels * plane), nhwc(nchw.size()), back(nchw.size());
  for (size_t i = 0; i < nchw.size(); ++i) nchw[i] = static_cast<T>(i % 977);
  channels_last::FromNchw(nchw.data(), num, channels, plane, nhwc.data());
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels; ++c) {
      for (int p = 0; p < plane; ++p) {
        ASSERT_EQ(nchw[(n * channels + c) * plane + p], nhwc[(n * plane + p) * channels + c]);
      }
    }
  }
  channels_last::ToNchw(nhwc.data(), num, channels, plane, back.data());
  EXPECT_EQ(nchw, back);
}

// ROI_CPU_ISA names a level or is refused in one line naming the variable and the value
// (the check runs in a child process, whose Isa() reads the variable afresh).
TEST(ChannelsLastIsaTest, UnknownLevelIsAnError) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH({
    setenv("ROI_CPU_ISA", "avx9", 1);
    channels_last::Isa();
  }, "ROI_CPU_ISA=avx9: expected plain, avx2 or avx512");
}

}  // namespace caffe
