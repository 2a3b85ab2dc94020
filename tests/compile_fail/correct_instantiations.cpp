// expect: compiles
// The control case: correct instantiations, used the way an application
// does. If this fails to compile, the failures of the other cases prove
// nothing.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/backends/segmented.hpp"
#include "seshat/log_store.hpp"

struct text_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string text;
  std::vector<std::uint32_t> tags;
  template <class Archive>
  void serialize(Archive& a, unsigned) {
    a & term & index & text & tags;
  }
};

struct fixed_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  char payload[16] = {};
};

struct id_entry {
  seshat::log_id id;
  seshat::log_id log_id() const { return id; }
};

struct id_serializer {
  static void encode(const id_entry& e, std::string& out) {
    out.append(reinterpret_cast<const char*>(&e.id), sizeof e.id);
  }
  static seshat::status decode(std::string_view in, id_entry& e) {
    if (in.size() != sizeof e.id) return seshat::status::corrupted_data("bad id_entry");
    std::memcpy(&e.id, in.data(), sizeof e.id);
    return {};
  }
};

// The other two ways Boost.Serialization finds serialize(): a private
// member that befriends boost::serialization::access, and a free function
// in the entry's namespace.
namespace app {
class private_entry {
 public:
  std::uint64_t term = 0;
  std::uint64_t index = 0;

 private:
  friend class boost::serialization::access;
  template <class Archive>
  void serialize(Archive& a, unsigned) {
    a & term & index;
  }
};
struct free_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};
template <class Archive>
void serialize(Archive& a, free_entry& e, unsigned) {
  a & e.term & e.index;
}
}  // namespace app

using system_log = seshat::log_store<text_entry, seshat::boost_serializer, seshat::memory_backend>;
using private_log = seshat::log_store<app::private_entry, seshat::boost_serializer,
                                      seshat::memory_backend, seshat::data_shard>;
using free_log = seshat::log_store<app::free_entry, seshat::boost_serializer,
                                   seshat::memory_backend, seshat::data_shard>;
using data_log = seshat::log_store<fixed_entry, seshat::memcpy_serializer, seshat::memory_backend,
                                   seshat::data_shard, seshat::decimal_key_format>;
using custom_log = seshat::log_store<id_entry, id_serializer, seshat::memory_backend>;

seshat::status use(seshat::storage<seshat::memory_backend>& store) {
  auto system = system_log::open(store);
  if (!system.ok()) return system.status();
  const std::vector<text_entry> one{{1, 1, "x", {}}};
  SESHAT_RETURN_IF_ERROR((*system)->append(one));
  auto data = data_log::open(store, seshat::data_shard{7});
  if (!data.ok()) return data.status();
  auto custom = custom_log::open(store);
  if (!custom.ok()) return custom.status();
  auto hidden = private_log::open(store, seshat::data_shard{8});
  if (!hidden.ok()) return hidden.status();
  SESHAT_RETURN_IF_ERROR((*hidden)->append(std::vector<app::private_entry>(1)));
  auto free = free_log::open(store, seshat::data_shard{9});
  if (!free.ok()) return free.status();
  SESHAT_RETURN_IF_ERROR((*free)->append(std::vector<app::free_entry>(1)));
  return (*data)->truncate(1);
}

// The same policies over a store whose logs are in seshat's log engine.
using segmented_store = seshat::segmented<seshat::memory_backend>;
using segmented_log = seshat::log_store<text_entry, seshat::boost_serializer, segmented_store,
                                        seshat::data_shard, seshat::decimal_key_format>;

seshat::status use_segmented(seshat::storage<segmented_store>& store) {
  auto log = segmented_log::open(store, seshat::data_shard{3});
  if (!log.ok()) return log.status();
  const std::vector<text_entry> one{{1, 1, "x", {}}};
  SESHAT_RETURN_IF_ERROR((*log)->append(one));
  SESHAT_RETURN_IF_ERROR((*log)->save_vote(seshat::vote{1, 2, false}));
  return (*log)->purge(1);
}
