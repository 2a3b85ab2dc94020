// seshat/snapshot_file.hpp: the file of a Raft-level snapshot (one group's
// state machine) and what moves it between nodes: snapshot_reader serves it
// in chunks, snapshot_receiver takes it chunk by chunk and checks it whole.
// snapshot_manager (raft_snapshot.hpp) makes, keeps and installs them.
//
// A snapshot is one file; every integer is little-endian:
//
//   file       := magic version meta record* end crc
//   magic      := "SESHSNAP"                        8 bytes
//   version    := u32                               1 (k_snapshot_file_version)
//   meta       := shard:u64 flags:u8 [term:u64 index:u64]
//                 id_size:u64 snapshot_id membership_size:u64 membership
//   flags      := 0                                 no last log id (nothing applied)
//               | 1                                 the last log id follows
//   membership := membership::encode(), in its envelope (membership.hpp)
//   record     := 0x01 key_size:u64 key value_size:u64 value
//   end        := 0xFF count:u64                    how many records precede it
//   crc        := u32                               CRC-32C of every byte before it
//
//   key        := a data_kv key of the group, kv_group user_key
//                 (state_machine_store.hpp); keys strictly increasing
//   value      := the key's bytes as stored: envelope(stored_value)
//   *_size     := at most the bytes left in the file
//
// meta is raft_snapshot_meta without size_bytes, which is the file's size. A
// reader checks, in order: magic, version (a newer one is refused before its
// checksum is trusted), the checksum, then the structure; anything else, any
// flag bit but the first, a record tag but 0x01 and 0xFF, a key outside the
// group or out of order, a value stored_value::decode refuses, a count that
// is not the number of records, or a byte after the count's trailer, is
// refused with snapshot-failed naming the byte offset.
//
// Thread-safety: a snapshot_reader may be copied and used from many threads
// at once; a snapshot_receiver and a received_snapshot belong to one thread
// at a time.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/log_id.hpp"
#include "seshat/membership.hpp"
#include "seshat/shard.hpp"
#include "seshat/status.hpp"
#include "seshat/stored_value.hpp"

namespace seshat {

// What a Raft snapshot holds: one group's state machine in one file
// (snapshot_manager; openraft's SnapshotMeta, plus its group and size). Not
// a copy of the whole store: that is store_snapshot_meta (snapshot.hpp).
struct raft_snapshot_meta {
  std::optional<log_id> last_log_id;  // the last entry it covers; nothing: none applied
  seshat::membership membership;      // the membership in force at last_log_id
  std::string snapshot_id;            // unique among the group's snapshots
  shard_id shard = 0;                 // the group (0: the system group)
  std::uint64_t size_bytes = 0;       // the size of the file
  friend bool operator==(const raft_snapshot_meta&, const raft_snapshot_meta&) = default;
};

inline constexpr std::string_view k_snapshot_magic = "SESHSNAP";
inline constexpr std::uint32_t k_snapshot_file_version = 1;

template <class Entry, class Serializer, class Backend, class Shard, class KeyFormat, class Trigger>
class snapshot_manager;

namespace detail {

inline constexpr std::uint8_t k_snapshot_record = 0x01;
inline constexpr std::uint8_t k_snapshot_end = 0xFF;
inline constexpr std::size_t k_snapshot_io_bytes = std::size_t{1} << 20;
// The smallest file the grammar allows: no last log id, an empty id, an
// empty membership (envelope, flags and two counts), no record.
inline constexpr std::uint64_t k_min_snapshot_bytes =
    8 + 4 + 8 + 1 + 8 + 8 + (5 + 1 + 16) + 1 + 8 + 4;

inline std::string id_text(const std::optional<log_id>& id) {
  return id ? to_string(*id) : std::string("(none)");
}

inline std::string membership_text(const membership& m) {
  auto nodes = [](const std::vector<std::uint64_t>& ids) {
    std::string s = "{";
    for (std::uint64_t id : ids) s += (s.size() > 1 ? ", " : "") + std::to_string(id);
    return s + "}";
  };
  return "voters " + nodes(m.voters) + " learners " + nodes(m.learners) + " set at " +
         id_text(m.log_id);
}

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>(v >> (8 * i));
}
inline std::uint32_t get_u32(std::string_view in) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4 && i < in.size(); ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A file removed when its owner goes, unless released first.
class temp_file {
 public:
  temp_file() = default;
  explicit temp_file(std::filesystem::path p) : path_(std::move(p)), owned_(true) {}
  temp_file(temp_file&& o) noexcept
      : path_(std::move(o.path_)), owned_(std::exchange(o.owned_, false)) {}
  temp_file& operator=(temp_file&& o) noexcept {
    if (this != &o) {
      remove();
      path_ = std::move(o.path_);
      owned_ = std::exchange(o.owned_, false);
    }
    return *this;
  }
  ~temp_file() { remove(); }
  const std::filesystem::path& file() const { return path_; }
  bool owned() const { return owned_; }
  void remove() {
    if (!owned_) return;
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    owned_ = false;
  }
  void release() { owned_ = false; }

 private:
  std::filesystem::path path_;
  bool owned_ = false;
};

inline status write_all(int fd, std::string_view data, const std::filesystem::path& p) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", p, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Encodes a snapshot file front to back into a buffer that the caller
// drains into the file as it grows.
class snapshot_encoder {
 public:
  explicit snapshot_encoder(const raft_snapshot_meta& meta) {
    buffer_ += k_snapshot_magic;
    put_u32(buffer_, k_snapshot_file_version);
    put_u64(buffer_, meta.shard);
    put_u8(buffer_, meta.last_log_id ? 1 : 0);
    if (meta.last_log_id) {
      put_u64(buffer_, meta.last_log_id->term);
      put_u64(buffer_, meta.last_log_id->index);
    }
    put_bytes(meta.snapshot_id);
    put_bytes(meta.membership.encode());
  }

  void add(std::string_view key, std::string_view value) {
    put_u8(buffer_, k_snapshot_record);
    put_bytes(key);
    put_bytes(value);
    ++count_;
  }
  // Appends the end and the checksum; nothing may be added after.
  void finish() {
    put_u8(buffer_, k_snapshot_end);
    put_u64(buffer_, count_);
    crc_ = crc32c_extend(crc_, buffer_);
    put_u32(buffer_, crc_);
    finished_ = true;
  }

  std::size_t buffered() const { return buffer_.size(); }
  std::uint64_t size() const { return drained_ + buffer_.size(); }
  // Moves the bytes not drained yet into `out`, replacing its contents.
  void drain(std::string& out) {
    if (!finished_) crc_ = crc32c_extend(crc_, buffer_);
    drained_ += buffer_.size();
    out.clear();
    std::swap(out, buffer_);
  }

 private:
  void put_bytes(std::string_view s) {
    put_u64(buffer_, s.size());
    buffer_ += s;
  }

  std::string buffer_;
  std::uint64_t drained_ = 0;
  std::uint64_t count_ = 0;
  std::uint32_t crc_ = 0;
  bool finished_ = false;
};

// Reads a snapshot file front to back, checking it: preamble(), meta(),
// then records(). Errors are snapshot-failed naming the byte offset (I/O
// errors keep their kind); the caller adds which file.
class snapshot_parser {
 public:
  static result<snapshot_parser> open(const std::filesystem::path& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_status("open", path, errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_status("stat", path, errno);
    return snapshot_parser(std::move(fd), path, static_cast<std::uint64_t>(st.st_size));
  }

  std::uint64_t size() const { return size_; }

  // The magic and the format version.
  status preamble() {
    SESHAT_RETURN_IF_ERROR(need(k_snapshot_magic.size() + 4, "the magic and version"));
    if (take(k_snapshot_magic.size()) != k_snapshot_magic)
      return fail(0, "not a seshat snapshot (bad magic)");
    const std::uint32_t version = get_u32(take(4));
    if (version != k_snapshot_file_version)
      return fail(8, "snapshot format version " + std::to_string(version) + ", this seshat reads " +
                         std::to_string(k_snapshot_file_version));
    return {};
  }

  // The meta; its size_bytes is the file's size. REQUIRES: preamble() read.
  result<raft_snapshot_meta> meta() {
    raft_snapshot_meta m;
    m.size_bytes = size_;
    SESHAT_RETURN_IF_ERROR(need(9, "the meta"));
    m.shard = u64();
    const std::uint64_t flags_at = consumed_;
    const std::uint8_t flags = u8();
    if ((flags & ~1) != 0) return fail(flags_at, "unknown meta flags " + std::to_string(flags));
    if (flags & 1) {
      SESHAT_RETURN_IF_ERROR(need(16, "the last log id"));
      m.last_log_id = log_id{u64(), u64()};
    }
    std::uint64_t n = 0;
    SESHAT_RETURN_IF_ERROR(length(n, "the snapshot id"));
    m.snapshot_id.assign(take(n));
    const std::uint64_t membership_at = consumed_;
    SESHAT_RETURN_IF_ERROR(length(n, "the membership"));
    auto members = membership::decode(take(n), column_family::data_kv, "");
    if (!members.ok())
      return fail(membership_at,
                  "the membership of " + std::to_string(n) + " bytes does not decode");
    m.membership = std::move(*members);
    return m;
  }

  // The records, the end and the checksum, to the last byte: calls
  // on_record(std::string_view key, std::string_view stored) -> status for
  // each record once it is checked (an error from it stops the walk). Each
  // key must start with `group_prefix`. REQUIRES: meta() read.
  template <class F>
  status records(std::string_view group_prefix, F&& on_record) {
    std::uint64_t count = 0;
    std::string key, previous;
    for (;;) {
      const std::uint64_t at = consumed_;
      SESHAT_RETURN_IF_ERROR(need(1, "a record or the end"));
      const std::uint8_t tag = u8();
      if (tag == k_snapshot_end) break;
      if (tag != k_snapshot_record) return fail(at, "unknown record tag " + std::to_string(tag));
      std::uint64_t n = 0;
      SESHAT_RETURN_IF_ERROR(length(n, "a record key"));
      key.assign(take(n));
      SESHAT_RETURN_IF_ERROR(length(n, "a record value"));
      const std::string_view value = take(n);
      if (!key.starts_with(group_prefix))
        return fail(at, "record key '" + printable(key) + "' is not a data key of this group");
      if (count > 0 && key <= previous)
        return fail(at, "record key '" + printable(key) + "' does not sort after '" +
                            printable(previous) + "'");
      auto decoded = stored_value::decode(value, column_family::data_kv, key);
      if (!decoded.ok()) return fail(at, "record: " + decoded.status().message());
      SESHAT_RETURN_IF_ERROR(on_record(std::string_view(key), value));
      std::swap(key, previous);
      ++count;
    }
    const std::uint64_t count_at = consumed_;
    SESHAT_RETURN_IF_ERROR(need(8, "the record count"));
    const std::uint64_t stored_count = u64();
    if (stored_count != count)
      return fail(count_at, "the file counts " + std::to_string(stored_count) +
                                " records, it holds " + std::to_string(count));
    const std::uint64_t left = size_ - consumed_;
    if (left > 4)
      return fail(consumed_, std::to_string(left - 4) + " bytes follow the record count");
    SESHAT_RETURN_IF_ERROR(need(4, "the checksum"));
    const std::uint32_t computed = crc_;
    const std::uint32_t stored = get_u32(take(4));
    if (stored != computed)
      return fail(size_ - 4, "checksum mismatch: stored " + std::to_string(stored) + ", computed " +
                                 std::to_string(computed));
    return {};
  }

 private:
  snapshot_parser(unique_fd fd, std::filesystem::path path, std::uint64_t size)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size) {}

  static std::string printable(std::string_view s) { return detail::printable(s); }

  status fail(std::uint64_t at, const std::string& why) const {
    return status::snapshot_failed("byte " + std::to_string(at) + ": " + why);
  }

  // Makes `n` more bytes readable, or fails as truncated.
  status need(std::uint64_t n, std::string_view what) {
    if (buf_.size() - pos_ >= n) return {};
    if (n > size_ - consumed_)
      return fail(consumed_, "truncated: " + std::string(what) + " needs " + std::to_string(n) +
                                 " bytes, " + std::to_string(size_ - consumed_) + " are left");
    buf_.erase(0, pos_);
    pos_ = 0;
    while (buf_.size() < n) {
      const std::size_t old = buf_.size();
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(
          std::max<std::uint64_t>(n - old, k_snapshot_io_bytes), size_ - read_));
      buf_.resize(old + want);
      const ssize_t got = ::pread(fd_.get(), buf_.data() + old, want, static_cast<off_t>(read_));
      if (got <= 0) {
        const int err = errno;
        buf_.resize(old);
        if (got < 0 && err == EINTR) continue;
        if (got < 0) return errno_status("read", path_, err);
        return fail(read_, "the file ends early (it shrank while being read)");
      }
      buf_.resize(old + static_cast<std::size_t>(got));
      read_ += static_cast<std::uint64_t>(got);
    }
    return {};
  }

  // The next `n` bytes, valid until the next need(); checksummed unless
  // they are the trailer. REQUIRES: need(n) succeeded.
  std::string_view take(std::uint64_t n) {
    const std::string_view out = std::string_view(buf_).substr(pos_, static_cast<std::size_t>(n));
    const std::uint64_t limit = size_ >= 4 ? size_ - 4 : 0;
    if (consumed_ < limit)
      crc_ = crc32c_extend(crc_,
                           out.substr(0, static_cast<std::size_t>(std::min(n, limit - consumed_))));
    pos_ += static_cast<std::size_t>(n);
    consumed_ += n;
    return out;
  }
  std::uint64_t u64() { return fixed_reader(take(8)).u64(); }
  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }

  // A length field, checked against the bytes left, with its bytes readable.
  status length(std::uint64_t& n, std::string_view what) {
    SESHAT_RETURN_IF_ERROR(need(8, what));
    const std::uint64_t at = consumed_;
    n = u64();
    if (n > size_ - consumed_)
      return fail(at, "the size of " + std::string(what) + ", " + std::to_string(n) +
                          ", is more than the " + std::to_string(size_ - consumed_) +
                          " bytes left");
    return need(n, what);
  }

  unique_fd fd_;
  std::filesystem::path path_;
  std::uint64_t size_ = 0;
  std::string buf_;
  std::size_t pos_ = 0;         // the next byte of buf_
  std::uint64_t consumed_ = 0;  // the file offset of buf_[pos_]
  std::uint64_t read_ = 0;      // the file offset after buf_'s last byte
  std::uint32_t crc_ = 0;       // of the bytes consumed, the trailer excepted
};

// One kept snapshot file. snapshot_manager marks it obsolete when retention
// drops it; the file goes when its last holder (the manager or a reader)
// does.
struct snapshot_file {
  std::filesystem::path path;
  raft_snapshot_meta meta;
  std::atomic<bool> obsolete{false};

  snapshot_file(std::filesystem::path p, raft_snapshot_meta m)
      : path(std::move(p)), meta(std::move(m)) {}
  snapshot_file(const snapshot_file&) = delete;
  snapshot_file& operator=(const snapshot_file&) = delete;
  ~snapshot_file() {
    if (!obsolete.load()) return;
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace detail

// Reads a kept snapshot's bytes, in chunks, to send them to another node.
// A live reader keeps its file: retention does not delete it until the last
// copy of the reader is gone. Made by snapshot_manager::get_current_snapshot.
class snapshot_reader {
 public:
  const raft_snapshot_meta& meta() const { return file_->meta; }
  std::uint64_t size() const { return file_->meta.size_bytes; }

  // Up to `max_bytes` bytes from `offset`: fewer only at the end of the
  // file, none at size(). invalid-argument when offset > size().
  result<std::string> read_chunk(std::uint64_t offset, std::size_t max_bytes) const {
    if (offset > size())
      return status::invalid_argument("read of snapshot '" + meta().snapshot_id + "' at offset " +
                                      std::to_string(offset) + ", past its end at " +
                                      std::to_string(size()));
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, size() - offset));
    std::string out(n, '\0');
    for (std::size_t done = 0; done < n;) {
      const ssize_t got =
          ::pread(fd_->get(), out.data() + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return detail::errno_status("read", file_->path, errno);
      if (got == 0)
        return status::io_error("read " + file_->path.string() + ": the file ends at " +
                                std::to_string(offset + done) + ", before its size " +
                                std::to_string(size()));
      done += static_cast<std::size_t>(got);
    }
    return out;
  }

 private:
  template <class, class, class, class, class, class>
  friend class snapshot_manager;

  static result<snapshot_reader> open(std::shared_ptr<const detail::snapshot_file> file) {
    auto fd = std::make_shared<detail::unique_fd>(::open(file->path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!*fd) return detail::errno_status("open", file->path, errno);
    return snapshot_reader(std::move(file), std::move(fd));
  }
  snapshot_reader(std::shared_ptr<const detail::snapshot_file> file,
                  std::shared_ptr<detail::unique_fd> fd)
      : file_(std::move(file)), fd_(std::move(fd)) {}

  std::shared_ptr<const detail::snapshot_file> file_;
  std::shared_ptr<detail::unique_fd> fd_;
};

// A snapshot received whole and checked, waiting in a temporary file for
// snapshot_manager::install_snapshot, which consumes it. Dropping it
// uninstalled deletes the file. Move-only.
class received_snapshot {
 public:
  const raft_snapshot_meta& meta() const { return meta_; }
  // False once installed (or moved from).
  explicit operator bool() const { return file_.owned(); }

 private:
  friend class snapshot_receiver;
  template <class, class, class, class, class, class>
  friend class snapshot_manager;

  received_snapshot(detail::temp_file file, raft_snapshot_meta meta)
      : file_(std::move(file)), meta_(std::move(meta)) {}

  detail::temp_file file_;
  raft_snapshot_meta meta_;
};

// Takes a snapshot chunk by chunk into a temporary file, then checks it
// whole. Chunks must come in order: each at the offset of the bytes
// received so far. Any refusal abandons the receive: its file is deleted and
// every later call fails. Dropping an unfinished receiver abandons it too.
// Made by snapshot_manager::begin_receiving_snapshot. Move-only.
class snapshot_receiver {
 public:
  const raft_snapshot_meta& meta() const { return meta_; }
  std::uint64_t received() const { return received_; }

  // Appends `bytes`, which must start at `offset` == received() and not run
  // past meta().size_bytes; otherwise snapshot-failed ("chunk out of order:
  // expected offset X, got Y", "... past the snapshot's size ...").
  status write_chunk(std::uint64_t offset, std::string_view bytes) {
    SESHAT_RETURN_IF_ERROR(usable());
    if (offset != received_)
      return abandon(status::snapshot_failed("chunk out of order: expected offset " +
                                             std::to_string(received_) + ", got " +
                                             std::to_string(offset)));
    if (bytes.size() > meta_.size_bytes - received_)
      return abandon(status::snapshot_failed("chunk of " + std::to_string(bytes.size()) +
                                             " bytes at offset " + std::to_string(offset) +
                                             " runs past the snapshot's size of " +
                                             std::to_string(meta_.size_bytes) + " bytes"));
    status written = detail::write_all(fd_.get(), bytes, file_.file());
    if (!written.ok()) return abandon(written);
    const std::uint64_t limit = meta_.size_bytes - 4;  // the checksum's offset
    if (received_ < limit)
      crc_ = detail::crc32c_extend(
          crc_, bytes.substr(0, static_cast<std::size_t>(
                                    std::min<std::uint64_t>(bytes.size(), limit - received_))));
    if (received_ + bytes.size() > limit)
      trailer_ += bytes.substr(static_cast<std::size_t>(received_ < limit ? limit - received_ : 0));
    received_ += bytes.size();
    return {};
  }

  // Checks the snapshot received: every byte is there, then magic, version,
  // checksum, that its header's meta is the meta given to
  // begin_receiving_snapshot, and every record (its key belongs to the
  // group, keys in order, its value decodes, the count). snapshot-failed
  // naming the problem (the receive is abandoned); the received snapshot,
  // durable in its temporary file, otherwise.
  result<received_snapshot> finish() {
    SESHAT_RETURN_IF_ERROR(usable());
    if (received_ != meta_.size_bytes)
      return abandon(status::snapshot_failed("truncated: received " + std::to_string(received_) +
                                             " of " + std::to_string(meta_.size_bytes) + " bytes"));
    if (::fsync(fd_.get()) != 0) return abandon(detail::errno_status("fsync", file_.file(), errno));
    fd_.reset();
    status checked = check();
    if (!checked.ok()) return abandon(checked);
    state_ = state::finished;
    return received_snapshot(std::move(file_), meta_);
  }

 private:
  template <class, class, class, class, class, class>
  friend class snapshot_manager;
  enum class state { receiving, abandoned, finished };

  snapshot_receiver(detail::temp_file file, detail::unique_fd fd, raft_snapshot_meta meta,
                    std::string group_prefix, std::string context)
      : file_(std::move(file)),
        fd_(std::move(fd)),
        meta_(std::move(meta)),
        prefix_(std::move(group_prefix)),
        context_(std::move(context)) {}

  status usable() const {
    if (state_ == state::abandoned)
      return status::snapshot_failed(context_ + "the receive was abandoned: " + why_);
    if (state_ == state::finished)
      return status::invalid_argument(context_ + "the receive is finished");
    return {};
  }

  // Deletes the file and refuses every later call; returns `why` in context.
  status abandon(const status& why) {
    state_ = state::abandoned;
    why_ = why.message();
    fd_.reset();
    file_.remove();
    return why.with_context(context_);
  }

  status check() {
    auto parser = detail::snapshot_parser::open(file_.file());
    if (!parser.ok()) return parser.status();
    SESHAT_RETURN_IF_ERROR(parser->preamble());
    const std::uint32_t stored = detail::get_u32(trailer_);
    if (stored != crc_)
      return status::snapshot_failed("checksum mismatch: stored " + std::to_string(stored) +
                                     ", computed " + std::to_string(crc_));
    auto header = parser->meta();
    if (!header.ok()) return header.status();
    SESHAT_RETURN_IF_ERROR(agrees(*header));
    return parser->records(prefix_, [](std::string_view, std::string_view) { return status{}; });
  }

  status agrees(const raft_snapshot_meta& file) const {
    auto differs = [](std::string_view what, const std::string& in_file, const std::string& given) {
      return status::snapshot_failed(
          "the snapshot's meta disagrees with its data: " + std::string(what) + " " + in_file +
          " in the file, " + given + " given");
    };
    if (file.shard != meta_.shard)
      return differs("shard", std::to_string(file.shard), std::to_string(meta_.shard));
    if (file.last_log_id != meta_.last_log_id)
      return differs("last log id", detail::id_text(file.last_log_id),
                     detail::id_text(meta_.last_log_id));
    if (file.snapshot_id != meta_.snapshot_id)
      return differs("snapshot id", "'" + detail::printable(file.snapshot_id) + "'",
                     "'" + detail::printable(meta_.snapshot_id) + "'");
    if (file.membership != meta_.membership)
      return differs("membership", "(" + detail::membership_text(file.membership) + ")",
                     "(" + detail::membership_text(meta_.membership) + ")");
    return {};
  }

  detail::temp_file file_;
  detail::unique_fd fd_;
  raft_snapshot_meta meta_;
  std::string prefix_;
  std::string context_;
  std::uint64_t received_ = 0;
  std::uint32_t crc_ = 0;  // of the bytes received before the checksum
  std::string trailer_;    // the bytes received at or after it
  state state_ = state::receiving;
  std::string why_;
};

}  // namespace seshat
