#include "data/Idx.h"

#include <cstring>
#include <fstream>
#include <memory>

#include "data/IdxFormat.h"

namespace ddp {
namespace {

void put_big_endian_u32(std::ofstream& out, uint32_t value) {
  const char bytes[4] = {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
  out.write(bytes, 4);
}

std::vector<uint8_t> read_idx_file(const std::string& path) {
  return inflate_if_gzip(read_file_bytes(path, kMaxIdxBytes), path, kMaxIdxBytes);
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  // A view of the file's bytes past the header, which it keeps alive: the pixels are in memory
  // once, not twice, while a split loads (47 MB for 60,000 images).
  auto bytes = std::make_shared<std::vector<uint8_t>>(read_idx_file(path));
  const IdxArray array = parse_idx_images(*bytes, path);
  return torch::from_blob(
      bytes->data() + array.data_offset, {int64_t(array.shape[0]), 28, 28},
      [bytes](void*) mutable { bytes.reset(); }, torch::kUInt8);
}

torch::Tensor read_idx_labels(const std::string& path, int num_classes) {
  const std::vector<uint8_t> bytes = read_idx_file(path);
  const IdxArray array = parse_idx_labels(bytes, path, num_classes);
  auto labels = torch::empty({int64_t(array.shape[0])}, torch::kUInt8);
  std::memcpy(labels.data_ptr<uint8_t>(), bytes.data() + array.data_offset, bytes.size() - array.data_offset);
  return labels;
}

void write_idx_images(const std::string& path, const torch::Tensor& images_uint8) {
  auto images = images_uint8.contiguous();
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == torch::kUInt8, "write_idx_images: need uint8 [N,H,W]");
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot write");
  put_big_endian_u32(out, 0x00000803);
  for (int d = 0; d < 3; ++d) put_big_endian_u32(out, uint32_t(images.size(d)));
  out.write(reinterpret_cast<const char*>(images.data_ptr<uint8_t>()), images.numel());
}

}  // namespace ddp
