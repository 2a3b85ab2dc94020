// seshat/backends/segment/recovery.hpp: what a log engine's open rebuilds
// from its directory (docs/log-engine.md section 9): a sealed segment from
// its footer's summaries, without reading one entry; the others (the last,
// and any whose seal was lost, torn or damaged) by scanning their frames.
//
//   1 delete prep-*.tmp, copy-*.tmp, probe.tmp and free-*.log (then fsync the
//     directory); other names than seg-* are left alone
//   2 each seg-* in seq order: its header must check and carry the name's
//     seq and the file's size. Sealed (its trailer, and the footer the
//     trailer names, check; the summaries apply): the footer's summaries
//     are applied, the file's other bytes not read. Otherwise its frames are
//     checked (CRC) and their records replayed (group_index.hpp's rules)
//     until the body's end (a zero length) or a stale frame (an older seq).
//     A zero length followed by a frame of its seq whose `durable` passes it
//     is damage (step 3), not the end: a zeroed sector at a frame's start.
//   3 damage at byte d of segment S (a frame that does not check or parse,
//     a record that does not replay) is inside synced data when a later
//     frame of S's seq that checks has durable > d, or a later segment
//     holds a frame (the writer syncs S before it writes a later segment):
//     refused. Otherwise it is the unsynced tail a power loss leaves: cut
//     under tolerate_corrupted_tail (the groups as before d; the cut made
//     durable, a zero `end` at d and fdatasync, before open returns),
//     refused under absolute_consistency.
//   4 every scanned segment holding a frame is sealed at its end (at the
//     cut, after one), so the next open reads its footer; one too full for
//     a seal (written before seals were reserved) stays unsealed.
//   A segment file with another link (a checkpoint's, whose seal this
//   open found damaged) gets a copy of its own before the cut or the seal
//   writes it (segment_file.hpp's own_file): the other link keeps its bytes.
// Nothing is changed by a refused open. Every refusal is corrupted_data
// (version_mismatch for a newer header) naming the segment and byte.
//
// Thread-safety: a function of the directory; run before the engine starts.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "seshat/backends/segment/group_index.hpp"
#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/detail/segment_format.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

struct recovered_log {
  std::vector<std::shared_ptr<segment_state>> segments;  // in seq order, open, on disk
  std::map<group_address, group_log> groups;
  std::uint64_t next_seq = 1;     // above every segment's
  std::uint64_t next_number = 1;  // above every frame's
  bool last_is_empty = false;     // the last segment holds no frame (a prepared one)
};

namespace recovery_detail {

// Reads [offset, offset + length) of `f` into `out` (fewer bytes at the file's end).
inline fs_status read_range(log_fs& fs, const log_file& f, std::uint64_t offset, std::uint64_t length,
                            std::string& out) {
  out.assign(static_cast<std::size_t>(length), '\0');
  auto n = fs.pread(f, offset, std::span<char>(out.data(), out.size()));
  if (!n.ok()) return fs_status(n.status(), n.os_error());
  out.resize(*n);
  return {};
}

// True when segment `s` holds a first frame that checks (two small reads).
inline bool holds_a_frame(log_fs& fs, const segment_state& s) {
  std::string head;
  if (!read_range(fs, s.file, k_header_bytes, 8, head).ok() || head.size() < 8) return false;
  const std::uint64_t length = load32(head.data());
  if (length == 0 || length > s.size - k_header_bytes - 8) return false;
  std::string frame;
  if (!read_range(fs, s.file, k_header_bytes, 8 + length, frame).ok()) return false;
  auto f = decode_frame(frame, static_cast<std::uint32_t>(k_header_bytes), s.seq);
  return f.ok() && f->what == scanned_frame::kind::frame;
}

// True when a frame of `seq` that checks starts after `d` in `image` and
// says the segment was durable past d: damage at d is then inside synced
// data. A search of every offset, run at damage and at the body's end of
// a scanned segment (memchr for the kind byte passes zero-filled space fast).
inline bool later_frame_proves_durable(std::string_view image, std::uint64_t seq, std::uint64_t d) {
  for (std::uint64_t p = d + 1; p + k_frame_header_bytes <= image.size(); ++p) {
    // Candidates first by their kind byte (memchr: zero-filled free space is passed fast).
    const void* kind = std::memchr(image.data() + p + 8, k_frame_kind, image.size() - k_frame_header_bytes + 1 - p);
    if (!kind) return false;
    p = static_cast<std::uint64_t>(static_cast<const char*>(kind) - image.data()) - 8;
    const char* at = image.data() + p;
    if (load64(at + 9) != seq) continue;
    auto f = decode_frame(image.substr(static_cast<std::size_t>(p)), static_cast<std::uint32_t>(p), seq);
    if (f.ok() && f->what == scanned_frame::kind::frame && f->header.durable > d) return true;
  }
  return false;
}

inline bool is_entries(const record& r) { return std::holds_alternative<entries_record>(r.body); }
inline std::size_t runs_of(const record& r) {
  const auto* e = std::get_if<entries_record>(&r.body);
  return e ? e->runs.size() : 0;
}

// The footer of sealed segment `st` (open, its size known): its trailer,
// then the footer the trailer names, which must be the one written with it.
// Refused (corrupted_data with the byte): not sealed, or a damaged seal.
inline result<footer> read_seal(log_fs& fs, const segment_state& st) {
  if (st.size < k_header_bytes + k_seal_fixed_bytes) return damage(st.size, "too small for a seal");
  std::string tail;
  SESHAT_RETURN_IF_ERROR(read_range(fs, st.file, st.size - k_trailer_bytes, k_trailer_bytes, tail));
  auto t = decode_trailer(tail, st.seq, st.size);
  if (!t.ok()) return t.status();
  std::string bytes;
  SESHAT_RETURN_IF_ERROR(read_range(fs, st.file, t->footer_at, t->footer_size, bytes));
  if (bytes.size() != t->footer_size) return damage(t->footer_at, "footer past the file's end");
  const std::uint32_t crc = load32(bytes.data() + bytes.size() - 4);
  if (crc != t->footer_crc)
    return damage(t->footer_at + bytes.size() - 4, "footer crc " + hex32(crc) + ": expected the trailer's " +
                                                       hex32(t->footer_crc) + " (a footer of another seal)");
  return decode_footer(bytes, t->footer_at, st.seq, st.size);
}

// Applies the summaries of sealed segment `seq` to `groups`, all or none.
inline status apply_seal(const footer& f, std::uint64_t seq, std::map<group_address, group_log>& groups) {
  std::map<group_address, group_log> touched;
  for (const group_summary& s : f.groups) {
    auto it = groups.find(s.group);
    group_log log = it == groups.end() ? group_log{} : it->second;
    SESHAT_RETURN_IF_ERROR(log.apply(s, seq));
    touched.emplace(s.group, std::move(log));
  }
  for (auto& [g, log] : touched) groups[g] = std::move(log);
  return {};
}

// What a scan of one segment image found.
struct scan_result {
  std::uint64_t end = k_header_bytes;  // where the next frame would start
  bool has_frames = false;
  std::optional<std::uint64_t> damage_at;
  status damage;  // the refusal at damage_at
};

// Scans `image` (segment `st`) frame by frame, replaying every record into
// `groups` and noting it for st's seal (a frame's records only once all of
// it checks and parses).
inline scan_result scan(std::string_view image, segment_state& st,
                        std::map<group_address, group_log>& groups, std::uint64_t& max_number) {
  const std::uint64_t seq = st.seq;
  scan_result out;
  std::uint64_t at = k_header_bytes;
  std::vector<record> records;
  while (at < image.size()) {
    auto f = decode_frame(image.substr(static_cast<std::size_t>(at)), static_cast<std::uint32_t>(at), seq);
    if (!f.ok()) {
      out.damage_at = at;
      out.damage = f.status();
      break;
    }
    // A zero length where a later frame shows the segment durable past it
    // is damage (a zeroed sector at a frame's start), not the body's end:
    // etcd's WAL would end the log there.
    if (f->what == scanned_frame::kind::end && later_frame_proves_durable(image, seq, at)) {
      out.damage_at = at;
      out.damage = damage(at, "zero frame length (the body's end), with frames after it");
      break;
    }
    if (f->what != scanned_frame::kind::frame) break;  // end, or a stale frame: a clean end
    records.clear();
    status s = decode_records(*f, records);
    // Replay on copies, so that a frame that fails half way changes nothing.
    std::map<group_address, group_log> touched;
    for (std::size_t i = 0; s.ok() && i < records.size(); ++i) {
      const group_address& g = records[i].group();
      auto t = touched.find(g);
      if (t == touched.end()) {
        auto it = groups.find(g);
        t = touched.emplace(g, it == groups.end() ? group_log{} : it->second).first;
      }
      s = t->second.apply(records[i], seq);
      if (!s.ok())
        s = damage(records[i].offset, "record of " + to_string(g) + " does not replay: " + s.message());
    }
    if (!s.ok()) {
      out.damage_at = at;
      out.damage = s;
      break;
    }
    for (auto& [g, log] : touched) groups[g] = std::move(log);
    for (const record& rec : records)
      st.note_for_seal(rec, st.seal_growth(rec.group(), runs_of(rec), is_entries(rec)));
    out.has_frames = true;
    ++st.frames;
    st.last_number = f->header.number;
    max_number = std::max(max_number, f->header.number);
    at += f->size;
  }
  out.end = at;
  return out;
}

}  // namespace recovery_detail

// Rebuilds the index of the log in `dir` (which must exist), as the file
// comment says. The segments come back open, read-write.
inline result<recovered_log> recover(log_fs& fs, const std::filesystem::path& dir, recovery_mode mode) {
  using namespace recovery_detail;
  const std::string where = "log engine " + dir.string() + ": ";
  auto names = fs.list(dir);
  if (!names.ok()) return names.status().with_context(where);
  bool removed = false;
  std::vector<std::pair<std::uint64_t, std::string>> segs;
  for (const std::string& name : *names) {
    if (is_leftover_name(name)) {
      SESHAT_RETURN_IF_ERROR(fs.unlink(dir / name).with_context(where));
      removed = true;
    } else if (auto seq = parse_segment_name(name)) {
      segs.emplace_back(*seq, name);
    }
  }
  if (removed) SESHAT_RETURN_IF_ERROR(fs.sync_directory(dir).with_context(where));
  std::sort(segs.begin(), segs.end());

  recovered_log out;
  auto close_all = [&] {
    for (auto& s : out.segments) fs.close(s->file).ignore();
  };
  std::uint64_t max_number = 0;
  // Headers first: a segment whose header does not check is refused in both modes.
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const std::string ctx = where + segs[i].second + ", ";
    auto f = fs.open(dir / segs[i].second, {});
    if (!f.ok()) {
      close_all();
      return f.status().with_context(where);
    }
    auto st = std::make_shared<segment_state>();
    st->seq = segs[i].first;
    st->path = dir / segs[i].second;
    st->file = *f;
    st->on_disk = true;
    out.segments.push_back(st);
    auto size = fs.size(*f);
    std::string head;
    fs_status rd = size.ok() ? read_range(fs, *f, 0, k_header_bytes, head) : fs_status(size.status());
    if (!rd.ok()) {
      close_all();
      return rd.with_context(where);
    }
    auto h = decode_header(head);
    status bad;
    if (!h.ok()) bad = h.status();
    else if (h->seq != segs[i].first)
      bad = damage(12, "header seq " + std::to_string(h->seq) + ": expected the name's " +
                           std::to_string(segs[i].first));
    else if (h->size != *size)
      bad = damage(28, "header size " + std::to_string(h->size) + ": the file has " +
                           std::to_string(*size) + " bytes");
    if (!bad.ok()) {
      close_all();
      return bad.with_context(ctx, " (refusing to open, nothing changed)");
    }
    st->size = h->size;
  }
  std::vector<bool> has_frames(segs.size());
  std::optional<std::pair<std::size_t, std::uint64_t>> cut;  // segment, byte
  // Then each segment: its seal, or its frames, one image in memory at a time.
  for (std::size_t i = 0; i < segs.size(); ++i) {
    segment_state& st = *out.segments[i];
    if (auto f = read_seal(fs, st); f.ok() && apply_seal(*f, st.seq, out.groups).ok()) {
      has_frames[i] = f->frames > 0;
      st.written_end = st.synced_end = f->body_end;
      st.frames = f->frames;
      st.last_number = f->last_number;
      st.sealed = true;
      max_number = std::max(max_number, f->last_number);
      continue;
    }  // else not sealed, or a seal that does not check or apply: the frames say what it holds
    std::string image;
    if (fs_status rd = read_range(fs, out.segments[i]->file, 0, out.segments[i]->size, image); !rd.ok()) {
      close_all();
      return rd.with_context(where);
    }
    scan_result r = scan(image, st, out.groups, max_number);
    has_frames[i] = r.has_frames;
    out.segments[i]->written_end = out.segments[i]->synced_end = r.end;
    if (!r.damage_at) continue;
    const std::string ctx = where + segs[i].second + ", ";
    const std::uint64_t d = *r.damage_at;
    std::string proof;
    if (later_frame_proves_durable(image, segs[i].first, d)) {
      proof = "a later frame shows the segment durable past it";
    } else {
      for (std::size_t j = i + 1; j < segs.size() && proof.empty(); ++j)
        if (holds_a_frame(fs, *out.segments[j]))
          proof = segs[j].second + " holds a frame, written after this segment was synced";
    }
    if (!proof.empty()) {
      close_all();
      return r.damage.with_context(ctx, "; " + proof +
                                            ": damage inside synced data, refusing to open "
                                            "(nothing changed)");
    }
    if (mode == recovery_mode::absolute_consistency) {
      close_all();
      return r.damage.with_context(ctx, "; an unsynced tail, refused under absolute_consistency "
                                        "(nothing changed)");
    }
    cut = {{i, d}};
    break;  // no later segment holds a frame: nothing after the damage to replay
  }
  for (const auto& [g, log] : out.groups)
    if (auto gap = log.missing_entries()) {
      close_all();
      return status::corrupted_data(where + to_string(g) + ": entries [" + std::to_string(gap->first) +
                                    ", " + std::to_string(gap->second) +
                                    ") are in no segment, though the log holds entries after them "
                                    "(a segment holding live entries is missing; refusing to open, "
                                    "nothing changed)");
    }
  if (cut) {
    // The cut, durable before any new frame: the body's `end` at d.
    const auto& s = out.segments[cut->first];
    const std::string zeros(4, '\0');
    const std::string_view pieces[] = {zeros};
    fs_status e = own_file(fs, dir, *s);  // a checkpoint's link keeps its bytes
    if (e.ok()) e = fs.pwrite(s->file, cut->second, pieces, {});
    if (e.ok()) e = fs.datasync(s->file);
    if (!e.ok()) {
      close_all();
      return e.with_context(where + "cutting the unsynced tail: ");
    }
    s->written_end = s->synced_end = cut->second;
  }
  // Seal what was scanned, so that the next open reads footers only.
  for (std::size_t i = 0; i < segs.size(); ++i) {
    segment_state& st = *out.segments[i];
    if (st.sealed || !has_frames[i] || (cut && i > cut->first)) continue;
    auto seal = seal_bytes(st);
    if (!seal) continue;  // no room: scanned at every open
    fs_status e = own_file(fs, dir, st);  // a checkpoint's link keeps its bytes
    if (e.ok()) e = write_seal(fs, st.file, false, seal->first, seal->second);
    if (!e.ok()) {
      close_all();
      return e.with_context(where + "sealing " + segs[i].second + " after its scan: ");
    }
    st.sealed = true;
    st.summaries.clear();
  }
  if (!segs.empty()) {
    out.next_seq = segs.back().first + 1;
    out.last_is_empty = !has_frames.back();  // after a cut, later segments hold none
  }
  out.next_number = max_number + 1;
  return out;
}

}  // namespace seshat::detail::segment
