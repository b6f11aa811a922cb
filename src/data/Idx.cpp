#include "data/Idx.h"

#include <zlib.h>

#include <fstream>
#include <memory>

#include "common/Errors.h"

namespace ddp {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
// The largest file we agree to inflate: the full MNIST train images are 47 MB.
constexpr size_t kMaxIdxBytes = size_t(4) << 30;

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t(bytes[offset]) << 24) | (uint32_t(bytes[offset + 1]) << 16) | (uint32_t(bytes[offset + 2]) << 8) |
         uint32_t(bytes[offset + 3]);
}

void put_big_endian_u32(std::ofstream& out, uint32_t value) {
  const char bytes[4] = {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
  out.write(bytes, 4);
}

std::string hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%08x", value);
  return buffer;
}

// Checks magic and the header's dimension count, and that the payload size the header
// promises is exactly what the file holds. Returns the dimensions.
std::vector<uint32_t> parse_header(const std::string& path, const std::vector<uint8_t>& bytes, uint32_t magic) {
  if (bytes.size() < 4) throw InputError(path + ": truncated IDX header (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t found = big_endian_u32(bytes, 0);
  if (found != magic)
    throw InputError(path + ": wrong IDX magic " + hex(found) + ", expected " + hex(magic) +
                     (magic == kImagesMagic ? " (an image file)" : " (a label file)"));
  const size_t dims = magic & 0xff;
  const size_t header = 4 + 4 * dims;
  if (bytes.size() < header)
    throw InputError(path + ": truncated IDX header (" + std::to_string(bytes.size()) + " bytes, need " +
                     std::to_string(header) + ")");
  std::vector<uint32_t> shape(dims);
  // Three 32-bit counts can multiply past 64 bits; 128-bit arithmetic keeps the comparison honest.
  unsigned __int128 payload = 1;
  for (size_t d = 0; d < dims; ++d) {
    shape[d] = big_endian_u32(bytes, 4 + 4 * d);
    payload *= shape[d];
  }
  const size_t actual = bytes.size() - header;
  if (payload != actual) {
    std::string dims_text;
    for (size_t d = 0; d < dims; ++d) dims_text += (d ? "x" : "") + std::to_string(shape[d]);
    throw InputError(path + ": header promises " + dims_text + " = " +
                     (payload > kMaxIdxBytes ? std::string("an absurd number of") : std::to_string(uint64_t(payload))) +
                     " bytes of data but the file holds " + std::to_string(actual) +
                     (payload > actual ? " (truncated?)" : " (trailing bytes)"));
  }
  return shape;
}

}  // namespace

std::vector<uint8_t> read_maybe_gzip(const std::string& path, size_t max_bytes) {
  // gzread reads plain files transparently, so one path serves both.
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw InputError(path + ": cannot open file");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(file, gzclose);
  gzbuffer(file, 1 << 17);
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    const int n = gzread(file, chunk.data(), unsigned(chunk.size()));
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw InputError(path + ": corrupt gzip data (" + std::string(message ? message : "unknown zlib error") + ")");
    }
    if (n == 0) {
      int code = 0;
      gzerror(file, &code);
      // A stream cut short reports Z_BUF_ERROR at end of input rather than a clean EOF.
      if (code != Z_OK && code != Z_STREAM_END)
        throw InputError(path + ": corrupt or truncated gzip data");
      break;
    }
    if (bytes.size() + size_t(n) > max_bytes)
      throw InputError(path + ": larger than " + std::to_string(max_bytes >> 20) + " MiB, refusing to read");
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  return bytes;
}

torch::Tensor read_idx_images(const std::string& path) {
  const std::vector<uint8_t> bytes = read_maybe_gzip(path, kMaxIdxBytes);
  const std::vector<uint32_t> shape = parse_header(path, bytes, kImagesMagic);
  if (shape[1] != 28 || shape[2] != 28)
    throw InputError(path + ": images are " + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) +
                     ", expected 28x28");
  if (shape[0] == 0) throw InputError(path + ": holds no images");
  auto images = torch::empty({int64_t(shape[0]), 28, 28}, torch::kUInt8);
  std::memcpy(images.data_ptr<uint8_t>(), bytes.data() + 16, bytes.size() - 16);
  return images;
}

torch::Tensor read_idx_labels(const std::string& path, int num_classes) {
  const std::vector<uint8_t> bytes = read_maybe_gzip(path, kMaxIdxBytes);
  const std::vector<uint32_t> shape = parse_header(path, bytes, kLabelsMagic);
  for (size_t i = 8; i < bytes.size(); ++i) {
    if (bytes[i] >= num_classes)
      throw InputError(path + ": label " + std::to_string(bytes[i]) + " at index " + std::to_string(i - 8) +
                       " is out of range 0-" + std::to_string(num_classes - 1));
  }
  auto labels = torch::empty({int64_t(shape[0])}, torch::kUInt8);
  std::memcpy(labels.data_ptr<uint8_t>(), bytes.data() + 8, bytes.size() - 8);
  return labels;
}

void write_idx_images(const std::string& path, const torch::Tensor& images_uint8) {
  auto images = images_uint8.contiguous();
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == torch::kUInt8, "write_idx_images: need uint8 [N,H,W]");
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot write");
  put_big_endian_u32(out, kImagesMagic);
  for (int d = 0; d < 3; ++d) put_big_endian_u32(out, uint32_t(images.size(d)));
  out.write(reinterpret_cast<const char*>(images.data_ptr<uint8_t>()), images.numel());
}

void write_idx_labels(const std::string& path, const torch::Tensor& labels_uint8) {
  auto labels = labels_uint8.contiguous();
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == torch::kUInt8, "write_idx_labels: need uint8 [N]");
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot write");
  put_big_endian_u32(out, kLabelsMagic);
  put_big_endian_u32(out, uint32_t(labels.size(0)));
  out.write(reinterpret_cast<const char*>(labels.data_ptr<uint8_t>()), labels.numel());
}

}  // namespace ddp
