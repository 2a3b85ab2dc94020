// seshat/backends/segment/log_checkpoint.hpp: the file copies behind a log
// engine's checkpoint and its install (docs/log-engine.md section 2), all
// through detail::log_fs.
//
// Which files are shared by a hard link, and why that is safe: a sealed
// segment (its trailer and footer written and fdatasynced) is never written
// again in place by an engine, live or reopened: the writer only writes the
// open segment, sealing writes only segments not sealed yet, recovery reads
// a sealed segment's footer and writes nothing, and freeing unlinks the name
// or, to recycle the file in place (segment_log.hpp's free_oldest), renames
// it only when its link count is 1: a file a checkpoint links is never
// reused. Freeing waits while a checkpoint copies. When recovery must rewrite one (a
// seal that no longer checks or applies: scanned, maybe cut, sealed again),
// it first gives the engine's name a copy of its own when the file has
// another link (segment_file.hpp's own_file), so the checkpoint's bytes
// stay as they were. Every other segment (the open one,
// one waiting for its seal) is copied: the engine that owns it will still
// write into it (frames, its seal, a tail cut at open).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "seshat/backends/segment/recovery.hpp"
#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

// Whether the segment file `path` (named seg-<seq>.log) carries a seal that
// checks (recovery's read_seal): then no engine writes it again.
inline bool is_sealed_segment_file(log_fs& fs, const std::filesystem::path& path, std::uint64_t seq) {
  auto f = fs.open(path, {.read_only = true});
  if (!f.ok()) return false;
  segment_state st;
  st.seq = seq;
  st.file = *f;
  auto size = fs.size(*f);
  bool sealed = false;
  if (size.ok()) {
    st.size = *size;
    sealed = recovery_detail::read_seal(fs, st).ok();
  }
  fs.close(*f).ignore();
  return sealed;
}

// Fills the new directory `to` (created here; its parent must exist) with
// the segments of the log directory `from` of a checkpoint: sealed ones
// hard-linked (copied when the file system refuses the link), the others
// copied; then fsyncs `to` and its parent. A name that is not a segment's is
// refused (corrupted-data): a checkpoint's log directory holds segments only.
inline status install_log_dir(log_fs& fs, const std::filesystem::path& from,
                              const std::filesystem::path& to) {
  auto names = fs.list(from);
  if (!names.ok()) return names.status();
  SESHAT_RETURN_IF_ERROR(fs.create_directory(to));
  for (const std::string& name : *names) {
    const auto seq = parse_segment_name(name);
    if (!seq)
      return status::corrupted_data("the checkpoint's log directory " + from.string() + " holds " +
                                    name + ", which is not a segment (seg-<seq20>.log)");
    if (is_sealed_segment_file(fs, from / name, *seq) && fs.link(from / name, to / name).ok()) continue;
    auto in = fs.open(from / name, {.read_only = true});
    if (!in.ok()) return in.status();
    auto size = fs.size(*in);
    status s = size.ok() ? copy_file_prefix(fs, *in, to / name, *size, *size) : status(size.status());
    fs.close(*in).ignore();
    SESHAT_RETURN_IF_ERROR(s);
  }
  SESHAT_RETURN_IF_ERROR(fs.sync_directory(to));
  return fs.sync_directory(to.parent_path().empty() ? std::filesystem::path(".") : to.parent_path());
}

}  // namespace seshat::detail::segment
