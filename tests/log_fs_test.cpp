// The log engine's file-system interface (detail/log_fs.hpp): every call of
// posix_log_fs and memory_log_fs, their errors (naming the path and the OS
// error), and the probe of what a file system takes, on the test disk
// ($SESHAT_TEST_DIR) and on tmpfs (/dev/shm).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "seshat/detail/log_fs.hpp"

using seshat::detail::fs_status;
using seshat::detail::log_file;
using seshat::detail::log_fs;
using seshat::detail::memory_log_fs;
using seshat::detail::posix_log_fs;
namespace fs = std::filesystem;

namespace {

// A fresh directory under `root`, removed at the end.
class temp_dir {
 public:
  explicit temp_dir(const fs::path& root) {
    static std::atomic<int> counter{0};
    fs::create_directories(root);
    path_ = root / ("logfs" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

fs::path test_root() {
  const char* base = std::getenv("SESHAT_TEST_DIR");
  return base ? fs::path(base) : fs::current_path() / "test-data";
}

bool is_tmpfs(const fs::path& p) {
  struct statfs st {};
  return ::statfs(p.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
}

// Checks that `s` failed with `err`, naming `path` and the error's name.
void check_os_failure(const seshat::status& s, int os_error, int err, const fs::path& path,
                      int line = __builtin_LINE()) {
  INFO("checked at line " << line << ": " << s.to_string());
  CHECK(s.is(seshat::errc::io_error));
  CHECK(os_error == err);
  CHECK(s.message().find(path.string()) != std::string::npos);
  CHECK(s.message().find("(" + seshat::detail::errno_name(err) + ")") != std::string::npos);
}
void check_os_failure(const fs_status& s, int err, const fs::path& path, int line = __builtin_LINE()) {
  check_os_failure(s, s.os_error(), err, path, line);
}

struct posix_case {
  posix_log_fs fs;
  temp_dir dir{test_root()};
  fs::path root() const { return dir.path(); }
};

struct memory_case {
  memory_log_fs fs;
  memory_case() { REQUIRE(fs.create_directory("/t").ok()); }
  fs::path root() const { return "/t"; }
};

std::string read_all(log_fs& fs, const log_file& f, std::size_t n, std::uint64_t offset = 0) {
  std::string out(n, '\0');
  auto r = fs.pread(f, offset, std::span<char>(out));
  REQUIRE(r.ok());
  out.resize(*r);
  return out;
}

}  // namespace

TEST_SUITE("log fs") {

TEST_CASE_TEMPLATE("every log_fs call does what its contract says", T, posix_case, memory_case) {
  T c;
  log_fs& fs = c.fs;
  const fs::path dir = c.root() / "log";
  REQUIRE(fs.create_directory(dir).ok());
  check_os_failure(fs.create_directory(dir), EEXIST, dir);
  check_os_failure(fs.create_directory(c.root() / "no" / "such"), ENOENT, c.root() / "no" / "such");

  const fs::path a = dir / "seg-1.log";
  auto f = fs.open(a, {.create_exclusive = true});
  REQUIRE(f.ok());
  {
    auto again = fs.open(a, {.create_exclusive = true});
    check_os_failure(again.status(), again.os_error(), EEXIST, a);
  }
  const std::string_view pieces[] = {"hello ", "", "log ", "engine"};
  REQUIRE(fs.pwrite(*f, 10, pieces, {}).ok());
  CHECK(fs.size(*f).value() == 26);
  CHECK(read_all(fs, *f, 16, 10) == "hello log engine");
  CHECK(read_all(fs, *f, 10) == std::string(10, '\0'));
  CHECK(read_all(fs, *f, 100, 20) == "engine");  // fewer bytes only at the end
  CHECK(read_all(fs, *f, 10, 1000).empty());
  const std::string_view dsync[] = {"D"};
  REQUIRE(fs.pwrite(*f, 0, dsync, {.dsync = true}).ok());
  CHECK(read_all(fs, *f, 1) == "D");
  REQUIRE(fs.datasync(*f).ok());
  REQUIRE(fs.allocate(*f, 1 << 16).ok());
  CHECK(fs.size(*f).value() == 1 << 16);
  CHECK(read_all(fs, *f, 6, 20) == "engine");  // allocate keeps what is there
  auto zeroed = fs.write_zeroes(*f, 10, 6);
  REQUIRE(zeroed.ok());
  CHECK(read_all(fs, *f, 6, 10) == (*zeroed ? std::string(6, '\0') : std::string("hello ")));
  CHECK(fs.link_count(*f).value() == 1);

  const fs::path b = dir / "free-1.log";
  REQUIRE(fs.link(a, b).ok());
  CHECK(fs.link_count(*f).value() == 2);
  check_os_failure(fs.link(a, b), EEXIST, b);
  check_os_failure(fs.rename(a, b), EEXIST, b);  // never over an existing name
  REQUIRE(fs.unlink(b).ok());
  CHECK(fs.link_count(*f).value() == 1);
  const fs::path c2 = dir / "seg-2.log";
  REQUIRE(fs.rename(a, c2).ok());
  check_os_failure(fs.rename(a, c2), ENOENT, c2);
  CHECK(read_all(fs, *f, 6, 20) == "engine");  // an open file follows its rename
  {
    // replace: over an existing name; the replaced file lives on under its other link.
    const fs::path keep = dir / "keep.log", tmp = dir / "copy-2.tmp";
    REQUIRE(fs.link(c2, keep).ok());
    auto t = fs.open(tmp, {.create_exclusive = true});
    REQUIRE(t.ok());
    const std::string_view other[] = {"other"};
    REQUIRE(fs.pwrite(*t, 0, other, {}).ok());
    REQUIRE(fs.replace(tmp, c2).ok());
    CHECK(fs.link_count(*f).value() == 1);  // keep.log only
    CHECK(read_all(fs, *t, 5) == "other");
    auto now = fs.open(c2, {.read_only = true});
    REQUIRE(now.ok());
    CHECK(read_all(fs, *now, 5) == "other");
    REQUIRE(fs.close(*now).ok());
    check_os_failure(fs.replace(tmp, c2), ENOENT, c2);
    REQUIRE(fs.close(*t).ok());
    REQUIRE(fs.replace(keep, c2).ok());  // the first file back under c2
    CHECK(read_all(fs, *f, 6, 20) == "engine");
  }
  REQUIRE(fs.sync_directory(dir).ok());
  check_os_failure(fs.sync_directory(dir / "none"), ENOENT, dir / "none");
  REQUIRE(fs.close(*f).ok());

  auto r = fs.open(c2, {.read_only = true});
  REQUIRE(r.ok());
  CHECK(read_all(fs, *r, 6, 20) == "engine");
  check_os_failure(fs.pwrite(*r, 0, dsync, {}), EBADF, c2);
  REQUIRE(fs.close(*r).ok());

  {
    auto prep = fs.open(dir / "prep-1.tmp", {.create_exclusive = true});
    REQUIRE(prep.ok());
    REQUIRE(fs.close(*prep).ok());
  }
  REQUIRE(fs.create_directory(dir / "sub").ok());
  CHECK(fs.list(dir).value() == std::vector<std::string>{"prep-1.tmp", "seg-2.log", "sub"});
  check_os_failure(fs.list(dir / "none").status(), fs.list(dir / "none").os_error(), ENOENT, dir / "none");
  REQUIRE(fs.unlink(c2).ok());
  check_os_failure(fs.unlink(c2), ENOENT, c2);
  {
    auto missing = fs.open(c2, {});
    check_os_failure(missing.status(), missing.os_error(), ENOENT, c2);
  }
  CHECK(fs.list(dir).value() == std::vector<std::string>{"prep-1.tmp", "sub"});
}

TEST_CASE("a failed write names the call, the path, the byte range and the OS error") {
  memory_log_fs fs;
  REQUIRE(fs.create_directory("/d").ok());
  auto f = fs.open("/d/seg-7.log", {.create_exclusive = true, .direct = true});
  REQUIRE(f.ok());
  const std::string_view piece[] = {"unaligned"};
  const fs_status s = fs.pwrite(*f, 4096, piece, {.dsync = true});
  check_os_failure(s, EINVAL, "/d/seg-7.log");
  CHECK(s.message() == "pwritev2 (RWF_DSYNC) /d/seg-7.log at byte 4096, 9 bytes: Invalid argument (EINVAL)");
  CHECK(fs.contents("/d/seg-7.log").empty());  // nothing written
  REQUIRE(fs.close(*f).ok());
  check_os_failure(fs.close(*f), EBADF, "/d/seg-7.log");
}

TEST_CASE("where O_DIRECT is refused the probe says so, and page-cache writes carry on") {
  memory_log_fs fs({.direct_block = 0, .dsync = true});
  REQUIRE(fs.create_directory("/log").ok());
  auto p = fs.probe("/log");
  REQUIRE(p.ok());
  CHECK(p->direct_block == 0);
  CHECK(p->dsync);
  CHECK(p->notes.find("O_DIRECT: open refused (EINVAL)") != std::string::npos);
  CHECK(fs.list("/log").value().empty());  // probe.tmp removed
  auto direct = fs.open("/log/seg-1.log", {.create_exclusive = true, .direct = true});
  check_os_failure(direct.status(), direct.os_error(), EINVAL, "/log/seg-1.log");
  // The fallback: the same segment through the page cache, RWF_DSYNC per write.
  auto f = fs.open("/log/seg-1.log", {.create_exclusive = true});
  REQUIRE(f.ok());
  REQUIRE(fs.allocate(*f, 16384).ok());
  const std::string_view round[] = {"frame"};
  REQUIRE(fs.pwrite(*f, 4096, round, {.dsync = true}).ok());
  CHECK(read_all(fs, *f, 5, 4096) == "frame");
  REQUIRE(fs.close(*f).ok());
}

TEST_CASE("the probe finds the block an O_DIRECT file system takes, and what it refuses") {
  {
    memory_log_fs fs({.direct_block = 4096, .dsync = false, .write_zeroes = true});
    REQUIRE(fs.create_directory("/log").ok());
    auto p = fs.probe("/log");
    REQUIRE(p.ok());
    CHECK(p->direct_block == 4096);
    CHECK_FALSE(p->dsync);
    CHECK(p->write_zeroes);
    CHECK(p->notes.find("RWF_DSYNC: refused (EOPNOTSUPP)") != std::string::npos);
    CHECK(p->notes.find("O_DIRECT: 512-byte write refused (EINVAL)") != std::string::npos);
  }
  {
    memory_log_fs fs;
    REQUIRE(fs.create_directory("/log").ok());
    // A probe.tmp left by a crash is replaced.
    auto left = fs.open("/log/probe.tmp", {.create_exclusive = true});
    REQUIRE(left.ok());
    REQUIRE(fs.close(*left).ok());
    auto p = fs.probe("/log");
    REQUIRE(p.ok());
    CHECK(p->direct_block == 512);
    CHECK(p->dsync);
    CHECK_FALSE(p->write_zeroes);
    CHECK(fs.list("/log").value().empty());
  }
  {
    memory_log_fs fs;
    auto p = fs.probe("/missing");
    check_os_failure(p.status(), p.os_error(), ENOENT, "/missing/probe.tmp");
  }
}

TEST_CASE("the probe on the test disk agrees with what the disk takes") {
  temp_dir dir(test_root());
  posix_log_fs fs;
  auto p = fs.probe(dir.path());
  REQUIRE(p.ok());
  MESSAGE("test disk " << dir.path().string() << ": O_DIRECT block " << p->direct_block
                       << ", RWF_DSYNC " << p->dsync << ", write-zeroes " << p->write_zeroes
                       << "; " << p->notes);
  CHECK(fs.list(dir.path()).value().empty());
  CHECK(p->dsync);  // Linux >= 4.7
  const fs::path file = dir.path() / "seg-1.log";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  ::unlink(file.c_str());
  if (fd < 0) {
    CHECK(p->direct_block == 0);
    CHECK(err == EINVAL);
    return;
  }
  REQUIRE(p->direct_block != 0);
  // Through the interface: an aligned O_DIRECT write reads back; where the
  // file system checks alignment (not tmpfs), an unaligned one is EINVAL.
  auto f = fs.open(file, {.create_exclusive = true, .direct = true});
  REQUIRE(f.ok());
  REQUIRE(fs.allocate(*f, 16384).ok());
  void* raw = nullptr;
  REQUIRE(::posix_memalign(&raw, 4096, 4096) == 0);
  std::unique_ptr<void, decltype(&std::free)> buffer(raw, &std::free);
  std::memset(raw, 'x', 4096);
  const std::string_view block[] = {std::string_view(static_cast<char*>(raw), p->direct_block)};
  REQUIRE(fs.pwrite(*f, 4096, block, {.dsync = true}).ok());
  if (!is_tmpfs(dir.path())) {
    const std::string_view odd[] = {std::string_view(static_cast<char*>(raw), 100)};
    check_os_failure(fs.pwrite(*f, 0, odd, {.dsync = true}), EINVAL, file);
  }
  REQUIRE(fs.close(*f).ok());
  auto r = fs.open(file, {.read_only = true});
  REQUIRE(r.ok());
  CHECK(read_all(fs, *r, p->direct_block, 4096) == std::string(p->direct_block, 'x'));
  REQUIRE(fs.close(*r).ok());
}

TEST_CASE("the probe on tmpfs agrees with what tmpfs takes") {
  const fs::path shm = "/dev/shm";
  if (!fs::is_directory(shm) || !is_tmpfs(shm)) {
    MESSAGE("no tmpfs at /dev/shm: skipped");
    return;
  }
  temp_dir dir(shm);
  posix_log_fs fs;
  auto p = fs.probe(dir.path());
  REQUIRE(p.ok());
  MESSAGE("tmpfs: O_DIRECT block " << p->direct_block << ", RWF_DSYNC " << p->dsync
                                   << ", write-zeroes " << p->write_zeroes << "; " << p->notes);
  CHECK(fs.list(dir.path()).value().empty());
  // tmpfs refuses O_DIRECT at open (EINVAL) before Linux 6.6 and takes it since.
  const fs::path file = dir.path() / "x";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  ::unlink(file.c_str());
  if (fd < 0) {
    CHECK(err == EINVAL);
    CHECK(p->direct_block == 0);
    CHECK(p->notes.find("O_DIRECT: open refused (EINVAL)") != std::string::npos);
  } else {
    CHECK(p->direct_block == 512);
  }
  CHECK(p->dsync);
  CHECK_FALSE(p->write_zeroes);  // tmpfs has no write-zeroes
}

}  // TEST_SUITE
